//! The outbox: accepting a message means checking it, resolving which account
//! sends it, and committing it to the store before answering. Delivery is the
//! worker's job (`delivery`).

use crate::compose::{CAPTURE_FROM, Content};
use crate::domain::{EmailAddress, HeaderText};
use crate::error::{Error, Problems, Result};
use crate::i18n::Locale;
use crate::metrics::Metrics;
use crate::status::{MessageStatus, RouteKind};
use crate::store::messages::{AttemptRow, MessageFilter, MessageRow};
use crate::store::{Freshness, PLATFORM};
use crate::store::{Store, StoreError, Unavailable};
use crate::templates::Templates;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio::sync::{Notify, Semaphore};

/// A message as the API and CLI accept it.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageInput {
    #[serde(default)]
    pub to: Vec<String>,
    #[serde(default)]
    pub cc: Vec<String>,
    #[serde(default)]
    pub bcc: Vec<String>,
    pub subject: Option<String>,
    pub text: Option<String>,
    pub html: Option<String>,
    pub template: Option<String>,
    pub vars: Option<serde_json::Value>,
    pub locale: Option<String>,
    /// Id or name of the sending account; the tenant's default when absent.
    pub account: Option<String>,
}

/// A message kept in the capture mailbox.
#[derive(Serialize)]
pub struct CapturedView {
    pub id: String,
    pub message: String,
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    pub raw: String,
    pub at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AttemptView {
    pub at: String,
    pub account: Option<String>,
    pub outcome: String,
    pub stage: Option<String>,
    pub code: Option<u16>,
    pub enhanced_code: Option<String>,
    pub reply: Option<String>,
    pub class: Option<String>,
    pub transcript: Vec<crate::smtp::Line>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MessageView {
    pub id: String,
    pub status: String,
    /// The account it is sent through; null when it goes to the capture mailbox.
    pub account: Option<String>,
    pub message_id: String,
    pub to: Vec<EmailAddress>,
    pub cc: Vec<EmailAddress>,
    pub bcc: Vec<EmailAddress>,
    pub subject: String,
    /// True when the message went to the capture mailbox instead of a server.
    pub captured: bool,
    /// The webhook or chat-robot channel it goes to (its id); null for email.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// How the sending account was chosen, and why (`platform_default: …`, `capture: …`).
    pub route: Option<String>,
    pub attempts: Vec<AttemptView>,
    pub last_error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

const MAX_RECIPIENTS: usize = 100;
const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

fn check_addresses(p: &mut Problems, field: &str, list: &[String]) -> Vec<EmailAddress> {
    list.iter()
        .enumerate()
        .filter_map(|(i, a)| p.check(&format!("{field}[{i}]"), EmailAddress::parse(a)))
        .collect()
}

/// Checks a message; all problems at once, each naming its field.
pub fn check_input(input: &MessageInput) -> Result<Content> {
    let mut p = Problems::default();
    let to = check_addresses(&mut p, "to", &input.to);
    let cc = check_addresses(&mut p, "cc", &input.cc);
    let bcc = check_addresses(&mut p, "bcc", &input.bcc);
    let count = input.to.len() + input.cc.len() + input.bcc.len();
    if count == 0 {
        p.add("to", "needs at least one recipient address");
    } else if count > MAX_RECIPIENTS {
        p.add(
            "to",
            format!("{count} recipients in all; at most {MAX_RECIPIENTS} per message: split the list"),
        );
    }
    // A template was rendered before this check (App::apply_template): vars alone mean nothing.
    if input.vars.is_some() {
        p.add(
            "vars",
            "go with a template: name one in template, or send subject and text/html",
        );
    }
    let subject = match input.subject.as_deref() {
        None => {
            p.add("subject", "is required");
            None
        }
        Some(s) => p.check("subject", HeaderText::parse(s)),
    };
    let text = input.text.clone().filter(|t| !t.is_empty());
    let html = input.html.clone().filter(|t| !t.is_empty());
    if text.is_none() && html.is_none() {
        p.add("text", "is required unless html is given: the body of the message");
    }
    for (field, body) in [("text", &text), ("html", &html)] {
        if let Some(b) = body {
            if b.len() > MAX_BODY_BYTES {
                p.add(field, format!("is {} bytes; at most {MAX_BODY_BYTES}", b.len()));
            }
            if b.contains('\0') {
                p.add(field, "contains a NUL character");
            }
        }
    }
    let locale = match input.locale.as_deref() {
        None => Some(Locale::En),
        Some(l) => p.check(
            "locale",
            Locale::parse(l).ok_or_else(|| format!("'{l}' is not one of en, zh-CN")),
        ),
    };
    p.into_result()?;
    Ok(Content {
        to,
        cc,
        bcc,
        subject: subject.expect("checked"),
        text,
        html,
        locale: locale.expect("checked"),
        from_name: None,
        retry_only: None,
        channel: crate::status::Channel::Email,
        channel_id: None,
        event: None,
    })
}

/// The outbox: where messages are accepted, looked up, retried and cancelled.
#[derive(Clone)]
pub struct Outbox {
    store: Store,
    metrics: Arc<Metrics>,
    /// Wakes the delivery worker when a message is queued.
    wake: Arc<Notify>,
    templates: Templates,
    /// Recently resolved routes, for the accept path.
    routes: Arc<RouteCache>,
    /// Batch requests processed at once: each holds megabytes while it
    /// runs, and more at once would not commit any sooner (one writer).
    batch_slots: Arc<Semaphore>,
}

impl Outbox {
    /// The outbox over the store; `wake` is notified when work is queued.
    pub fn new(store: Store, metrics: Arc<Metrics>, wake: Arc<Notify>, templates: Templates) -> Outbox {
        Outbox {
            store,
            metrics,
            wake,
            templates,
            routes: Arc::default(),
            batch_slots: Arc::new(Semaphore::new(2)),
        }
    }

    /// Messages in the store by status, for `/metrics`.
    pub async fn count_by_status(&self) -> Result<Vec<(String, i64)>> {
        Ok(self.store.message_counts().await?)
    }

    /// What went to the tenant's capture mailbox, newest first.
    pub async fn captured(&self, tenant: &str, limit: i64) -> Result<Vec<CapturedView>> {
        let rows = self.store.list_captured(tenant, limit).await?;
        Ok(rows
            .into_iter()
            .map(|r| CapturedView {
                id: r.id,
                message: r.message_id,
                from: r.mail_from,
                to: serde_json::from_str(&r.rcpt_to).unwrap_or_default(),
                subject: r.subject,
                raw: r.raw,
                at: crate::rfc3339(r.at),
            })
            .collect())
    }

    /// A turn to process a batch: two at once (see `batch_slots`).
    pub async fn batch_turn(&self) -> tokio::sync::OwnedSemaphorePermit {
        self.batch_slots
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed")
    }

    /// Whether the database takes writes, for `/healthz` and `/metrics`:
    /// the storage condition that refuses them otherwise.
    pub async fn storage(&self) -> std::result::Result<(), Unavailable> {
        self.store.check().await
    }

    /// Operations each storage condition refused since the start, for `/metrics`.
    pub fn storage_refusals(&self) -> [(Unavailable, u64); Unavailable::ALL.len()] {
        self.store.refusals()
    }

    /// Accepts a message: once this returns, it is on disk and will be
    /// delivered or visibly fail. A repeated idempotency key answers the
    /// message accepted the first time (and `false`).
    pub async fn accept_message(
        &self,
        tenant: &str,
        input: MessageInput,
        idempotency_key: Option<String>,
    ) -> Result<(MessageView, bool)> {
        let input = self.apply_template(tenant, input).await?;
        let content = check_input(&input)?;
        check_idempotency_key(idempotency_key.as_deref())?;
        let route = self.cached_route(tenant, input.account.as_deref()).await?;
        self.enqueue(tenant, content, route, idempotency_key).await
    }

    /// Accepts many messages at once: all are checked first (a bad one refuses
    /// the batch, naming `messages[i].field`), then committed in one transaction.
    /// With an idempotency key, message `i` carries `<key>#<i>`, and a repeat
    /// answers the batch accepted the first time (and `false`).
    pub async fn accept_batch(
        &self,
        tenant: &str,
        inputs: Vec<MessageInput>,
        idempotency_key: Option<String>,
    ) -> Result<(Vec<MessageView>, bool)> {
        const MAX_BATCH: usize = 1000;
        if inputs.is_empty() || inputs.len() > MAX_BATCH {
            return Err(Error::field(
                "messages",
                format!("holds {} messages; send 1 to {MAX_BATCH}", inputs.len()),
            ));
        }
        check_idempotency_key(idempotency_key.as_deref())?;
        let keys: Option<Vec<String>> = idempotency_key
            .as_deref()
            .map(|k| (0..inputs.len()).map(|i| format!("{k}#{i}")).collect());
        if let Some(keys) = &keys
            && let Some(first) = self.batch_accepted_before(tenant, keys).await?
        {
            return Ok((first, false));
        }
        let mut rows = Vec::with_capacity(inputs.len());
        let mut problems = Vec::new();
        // A batch usually names one account (or none): its route is resolved once.
        let mut routes: std::collections::HashMap<Option<String>, Route> = Default::default();
        for (i, input) in inputs.into_iter().enumerate() {
            let prefix = |e: Error| match e {
                Error::Invalid(list) => Error::Invalid(
                    list.into_iter()
                        .map(|f| crate::error::FieldError::new(format!("messages[{i}].{}", f.field), f.message))
                        .collect(),
                ),
                other => other,
            };
            let checked = async {
                let input = self.apply_template(tenant, input).await?;
                let content = check_input(&input)?;
                let route = match routes.get(&input.account) {
                    Some(r) => r.clone(),
                    None => {
                        let r = self.cached_route(tenant, input.account.as_deref()).await?;
                        routes.insert(input.account.clone(), r.clone());
                        r
                    }
                };
                self.message_row(tenant, content, route, None)
            }
            .await;
            match checked.map_err(prefix) {
                Ok(row) => rows.push(row),
                Err(Error::Invalid(list)) => problems.extend(list),
                Err(e) => return Err(e),
            }
        }
        if !problems.is_empty() {
            return Err(Error::Invalid(problems));
        }
        if let Some(keys) = &keys {
            for (row, key) in rows.iter_mut().zip(keys) {
                row.idempotency_key = Some(key.clone());
            }
        }
        let views = rows.iter().map(|r| self.message_view(r, Vec::new())).collect();
        let accepted = rows.len();
        match self.store.insert_messages(rows).await {
            Ok(()) => {}
            // The same batch, sent twice at once: the other one went in.
            Err(StoreError::Duplicate { .. })
                if let Some(keys) = &keys
                    && let Some(first) = self.batch_accepted_before(tenant, keys).await? =>
            {
                return Ok((first, false));
            }
            Err(e @ StoreError::Duplicate { .. }) => {
                return Err(Error::Conflict(format!("the batch was not inserted: {e}")));
            }
            Err(e) => return Err(e.into()),
        }
        for _ in 0..accepted {
            self.metrics.record_accepted();
        }
        self.wake.notify_one();
        Ok((views, true))
    }

    /// The batch accepted before under these per-message keys, if all of it was.
    async fn batch_accepted_before(&self, tenant: &str, keys: &[String]) -> Result<Option<Vec<MessageView>>> {
        let found = self.store.messages_by_keys(tenant, keys).await?;
        if found.is_empty() {
            return Ok(None);
        }
        if found.len() != keys.len() {
            return Err(Error::Conflict(format!(
                "Idempotency-Key: {} of this batch's {} per-message keys (<key>#<index>) were used by other messages; \
                 use a new key",
                found.len(),
                keys.len()
            )));
        }
        Ok(Some(found.iter().map(|r| self.message_view(r, Vec::new())).collect()))
    }

    /// A message that names a template is rendered now, so a template that
    /// does not render is a 422 at once, never a failed delivery later.
    async fn apply_template(&self, tenant: &str, mut input: MessageInput) -> Result<MessageInput> {
        let Some(name) = input.template.clone() else {
            return Ok(input);
        };
        if input.subject.is_some() || input.text.is_some() || input.html.is_some() {
            return Err(Error::field(
                "template",
                "give either a template (with vars) or subject and text/html, not both",
            ));
        }
        let locale = match input.locale.as_deref() {
            Some(l) => {
                Locale::parse(l).ok_or_else(|| Error::field("locale", format!("'{l}' is not one of en, zh-CN")))?
            }
            None => self
                .store
                .get_settings(tenant)
                .await?
                .locale
                .as_deref()
                .and_then(Locale::parse)
                .unwrap_or_default(),
        };
        let vars = input.vars.take().unwrap_or(serde_json::json!({}));
        let r = self.templates.render_template(tenant, &name, locale, &vars).await?;
        input.subject = Some(r.subject);
        input.text = Some(r.text);
        input.html = r.html;
        input.locale = Some(locale.as_str().to_string());
        input.template = None;
        Ok(input)
    }

    /// `resolve_route` for an accepted message, from the cache when this
    /// process changed no account, setting or tenant since and the entry is
    /// under a second old (another process's change shows within that).
    /// A route through the platform's account counts against a daily cap, so
    /// it is resolved every time.
    async fn cached_route(&self, tenant: &str, requested: Option<&str>) -> Result<Route> {
        let key = (tenant.to_string(), requested.map(str::to_string));
        let since = self.store.freshness();
        if let Some(route) = self.routes.get(&key, |filled| self.store.still_fresh(filled)) {
            return Ok(route);
        }
        let route = self.resolve_route(tenant, requested, None).await?;
        if route.cacheable() {
            self.routes.put(key, since, route.clone());
        }
        Ok(route)
    }

    /// Which account sends a tenant's message: the one asked for; else the
    /// tenant's default; else (for a tenant allowed to) the platform's
    /// default under the tenant's display name, within the platform's daily
    /// cap per tenant; else the capture mailbox. `avoid` skips an account
    /// (a warning about a broken account must not go through it).
    pub async fn resolve_route(&self, tenant: &str, requested: Option<&str>, avoid: Option<&str>) -> Result<Route> {
        if let Some(a) = requested.map(str::trim).filter(|a| !a.is_empty()) {
            let account = self.store.find_account(tenant, a).await?.ok_or_else(|| {
                Error::field(
                    "account",
                    format!("no account '{a}' in this tenant: give an id or name from GET /api/v1/accounts"),
                )
            })?;
            return Ok(Route::new(RouteKind::Account, Some(account), "named in the request"));
        }
        let usable = |id: &Option<String>| id.clone().filter(|id| Some(id.as_str()) != avoid);
        let settings = self.store.get_settings(tenant).await?;
        if let Some(id) = usable(&settings.default_account)
            && let Some(account) = self.store.find_account(tenant, &id).await?
        {
            return Ok(Route::new(
                RouteKind::TenantDefault,
                Some(account),
                "the tenant's default account",
            ));
        }
        let mut why = "no mail account is configured".to_string();
        let mut capped = false;
        if tenant != PLATFORM {
            let platform = self.store.get_settings(PLATFORM).await?;
            if settings.fallback_to_platform == 0 {
                why = "the tenant has no default account and may not fall back to the platform sender".into();
            } else if let Some(id) = usable(&platform.default_account)
                && let Some(account) = self.store.find_account(PLATFORM, &id).await?
            {
                let day_ago = crate::now_ms() - 24 * 3600 * 1000;
                let cap = platform.tenant_daily_cap.filter(|c| *c > 0);
                let used = match cap {
                    Some(_) => self.store.count_platform_routed(tenant, day_ago).await?,
                    None => 0,
                };
                if cap.is_some_and(|c| used >= c) {
                    capped = true;
                    why = format!(
                        "the tenant sent {used} messages through the platform sender in 24 h, its cap is {}",
                        cap.unwrap_or(0)
                    );
                } else {
                    let name = match settings.from_name.clone() {
                        Some(n) => n,
                        None => self.store.tenant_name(tenant).await?,
                    };
                    let mut route = Route::new(
                        RouteKind::PlatformDefault,
                        Some(account),
                        "the tenant has no mail account of its own; sent by the platform under the tenant's name",
                    );
                    route.from_name = Some(name);
                    return Ok(route);
                }
            } else {
                why = "neither the tenant nor the platform has a default account".into();
            }
        }
        let mut route = Route::new(RouteKind::Capture, None, why);
        route.capped = capped;
        Ok(route)
    }

    /// Commits a checked message on the resolved route; the worker is woken.
    pub async fn enqueue(
        &self,
        tenant: &str,
        content: Content,
        route: Route,
        idempotency_key: Option<String>,
    ) -> Result<(MessageView, bool)> {
        let row = self.message_row(tenant, content, route, idempotency_key)?;
        let (row, created) = self.store.insert_message(&row).await?;
        if created {
            self.metrics.record_accepted();
            self.wake.notify_one();
            tracing::info!(message = %row.id, tenant, account = ?row.account_id, route = ?row.route, "message accepted");
        }
        Ok((self.message_view(&row, Vec::new()), created))
    }

    fn message_row(
        &self,
        tenant: &str,
        mut content: Content,
        route: Route,
        idempotency_key: Option<String>,
    ) -> Result<MessageRow> {
        if let Some(n) = &route.from_name {
            content.from_name = crate::domain::HeaderText::parse(n).ok();
        }
        let sender_domain = route
            .account
            .as_ref()
            .map(|a| a.from_address.clone())
            .unwrap_or_else(|| EmailAddress::parse(CAPTURE_FROM).expect("valid"));
        let now = crate::now_ms();
        let row = MessageRow {
            id: crate::store::new_id(),
            tenant_id: tenant.to_string(),
            account_id: route.account.as_ref().map(|a| a.id.clone()),
            status: MessageStatus::Queued.as_str().into(),
            message_id: crate::compose::new_message_id(&sender_domain),
            idempotency_key,
            content: serde_json::to_string(&content).map_err(anyhow::Error::from)?,
            attempts: 0,
            next_attempt_at: now,
            lease_until: None,
            last_error: None,
            captured: 0,
            created_at: now,
            updated_at: now,
            route: Some(route.text()),
        };
        Ok(row)
    }

    pub fn message_view(&self, row: &MessageRow, attempts: Vec<AttemptRow>) -> MessageView {
        let content: Option<Content> = serde_json::from_str(&row.content).ok();
        MessageView {
            id: row.id.clone(),
            status: row.status.clone(),
            account: row.account_id.clone(),
            message_id: row.message_id.clone(),
            to: content.as_ref().map(|c| c.to.clone()).unwrap_or_default(),
            cc: content.as_ref().map(|c| c.cc.clone()).unwrap_or_default(),
            bcc: content.as_ref().map(|c| c.bcc.clone()).unwrap_or_default(),
            subject: content
                .as_ref()
                .map(|c| c.subject.as_str().to_string())
                .unwrap_or_default(),
            captured: row.captured != 0,
            channel: content.as_ref().and_then(|c| c.channel_id.clone()),
            route: row.route.clone(),
            attempts: attempts
                .into_iter()
                .map(|a| AttemptView {
                    at: crate::rfc3339(a.at),
                    // A channel's attempts carry the channel's id there (its limit counts them).
                    account: a
                        .account_id
                        .filter(|_| content.as_ref().is_none_or(|c| c.channel_id.is_none())),
                    outcome: a.outcome,
                    stage: a.stage,
                    code: a.code.map(|c| c as u16),
                    enhanced_code: a.enhanced_code,
                    reply: a.reply,
                    class: a.class,
                    transcript: a
                        .transcript
                        .as_deref()
                        .and_then(|t| serde_json::from_str(t).ok())
                        .unwrap_or_default(),
                })
                .collect(),
            last_error: row.last_error.clone(),
            created_at: crate::rfc3339(row.created_at),
            updated_at: crate::rfc3339(row.updated_at),
        }
    }

    pub async fn get_message(&self, tenant: &str, id: &str) -> Result<MessageView> {
        let row = self
            .store
            .get_message(tenant, id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("message '{id}'")))?;
        let attempts = self.store.attempts_of(&row.id).await?;
        Ok(self.message_view(&row, attempts))
    }

    pub async fn list_messages(&self, tenant: &str, filter: MessageFilter) -> Result<Vec<MessageView>> {
        if let Some(s) = &filter.status
            && MessageStatus::parse(s).is_none()
        {
            return Err(Error::field(
                "status",
                format!(
                    "'{s}' is not one of {}",
                    MessageStatus::ALL
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        let rows = self.store.list_messages(tenant, &filter).await?;
        Ok(rows.iter().map(|r| self.message_view(r, Vec::new())).collect())
    }

    /// Cancels a message that has not gone out yet.
    pub async fn cancel_message(&self, tenant: &str, id: &str) -> Result<MessageView> {
        let row = self
            .store
            .get_message(tenant, id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("message '{id}'")))?;
        if !self.store.cancel_message(tenant, &row.id).await? {
            return Err(Error::Conflict(format!(
                "message {id} is {}: only queued, deferred or held messages can be cancelled",
                row.status
            )));
        }
        self.get_message(tenant, id).await
    }

    /// Puts a failed, deferred, held or cancelled message back in the queue now.
    pub async fn retry_message(&self, tenant: &str, id: &str) -> Result<MessageView> {
        let row = self
            .store
            .get_message(tenant, id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("message '{id}'")))?;
        if !self.store.requeue_message(tenant, &row.id).await? {
            return Err(Error::Conflict(format!(
                "message {id} is {}: only failed, deferred, held or cancelled messages can be retried",
                row.status
            )));
        }
        self.wake.notify_one();
        self.get_message(tenant, id).await
    }
}

fn check_idempotency_key(key: Option<&str>) -> Result<()> {
    match key {
        Some(k) if k.is_empty() || k.len() > 200 || k.chars().any(|c| c.is_control()) => {
            Err(Error::field("Idempotency-Key", "must be 1 to 200 printable characters"))
        }
        _ => Ok(()),
    }
}

/// Routes resolved recently, by tenant and requested account, each kept
/// while its `Freshness` holds.
#[derive(Default)]
pub struct RouteCache {
    entries: std::sync::Mutex<std::collections::HashMap<RouteKey, (Freshness, Route)>>,
}

/// A tenant and the account its message asked for.
type RouteKey = (String, Option<String>);

impl RouteCache {
    /// Entries past which the cache starts over (bounds its memory).
    const MAX: usize = 10_000;

    fn get(&self, key: &RouteKey, fresh: impl Fn(Freshness) -> bool) -> Option<Route> {
        let entries = self.entries.lock().expect("route cache");
        let (filled, route) = entries.get(key)?;
        fresh(*filled).then(|| route.clone())
    }

    fn put(&self, key: RouteKey, filled: Freshness, route: Route) {
        let mut entries = self.entries.lock().expect("route cache");
        if entries.len() >= Self::MAX {
            entries.clear();
        }
        entries.insert(key, (filled, route));
    }
}

/// The account chosen for a message and how.
#[derive(Debug, Clone)]
pub struct Route {
    pub account: Option<crate::domain::Account>,
    pub from_name: Option<String>,
    pub kind: RouteKind,
    /// Why, in words, for the message's `route`.
    pub reason: String,
    /// Chosen because a cap was reached: true only at that moment.
    pub capped: bool,
}

impl Route {
    fn new(kind: RouteKind, account: Option<crate::domain::Account>, reason: impl Into<String>) -> Route {
        Route {
            account,
            from_name: None,
            kind,
            reason: reason.into(),
            capped: false,
        }
    }

    /// The route of a message to a webhook or chat-robot channel.
    pub fn channel(name: &str) -> Route {
        Route::new(RouteKind::Channel, None, format!("the rule's channel '{name}'"))
    }

    /// As the message records it: `kind: reason`.
    pub fn text(&self) -> String {
        format!("{}: {}", self.kind, self.reason)
    }

    /// A route that counts against the platform's daily cap, or was chosen
    /// because it was reached, is resolved anew for every message.
    fn cacheable(&self) -> bool {
        self.kind != RouteKind::PlatformDefault && !self.capped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_injection_and_names_fields() {
        let input = MessageInput {
            to: vec!["ok@example.com".into(), "bad@example.com\r\nRCPT TO:<x@evil>".into()],
            subject: Some("Hi\r\nBcc: x@evil".into()),
            ..Default::default()
        };
        let Err(Error::Invalid(errs)) = check_input(&input) else {
            panic!("must refuse")
        };
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert!(fields.contains(&"to[1]"), "{fields:?}");
        assert!(fields.contains(&"subject"), "{fields:?}");
        assert!(fields.contains(&"text"), "{fields:?}");
    }

    #[test]
    fn accepts_a_plain_message() {
        let input = MessageInput {
            to: vec!["a@example.com".into()],
            bcc: vec!["b@example.com".into()],
            subject: Some("Hello".into()),
            text: Some("Body".into()),
            locale: Some("zh-CN".into()),
            ..Default::default()
        };
        let c = check_input(&input).unwrap();
        assert_eq!(c.recipients().len(), 2);
        assert_eq!(c.locale, Locale::ZhCn);
    }
}
