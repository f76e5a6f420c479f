//! The delivery worker: claims due messages under a lease, hands each to its
//! channel's sender (`email`; with no account, `capture`) outside any
//! transaction, and records the attempts and the outcome (webhook and
//! chat-robot messages go to `http`). Only the holder of
//! the lease may record an outcome, so a worker that stalled past its lease
//! cannot overwrite another's result. A new channel is a file beside `email`
//! and an arm in `Worker::deliver`.

mod capture;
mod email;
pub mod http;

use crate::catalog::Class;
use crate::compose::Content;
use crate::config::Config;
use crate::connect::Connector;
use crate::diagnosis::Report;
use crate::domain::Account;
use crate::error::Result;
use crate::health::Health;
use crate::metrics::Metrics;
use crate::pool::SessionPool;
use crate::status::{Channel, MessageStatus};
use crate::store::Freshness;
use crate::store::Store;
use crate::store::group_commit::Outcome;
use crate::store::messages::{AttemptRow, MessageRow};
use crate::store::settings::SettingsRow;
use email::LimitTurns;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, Semaphore, watch};

const BATCH: i64 = 128;
/// Claimed messages worked on at once on this node: sending, or waiting for
/// their outcome's group commit, which is why there are more than sends.
const IN_PROGRESS: usize = 256;
/// SMTP transactions at once on this node, across accounts.
pub const SENDS: usize = 64;
/// `next_attempt_at` of a message held until a person acts (reauthorization).
pub const HELD_INDEFINITELY: i64 = i64::MAX;

/// The accounts and settings deliveries need, each read once rather than
/// once per message; the worker starts afresh every second and whenever this
/// process changed an account, setting or tenant (another process's change
/// shows within the second).
pub struct Lookups {
    accounts: Mutex<HashMap<String, Option<Account>>>,
    settings: Mutex<HashMap<String, SettingsRow>>,
    since: Freshness,
}

impl Lookups {
    /// Empty lookups, fresh from now.
    pub fn new(store: &Store) -> Lookups {
        Lookups {
            accounts: Mutex::default(),
            settings: Mutex::default(),
            since: store.freshness(),
        }
    }

    fn fresh(&self, store: &Store) -> bool {
        store.still_fresh(self.since)
    }

    async fn account(&self, store: &Store, id: &str) -> Result<Option<Account>> {
        if let Some(a) = self.accounts.lock().expect("lookups").get(id) {
            return Ok(a.clone());
        }
        let a = store.account_by_id(id).await?;
        self.accounts.lock().expect("lookups").insert(id.to_string(), a.clone());
        Ok(a)
    }

    async fn settings(&self, store: &Store, tenant: &str) -> Result<SettingsRow> {
        if let Some(s) = self.settings.lock().expect("lookups").get(tenant) {
            return Ok(s.clone());
        }
        let s = store.get_settings(tenant).await?;
        self.settings
            .lock()
            .expect("lookups")
            .insert(tenant.to_string(), s.clone());
        Ok(s)
    }
}

/// What a delivery wrote down: the attempts made and the message's next state.
struct Finish<'a> {
    row: &'a MessageRow,
    lease_until: i64,
    attempts: Vec<AttemptRow>,
}

impl Finish<'_> {
    async fn to(
        self,
        store: &Store,
        status: MessageStatus,
        last_error: Option<&str>,
        next_attempt_at: i64,
        content: Option<String>,
    ) -> Result<()> {
        let held = store
            .record_outcome(Outcome {
                message: self.row.id.clone(),
                lease_until: self.lease_until,
                status: status.as_str().to_string(),
                last_error: last_error.map(str::to_string),
                next_attempt_at,
                content,
                attempts: self.attempts,
                captured: None,
            })
            .await?;
        if !held {
            tracing::warn!(message = %self.row.id, "the lease ran out before the outcome was recorded; another worker owns the message now");
        }
        Ok(())
    }
}

/// The delivery worker and what it shares across messages.
#[derive(Clone)]
pub struct Worker {
    store: Store,
    config: Arc<Config>,
    connector: Connector,
    health: Health,
    metrics: Arc<Metrics>,
    /// Notified when a message is queued or released.
    wake: Arc<Notify>,
    /// Idle authenticated SMTP sessions per account, for reuse.
    sessions: Arc<SessionPool>,
    /// SMTP transactions at once in this process, across accounts.
    send_slots: Arc<Semaphore>,
    /// Connections per account in this process (its `limits.connections`).
    account_slots: Arc<Mutex<HashMap<String, Arc<Semaphore>>>>,
    /// Per account (and per channel), its sends in flight here, counted against its limits.
    limit_turns: LimitTurns,
    /// What webhook and chat-robot channels need: the keys that open their
    /// secrets and the HTTP clients (`with_channels`).
    channels: Option<(crate::secrets::Keyring, crate::webhook::Client)>,
}

impl Worker {
    /// The worker over the store; it sleeps until `wake` or a due message.
    pub fn new(
        store: Store,
        config: Arc<Config>,
        connector: Connector,
        health: Health,
        metrics: Arc<Metrics>,
        wake: Arc<Notify>,
    ) -> Worker {
        Worker {
            store,
            config,
            connector,
            health,
            metrics,
            wake,
            sessions: Arc::default(),
            send_slots: Arc::new(Semaphore::new(SENDS)),
            account_slots: Arc::default(),
            limit_turns: Arc::default(),
            channels: None,
        }
    }

    /// The worker, able to deliver to webhook and chat-robot channels.
    pub fn with_channels(mut self, keys: crate::secrets::Keyring, http: crate::webhook::Client) -> Worker {
        self.channels = Some((keys, http));
        self
    }

    /// SQLite is one node: claims left by a previous run died with it, and
    /// go back to the queue (logged as interrupted: the resend keeps the Message-ID).
    pub async fn release_claims_of_previous_run(&self) -> Result<()> {
        if matches!(self.store.pool, crate::store::Pool::Sqlite(_)) {
            let released = self.store.release_all_claims().await?;
            if released > 0 {
                tracing::warn!(
                    released,
                    "messages claimed by the previous run are queued again (same Message-ID)"
                );
            }
        }
        Ok(())
    }

    /// Claims one message now and delivers it, under a lease like the
    /// worker's so a running server cannot send it too (`herald send`
    /// without `--queue-only`). False when it was not due or is claimed.
    pub async fn deliver_now(&self, id: &str) -> Result<bool> {
        let now = crate::now_ms();
        let lease = now + self.config.lease_secs as i64 * 1000;
        let Some(row) = self.store.claim_message(id, now, lease).await? else {
            return Ok(false);
        };
        self.deliver(&row, lease, &Lookups::new(&self.store)).await?;
        Ok(true)
    }

    /// Runs until `shutdown` turns true; in-flight sends finish first.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let app = self;
        tracing::info!("delivery worker started");
        let slots = Arc::new(Semaphore::new(IN_PROGRESS));
        let mut lookups = Arc::new(Lookups::new(&app.store));
        let mut running = tokio::task::JoinSet::new();
        loop {
            if *shutdown.borrow() {
                break;
            }
            while running.try_join_next().is_some() {}
            let free = slots.available_permits() as i64;
            let now = crate::now_ms();
            let claimed = if free == 0 {
                Vec::new()
            } else {
                // A whole batch at once: claims cost a statement each, and
                // claimed rows simply wait for a free slot under their lease.
                let started = Instant::now();
                // A claim holds for `HERALD_LEASE_SECS`: a send is bounded by the
                // account's timeout per step, well inside it; a node that died
                // leaves its claims to others once it runs out (on SQLite,
                // `serve` releases them at start).
                let lease_until = now + app.config.lease_secs as i64 * 1000;
                match app.store.claim_due(now, lease_until, BATCH).await {
                    Ok(c) => {
                        tracing::trace!(claimed = c.len(), ms = started.elapsed().as_secs_f64() * 1e3, "claim");
                        c
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "claiming messages failed");
                        Vec::new()
                    }
                }
            };
            if claimed.is_empty() {
                tokio::select! {
                    _ = app.wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = shutdown.changed() => {}
                    Some(_) = running.join_next(), if !running.is_empty() => {}
                }
                continue;
            }
            if !lookups.fresh(&app.store) {
                lookups = Arc::new(Lookups::new(&app.store));
            }
            for row in claimed {
                let lookups = lookups.clone();
                let permit = slots
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("the semaphore is never closed");
                let app = app.clone();
                running.spawn(async move {
                    let lease = row.lease_until.unwrap_or(0);
                    if let Err(e) = app.deliver(&row, lease, &lookups).await {
                        tracing::error!(message = %row.id, error = %e, "delivery bookkeeping failed");
                    }
                    drop(permit);
                });
            }
        }
        // Graceful: what is in flight finishes and is recorded.
        while running.join_next().await.is_some() {}
        for session in app.sessions.drain() {
            session.quit().await;
        }
        tracing::info!("delivery worker stopped");
    }

    /// Delivers one claimed message and records the outcome, through the
    /// message's channel: with no account on its route, the capture mailbox.
    pub(crate) async fn deliver(&self, row: &MessageRow, lease_until: i64, lookups: &Lookups) -> Result<()> {
        let content: Content = serde_json::from_str(&row.content).map_err(anyhow::Error::from)?;
        let finish = Finish {
            row,
            lease_until,
            attempts: Vec::new(),
        };
        if content.channel == Channel::Http {
            return self.deliver_http(row, content, finish).await;
        }
        let Some(account_id) = row.account_id.as_deref() else {
            return Box::pin(self.capture(row, &content, lease_until, lookups)).await;
        };
        match content.channel {
            Channel::Email => self.deliver_email(row, content, account_id, finish, lookups).await,
            Channel::Http => unreachable!("delivered above"),
        }
    }

    /// Exponential backoff with jitter between the configured bounds.
    pub fn backoff_ms(&self, attempts: i64) -> i64 {
        backoff_ms(
            self.config.retry_min_secs,
            self.config.retry_max_secs,
            attempts,
            rand::random::<f64>(),
        )
    }
}

/// A delivery-log entry for an attempt that reached a server.
fn report_attempt(row: &MessageRow, account: Option<&str>, outcome: &str, report: &Report) -> Result<AttemptRow> {
    Ok(AttemptRow {
        id: crate::store::new_id(),
        message_id: row.id.clone(),
        at: crate::now_ms(),
        account_id: account.map(str::to_string),
        outcome: outcome.to_string(),
        stage: Some(report.stage.as_str().to_string()),
        code: report.code.map(i64::from),
        enhanced_code: report.enhanced_code.clone(),
        reply: report.reply.clone(),
        class: report.class.map(|c| class_name(c).to_string()),
        transcript: Some(serde_json::to_string(&report.transcript).map_err(anyhow::Error::from)?),
    })
}

/// A delivery-log entry for a decision taken without a server (held, failed, captured).
fn plain_attempt(
    row: &MessageRow,
    account: Option<&str>,
    outcome: &str,
    class: Option<&str>,
    reply: Option<&str>,
) -> AttemptRow {
    AttemptRow {
        id: crate::store::new_id(),
        message_id: row.id.clone(),
        at: crate::now_ms(),
        account_id: account.map(str::to_string),
        outcome: outcome.to_string(),
        stage: None,
        code: None,
        enhanced_code: None,
        reply: reply.map(str::to_string),
        class: class.map(str::to_string),
        transcript: None,
    }
}

/// The wait before attempt `attempts + 1`: the minimum doubled per attempt,
/// capped at the maximum, less up to 20% jitter (`unit` in [0, 1)) so that a
/// burst of failures does not retry in lockstep; never below the minimum.
pub fn backoff_ms(min_secs: u64, max_secs: u64, attempts: i64, unit: f64) -> i64 {
    let min = min_secs as i64 * 1000;
    let max = max_secs as i64 * 1000;
    let exp = min.saturating_mul(1i64 << (attempts.clamp(1, 30) - 1));
    let base = exp.min(max);
    let jitter = (base as f64 * 0.2 * unit.clamp(0.0, 1.0)) as i64;
    (base - jitter).max(min)
}

pub fn class_name(c: Class) -> &'static str {
    match c {
        Class::Permanent => "permanent",
        Class::Transient => "transient",
        Class::Reauthorize => "reauthorize",
        Class::Configuration => "configuration",
    }
}

#[cfg(test)]
mod tests {
    use super::backoff_ms;

    #[test]
    fn backoff_doubles_within_bounds() {
        assert_eq!(backoff_ms(30, 3600, 1, 0.0), 30_000);
        assert_eq!(backoff_ms(30, 3600, 2, 0.0), 60_000);
        assert_eq!(backoff_ms(30, 3600, 5, 0.0), 480_000);
        assert_eq!(backoff_ms(30, 3600, 20, 0.0), 3_600_000, "capped at the maximum");
        assert_eq!(backoff_ms(30, 3600, 1000, 0.0), 3_600_000, "no overflow");
        for attempts in 0..40 {
            for unit in [0.0, 0.3, 0.999] {
                let b = backoff_ms(30, 3600, attempts, unit);
                assert!((30_000..=3_600_000).contains(&b), "{attempts} {unit}: {b}");
            }
        }
        assert_eq!(
            backoff_ms(30, 3600, 20, 0.999),
            3_600_000 - 719_280,
            "jitter takes off at most 20%"
        );
    }
}
