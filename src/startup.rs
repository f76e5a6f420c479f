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
    match app.console_users.first_start_link().await? {
        Some(link) => eprintln!(
            "\n  Herald's console: {}/\n  Set the platform admin's password there (user \"admin\"; the link works once, for 24 hours):\n\n    {link}\n\n  \
             Lost it, or the password? `herald admin reset-password` prints a new link.\n",
            app.config.public_url
        ),
        None => eprintln!("\n  Herald's console: {}/\n", app.config.public_url),
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
    let server = tokio::spawn(accept_loop(listener, router, rx.clone()));
    stop.await;
    tracing::info!("shutting down: finishing in-flight work");
    let _ = tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(30), server).await;
    let _ = tokio::time::timeout(Duration::from_secs(60), worker).await;
    let _ = tokio::time::timeout(Duration::from_secs(10), feed).await;
    app.close().await;
    Ok(())
}

/// Connections at once, in all.
const MAX_CONNECTIONS: usize = 4096;
/// Connections at once from one address: a client that opens many and says
/// little (slowloris) cannot take everyone else's.
const MAX_CONNECTIONS_PER_ADDRESS: usize = 256;
/// Time for a request's headers to arrive, and for the next request on an
/// idle keep-alive connection to begin.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts HTTP connections until `stop`: each bounded in the time its
/// headers may take (and its idle keep-alive), and in number per address and
/// in all; the request body's time is bounded by the API's `Json` reader.
/// At shutdown the requests in flight finish (30 s at most).
async fn accept_loop(listener: tokio::net::TcpListener, router: axum::Router, mut stop: watch::Receiver<bool>) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;
    use std::collections::HashMap;
    use std::net::IpAddr;
    use std::sync::{Arc, Mutex};

    /// One connection counted against its address, until dropped.
    struct PerAddress(Arc<Mutex<HashMap<IpAddr, usize>>>, IpAddr);
    impl Drop for PerAddress {
        fn drop(&mut self) {
            let mut map = self.0.lock().expect("connection counts");
            if let Some(n) = map.get_mut(&self.1) {
                *n -= 1;
                if *n == 0 {
                    map.remove(&self.1);
                }
            }
        }
    }

    let total = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let per_address: Arc<Mutex<HashMap<IpAddr, usize>>> = Arc::default();
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    while !*stop.borrow() {
        let (stream, peer) = tokio::select! {
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    break;
                }
                continue;
            }
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, most likely: let some close.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = total.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "too many connections: closing a new one");
            continue;
        };
        let counted = {
            let mut map = per_address.lock().expect("connection counts");
            let n = map.entry(peer.ip()).or_insert(0);
            if *n >= MAX_CONNECTIONS_PER_ADDRESS {
                None
            } else {
                *n += 1;
                Some(PerAddress(per_address.clone(), peer.ip()))
            }
        };
        let Some(counted) = counted else {
            tracing::debug!(%peer, "too many connections from this address: closing a new one");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT)
            .serve_connection(
                TokioIo::new(stream),
                TowerToHyperService::new(with_peer(router.clone(), peer)),
            );
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
            drop((permit, counted));
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(30), graceful.shutdown()).await;
}

/// The router for one connection, its requests carrying the peer's address
/// (`ConnectInfo`: the console's sign-in rate limit counts per address).
fn with_peer(
    router: axum::Router,
    peer: std::net::SocketAddr,
) -> impl tower::Service<
    axum::http::Request<hyper::body::Incoming>,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future = impl Send,
> + Clone {
    use tower::ServiceExt;
    router.map_request(move |mut req: axum::http::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
        req
    })
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
