//! The capture mailbox: with no account to send through, a message is kept
//! where the console and `herald capture` show it, and nothing is delivered.

use super::{Lookups, Worker, plain_attempt};
use crate::compose::{CAPTURE_FROM, Content};
use crate::domain::{EmailAddress, HeaderText};
use crate::error::Result;
use crate::status::MessageStatus;
use crate::store::group_commit::Outcome;
use crate::store::messages::{CapturedRow, MessageRow};

impl Worker {
    /// With no account to send through, the message lands in the capture
    /// mailbox, where the console shows it with a banner.
    pub(super) async fn capture(
        &self,
        row: &MessageRow,
        content: &Content,
        lease_until: i64,
        lookups: &Lookups,
    ) -> Result<()> {
        let settings = lookups.settings(&self.store, &row.tenant_id).await?;
        let from = EmailAddress::parse(CAPTURE_FROM).expect("valid");
        let from_name = settings.from_name.as_deref().and_then(|n| HeaderText::parse(n).ok());
        let raw = content.render(&from, from_name.as_ref(), &row.message_id);
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
