//! The delivery worker: claims due messages under a lease, sends each one
//! outside any transaction, and records the attempt and the outcome. Only the
//! holder of the lease may record an outcome, so a worker that stalled past
//! its lease cannot overwrite another's result.

use crate::accounts::status as account_status;
use crate::app::App;
use crate::catalog::{Catalog, Class};
use crate::compose::{self, Draft};
use crate::diagnosis::{Failure, Report};
use crate::domain::{EmailAddress, HeaderText};
use crate::error::Result;
use crate::outbox::{CAPTURE_FROM, Content, status};
use crate::smtp::{Envelope, Transcript};
use crate::store::messages::{AttemptRow, CapturedRow, MessageRow};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How long a claim holds; a send that takes longer is bounded by the
/// account's timeout per step, well inside this.
const LEASE_MS: i64 = 10 * 60 * 1000;
const BATCH: i64 = 16;

/// Runs until `shutdown` turns true; in-flight sends finish first.
pub async fn run_worker(app: App, mut shutdown: watch::Receiver<bool>) {
    tracing::info!("delivery worker started");
    loop {
        if *shutdown.borrow() {
            break;
        }
        let now = crate::now_ms();
        let claimed = match app.store.claim_due(now, now + LEASE_MS, BATCH).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "claiming messages failed");
                Vec::new()
            }
        };
        if claimed.is_empty() {
            tokio::select! {
                _ = app.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.changed() => {}
            }
            continue;
        }
        for row in claimed {
            let lease = row.lease_until.unwrap_or(now + LEASE_MS);
            if let Err(e) = app.deliver(&row, lease).await {
                tracing::error!(message = %row.id, error = %e, "delivery bookkeeping failed");
            }
        }
    }
    tracing::info!("delivery worker stopped");
}

impl App {
    /// Delivers one claimed message and records the outcome.
    pub async fn deliver(&self, row: &MessageRow, lease_until: i64) -> Result<()> {
        let content: Content = serde_json::from_str(&row.content).map_err(anyhow::Error::from)?;
        let Some(account_id) = row.account_id.as_deref() else {
            return self.capture(row, &content, lease_until).await;
        };
        // The account may be the platform's (a tenant's fallback): the route was resolved at accept time.
        let Some(account) = self.store.account_by_id(account_id).await? else {
            let err = "the sending account was deleted: retry the message with another account";
            self.record_attempt(row, None, "failed", None, Some(err)).await?;
            self.store
                .finish_message(&row.id, lease_until, status::FAILED, Some(err), crate::now_ms(), false)
                .await?;
            return Ok(());
        };
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
            to: content.recipients(),
        };
        let transcript = Transcript::default();
        let started = Instant::now();
        let outcome: std::result::Result<_, Failure> = async {
            let mut session = self.open_session(&account, &transcript).await?;
            let sent = session.send(&envelope, &raw).await;
            session.quit().await;
            sent
        }
        .await;
        self.metrics.observe_send(started.elapsed());
        let provider = Catalog::get().provider(&account.provider);
        let oauth = account.auth_method == "oauth2";
        match outcome {
            Ok(sent) => {
                let mut report = Report::success(Some(&sent.reply), transcript.lines(), 0);
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
                self.store
                    .finish_message(
                        &row.id,
                        lease_until,
                        status::SENT,
                        partial.as_deref(),
                        crate::now_ms(),
                        false,
                    )
                    .await?;
                if account.status != account_status::READY {
                    self.store
                        .set_account_status(&account.id, account_status::READY, None, None)
                        .await?;
                }
                self.metrics.record_attempt("sent");
                tracing::info!(message = %row.id, account = %account.id, "message sent");
            }
            Err(failure) => {
                let report = Report::failure(&failure, provider, oauth, content.locale, transcript.lines(), 0);
                let class = report.class.unwrap_or(Class::Permanent);
                let age_ms = crate::now_ms() - row.created_at;
                let (next_status, next_at) = match class {
                    Class::Transient if age_ms < self.config.message_max_age_secs as i64 * 1000 => {
                        (status::DEFERRED, crate::now_ms() + self.backoff_ms(row.attempts))
                    }
                    Class::Reauthorize => (status::HELD, crate::now_ms()),
                    _ => (status::FAILED, crate::now_ms()),
                };
                let last_error = format!("{} — {}", report.summary(), report.hint.clone().unwrap_or_default());
                self.record_report(row, Some(&account.id), next_status, &report).await?;
                self.store
                    .finish_message(&row.id, lease_until, next_status, Some(&last_error), next_at, false)
                    .await?;
                if matches!(class, Class::Configuration) {
                    self.mark_account(&account, account_status::FAILING, &last_error, None)
                        .await?;
                }
                self.metrics.record_attempt(class_name(class));
                tracing::warn!(message = %row.id, account = %account.id, stage = report.stage.as_str(), code = ?report.code, status = next_status, "delivery failed");
            }
        }
        Ok(())
    }

    /// Exponential backoff with jitter between the configured bounds.
    pub fn backoff_ms(&self, attempts: i64) -> i64 {
        let min = self.config.retry_min_secs as i64 * 1000;
        let max = self.config.retry_max_secs as i64 * 1000;
        let exp = min.saturating_mul(1i64 << attempts.clamp(1, 20).saturating_sub(1));
        let base = exp.min(max);
        // Up to 20% less, so that a burst of failures does not retry in lockstep.
        let jitter = (base as f64 * 0.2 * rand::random::<f64>()) as i64;
        (base - jitter).max(min)
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
        self.store
            .finish_message(&row.id, lease_until, status::SENT, Some(note), crate::now_ms(), true)
            .await?;
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

pub fn class_name(c: Class) -> &'static str {
    match c {
        Class::Permanent => "permanent",
        Class::Transient => "transient",
        Class::Reauthorize => "reauthorize",
        Class::Configuration => "configuration",
    }
}
