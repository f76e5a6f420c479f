//! The delivery worker: claims due messages under a lease, sends each one
//! outside any transaction, and records the attempt and the outcome. Only the
//! holder of the lease may record an outcome, so a worker that stalled past
//! its lease cannot overwrite another's result.

use crate::accounts::status as account_status;
use crate::app::App;
use crate::catalog::{Catalog, Class};
use crate::compose::{self, Draft};
use crate::diagnosis::Report;
use crate::domain::{EmailAddress, HeaderText};
use crate::error::Result;
use crate::outbox::{CAPTURE_FROM, Content, status};
use crate::smtp::{Envelope, Transcript};
use crate::store::PLATFORM;
use crate::store::accounts::AccountRow;
use crate::store::messages::{AttemptRow, CapturedRow, MessageRow};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, watch};

/// How long a claim holds. A send is bounded by the account's timeout per
/// step, well inside this; a node that died leaves its claims to others
/// once it runs out (on SQLite, `serve` releases them at start).
pub const LEASE_MS: i64 = 2 * 60 * 1000;
const BATCH: i64 = 64;
/// Sends in flight at once on this node.
const CONCURRENCY: usize = 32;
/// Connections per account when the account sets no limit.
const DEFAULT_ACCOUNT_CONNECTIONS: usize = 8;
/// `next_attempt_at` of a message held until a person acts (reauthorization).
pub const HELD_INDEFINITELY: i64 = i64::MAX;

/// Runs until `shutdown` turns true; in-flight sends finish first.
pub async fn run_worker(app: App, mut shutdown: watch::Receiver<bool>) {
    tracing::info!("delivery worker started");
    let slots = Arc::new(Semaphore::new(CONCURRENCY));
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
            match app.store.claim_due(now, now + LEASE_MS, BATCH).await {
                Ok(c) => c,
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
        for row in claimed {
            let permit = slots
                .clone()
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            let app = app.clone();
            running.spawn(async move {
                let lease = row.lease_until.unwrap_or(0);
                if let Err(e) = app.deliver(&row, lease).await {
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

impl App {
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
    /// limits; if not, when it may again.
    async fn limit_wait(&self, account: &AccountRow) -> Result<Option<(i64, String)>> {
        let now = crate::now_ms();
        for (limit, window, what) in [
            (account.limit_per_minute, 60_000i64, "per-minute"),
            (account.limit_per_day, 24 * 3600 * 1000i64, "daily"),
        ] {
            let Some(limit) = limit else { continue };
            let (count, oldest) = self.store.sent_since(&account.id, now - window).await?;
            if count >= limit {
                let resume = oldest.unwrap_or(now) + window;
                return Ok(Some((
                    resume,
                    format!(
                        "the account's {what} limit of {limit} messages is reached; sending resumes at {}",
                        crate::rfc3339(resume)
                    ),
                )));
            }
        }
        Ok(None)
    }

    /// Delivers one claimed message and records the outcome: through its
    /// account, then the account's backup, then the platform's default where
    /// the tenant may fall back; each hop is an attempt in the delivery log.
    pub async fn deliver(&self, row: &MessageRow, lease_until: i64) -> Result<()> {
        let mut content: Content = serde_json::from_str(&row.content).map_err(anyhow::Error::from)?;
        let Some(account_id) = row.account_id.as_deref() else {
            return self.capture(row, &content, lease_until).await;
        };
        // The account may be the platform's (a tenant's fallback): the route was resolved at accept time.
        let Some(account) = self.store.account_by_id(account_id).await? else {
            let err = "the sending account was deleted: retry the message with another account";
            self.record_attempt(row, None, "failed", None, Some(err)).await?;
            self.store
                .finish_message(&row.id, lease_until, status::FAILED, Some(err), crate::now_ms(), None)
                .await?;
            return Ok(());
        };
        // An account waiting for a person to sign in holds its messages;
        // re-authorization releases them (oauth::complete_authorization).
        if [
            account_status::AUTHORIZATION_EXPIRED,
            account_status::AUTHORIZATION_REQUIRED,
        ]
        .contains(&account.status.as_str())
        {
            let why = crate::accounts::EXPIRED_MESSAGE;
            self.record_attempt(row, Some(&account.id), status::HELD, Some("reauthorize"), Some(why))
                .await?;
            self.store
                .finish_message(&row.id, lease_until, status::HELD, Some(why), HELD_INDEFINITELY, None)
                .await?;
            return Ok(());
        }
        if let Some((resume, why)) = self.limit_wait(&account).await? {
            // Held, and released by the clock: the claim picks it up at `resume`.
            self.store
                .finish_message(&row.id, lease_until, status::HELD, Some(&why), resume, None)
                .await?;
            return Ok(());
        }

        let mut hops = vec![account.clone()];
        if let Some(b) = account.backup_account.as_deref()
            && let Some(backup) = self.store.account_by_id(b).await?
        {
            hops.push(backup);
        }
        // The platform's account is a last resort for a broken connection, not
        // for a revoked authorization: those messages are held for the person
        // who reauthorizes (only an explicit backup account takes them).
        let explicit_hops = hops.len();
        if row.tenant_id != PLATFORM && !row.route.as_deref().unwrap_or("").starts_with("platform_default") {
            let settings = self.store.get_settings(&row.tenant_id).await?;
            if settings.fallback_to_platform != 0
                && let Some(p) = self.store.get_settings(PLATFORM).await?.default_account
                && let Some(platform) = self.store.account_by_id(&p).await?
                && !hops.iter().any(|h| h.id == platform.id)
            {
                hops.push(platform);
            }
        }

        let mut errors = Vec::new();
        let mut final_class = Class::Permanent;
        for (i, hop) in hops.iter().enumerate() {
            if i > 0
                && [
                    account_status::AUTHORIZATION_EXPIRED,
                    account_status::AUTHORIZATION_REQUIRED,
                ]
                .contains(&hop.status.as_str())
            {
                continue;
            }
            if i > 0 && hop.tenant_id != account.tenant_id && content.from_name.is_none() {
                // On the platform's account, the tenant's display name.
                let name = self.store.get_settings(&row.tenant_id).await?.from_name;
                let name = match name {
                    Some(n) => n,
                    None => self.tenant_name(&row.tenant_id).await?,
                };
                content.from_name = HeaderText::parse(&name).ok();
            }
            match self.send_via(row, &content, hop).await? {
                Hop::Sent { partial, retry } => {
                    if retry.is_empty() {
                        self.store
                            .finish_message(
                                &row.id,
                                lease_until,
                                status::SENT,
                                partial.as_deref(),
                                crate::now_ms(),
                                None,
                            )
                            .await?;
                    } else {
                        // Only the recipients refused for now are tried again, with the same Message-ID.
                        content.retry_only = Some(retry);
                        let json = serde_json::to_string(&content).map_err(anyhow::Error::from)?;
                        let why = format!("some recipients are to be retried: {}", partial.unwrap_or_default());
                        let next = crate::now_ms() + self.backoff_ms(row.attempts);
                        self.store
                            .finish_message(&row.id, lease_until, status::DEFERRED, Some(&why), next, Some(&json))
                            .await?;
                    }
                    return Ok(());
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
                (status::DEFERRED, crate::now_ms() + self.backoff_ms(row.attempts))
            }
            Class::Reauthorize => (status::HELD, HELD_INDEFINITELY),
            _ => (status::FAILED, crate::now_ms()),
        };
        let last_error = errors.join(" | ");
        self.store
            .finish_message(&row.id, lease_until, next_status, Some(&last_error), next_at, None)
            .await?;
        Ok(())
    }

    /// One attempt through one account, recorded in the delivery log.
    async fn send_via(&self, row: &MessageRow, content: &Content, account: &AccountRow) -> Result<Hop> {
        let from =
            EmailAddress::parse(&account.from_address).map_err(|m| crate::error::Error::field("from.address", m))?;
        let from_name = content
            .from_name
            .clone()
            .or_else(|| account.from_name.as_deref().and_then(|n| HeaderText::parse(n).ok()));
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
        let envelope = Envelope {
            from,
            to: content.retry_only.clone().unwrap_or_else(|| content.recipients()),
        };
        let slots = self.account_slots(account);
        let _slot = slots.acquire().await.expect("never closed");
        let started = Instant::now();
        let max_idle = account
            .limit_connections
            .map(|n| n.max(1) as usize)
            .unwrap_or(DEFAULT_ACCOUNT_CONNECTIONS);
        // A pooled session first; if the server dropped it meanwhile, a new one.
        let version = crate::accounts::connection_version(account);
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
                    match self.open_session(account, &t).await {
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
        let oauth = account.auth_method == "oauth2";
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
                self.record_report(row, Some(&account.id), "sent", &report).await?;
                if account.status != account_status::READY {
                    self.store
                        .set_account_status(&account.id, account_status::READY, None, None)
                        .await?;
                }
                self.metrics.record_attempt("sent");
                self.metrics.record_account(&account.id, "sent");
                tracing::info!(message = %row.id, account = %account.id, "message sent");
                Ok(Hop::Sent { partial, retry })
            }
            Err(failure) => {
                let report = Report::failure(&failure, provider, oauth, content.locale, transcript.lines(), 0);
                let class = report.class.unwrap_or(Class::Permanent);
                let last_error = format!("{} — {}", report.summary(), report.hint.clone().unwrap_or_default());
                self.record_report(row, Some(&account.id), class_name(class), &report)
                    .await?;
                if matches!(class, Class::Configuration) {
                    self.mark_account(account, account_status::FAILING, &last_error, None)
                        .await?;
                }
                self.metrics.record_attempt(class_name(class));
                self.metrics.record_account(&account.id, class_name(class));
                tracing::warn!(message = %row.id, account = %account.id, stage = report.stage.as_str(), code = ?report.code, "delivery attempt failed");
                Ok(Hop::Failed { class, last_error })
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
    async fn capture(&self, row: &MessageRow, content: &Content, lease_until: i64) -> Result<()> {
        let settings = self.store.get_settings(&row.tenant_id).await?;
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
        self.store
            .insert_captured(&CapturedRow {
                id: crate::store::new_id(),
                tenant_id: row.tenant_id.clone(),
                message_id: row.id.clone(),
                mail_from: from.as_str().to_string(),
                rcpt_to: serde_json::to_string(&content.recipients()).map_err(anyhow::Error::from)?,
                subject: content.subject.as_str().to_string(),
                raw: String::from_utf8_lossy(&raw).into_owned(),
                at: crate::now_ms(),
            })
            .await?;
        let why = row
            .route
            .as_deref()
            .and_then(|r| r.strip_prefix("capture: "))
            .unwrap_or("no mail account is configured");
        let note = format!("{why}: the message was kept in the capture mailbox and not delivered");
        let note = note.as_str();
        self.record_attempt(row, None, "captured", None, Some(note)).await?;
        self.store.finish_captured(&row.id, lease_until, note).await?;
        self.metrics.record_attempt("captured");
        Ok(())
    }

    async fn record_report(
        &self,
        row: &MessageRow,
        account: Option<&str>,
        outcome: &str,
        report: &Report,
    ) -> Result<()> {
        self.store
            .insert_attempt(&AttemptRow {
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
            .await
    }

    async fn record_attempt(
        &self,
        row: &MessageRow,
        account: Option<&str>,
        outcome: &str,
        class: Option<&str>,
        reply: Option<&str>,
    ) -> Result<()> {
        self.store
            .insert_attempt(&AttemptRow {
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
            })
            .await
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
