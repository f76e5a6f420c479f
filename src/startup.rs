//! Start-up: serves the HTTP API, the delivery worker and the rules' event
//! feed side by side until a signal asks them to stop, then lets the work in
//! flight finish. Only `main` (and the tests) import this module.

use crate::services::Services;
use anyhow::Context;
use std::time::Duration;
use tokio::sync::watch;

/// Runs the HTTP server and the delivery worker until Ctrl-C or SIGTERM;
/// then stops accepting requests, lets the worker finish what it holds, and
/// closes the database.
pub async fn serve(app: Services) -> anyhow::Result<()> {
    if let Some(token) = app.tenants.bootstrap_admin_token().await? {
        eprintln!(
            "\n  Herald's platform admin API token (shown once; keep it safe):\n\n    {token}\n\n  \
             Use it as: Authorization: Bearer <token>. Lost it? `herald token create` makes another.\n"
        );
    }
    app.worker.release_claims_of_previous_run().await?;
    let listener = tokio::net::TcpListener::bind(app.config.listen)
        .await
        .with_context(|| format!("listening on {} (HERALD_LISTEN)", app.config.listen))?;
    let addr = listener.local_addr()?;
    serve_on(app, listener, shutdown_signal()).await.map(|_| {
        tracing::info!(%addr, "stopped");
    })
}

/// Serves on an already bound listener until `stop` completes (tests use this).
pub async fn serve_on(
    app: Services,
    listener: tokio::net::TcpListener,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    let (tx, rx) = watch::channel(false);
    let worker = tokio::spawn(app.worker.clone().run(rx.clone()));
    let feed = tokio::spawn(app.rules.clone().run_event_feed(rx.clone()));
    let router = crate::api::router(app.clone());
    tracing::info!(%addr, data_dir = %app.config.data_dir.display(), "Herald is listening on http://{addr}");
    let mut rx_http = rx.clone();
    let server = axum::serve(listener, router).with_graceful_shutdown(async move {
        let _ = rx_http.wait_for(|s| *s).await;
    });
    let server = tokio::spawn(async move { server.await });
    stop.await;
    tracing::info!("shutting down: finishing in-flight work");
    let _ = tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(30), server).await;
    let _ = tokio::time::timeout(Duration::from_secs(60), worker).await;
    let _ = tokio::time::timeout(Duration::from_secs(10), feed).await;
    app.close().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
