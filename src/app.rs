//! Start-up: the application's shared state, built from the configuration,
//! and `serve`, which runs the HTTP API and the delivery worker side by side
//! until a signal asks them to stop.

use crate::config::Config;
use crate::secrets::{self, Keyring};
use crate::store::{PLATFORM, Store};
use anyhow::Context;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// Everything a request handler, the worker or a CLI command needs.
#[derive(Clone)]
pub struct App {
    pub config: Arc<Config>,
    pub store: Store,
    pub keys: Keyring,
    /// Wakes the delivery worker when a message is queued.
    pub wake: Arc<Notify>,
    pub metrics: Arc<Metrics>,
    /// HTTP client for OAuth2 token endpoints.
    pub oauth_http: reqwest::Client,
    /// Idle authenticated SMTP sessions per account, for reuse.
    pub sessions: Arc<crate::pool::SessionPool>,
    /// Recently resolved routes, for the accept path (`outbox::RouteCache`).
    pub routes: Arc<crate::outbox::RouteCache>,
    /// Batch requests processed at once: each holds megabytes while it
    /// runs, and more at once would not commit any sooner (one writer).
    pub batch_slots: Arc<tokio::sync::Semaphore>,
    /// SMTP transactions at once in this process, across accounts.
    pub send_slots: Arc<tokio::sync::Semaphore>,
    /// Per account, its sends in flight here, counted against its limits.
    pub limit_turns: crate::delivery::LimitTurns,
    /// Connections per account in this process (its `limits.connections`).
    pub account_slots: Arc<std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Semaphore>>>>,
    /// One refresh at a time per account in this process (`oauth::tokens`).
    pub oauth_locks: Arc<std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

impl App {
    /// Opens the data directory and the database, creating both on first use.
    pub async fn open(config: Config) -> anyhow::Result<App> {
        std::fs::create_dir_all(&config.data_dir).with_context(|| {
            format!(
                "creating the data directory {} (HERALD_DATA_DIR)",
                config.data_dir.display()
            )
        })?;
        let keys = Keyring::load_or_create(&config.data_dir, config.secret_key.as_deref())?;
        let store = Store::connect(&config.database_url).await?;
        restrict_database_files(&config.database_url);
        let app = App {
            config: Arc::new(config),
            store,
            keys,
            wake: Arc::new(Notify::new()),
            metrics: Arc::new(Metrics::default()),
            oauth_http: crate::oauth::http_client(),
            oauth_locks: Arc::default(),
            routes: Arc::default(),
            batch_slots: Arc::new(tokio::sync::Semaphore::new(2)),
            send_slots: Arc::new(tokio::sync::Semaphore::new(crate::delivery::SENDS)),
            limit_turns: Arc::default(),
            account_slots: Arc::default(),
            sessions: Arc::default(),
        };
        app.ensure_system_rules(PLATFORM).await?;
        Ok(app)
    }

    /// On a first start without `HERALD_ADMIN_TOKEN`, creates the platform
    /// admin's token and answers it, to be shown once.
    pub async fn bootstrap_admin_token(&self) -> anyhow::Result<Option<String>> {
        if self.config.admin_token.is_some() || self.store.count_tokens(PLATFORM).await? > 0 {
            return Ok(None);
        }
        let token = secrets::new_token();
        self.store
            .insert_token(&secrets::token_hash(&token), PLATFORM, "first start")
            .await?;
        Ok(Some(token))
    }

    /// Creates another platform admin token (`herald token create`).
    pub async fn create_admin_token(&self, label: &str) -> anyhow::Result<String> {
        let token = secrets::new_token();
        self.store
            .insert_token(&secrets::token_hash(&token), PLATFORM, label)
            .await?;
        Ok(token)
    }
}

/// The SQLite file holds message contents and sealed secrets: owner only.
/// (SQLite gives its -wal and -shm files the database file's mode.)
fn restrict_database_files(url: &str) {
    #[cfg(unix)]
    if let Some(path) = url.strip_prefix("sqlite://") {
        use std::os::unix::fs::PermissionsExt;
        let path = path.split('?').next().unwrap_or(path);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::set_permissions(format!("{path}{suffix}"), std::fs::Permissions::from_mode(0o600));
        }
    }
}

/// Runs the HTTP server and the delivery worker until Ctrl-C or SIGTERM;
/// then stops accepting requests, lets the worker finish what it holds, and
/// closes the database.
pub async fn serve(app: App) -> anyhow::Result<()> {
    if let Some(token) = app.bootstrap_admin_token().await? {
        eprintln!(
            "\n  Herald's platform admin API token (shown once; keep it safe):\n\n    {token}\n\n  \
             Use it as: Authorization: Bearer <token>. Lost it? `herald token create` makes another.\n"
        );
    }
    // SQLite is one node: claims left by a previous run died with it.
    if matches!(app.store.pool, crate::store::Pool::Sqlite(_)) {
        let released = app.store.release_all_claims().await?;
        if released > 0 {
            tracing::warn!(
                released,
                "messages claimed by the previous run are queued again (same Message-ID)"
            );
        }
    }
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
    app: App,
    listener: tokio::net::TcpListener,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    let (tx, rx) = watch::channel(false);
    let worker = tokio::spawn(crate::delivery::run_worker(app.clone(), rx.clone()));
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
    app.store.close().await;
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

/// Counters for `/metrics`; queue depth comes from the database at scrape time.
#[derive(Default)]
pub struct Metrics {
    accepted: AtomicU64,
    tests_ok: AtomicU64,
    tests_failed: AtomicU64,
    attempts: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
    /// Attempts per account and outcome.
    per_account: std::sync::Mutex<std::collections::BTreeMap<(String, String), u64>>,
    /// Send latency histogram: counts per upper bound in seconds.
    latency_buckets: [AtomicU64; LATENCY_BOUNDS.len()],
    latency_count: AtomicU64,
    latency_sum_ms: AtomicU64,
}

pub const LATENCY_BOUNDS: [f64; 8] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

impl Metrics {
    pub fn record_accepted(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_test(&self, ok: bool) {
        if ok { &self.tests_ok } else { &self.tests_failed }.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_attempt(&self, class: &str) {
        *self
            .attempts
            .lock()
            .expect("metrics lock")
            .entry(class.to_string())
            .or_default() += 1;
    }

    pub fn record_account(&self, account: &str, outcome: &str) {
        *self
            .per_account
            .lock()
            .expect("metrics lock")
            .entry((account.to_string(), outcome.to_string()))
            .or_default() += 1;
    }

    pub fn observe_send(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (i, bound) in LATENCY_BOUNDS.iter().enumerate() {
            if secs <= *bound {
                self.latency_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_ms.fetch_add(d.as_millis() as u64, Ordering::Relaxed);
    }

    /// Prometheus text exposition.
    pub fn render(&self, queue: &[(String, i64)]) -> String {
        let mut out = String::new();
        out.push_str("# HELP herald_messages Messages in the store by status.\n# TYPE herald_messages gauge\n");
        for s in crate::outbox::status::ALL {
            let n = queue.iter().find(|(st, _)| st == s).map(|(_, n)| *n).unwrap_or(0);
            out.push_str(&format!("herald_messages{{status=\"{s}\"}} {n}\n"));
        }
        out.push_str("# HELP herald_messages_accepted_total Messages accepted by this process.\n# TYPE herald_messages_accepted_total counter\n");
        out.push_str(&format!(
            "herald_messages_accepted_total {}\n",
            self.accepted.load(Ordering::Relaxed)
        ));
        out.push_str("# HELP herald_delivery_attempts_total Delivery attempts by outcome class.\n# TYPE herald_delivery_attempts_total counter\n");
        for (class, n) in self.attempts.lock().expect("metrics lock").iter() {
            out.push_str(&format!("herald_delivery_attempts_total{{class=\"{class}\"}} {n}\n"));
        }
        out.push_str("# HELP herald_account_attempts_total Delivery attempts per account and outcome (this process).\n# TYPE herald_account_attempts_total counter\n");
        for ((account, outcome), n) in self.per_account.lock().expect("metrics lock").iter() {
            out.push_str(&format!(
                "herald_account_attempts_total{{account=\"{account}\",outcome=\"{outcome}\"}} {n}\n"
            ));
        }
        out.push_str(
            "# HELP herald_test_emails_total Test emails by result.\n# TYPE herald_test_emails_total counter\n",
        );
        out.push_str(&format!(
            "herald_test_emails_total{{ok=\"true\"}} {}\n",
            self.tests_ok.load(Ordering::Relaxed)
        ));
        out.push_str(&format!(
            "herald_test_emails_total{{ok=\"false\"}} {}\n",
            self.tests_failed.load(Ordering::Relaxed)
        ));
        out.push_str(
            "# HELP herald_send_seconds Time to deliver one message over SMTP.\n# TYPE herald_send_seconds histogram\n",
        );
        for (i, bound) in LATENCY_BOUNDS.iter().enumerate() {
            out.push_str(&format!(
                "herald_send_seconds_bucket{{le=\"{bound}\"}} {}\n",
                self.latency_buckets[i].load(Ordering::Relaxed)
            ));
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        out.push_str(&format!("herald_send_seconds_bucket{{le=\"+Inf\"}} {count}\n"));
        out.push_str(&format!(
            "herald_send_seconds_sum {}\n",
            self.latency_sum_ms.load(Ordering::Relaxed) as f64 / 1000.0
        ));
        out.push_str(&format!("herald_send_seconds_count {count}\n"));
        out
    }
}
