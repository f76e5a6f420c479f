//! The email channel: a message goes out over SMTP through its account,
//! failing over to the account's backup and to the platform's account, under
//! the account's connection slots and per-minute / per-day limits, on pooled
//! authenticated sessions.

use super::{Finish, HELD_INDEFINITELY, Lookups, Worker, class_name, plain_attempt, report_attempt};
use crate::catalog::{Catalog, Class};
use crate::compose::Content;
use crate::diagnosis::Report;
use crate::domain::Account;
use crate::domain::{EmailAddress, HeaderText};
use crate::error::Result;
use crate::health::Observation;
use crate::smtp::{Envelope, Transcript};
use crate::status::{MessageStatus, RouteKind};
use crate::store::PLATFORM;
use crate::store::messages::{AttemptRow, MessageRow};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::Semaphore;

/// Connections per account when the account sets no limit.
const DEFAULT_ACCOUNT_CONNECTIONS: usize = 8;

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

impl Worker {
    fn account_slots(&self, account: &Account) -> Arc<Semaphore> {
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
    async fn limit_turn(&self, account: &Account) -> Result<std::result::Result<LimitTurn, (i64, String)>> {
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
            if count + turn.ahead >= i64::from(limit) {
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

    /// Delivers a message by email: through its account, then the account's
    /// backup, then the platform's default where the tenant may fall back;
    /// each hop is an attempt in the delivery log, written with the message's
    /// new state in one transaction.
    pub(super) async fn deliver_email(
        &self,
        row: &MessageRow,
        mut content: Content,
        account_id: &str,
        mut finish: Finish<'_>,
        lookups: &Lookups,
    ) -> Result<()> {
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
        if account.status.awaits_authorization() {
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
        let route = row.route.as_deref().and_then(RouteKind::of);
        if row.tenant_id != PLATFORM && route != Some(RouteKind::PlatformDefault) {
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
            if i > 0 && hop.status.awaits_authorization() {
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
        let now = crate::now_ms();
        let expires_at = row.created_at + self.config.message_max_age_secs as i64 * 1000;
        let (next_status, next_at) = match final_class {
            Class::Transient if now < expires_at => (MessageStatus::Deferred, now + self.backoff_ms(row.attempts)),
            // The account needs a person (credentials, AUTH, Send-As, a
            // certificate): held until it sends again (health releases it)
            // and tried again with backoff; only the maximum age fails it.
            Class::Configuration if now < expires_at => (
                MessageStatus::Held,
                (now + self.backoff_ms(row.attempts)).min(expires_at),
            ),
            Class::Reauthorize => (MessageStatus::Held, HELD_INDEFINITELY),
            _ => (MessageStatus::Failed, now),
        };
        let last_error = errors.join(" | ");
        finish
            .to(&self.store, next_status, Some(&last_error), next_at, None)
            .await
    }

    /// One attempt through one account, and its entry for the delivery log.
    async fn send_via(&self, row: &MessageRow, content: &Content, account: &Account) -> Result<(Hop, AttemptRow)> {
        let from = account.from_address.clone();
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
        let raw = content.render(&envelope.from, from_name.as_ref(), &row.message_id);
        let raw = self.connector.sign(account, raw).await;
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
                    // Boxed: opening a session (TLS, a token refresh) is a large future,
                    // and every claimed message waiting for a slot would carry its space.
                    match Box::pin(self.connector.open_session(account, &t)).await {
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
                Err(f) if was_reused && f.stage() == crate::diagnosis::Stage::MailFrom && f.reply().is_none() => {
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
        let provider = Catalog::get().provider_of(&account.provider, &account.host);
        let oauth = account.auth_method.uses_tokens();
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
                Box::pin(self.health.observe(account, Observation::Delivered)).await?;
                self.metrics.record_attempt("sent");
                self.metrics.record_account(&account.id, "sent");
                tracing::info!(message = %row.id, account = %account.id, "message sent");
                Ok((Hop::Sent { partial, retry }, attempt))
            }
            Err(failure) => {
                let mut report = Report::failure(&failure, provider, oauth, content.locale, transcript.lines(), 0);
                // For a message, network trouble (refused, timed out, cut) is
                // for later, whatever the catalog advises the person testing:
                // a server being restarted must not fail the queue.
                let class = if failure.is_transient() {
                    Class::Transient
                } else {
                    report.class.unwrap_or(Class::Permanent)
                };
                report.class = Some(class);
                let last_error = format!("{} — {}", report.summary(), report.hint.clone().unwrap_or_default());
                let attempt = report_attempt(row, Some(&account.id), class_name(class), &report)?;
                if matches!(class, Class::Configuration) {
                    let message = last_error.clone();
                    Box::pin(self.health.observe(account, Observation::DeliveryRefused { message })).await?;
                }
                self.metrics.record_attempt(class_name(class));
                self.metrics.record_account(&account.id, class_name(class));
                tracing::warn!(message = %row.id, account = %account.id, stage = report.stage.as_str(), code = ?report.code, "delivery attempt failed");
                Ok((Hop::Failed { class, last_error }, attempt))
            }
        }
    }
}
