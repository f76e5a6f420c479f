//! Webhook and chat-robot channels: create, edit, delete, test. A channel is
//! a tenant's named destination (`webhook`, `slack`, `teams`, `dingtalk`,
//! `feishu`, `wecom`) that rule methods name (`{"channel": "<id or name>"}`).
//!
//! Secrets are write-only: the URL (it may hold a token), the signing secret
//! and the header values are sealed with the data directory's key and never
//! shown again; the URL is shown with its token masked. A webhook without a
//! secret gets a Standard Webhooks secret (`whsec_…`), shown once in the
//! answer that created it, so the receiver can be set up.

use crate::delivery::http::{per_minute, sealing_context, status_after, target_of};
use crate::error::{Error, OnDuplicate, Problems, Result};
use crate::i18n::Locale;
use crate::metrics::Metrics;
use crate::secrets::{Keyring, Secret};
use crate::status::ChannelKind;
use crate::store::Store;
use crate::store::channels::ChannelRow;
use crate::webhook::sign::{WHSEC, new_webhook_secret, webhook_key};
use crate::webhook::{Client, MASK, Payload, Report, display_url};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A channel as the API and the CLI accept it; on an edit, an absent field
/// keeps its value (and a masked URL or header value keeps the stored one).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelInput {
    pub name: Option<String>,
    pub kind: Option<String>,
    pub url: Option<String>,
    /// Write-only. Webhook: `whsec_<base64>` (generated when absent);
    /// DingTalk / Feishu: the robot's signing secret; empty removes it.
    pub secret: Option<String>,
    /// Extra request headers; a value is write-only. Null or `{}` removes them all.
    pub headers: Option<BTreeMap<String, String>>,
    pub limits: Option<ChannelLimits>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelLimits {
    /// Messages a minute; absent: the kind's published limit (robots about 20); 0: none.
    pub per_minute: Option<u32>,
}

/// A channel as shown: no secret, the URL masked, header values masked.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChannelView {
    pub id: String,
    pub name: String,
    pub kind: String,
    /// The URL with any token in it masked.
    pub url: String,
    /// Only in the answer that generated it (a webhook created without one):
    /// the Standard Webhooks secret to give the receiver. Never shown again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Whether a signing secret is stored.
    pub secret_set: bool,
    /// Header names, each value masked.
    pub headers: BTreeMap<String, String>,
    pub limits: ChannelLimits,
    /// `unverified`, `ready` (the last test or delivery went through) or
    /// `failing` (see `status_message`).
    pub status: String,
    pub status_message: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// Headers Herald writes itself, which a channel may not set.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];

fn view(row: &ChannelRow, generated_secret: Option<String>) -> ChannelView {
    let names: Vec<String> = serde_json::from_str(&row.header_names).unwrap_or_default();
    ChannelView {
        id: row.id.clone(),
        name: row.name.clone(),
        kind: row.kind.clone(),
        url: row.url_display.clone(),
        secret: generated_secret,
        secret_set: row.secret.is_some(),
        headers: names.into_iter().map(|n| (n, MASK.to_string())).collect(),
        limits: ChannelLimits {
            per_minute: Some(per_minute(row)),
        },
        status: row.status.clone(),
        status_message: row.status_message.clone(),
        created_at: crate::rfc3339(row.created_at),
        updated_at: crate::rfc3339(row.updated_at),
    }
}

fn kinds() -> String {
    ChannelKind::ALL
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks a URL for a kind: http(s), and the token the kind's URLs carry.
fn check_url(kind: ChannelKind, url: &str) -> std::result::Result<(), String> {
    let u =
        reqwest::Url::parse(url.trim()).map_err(|e| format!("is not a URL ({e}): paste the full https://… address"))?;
    if !matches!(u.scheme(), "https" | "http") {
        return Err(format!("uses {}: give an https:// (or http://) URL", u.scheme()));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err("has no host".into());
    }
    if u.fragment().is_some() {
        return Err("has a #fragment, which is never sent: remove it".into());
    }
    let has = |name: &str| u.query_pairs().any(|(k, v)| k == name && !v.is_empty());
    let path = u.path();
    match kind {
        ChannelKind::Dingtalk if !has("access_token") => Err(
            "has no access_token: copy the robot's whole Webhook URL (https://oapi.dingtalk.com/robot/send?access_token=…)"
                .into(),
        ),
        ChannelKind::Wecom if !has("key") => Err(
            "has no key: copy the robot's whole Webhook URL (https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…)"
                .into(),
        ),
        ChannelKind::Slack if !path.contains("/services/") => Err(
            "is not an incoming webhook URL: copy it from the Slack app's Incoming Webhooks (https://hooks.slack.com/services/…)"
                .into(),
        ),
        ChannelKind::Feishu if !path.contains("/hook/") => Err(
            "is not a robot webhook URL: copy it from the group's robot settings (https://open.feishu.cn/open-apis/bot/v2/hook/…)"
                .into(),
        ),
        _ => Ok(()),
    }
}

/// What an input leaves to store, once checked.
struct Checked {
    name: String,
    kind: ChannelKind,
    url: Option<String>,
    /// None: keep; Some(None): remove; Some(Some): the new secret.
    secret: Option<Option<String>>,
    headers: Option<Vec<(String, String)>>,
    per_minute: Option<Option<i64>>,
}

/// Webhook and chat-robot channels, and their tests.
#[derive(Clone)]
pub struct Channels {
    store: Store,
    keys: Keyring,
    http: Client,
    metrics: Arc<Metrics>,
}

impl Channels {
    pub fn new(store: Store, keys: Keyring, http: Client, metrics: Arc<Metrics>) -> Channels {
        Channels {
            store,
            keys,
            http,
            metrics,
        }
    }

    pub async fn list(&self, tenant: &str) -> Result<Vec<ChannelView>> {
        Ok(self
            .store
            .list_channels(tenant)
            .await?
            .iter()
            .map(|r| view(r, None))
            .collect())
    }

    async fn find(&self, tenant: &str, id: &str) -> Result<ChannelRow> {
        self.store
            .find_channel(tenant, id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("channel '{id}'")))
    }

    pub async fn get(&self, tenant: &str, id: &str) -> Result<ChannelView> {
        Ok(view(&self.find(tenant, id).await?, None))
    }

    /// Every field checked, every problem named at once.
    fn check(&self, input: &ChannelInput, old: Option<&ChannelRow>) -> Result<Checked> {
        let mut p = Problems::default();
        let name = match (input.name.as_deref().map(str::trim), old) {
            (None, Some(o)) => o.name.clone(),
            (None | Some(""), _) => {
                p.add("name", "is required: a name rules can use, e.g. ops-dingtalk");
                String::new()
            }
            (Some(n), _) if n.chars().count() > 100 || n.chars().any(char::is_control) => {
                p.add("name", "must be 1 to 100 characters without control characters");
                String::new()
            }
            (Some("email"), _) => {
                p.add("name", "'email' names the email method in rules: choose another name");
                String::new()
            }
            (Some(n), _) => n.to_string(),
        };
        let kind = match (input.kind.as_deref(), old) {
            (None, Some(o)) => ChannelKind::parse(&o.kind),
            (None, None) => {
                p.add("kind", format!("is required: one of {}", kinds()));
                None
            }
            (Some(k), _) => {
                let parsed = ChannelKind::parse(k.trim());
                if parsed.is_none() {
                    p.add("kind", format!("'{k}' is not one of {}", kinds()));
                }
                parsed
            }
        };
        let kind_changed = old.is_some_and(|o| Some(o.kind.as_str()) != kind.map(|k| k.as_str()));
        // A URL shown masked and sent back unchanged keeps the stored one.
        let url = input
            .url
            .as_deref()
            .map(str::trim)
            .filter(|u| old.is_none_or(|o| *u != o.url_display));
        match (url, old) {
            (None, None) => p.add("url", "is required: the webhook or robot URL"),
            (Some(u), _) => {
                if let Some(k) = kind
                    && let Err(e) = check_url(k, u)
                {
                    p.add("url", e);
                }
            }
            (None, Some(o)) => {
                if let Some(k) = kind
                    && kind_changed
                    && let Ok(t) = target_of(&self.keys, o)
                    && let Err(e) = check_url(k, t.url.expose())
                {
                    p.add("url", e);
                }
            }
        }
        let secret = match input.secret.as_deref().map(str::trim) {
            None => None,
            Some("") => Some(None),
            Some(s) if s.chars().all(|c| c == '*' || c == '•') => None,
            Some(s) => Some(Some(s.to_string())),
        };
        let will_have_secret = match &secret {
            Some(s) => s.is_some(),
            None => old.is_some_and(|o| o.secret.is_some()),
        };
        if let Some(k) = kind {
            match (k, secret.as_ref().and_then(|s| s.as_deref())) {
                (ChannelKind::Webhook, Some(s)) => {
                    if !s.starts_with(WHSEC) {
                        p.add(
                            "secret",
                            "must be whsec_<base64> as in Standard Webhooks; leave it out and Herald makes one",
                        );
                    } else if let Err(e) = webhook_key(s) {
                        p.add("secret", e);
                    }
                }
                (ChannelKind::Slack | ChannelKind::Teams | ChannelKind::Wecom, Some(_)) => p.add(
                    "secret",
                    format!(
                        "{} robots are not signed (the URL is the secret): leave secret out",
                        k.as_str()
                    ),
                ),
                (ChannelKind::Slack | ChannelKind::Teams | ChannelKind::Wecom, None) if will_have_secret => p.add(
                    "secret",
                    format!(
                        "{} robots are not signed: send \"secret\": \"\" to remove the stored one",
                        k.as_str()
                    ),
                ),
                (_, Some(s)) if s.len() > 200 || s.chars().any(char::is_control) => p.add(
                    "secret",
                    "must be the robot's signing secret: one line, at most 200 characters",
                ),
                _ => {}
            }
        }
        let headers = match &input.headers {
            None => None,
            Some(h) => {
                let mut out = Vec::new();
                let stored: BTreeMap<String, String> = old
                    .and_then(|o| target_of(&self.keys, o).ok())
                    .map(|t| {
                        t.headers
                            .into_iter()
                            .map(|(k, v)| (k.to_ascii_lowercase(), v.expose().to_string()))
                            .collect()
                    })
                    .unwrap_or_default();
                for (k, v) in h {
                    let field = format!("headers.{k}");
                    let lower = k.to_ascii_lowercase();
                    if reqwest::header::HeaderName::from_bytes(k.as_bytes()).is_err() {
                        p.add(field, "is not a valid header name");
                    } else if RESERVED_HEADERS.contains(&lower.as_str()) {
                        p.add(field, "is written by Herald itself: remove it");
                    } else if v == MASK {
                        match stored.get(&lower) {
                            Some(s) => out.push((lower, s.clone())),
                            None => p.add(field, "is the mask Herald shows: give the header's value"),
                        }
                    } else if reqwest::header::HeaderValue::from_str(v).is_err() {
                        p.add(field, "is not a valid header value (one line of visible characters)");
                    } else {
                        out.push((lower, v.clone()));
                    }
                }
                if out.len() > 20 {
                    p.add("headers", "at most 20 headers");
                }
                Some(out)
            }
        };
        let per_minute = input.limits.as_ref().map(|l| match l.per_minute {
            Some(n) if n > 100_000 => {
                p.add("limits.per_minute", "at most 100000 (0: no limit)");
                None
            }
            n => n.map(i64::from),
        });
        p.into_result()?;
        Ok(Checked {
            name,
            kind: kind.expect("checked"),
            url: url.map(str::to_string),
            secret,
            headers,
            per_minute,
        })
    }

    fn seal(&self, id: &str, what: &str, value: &str) -> Vec<u8> {
        self.keys.seal(&sealing_context(id, what), &Secret::new(value))
    }

    fn name_taken(name: &str) -> Error {
        Error::field(
            "name",
            format!("a channel named '{name}' exists already: choose another name"),
        )
    }

    /// Creates a channel; a webhook without a secret gets one, shown once.
    pub async fn create(&self, tenant: &str, input: ChannelInput) -> Result<ChannelView> {
        let mut c = self.check(&input, None)?;
        let id = crate::store::new_id();
        let mut generated = None;
        if c.kind == ChannelKind::Webhook && c.secret.as_ref().is_none_or(|s| s.is_none()) {
            let s = new_webhook_secret();
            generated = Some(s.clone());
            c.secret = Some(Some(s));
        }
        let url = c.url.clone().expect("checked: required");
        let headers = c.headers.clone().unwrap_or_default();
        let now = crate::now_ms();
        let row = ChannelRow {
            id: id.clone(),
            tenant_id: tenant.to_string(),
            name: c.name.clone(),
            kind: c.kind.as_str().to_string(),
            url: self.seal(&id, "url", &url),
            url_display: display_url(c.kind, &url),
            secret: c.secret.clone().flatten().map(|s| self.seal(&id, "secret", &s)),
            headers: (!headers.is_empty())
                .then(|| self.seal(&id, "headers", &serde_json::to_string(&headers).expect("serializable"))),
            header_names: serde_json::to_string(&headers.iter().map(|(k, _)| k).collect::<Vec<_>>())
                .expect("serializable"),
            per_minute: c.per_minute.flatten(),
            status: "unverified".into(),
            status_message: None,
            created_at: now,
            updated_at: now,
        };
        self.store
            .insert_channel(&row)
            .await
            .on_duplicate(|| Self::name_taken(&row.name))?;
        tracing::info!(tenant, channel = %row.id, kind = %row.kind, url = %row.url_display, "channel created");
        Ok(view(&row, generated))
    }

    /// Edits a channel; absent fields keep their values.
    pub async fn edit(&self, tenant: &str, id: &str, input: ChannelInput) -> Result<ChannelView> {
        let mut row = self.find(tenant, id).await?;
        let c = self.check(&input, Some(&row))?;
        let mut changed_connection = false;
        row.name = c.name;
        if row.kind != c.kind.as_str() {
            row.kind = c.kind.as_str().to_string();
            changed_connection = true;
        }
        if let Some(url) = &c.url {
            row.url = self.seal(&row.id, "url", url);
            row.url_display = display_url(c.kind, url);
            changed_connection = true;
        }
        if let Some(s) = c.secret {
            row.secret = s.map(|s| self.seal(&row.id, "secret", &s));
            changed_connection = true;
        }
        if row.secret.is_none() && c.kind == ChannelKind::Webhook {
            return Err(Error::field(
                "secret",
                "a webhook needs its signing secret: give a whsec_… secret, or delete and re-create the channel to get a new one",
            ));
        }
        if let Some(h) = c.headers {
            row.headers = (!h.is_empty())
                .then(|| self.seal(&row.id, "headers", &serde_json::to_string(&h).expect("serializable")));
            row.header_names =
                serde_json::to_string(&h.iter().map(|(k, _)| k).collect::<Vec<_>>()).expect("serializable");
        }
        if let Some(pm) = c.per_minute {
            row.per_minute = pm;
        }
        if changed_connection {
            row.status = "unverified".into();
            row.status_message = None;
        }
        row.updated_at = crate::now_ms();
        let name = row.name.clone();
        self.store
            .update_channel(&row)
            .await
            .on_duplicate(|| Self::name_taken(&name))?;
        Ok(view(&row, None))
    }

    /// Deletes a channel no rule names.
    pub async fn delete(&self, tenant: &str, id: &str) -> Result<()> {
        let row = self.find(tenant, id).await?;
        let users: Vec<String> = self
            .store
            .list_rules(tenant)
            .await?
            .into_iter()
            .filter(|r| {
                serde_json::from_str::<Vec<serde_json::Value>>(&r.methods_json)
                    .unwrap_or_default()
                    .iter()
                    .any(|m| m.get("channel").and_then(|c| c.as_str()) == Some(row.id.as_str()))
            })
            .map(|r| r.name)
            .collect();
        if !users.is_empty() {
            return Err(Error::Conflict(format!(
                "channel '{}' is used by the rules {}: remove it from their methods first",
                row.name,
                users.join(", ")
            )));
        }
        self.store.delete_channel(tenant, &row.id).await?;
        Ok(())
    }

    /// Sends a test notification and reports what came of it, with a hint in
    /// `locale`; the channel's status follows the result.
    pub async fn test(&self, tenant: &str, id: &str, locale: Option<&str>) -> Result<Report> {
        let locale = match locale {
            None => Locale::En,
            Some(l) => {
                Locale::parse(l).ok_or_else(|| Error::field("locale", format!("'{l}' is not one of en, zh-CN")))?
            }
        };
        let row = self.find(tenant, id).await?;
        let target = target_of(&self.keys, &row).map_err(Error::Internal)?;
        let delivery_id = format!("test_{}", crate::store::new_id());
        let subject = locale.pick("Herald test notification", "Herald 测试通知");
        let text = match locale {
            Locale::En => format!(
                "This is a test from Herald for the channel \"{}\". If you can read it, the channel works.",
                row.name
            ),
            Locale::ZhCn => format!(
                "这是 Herald 为通道“{}”发送的测试通知。能看到这条消息，说明通道可用。",
                row.name
            ),
        };
        let event = serde_json::json!({"type": "herald.test", "channel": row.name});
        let payload = Payload {
            id: &delivery_id,
            subject,
            text: &text,
            event: Some(&event),
            kind: "herald.test",
        };
        let out = self
            .http
            .send(tenant == crate::store::PLATFORM, &target, &payload)
            .await;
        let report = out.report(locale);
        self.metrics
            .record_channel(&row.kind, if out.ok { "test_ok" } else { "test_failed" });
        let summary = out.summary(locale);
        let (status, message) = match status_after(&out, &summary) {
            ("", _) => ("failing", Some(summary.clone())),
            s => s,
        };
        self.store
            .set_channel_status(&row.id, status, message.as_deref())
            .await?;
        tracing::info!(tenant, channel = %row.id, ok = out.ok, stage = out.stage.as_str(), status = ?out.status, "channel test");
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_per_kind() {
        assert!(
            check_url(
                ChannelKind::Dingtalk,
                "https://oapi.dingtalk.com/robot/send?access_token=x"
            )
            .is_ok()
        );
        assert!(
            check_url(ChannelKind::Dingtalk, "https://oapi.dingtalk.com/robot/send")
                .unwrap_err()
                .contains("access_token")
        );
        assert!(
            check_url(
                ChannelKind::Wecom,
                "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k"
            )
            .is_ok()
        );
        assert!(check_url(ChannelKind::Webhook, "ftp://example.com/").is_err());
        assert!(check_url(ChannelKind::Webhook, "not a url").is_err());
        assert!(check_url(ChannelKind::Slack, "https://hooks.slack.com/services/T/B/x").is_ok());
        assert!(check_url(ChannelKind::Feishu, "https://open.feishu.cn/open-apis/bot/v2/hook/abc").is_ok());
    }
}
