//! Storage: SQLite embedded by default, PostgreSQL when several nodes share
//! the work. The queries are written once (numbered `$n` parameters, integer
//! flags and millisecond timestamps) and run on either pool.

pub mod accounts;
pub mod channels;
mod condition;
pub mod console;
pub mod dkim;
mod error;
pub mod group_commit;
pub mod messages;
pub mod oauth;
pub mod rules;
pub mod settings;
mod sqlite_writer;
pub mod templates;
pub mod tenants;
pub mod tokens;

pub use condition::Condition;
pub use error::{Result, StoreError, Unavailable};

use anyhow::Context;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use std::str::FromStr;
use std::time::Duration;

/// Runs the same query text against whichever database is configured.
/// `$pool` is bound to the concrete pool in each arm, so the body is compiled
/// once per database. The body (an async block: `?` stays inside) answers a
/// `sqlx::Result`, which comes out as a `store::Result` whose storage
/// condition (disk full …) the store has noted.
macro_rules! on_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        $store.condition.checked(match &$store.pool {
            $crate::store::Pool::Sqlite($pool) => async { $body }.await,
            $crate::store::Pool::Postgres($pool) => async { $body }.await,
        })
    };
}
pub(crate) use on_pool;

#[derive(Clone, Debug)]
pub enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

#[derive(Clone, Debug)]
pub struct Store {
    pub pool: Pool,
    /// Every message and delivery outcome is written through it.
    writer: group_commit::GroupCommit,
    /// Whether the database takes writes, as the last ones found it.
    condition: std::sync::Arc<Condition>,
    /// Bumped by every change to accounts, settings or tenants made through
    /// this process: what caches them (`Freshness`) starts over.
    changes: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// When a cache of accounts, settings or tenants was filled. It serves for a
/// second, unless this process changed one of them since (another process's
/// change shows within that second).
#[derive(Clone, Copy, Debug)]
pub struct Freshness {
    at: std::time::Instant,
    changes: u64,
}

/// The platform's own tenant: accounts and messages of the operator.
pub const PLATFORM: &str = "platform";

impl Store {
    /// Opens the database and brings its schema up to date.
    pub async fn connect(url: &str) -> anyhow::Result<Store> {
        let condition = std::sync::Arc::new(Condition::default());
        let (pool, writer) = if url.starts_with("sqlite:") {
            // WAL with synchronous=FULL: a commit is on disk before we answer 202.
            let opts = SqliteConnectOptions::from_str(url)
                .with_context(|| format!("HERALD_DATABASE_URL {url:?}"))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10));
            let file = opts.get_filename().to_path_buf();
            if file.as_os_str().is_empty() || file.to_string_lossy().contains(":memory:") {
                anyhow::bail!(
                    "HERALD_DATABASE_URL {url:?} is an in-memory database, which would lose accepted messages: \
                     give a file, e.g. sqlite:///var/lib/herald/herald.db"
                );
            }
            if let Some(path) = url
                .strip_prefix("sqlite://")
                .and_then(|p| std::path::Path::new(p).parent())
                && !path.as_os_str().is_empty()
            {
                std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
            }
            let pool = SqlitePoolOptions::new()
                .max_connections(8)
                .connect_with(opts)
                .await
                .with_context(|| format!("opening SQLite database {url}"))?;
            sqlx::migrate!("./migrations/sqlite")
                .run(&pool)
                .await
                .context("migrating the SQLite database")?;
            let writer = group_commit::GroupCommit::sqlite(&file, condition.clone())
                .with_context(|| format!("opening the SQLite database {} for writing", file.display()))?;
            (Pool::Sqlite(pool), writer)
        } else {
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect(url)
                .await
                .with_context(|| format!("connecting to PostgreSQL at {}", redact_url(url)))?;
            sqlx::migrate!("./migrations/postgres")
                .run(&pool)
                .await
                .context("migrating the PostgreSQL database")?;
            (
                Pool::Postgres(pool.clone()),
                group_commit::GroupCommit::postgres(pool, condition.clone()),
            )
        };
        Ok(Store {
            pool,
            writer,
            condition,
            changes: Default::default(),
        })
    }

    /// Notes a change to accounts, settings or tenants (see `changes`) when
    /// the guard drops, after the write: a cache filled while it ran is stale.
    pub(crate) fn changing(&self) -> impl Drop + '_ {
        struct Changed<'a>(&'a std::sync::atomic::AtomicU64);
        impl Drop for Changed<'_> {
            fn drop(&mut self) {
                self.0.fetch_add(1, std::sync::atomic::Ordering::Release);
            }
        }
        Changed(&self.changes)
    }

    /// Marks the start of a cache's filling: take it before the reads.
    pub fn freshness(&self) -> Freshness {
        Freshness {
            at: std::time::Instant::now(),
            changes: self.changes.load(std::sync::atomic::Ordering::Acquire),
        }
    }

    /// Whether a cache filled since `since` may still serve.
    pub fn still_fresh(&self, since: Freshness) -> bool {
        since.at.elapsed() < std::time::Duration::from_secs(1)
            && since.changes == self.changes.load(std::sync::atomic::Ordering::Acquire)
    }

    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite(p) => p.close().await,
            Pool::Postgres(p) => p.close().await,
        }
    }

    /// Whether the database takes writes. While a storage condition the
    /// writes met stands (disk full …), a small write checks it again (at
    /// most once a second) and clears it if it went through; without one,
    /// the database must answer and the writer (group commit) still run.
    pub async fn check(&self) -> std::result::Result<(), Unavailable> {
        if self.condition.current().is_some() && self.condition.probe_due() {
            // What it met is noted by the writer.
            let _ = self.writer.write(group_commit::Write::Probe).await;
        }
        if let Some(u) = self.condition.current() {
            return Err(u);
        }
        if !self.writer.running() {
            return Err(Unavailable::Unreachable);
        }
        match on_pool!(self, |p| sqlx::query("SELECT 1").execute(p).await.map(|_| ())) {
            Ok(()) => Ok(()),
            Err(e) => Err(e.unavailable().unwrap_or(Unavailable::Unreachable)),
        }
    }

    /// Operations each storage condition refused since the start, for `/metrics`.
    pub fn refusals(&self) -> [(Unavailable, u64); Unavailable::ALL.len()] {
        self.condition.refusals()
    }
}

/// A database URL without its password, for error messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}{}:***{}", &url[..s + 3], user, &url[at..])
        }
        _ => url.to_string(),
    }
}

/// A new identifier: UUIDv7, so identifiers sort by creation time.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
