//! The webhook and chat-robot channel: a message goes out as one HTTP request
//! to its channel (`webhook` builds and signs it), with the message's id as
//! the delivery id on every retry so receivers can drop duplicates. Network
//! errors, timeouts, 429 (after its `Retry-After`) and 5xx are retried with
//! backoff until the message's maximum age; any other refusal fails it at
//! once. Each attempt is logged with its stage, HTTP status, the answer's
//! start (secrets masked) and a class; a channel's per-minute limit holds
//! messages until its window frees.

use super::{Finish, Worker, class_name};
use crate::catalog::Class;
use crate::compose::Content;
use crate::error::Result;
use crate::secrets::{Keyring, Secret};
use crate::status::{ChannelKind, MessageStatus};
use crate::store::PLATFORM;
use crate::store::channels::ChannelRow;
use crate::store::messages::{AttemptRow, MessageRow};
use crate::webhook::{Outcome, Payload, Target};

/// The sealing context of a channel's secret `what` (`url`, `secret`, `headers`).
pub fn sealing_context(channel: &str, what: &str) -> String {
    format!("channel:{channel}:{what}")
}

/// A channel's row opened: its URL, secret and headers in clear, for a request.
pub fn target_of(keys: &Keyring, row: &ChannelRow) -> anyhow::Result<Target> {
    let kind = ChannelKind::parse(&row.kind).ok_or_else(|| anyhow::anyhow!("unknown channel kind {}", row.kind))?;
    let url = keys.open(&sealing_context(&row.id, "url"), &row.url)?;
    let secret = match &row.secret {
        Some(s) => Some(keys.open(&sealing_context(&row.id, "secret"), s)?),
        None => None,
    };
    let headers = match &row.headers {
        Some(h) => {
            let json = keys.open(&sealing_context(&row.id, "headers"), h)?;
            let map: Vec<(String, String)> = serde_json::from_str(json.expose())?;
            map.into_iter().map(|(k, v)| (k, Secret::new(v))).collect()
        }
        None => Vec::new(),
    };
    Ok(Target {
        kind,
        url,
        secret,
        headers,
    })
}

/// The per-minute limit of a channel: its own, else its kind's published one (0: none).
pub fn per_minute(row: &ChannelRow) -> u32 {
    match row.per_minute {
        Some(n) => n.max(0) as u32,
        None => ChannelKind::parse(&row.kind)
            .map(|k| crate::robots::robot(k).per_minute)
            .unwrap_or(0),
    }
}

/// The channel's status after an outcome: ready, or failing with why.
pub fn status_after(out: &Outcome, summary: &str) -> (&'static str, Option<String>) {
    match (out.ok, out.class) {
        (true, _) => ("ready", None),
        (false, Some(Class::Configuration) | Some(Class::Permanent)) => ("failing", Some(summary.to_string())),
        // Trouble on the receiver's side says nothing about the channel.
        _ => ("", None),
    }
}

/// The delivery-log entry of an HTTP attempt.
fn http_attempt(row: &MessageRow, channel: &str, outcome: &str, out: &Outcome, summary: &str) -> AttemptRow {
    AttemptRow {
        id: crate::store::new_id(),
        message_id: row.id.clone(),
        at: crate::now_ms(),
        // Channels and accounts have distinct ids: the channel's limit counts these.
        account_id: Some(channel.to_string()),
        outcome: outcome.to_string(),
        stage: Some(out.stage.as_str().to_string()),
        code: out.status.map(i64::from),
        enhanced_code: out.code.clone(),
        reply: Some(match &out.body {
            Some(b) if !b.is_empty() => format!("{summary} | body: {b}"),
            _ => summary.to_string(),
        }),
        class: out.class.map(|c| class_name(c).to_string()),
        transcript: None,
    }
}

impl Worker {
    /// Delivers a message to its webhook or chat-robot channel.
    pub(super) async fn deliver_http(&self, row: &MessageRow, content: Content, mut finish: Finish<'_>) -> Result<()> {
        let now = crate::now_ms();
        let fail = |why: &str| super::plain_attempt(row, content.channel_id.as_deref(), "failed", None, Some(why));
        let channel = match content.channel_id.as_deref() {
            Some(id) => self.store.channel_by_id(id).await?,
            None => None,
        };
        let (Some(channel), Some((keys, http))) = (channel, self.channels.as_ref()) else {
            let why = "the channel was deleted: retry the message after pointing the rule at another channel";
            finish.attempts.push(fail(why));
            return finish
                .to(&self.store, MessageStatus::Failed, Some(why), now, None)
                .await;
        };
        let target = match target_of(keys, &channel) {
            Ok(t) => t,
            Err(e) => {
                let why = format!("the channel's settings could not be opened ({e}): save the channel again");
                finish.attempts.push(fail(&why));
                return finish
                    .to(&self.store, MessageStatus::Failed, Some(&why), now, None)
                    .await;
            }
        };
        // Held until the outcome below is written (dropped at the return).
        let turn = super::email::LimitTurn::take(&self.limit_turns, &channel.id);
        let limit = per_minute(&channel);
        if limit > 0 {
            let (count, oldest) = self.store.sent_since(&channel.id, now - 60_000).await?;
            if count + turn.ahead >= i64::from(limit) {
                let resume = oldest.unwrap_or(now) + 60_000;
                let why = format!(
                    "the channel's per-minute limit of {limit} messages is reached; sending resumes at {}",
                    crate::rfc3339(resume)
                );
                return finish
                    .to(&self.store, MessageStatus::Held, Some(&why), resume, None)
                    .await;
            }
        }
        let kind = content
            .event
            .as_ref()
            .and_then(|e| e.pointer("/event/type"))
            .and_then(|t| t.as_str())
            .unwrap_or("message.notification")
            .to_string();
        let text = content.text.clone().unwrap_or_default();
        let payload = Payload {
            id: &row.id,
            subject: content.subject.as_str(),
            text: &text,
            event: content.event.as_ref(),
            kind: &kind,
        };
        let out = {
            let _send = self.send_slots.acquire().await.expect("never closed");
            http.send(row.tenant_id == PLATFORM, &target, &payload).await
        };
        let summary = out.summary(content.locale);
        let expires_at = row.created_at + self.config.message_max_age_secs as i64 * 1000;
        let now = crate::now_ms();
        let (status, outcome, next_at) = if out.ok {
            (MessageStatus::Sent, "sent", now)
        } else if out.class == Some(Class::Transient) && now < expires_at {
            let backoff = self.backoff_ms(row.attempts);
            let wait = out.retry_after_ms.map(|r| r.max(0)).unwrap_or(backoff);
            (
                MessageStatus::Deferred,
                "transient",
                (now + wait).min(expires_at.max(now)),
            )
        } else {
            (
                MessageStatus::Failed,
                class_name(out.class.unwrap_or(Class::Permanent)),
                now,
            )
        };
        finish
            .attempts
            .push(http_attempt(row, &channel.id, outcome, &out, &summary));
        self.metrics.record_attempt(outcome);
        self.metrics.record_channel(&channel.kind, outcome);
        let (channel_status, message) = status_after(&out, &summary);
        if !channel_status.is_empty() {
            self.store
                .set_channel_status(&channel.id, channel_status, message.as_deref())
                .await?;
        }
        if out.ok {
            tracing::info!(message = %row.id, channel = %channel.id, kind = %channel.kind, status = ?out.status, "delivered to the channel");
        } else {
            tracing::warn!(message = %row.id, channel = %channel.id, kind = %channel.kind, stage = out.stage.as_str(), status = ?out.status, "channel delivery attempt failed");
        }
        let last_error = (!out.ok).then_some(summary);
        finish
            .to(&self.store, status, last_error.as_deref(), next_at, None)
            .await
    }
}
