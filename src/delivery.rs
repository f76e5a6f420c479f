//! The delivery worker: claims due messages under a lease, sends each one
//! outside any transaction, and records the attempt and the outcome. Only the
//! holder of the lease may record an outcome, so a worker that stalled past
//! its lease cannot overwrite another's result.

use crate::catalog::{Catalog, Class};
use crate::compose::{self, CAPTURE_FROM, Content, Draft};
use crate::config::Config;
use crate::connect::Connector;
use crate::diagnosis::Report;
use crate::domain::{EmailAddress, HeaderText};
use crate::error::Result;
use crate::health::{Health, Observation};
use crate::metrics::Metrics;
use crate::pool::SessionPool;
use crate::smtp::{Envelope, Transcript};
use crate::status::{AccountStatus, AuthMethod, MessageStatus};
use crate::store::Store;
use crate::store::accounts::AccountRow;
use crate::store::group_commit::Outcome;
use crate::store::messages::{AttemptRow, CapturedRow, MessageRow};
use crate::store::settings::SettingsRow;
use crate::store::{Freshness, PLATFORM};
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
/// Connections per account when the account sets no limit.
const DEFAULT_ACCOUNT_CONNECTIONS: usize = 8;
/// `next_attempt_at` of a message held until a person acts (reauthorization).
pub const HELD_INDEFINITELY: i64 = i64::MAX;

/// What one hop (an account) did with a message.
enum Hop {
    Sent {
        partial: Option<String>,
        retry: Vec<EmailAddress>,
    },
    Failed {
        class: Class,
        last_error: String,
    },
}

/// The accounts and settings deliveries need, each read once rather than
/// once per message; the worker starts afresh every second and whenever this
/// process changed an account, setting or tenant (another process's change
/// shows within the second).
pub struct Lookups {
    accounts: Mutex<HashMap<String, Option<AccountRow>>>,
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

    async fn account(&self, store: &Store, id: &str) -> Result<Option<AccountRow>> {
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

/// A send of an account in flight in this process, counted against its
/// limits until dropped (after the outcome is written).
struct LimitTurn {
    turns: LimitTurns,
    account: String,
    /// This account's sends in flight before this one.
    ahead: i64,
}

/// Per account, the sends in flight in this process.
pub type LimitTurns = Arc<Mutex<HashMap<String, i64>>>;

impl LimitTurn {
    fn take(turns: &LimitTurns, account: &str) -> LimitTurn {
        let mut map = turns.lock().expect("limit turns");
        let n = map.entry(account.to_string()).or_insert(0);
        let ahead = *n;
        *n += 1;
        LimitTurn {
            turns: turns.clone(),
            account: account.to_string(),
            ahead,
        }
    }
}

impl Drop for LimitTurn {
    fn drop(&mut self) {
        let mut map = self.turns.lock().expect("limit turns");
        if let Some(n) = map.get_mut(&self.account) {
            *n -= 1;
            if *n <= 0 {
                map.remove(&self.account);
            }
        }
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
    /// Per account, its sends in flight here, counted against its limits.
    limit_turns: LimitTurns,
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
        }
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

    fn account_slots(&self, account: &AccountRow) -> Arc<Semaphore> {
        let n = account
            .limit_connections
            .map(|n| n.max(1) as usize)
            .unwrap_or(DEFAULT_ACCOUNT_CONNECTIONS);
        let mut map = self.account_slots.lock().expect("account slots");
        map.entry(account.id.clone())
            .or_insert_with(|| Arc::new(Semaphore::new(n)))
            .clone()
    }

    /// Whether the account may send now under its per-minute and per-day
    /// limits: a turn, counted against them until this delivery's outcome is
    /// written (sends in flight count with those already recorded, or a burst
    /// would overrun the limit); if not, when it may again.
    async fn limit_turn(&self, account: &AccountRow) -> Result<std::result::Result<LimitTurn, (i64, String)>> {
        let turn = LimitTurn::take(&self.limit_turns, &account.id);
        if account.limit_per_minute.is_none() && account.limit_per_day.is_none() {
            return Ok(Ok(turn));
        }
        let now = crate::now_ms();
        for (limit, window, what) in [
            (account.limit_per_minute, 60_000i64, "per-minute"),
            (account.limit_per_day, 24 * 3600 * 1000i64, "daily"),
        ] {
            let Some(limit) = limit else { continue };
            let (count, oldest) = self.store.sent_since(&account.id, now - window).await?;
            if count + turn.ahead >= limit {
                let resume = oldest.unwrap_or(now) + window;
                return Ok(Err((
                    resume,
                    format!(
                        "the account's {what} limit of {limit} messages is reached; sending resumes at {}",
                        crate::rfc3339(resume)
                    ),
                )));
            }
        }
        Ok(Ok(turn))
    }

    /// Delivers one claimed message and records the outcome: through its
    /// account, then the account's backup, then the platform's default where
    /// the tenant may fall back; each hop is an attempt in the delivery log,
    /// written with the message's new state in one transaction.
    pub async fn deliver(&self, row: &MessageRow, lease_until: i64, lookups: &Lookups) -> Result<()> {
        let mut content: Content = serde_json::from_str(&row.content).map_err(anyhow::Error::from)?;
        let mut finish = Finish {
            row,
            lease_until,
            attempts: Vec::new(),
        };
        let Some(account_id) = row.account_id.as_deref() else {
            return self.capture(row, &content, lease_until, lookups).await;
        };
        // The account may be the platform's (a tenant's fallback): the route was resolved at accept time.
        let Some(account) = lookups.account(&self.store, account_id).await? else {
            let err = "the sending account was deleted: retry the message with another account";
            finish
                .attempts
                .push(plain_attempt(row, None, "failed", None, Some(err)));
            return finish
                .to(&self.store, MessageStatus::Failed, Some(err), crate::now_ms(), None)
                .await;
        };
        // An account waiting for a person to sign in holds its messages;
        // re-authorization releases them (oauth::complete_authorization).
        if AccountStatus::from_stored(&account.status).awaits_authorization() {
            let why = crate::health::EXPIRED_MESSAGE;
            finish.attempts.push(plain_attempt(
                row,
                Some(&account.id),
                MessageStatus::Held.as_str(),
                Some("reauthorize"),
                Some(why),
            ));
            return finish
                .to(&self.store, MessageStatus::Held, Some(why), HELD_INDEFINITELY, None)
                .await;
        }
        // Held until the outcome below is written (dropped at the return).
        let _turn = match self.limit_turn(&account).await? {
            Ok(turn) => turn,
            Err((resume, why)) => {
                // Held, and released by the clock: the claim picks it up at `resume`.
                return finish
                    .to(&self.store, MessageStatus::Held, Some(&why), resume, None)
                    .await;
            }
        };

        let mut hops = vec![account.clone()];
        if let Some(b) = account.backup_account.as_deref()
            && let Some(backup) = lookups.account(&self.store, b).await?
        {
            hops.push(backup);
        }
        // The platform's account is a last resort for a broken connection, not
        // for a revoked authorization: those messages are held for the person
        // who reauthorizes (only an explicit backup account takes them).
        let explicit_hops = hops.len();
        if row.tenant_id != PLATFORM && !row.route.as_deref().unwrap_or("").starts_with("platform_default") {
            let settings = lookups.settings(&self.store, &row.tenant_id).await?;
            if settings.fallback_to_platform != 0
                && let Some(p) = lookups.settings(&self.store, PLATFORM).await?.default_account
                && let Some(platform) = lookups.account(&self.store, &p).await?
                && !hops.iter().any(|h| h.id == platform.id)
            {
                hops.push(platform);
            }
        }

        let mut errors = Vec::new();
        let mut final_class = Class::Permanent;
        for (i, hop) in hops.iter().enumerate() {
            if i > 0 && AccountStatus::from_stored(&hop.status).awaits_authorization() {
                continue;
            }
            if i > 0 && hop.tenant_id != account.tenant_id && content.from_name.is_none() {
                // On the platform's account, the tenant's display name.
                let name = lookups.settings(&self.store, &row.tenant_id).await?.from_name;
                let name = match name {
                    Some(n) => n,
                    None => self.store.tenant_name(&row.tenant_id).await?,
                };
                content.from_name = HeaderText::parse(&name).ok();
            }
            let (hop_result, attempt) = self.send_via(row, &content, hop).await?;
            finish.attempts.push(attempt);
            match hop_result {
                Hop::Sent { partial, retry } => {
                    if retry.is_empty() {
                        return finish
                            .to(
                                &self.store,
                                MessageStatus::Sent,
                                partial.as_deref(),
                                crate::now_ms(),
                                None,
                            )
                            .await;
                    }
                    // Only the recipients refused for now are tried again, with the same Message-ID.
                    content.retry_only = Some(retry);
                    let json = serde_json::to_string(&content).map_err(anyhow::Error::from)?;
                    let why = format!("some recipients are to be retried: {}", partial.unwrap_or_default());
                    let next = crate::now_ms() + self.backoff_ms(row.attempts);
                    return finish
                        .to(&self.store, MessageStatus::Deferred, Some(&why), next, Some(json))
                        .await;
                }
                Hop::Failed { class, last_error } => {
                    errors.push(if i == 0 {
                        last_error
                    } else {
                        format!("then via {}: {last_error}", hop.name)
                    });
                    final_class = class;
                    // A refusal of the message or its recipients is the same through any account.
                    if class == Class::Permanent || (class == Class::Reauthorize && i + 1 >= explicit_hops) {
                        break;
                    }
                }
            }
        }
        let age_ms = crate::now_ms() - row.created_at;
        let (next_status, next_at) = match final_class {
            Class::Transient if age_ms < self.config.message_max_age_secs as i64 * 1000 => {
                (MessageStatus::Deferred, crate::now_ms() + self.backoff_ms(row.attempts))
            }
            Class::Reauthorize => (MessageStatus::Held, HELD_INDEFINITELY),
            _ => (MessageStatus::Failed, crate::now_ms()),
        };
        let last_error = errors.join(" | ");
        finish
            .to(&self.store, next_status, Some(&last_error), next_at, None)
            .await
    }

    /// One attempt through one account, and its entry for the delivery log.
    async fn send_via(&self, row: &MessageRow, content: &Content, account: &AccountRow) -> Result<(Hop, AttemptRow)> {
        let from =
            EmailAddress::parse(&account.from_address).map_err(|m| crate::error::Error::field("from.address", m))?;
        let from_name = content
            .from_name
            .clone()
            .or_else(|| account.from_name.as_deref().and_then(|n| HeaderText::parse(n).ok()));
        let envelope = Envelope {
            from,
            to: content.retry_only.clone().unwrap_or_else(|| content.recipients()),
        };
        // The account's slot first: waiting for a busy account must not hold
        // a slot other accounts could send with.
        let slots = self.account_slots(account);
        let _slot = slots.acquire().await.expect("never closed");
        let _send = self.send_slots.acquire().await.expect("never closed");
        // Composed once a slot is ours: the messages waiting for one hold
        // only their row, not a rendered copy.
        let raw = compose::render(&Draft {
            from: &envelope.from,
            from_name: from_name.as_ref(),
            to: &content.to,
            cc: &content.cc,
            subject: &content.subject,
            text: content.text.as_deref(),
            html: content.html.as_deref(),
            message_id: &row.message_id,
        });
        let started = Instant::now();
        let max_idle = account
            .limit_connections
            .map(|n| n.max(1) as usize)
            .unwrap_or(DEFAULT_ACCOUNT_CONNECTIONS);
        // A pooled session first; if the server dropped it meanwhile, a new one.
        let version = crate::connect::connection_version(account);
        let mut reused = self.sessions.take(&account.id, version);
        let (transcript, outcome) = loop {
            let was_reused = reused.is_some();
            let (mut session, transcript) = match reused.take() {
                Some((mut s, check)) => {
                    s.transcript().clear();
                    if check && !s.noop().await {
                        continue;
                    }
                    s.transcript().note("reusing an open connection");
                    let t = s.transcript().clone();
                    (s, t)
                }
                None => {
                    let t = Transcript::default();
                    match self.connector.open_session(account, &t).await {
                        Ok(s) => (s, t),
                        Err(f) => break (t, Err(f)),
                    }
                }
            };
            match session.send(&envelope, &raw).await {
                Ok(sent) => {
                    self.sessions.put(&account.id, version, session, max_idle);
                    break (transcript, Ok(sent));
                }
                // A pooled connection the server closed while idle: not the
                // message's fault, try once more on a new connection.
                Err(f) if was_reused && f.stage == crate::diagnosis::Stage::MailFrom && f.reply.is_none() => {
                    tracing::debug!(account = %account.id, "a pooled connection was gone; reconnecting");
                    continue;
                }
                Err(f) => {
                    session.quit().await;
                    break (transcript, Err(f));
                }
            }
        };
        self.metrics.observe_send(started.elapsed());
        let provider = Catalog::get().provider(&account.provider);
        let oauth = account.auth_method == AuthMethod::OAuth2.as_str();
        match outcome {
            Ok(sent) => {
                let mut report = Report::success(Some(&sent.reply), transcript.lines(), 0);
                let retry: Vec<EmailAddress> = sent
                    .rejected
                    .iter()
                    .filter(|(_, r)| r.is_transient())
                    .map(|(a, _)| a.clone())
                    .collect();
                let partial = (!sent.rejected.is_empty()).then(|| {
                    sent.rejected
                        .iter()
                        .map(|(a, r)| format!("{a}: {}", r.one_line()))
                        .collect::<Vec<_>>()
                        .join("; ")
                });
                if let Some(p) = &partial {
                    report.reply = Some(format!(
                        "{} (refused recipients: {p})",
                        report.reply.unwrap_or_default()
                    ));
                }
                let attempt = report_attempt(row, Some(&account.id), "sent", &report)?;
                self.health.observe(account, Observation::Delivered).await?;
                self.metrics.record_attempt("sent");
                self.metrics.record_account(&account.id, "sent");
                tracing::info!(message = %row.id, account = %account.id, "message sent");
                Ok((Hop::Sent { partial, retry }, attempt))
            }
            Err(failure) => {
                let report = Report::failure(&failure, provider, oauth, content.locale, transcript.lines(), 0);
                let class = report.class.unwrap_or(Class::Permanent);
                let last_error = format!("{} — {}", report.summary(), report.hint.clone().unwrap_or_default());
                let attempt = report_attempt(row, Some(&account.id), class_name(class), &report)?;
                if matches!(class, Class::Configuration) {
                    let message = last_error.clone();
                    self.health
                        .observe(account, Observation::DeliveryRefused { message })
                        .await?;
                }
                self.metrics.record_attempt(class_name(class));
                self.metrics.record_account(&account.id, class_name(class));
                tracing::warn!(message = %row.id, account = %account.id, stage = report.stage.as_str(), code = ?report.code, "delivery attempt failed");
                Ok((Hop::Failed { class, last_error }, attempt))
            }
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

    /// With no account to send through, the message lands in the capture
    /// mailbox, where the console shows it with a banner.
    async fn capture(&self, row: &MessageRow, content: &Content, lease_until: i64, lookups: &Lookups) -> Result<()> {
        let settings = lookups.settings(&self.store, &row.tenant_id).await?;
        let from = EmailAddress::parse(CAPTURE_FROM).expect("valid");
        let from_name = settings.from_name.as_deref().and_then(|n| HeaderText::parse(n).ok());
        let raw = compose::render(&Draft {
            from: &from,
            from_name: from_name.as_ref(),
            to: &content.to,
            cc: &content.cc,
            subject: &content.subject,
            text: content.text.as_deref(),
            html: content.html.as_deref(),
            message_id: &row.message_id,
        });
        let why = row
            .route
            .as_deref()
            .and_then(|r| r.strip_prefix("capture: "))
            .unwrap_or("no mail account is configured");
        let note = format!("{why}: the message was kept in the capture mailbox and not delivered");
        self.store
            .record_outcome(Outcome {
                message: row.id.clone(),
                lease_until,
                status: MessageStatus::Sent.as_str().to_string(),
                last_error: Some(note.clone()),
                next_attempt_at: crate::now_ms(),
                content: None,
                attempts: vec![plain_attempt(row, None, "captured", None, Some(&note))],
                captured: Some(CapturedRow {
                    id: crate::store::new_id(),
                    tenant_id: row.tenant_id.clone(),
                    message_id: row.id.clone(),
                    mail_from: from.as_str().to_string(),
                    rcpt_to: serde_json::to_string(&content.recipients()).map_err(anyhow::Error::from)?,
                    subject: content.subject.as_str().to_string(),
                    raw: String::from_utf8_lossy(&raw).into_owned(),
                    at: crate::now_ms(),
                }),
            })
            .await?;
        self.metrics.record_attempt("captured");
        Ok(())
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
