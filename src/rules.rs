//! Events and notification rules. An event (type, severity, source, title,
//! message, data) is matched against the tenant's enabled rules; each match
//! passes the rule's throttle (inside the window one message goes out, later
//! events are counted and the next message says how many were suppressed)
//! and becomes one message per method, routed like any other message.

use crate::compose::Content;
use crate::domain::{EmailAddress, HeaderText};
use crate::error::{Error, OnDuplicate, Problems, Result};
use crate::i18n::Locale;
use crate::outbox::Outbox;
use crate::store::PLATFORM;
use crate::store::rules::{EventRow, RuleRow};
use crate::store::{Store, StoreError};
use crate::templates::Templates;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio::sync::{Notify, watch};

/// Severities, in order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    #[default]
    Info,
    Warning,
    Error,
    Critical,
}

impl Severity {
    pub fn parse(s: &str) -> Option<Severity> {
        match s {
            "info" => Some(Severity::Info),
            "warning" => Some(Severity::Warning),
            "error" => Some(Severity::Error),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Critical => "critical",
        }
    }
}

/// What a rule matches; an empty list matches anything.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Match {
    /// Event type globs: `*` any run of characters, `?` one (`account.*`).
    #[serde(default)]
    pub types: Vec<String>,
    #[serde(default = "default_severity")]
    pub min_severity: Severity,
    /// Any of these words in the title or message (case-insensitive).
    #[serde(default)]
    pub keywords: Vec<String>,
    /// Source globs.
    #[serde(default)]
    pub sources: Vec<String>,
}

fn default_severity() -> Severity {
    Severity::Info
}

/// Recipient that stands for the tenant's admins and the platform's.
pub const ADMINS: &str = "@admins";

/// How and to whom a matched event is sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Method {
    /// `email`, or the id or name of a webhook or chat-robot channel
    /// (`/api/v1/channels`; stored as its id).
    pub channel: String,
    /// Id or name of the sending account; null: the default route.
    #[serde(default)]
    pub account: Option<String>,
    /// Addresses, or "@admins" for the tenant's and the platform's admins
    /// (email only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<String>,
    #[serde(default)]
    pub from_name: Option<String>,
    /// Template for the message; default `event_notification`. Its variables:
    /// `event`, `suppressed`, `rule_name`, and the event's `data` fields.
    #[serde(default)]
    pub template: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RuleView {
    pub id: String,
    pub name: String,
    pub enabled: bool,
    #[serde(rename = "match")]
    pub matcher: Match,
    pub methods: Vec<Method>,
    pub throttle_secs: u64,
    /// Set on the rules Herald creates itself; they can be edited like any other.
    pub system: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleInput {
    pub name: Option<String>,
    pub enabled: Option<bool>,
    #[serde(rename = "match")]
    pub matcher: Option<Match>,
    pub methods: Option<Vec<Method>>,
    pub throttle_secs: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventInput {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub severity: Option<String>,
    pub source: Option<String>,
    pub title: Option<String>,
    pub message: Option<String>,
    pub data: Option<serde_json::Value>,
}

/// A checked event.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    #[serde(rename = "type")]
    pub kind: String,
    pub severity: Severity,
    pub source: Option<String>,
    pub title: String,
    pub message: Option<String>,
    pub data: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MatchedRule {
    pub id: String,
    pub name: String,
    /// False when the throttle counted the event instead of sending.
    pub sent: bool,
}

/// The answer to an event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventOutcome {
    pub id: String,
    pub rules: Vec<MatchedRule>,
    /// Ids of the messages created.
    pub messages: Vec<String>,
}

/// `*` and `?` globs, case-insensitive.
pub fn glob(pattern: &str, text: &str) -> bool {
    fn go(p: &[char], t: &[char]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some('*'), _) => go(&p[1..], t) || (!t.is_empty() && go(p, &t[1..])),
            (Some('?'), Some(_)) => go(&p[1..], &t[1..]),
            (Some(a), Some(b)) => a == b && go(&p[1..], &t[1..]),
            _ => false,
        }
    }
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let t: Vec<char> = text.to_lowercase().chars().collect();
    go(&p, &t)
}

impl Match {
    pub fn matches(&self, e: &Event) -> bool {
        if e.severity < self.min_severity {
            return false;
        }
        if !self.types.is_empty() && !self.types.iter().any(|g| glob(g, &e.kind)) {
            return false;
        }
        if !self.sources.is_empty() && !self.sources.iter().any(|g| glob(g, e.source.as_deref().unwrap_or(""))) {
            return false;
        }
        if !self.keywords.is_empty() {
            let hay = format!("{} {}", e.title, e.message.as_deref().unwrap_or("")).to_lowercase();
            if !self.keywords.iter().any(|k| hay.contains(&k.to_lowercase())) {
                return false;
            }
        }
        true
    }
}

/// The tenant has a rule of this name already.
fn name_taken(r: &RuleRow) -> Error {
    Error::field(
        "name",
        format!("a rule named '{}' exists already: choose another name", r.name),
    )
}

fn rule_view(r: &RuleRow) -> RuleView {
    RuleView {
        id: r.id.clone(),
        name: r.name.clone(),
        enabled: r.enabled != 0,
        matcher: serde_json::from_str(&r.match_json).unwrap_or_default(),
        methods: serde_json::from_str(&r.methods_json).unwrap_or_default(),
        throttle_secs: r.throttle_secs as u64,
        system: r.system_key.clone(),
        created_at: crate::rfc3339(r.created_at),
        updated_at: crate::rfc3339(r.updated_at),
    }
}

pub fn check_event(input: &EventInput) -> Result<Event> {
    let mut p = Problems::default();
    let kind = input.kind.as_deref().map(str::trim).unwrap_or("");
    if kind.is_empty() || kind.len() > 200 || kind.chars().any(|c| c.is_whitespace() || c.is_control()) {
        p.add("type", "is required: a dotted name without spaces, e.g. backup.failed");
    }
    let severity = match input.severity.as_deref() {
        None => Some(Severity::Info),
        Some(s) => p.check(
            "severity",
            Severity::parse(s).ok_or_else(|| format!("'{s}' is not one of info, warning, error, critical")),
        ),
    };
    let title = match input.title.as_deref().map(str::trim) {
        None | Some("") => {
            p.add("title", "is required: one line that says what happened");
            None
        }
        Some(t) => p.check("title", HeaderText::parse(t)),
    };
    let source = input.source.as_deref().map(str::trim).filter(|s| !s.is_empty());
    if source.is_some_and(|s| s.chars().any(|c| c.is_control())) {
        p.add("source", "contains a control character");
    }
    p.into_result()?;
    Ok(Event {
        kind: kind.to_string(),
        severity: severity.expect("checked"),
        source: source.map(str::to_string),
        title: title.expect("checked").as_str().to_string(),
        message: input.message.clone(),
        data: input.data.clone().unwrap_or(serde_json::Value::Null),
    })
}

async fn check_methods(store: &Store, tenant: &str, methods: &[Method], p: &mut Problems) -> Vec<Method> {
    if methods.is_empty() {
        p.add(
            "methods",
            "needs at least one method: {\"channel\": \"email\", \"to\": [\"ops@example.com\"]}",
        );
    }
    let mut out = Vec::new();
    for (i, m) in methods.iter().enumerate() {
        if m.channel != "email" {
            // A webhook or chat-robot channel: it says where and how itself.
            let found = match store.find_channel(tenant, m.channel.trim()).await {
                Ok(Some(c)) => Some(c.id),
                _ => {
                    p.add(
                        format!("methods[{i}].channel"),
                        format!(
                            "'{}' is neither email nor a channel of this tenant: give an id or name from GET /api/v1/channels",
                            m.channel
                        ),
                    );
                    None
                }
            };
            for (field, set) in [
                ("to", !m.to.is_empty()),
                ("account", m.account.is_some()),
                ("from_name", m.from_name.is_some()),
            ] {
                if set {
                    p.add(
                        format!("methods[{i}].{field}"),
                        "is for email methods: a channel method names only the channel (and a template)",
                    );
                }
            }
            if let Some(t) = m.template.as_deref()
                && !crate::templates::BUILTIN.contains(&t)
            {
                p.add(
                    format!("methods[{i}].template"),
                    format!("'{t}' is not one of {}", crate::templates::BUILTIN.join(", ")),
                );
            }
            out.push(Method {
                channel: found.unwrap_or_else(|| m.channel.clone()),
                account: None,
                to: vec![],
                from_name: None,
                template: m.template.clone(),
            });
            continue;
        }
        if m.to.is_empty() {
            p.add(format!("methods[{i}].to"), "needs at least one address, or \"@admins\"");
        }
        for (j, a) in m.to.iter().enumerate() {
            if a != ADMINS {
                let _ = p.check(&format!("methods[{i}].to[{j}]"), EmailAddress::parse(a));
            }
        }
        let mut account = None;
        if let Some(a) = m.account.as_deref().filter(|a| !a.is_empty()) {
            match store.find_account(tenant, a).await {
                Ok(Some(row)) => account = Some(row.id),
                _ => p.add(
                    format!("methods[{i}].account"),
                    format!("no account '{a}' in this tenant (null: the default route)"),
                ),
            }
        }
        if let Some(n) = m.from_name.as_deref() {
            let _ = p.check(&format!("methods[{i}].from_name"), HeaderText::parse(n));
        }
        if let Some(t) = m.template.as_deref()
            && !crate::templates::BUILTIN.contains(&t)
        {
            p.add(
                format!("methods[{i}].template"),
                format!("'{t}' is not one of {}", crate::templates::BUILTIN.join(", ")),
            );
        }
        out.push(Method {
            channel: m.channel.clone(),
            account,
            to: m.to.clone(),
            from_name: m.from_name.clone(),
            template: m.template.clone(),
        });
    }
    out
}

/// The built-in rules every tenant gets: a mail account whose authorization
/// expired, or that keeps failing, is reported to the admins.
pub const SYSTEM_AUTHORIZATION_EXPIRED: &str = "account_authorization_expired";
pub const SYSTEM_ACCOUNT_FAILING: &str = "account_failing";

/// Notification rules: what they match, and the messages they queue.
#[derive(Clone)]
pub struct Rules {
    store: Store,
    outbox: Outbox,
    templates: Templates,
    /// Notified when an account event was written (`health`).
    events: Arc<Notify>,
}

impl Rules {
    /// The rules over the store; matched events are queued in `outbox`.
    pub fn new(store: Store, outbox: Outbox, templates: Templates, events: Arc<Notify>) -> Rules {
        Rules {
            store,
            outbox,
            templates,
            events,
        }
    }

    /// The tenant's rules.
    pub async fn list_rules(&self, tenant: &str) -> Result<Vec<RuleView>> {
        Ok(self.store.list_rules(tenant).await?.iter().map(rule_view).collect())
    }

    /// One rule of the tenant, by id or name.
    pub async fn get_rule(&self, tenant: &str, id: &str) -> Result<RuleView> {
        let r = self
            .store
            .find_rule(tenant, id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("rule '{id}'")))?;
        Ok(rule_view(&r))
    }

    /// Creates a rule; every field is checked and named when wrong.
    pub async fn create_rule(&self, tenant: &str, input: RuleInput) -> Result<RuleView> {
        let mut p = Problems::default();
        let name = match input.name.as_deref().map(str::trim) {
            None | Some("") => {
                p.add("name", "is required");
                String::new()
            }
            Some(n) => p
                .check("name", HeaderText::parse(n))
                .map(|h| h.as_str().to_string())
                .unwrap_or_default(),
        };
        let methods = check_methods(&self.store, tenant, input.methods.as_deref().unwrap_or(&[]), &mut p).await;
        p.into_result()?;
        let now = crate::now_ms();
        let row = RuleRow {
            id: crate::store::new_id(),
            tenant_id: tenant.to_string(),
            name,
            enabled: input.enabled.unwrap_or(true) as i64,
            match_json: serde_json::to_string(&input.matcher.unwrap_or_default()).expect("serializable"),
            methods_json: serde_json::to_string(&methods).expect("serializable"),
            throttle_secs: input.throttle_secs.unwrap_or(0) as i64,
            system_key: None,
            created_at: now,
            updated_at: now,
        };
        self.store.insert_rule(&row).await.on_duplicate(|| name_taken(&row))?;
        Ok(rule_view(&row))
    }

    /// Edits a rule; absent fields keep their values.
    pub async fn edit_rule(&self, tenant: &str, id: &str, input: RuleInput) -> Result<RuleView> {
        let mut row = self
            .store
            .find_rule(tenant, id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("rule '{id}'")))?;
        let mut p = Problems::default();
        if let Some(n) = input.name.as_deref() {
            match n.trim() {
                "" => p.add("name", "cannot be empty"),
                n => {
                    if let Some(h) = p.check("name", HeaderText::parse(n)) {
                        row.name = h.as_str().to_string();
                    }
                }
            }
        }
        if let Some(m) = &input.methods {
            let methods = check_methods(&self.store, tenant, m, &mut p).await;
            row.methods_json = serde_json::to_string(&methods).expect("serializable");
        }
        p.into_result()?;
        if let Some(e) = input.enabled {
            row.enabled = e as i64;
        }
        if let Some(m) = input.matcher {
            row.match_json = serde_json::to_string(&m).expect("serializable");
        }
        if let Some(t) = input.throttle_secs {
            row.throttle_secs = t as i64;
        }
        row.updated_at = crate::now_ms();
        self.store.update_rule(&row).await.on_duplicate(|| name_taken(&row))?;
        Ok(rule_view(&row))
    }

    /// Deletes a rule.
    pub async fn delete_rule(&self, tenant: &str, id: &str) -> Result<()> {
        let row = self
            .store
            .find_rule(tenant, id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("rule '{id}'")))?;
        self.store.delete_rule(tenant, &row.id).await?;
        Ok(())
    }

    /// Creates the built-in rules of a tenant once (start-up and tenant creation).
    pub async fn ensure_system_rules(&self, tenant: &str) -> Result<()> {
        let builtins = [
            (
                SYSTEM_AUTHORIZATION_EXPIRED,
                "Mail account authorization expired",
                "account.authorization_expired",
                Severity::Error,
                "authorization_expired",
                3600,
            ),
            (
                SYSTEM_ACCOUNT_FAILING,
                "Mail account keeps failing",
                "account.failing",
                Severity::Warning,
                "event_notification",
                6 * 3600,
            ),
        ];
        for (key, name, kind, severity, template, throttle) in builtins {
            if self.store.has_system_rule(tenant, key).await? {
                continue;
            }
            let now = crate::now_ms();
            let matcher = Match {
                types: vec![kind.into()],
                min_severity: severity,
                keywords: vec![],
                sources: vec![],
            };
            let methods = vec![Method {
                channel: "email".into(),
                account: None,
                to: vec![ADMINS.into()],
                from_name: Some("Herald".into()),
                template: Some(template.into()),
            }];
            let row = RuleRow {
                id: crate::store::new_id(),
                tenant_id: tenant.to_string(),
                name: name.into(),
                enabled: 1,
                match_json: serde_json::to_string(&matcher).expect("serializable"),
                methods_json: serde_json::to_string(&methods).expect("serializable"),
                throttle_secs: throttle,
                system_key: Some(key.into()),
                created_at: now,
                updated_at: now,
            };
            match self.store.insert_rule(&row).await {
                // Another node, or a rule the tenant named the same way.
                Err(StoreError::Duplicate { .. }) => {}
                other => other?,
            }
        }
        Ok(())
    }

    /// Records an event, matches it, and queues the messages.
    pub async fn post_event(&self, tenant: &str, input: EventInput) -> Result<EventOutcome> {
        let event = check_event(&input)?;
        self.dispatch_event(tenant, event).await
    }

    /// Records an event and dispatches it now.
    pub async fn dispatch_event(&self, tenant: &str, event: Event) -> Result<EventOutcome> {
        let id = crate::store::new_id();
        let now = crate::now_ms();
        self.store
            .insert_event(&EventRow {
                id: id.clone(),
                tenant_id: tenant.to_string(),
                kind: event.kind.clone(),
                severity: event.severity.as_str().into(),
                source: event.source.clone(),
                title: event.title.clone(),
                message: event.message.clone(),
                data: Some(event.data.to_string()),
                created_at: now,
            })
            .await?;
        self.dispatch_recorded(tenant, id, event, now).await
    }

    /// Matches a recorded event against the tenant's rules and queues the
    /// messages of those that fire.
    async fn dispatch_recorded(&self, tenant: &str, id: String, event: Event, now: i64) -> Result<EventOutcome> {
        let settings = self.store.get_settings(tenant).await?;
        let locale = settings.locale.as_deref().and_then(Locale::parse).unwrap_or_default();
        // A warning about an account must not be sent through that account.
        let avoid = event
            .data
            .get("account_id")
            .and_then(|v| v.as_str())
            .map(str::to_string);
        let mut rules = Vec::new();
        let mut messages = Vec::new();
        for row in self.store.list_rules(tenant).await? {
            let view = rule_view(&row);
            if !view.enabled || !view.matcher.matches(&event) {
                continue;
            }
            let suppressed = if view.throttle_secs > 0 {
                match self
                    .store
                    .pass_throttle(&row.id, now, view.throttle_secs as i64 * 1000)
                    .await?
                {
                    None => {
                        rules.push(MatchedRule {
                            id: view.id.clone(),
                            name: view.name.clone(),
                            sent: false,
                        });
                        continue;
                    }
                    Some(n) => n,
                }
            } else {
                0
            };
            rules.push(MatchedRule {
                id: view.id.clone(),
                name: view.name.clone(),
                sent: true,
            });
            for method in &view.methods {
                if method.channel != "email" {
                    let id = self
                        .channel_message(tenant, method, &view.name, &event, suppressed, locale)
                        .await?;
                    messages.push(id);
                    continue;
                }
                let to = self.expand_recipients(tenant, &method.to).await?;
                if to.is_empty() {
                    tracing::warn!(rule = %view.id, tenant, "rule matched but has no recipients (no admin addresses set)");
                    continue;
                }
                let r = self
                    .event_message(tenant, method, &view.name, &event, suppressed, locale)
                    .await;
                let content = Content {
                    to,
                    cc: vec![],
                    bcc: vec![],
                    subject: HeaderText::parse(&r.subject)
                        .unwrap_or_else(|_| HeaderText::parse("Herald notification").expect("valid")),
                    text: Some(r.text),
                    html: r.html,
                    locale,
                    from_name: None,
                    retry_only: None,
                    channel: crate::status::Channel::Email,
                    channel_id: None,
                    event: None,
                };
                let mut route = self
                    .outbox
                    .resolve_route(tenant, method.account.as_deref(), avoid.as_deref())
                    .await?;
                if route.from_name.is_none() {
                    route.from_name = method.from_name.clone();
                }
                let (m, _) = self.outbox.enqueue(tenant, content, route, None).await?;
                messages.push(m.id);
            }
        }
        tracing::info!(event = %id, tenant, kind = %event.kind, matched = rules.len(), messages = messages.len(), "event");
        Ok(EventOutcome { id, rules, messages })
    }

    /// Queues a matched event's message for a webhook or chat-robot channel:
    /// the rule's template renders the text, the event goes along as JSON.
    async fn channel_message(
        &self,
        tenant: &str,
        method: &Method,
        rule: &str,
        event: &Event,
        suppressed: i64,
        locale: Locale,
    ) -> Result<String> {
        let r = self
            .event_message(tenant, method, rule, event, suppressed, locale)
            .await;
        let name = match self.store.find_channel(tenant, &method.channel).await? {
            Some(c) => c.name,
            None => method.channel.clone(),
        };
        let content = Content {
            to: vec![],
            cc: vec![],
            bcc: vec![],
            subject: HeaderText::parse(&r.subject)
                .unwrap_or_else(|_| HeaderText::parse("Herald notification").expect("valid")),
            text: Some(r.text),
            html: None,
            locale,
            from_name: None,
            retry_only: None,
            channel: crate::status::Channel::Http,
            channel_id: Some(method.channel.clone()),
            event: Some(serde_json::json!({"event": event, "rule": rule, "suppressed": suppressed})),
        };
        let route = crate::outbox::Route::channel(&name);
        let (m, _) = self.outbox.enqueue(tenant, content, route, None).await?;
        Ok(m.id)
    }

    async fn expand_recipients(&self, tenant: &str, to: &[String]) -> Result<Vec<EmailAddress>> {
        let mut out: Vec<EmailAddress> = Vec::new();
        for a in to {
            if a == ADMINS {
                let mut admins = crate::settings::admin_emails(&self.store.get_settings(tenant).await?);
                if tenant != PLATFORM {
                    admins.extend(crate::settings::admin_emails(&self.store.get_settings(PLATFORM).await?));
                }
                out.extend(admins.iter().filter_map(|a| EmailAddress::parse(a).ok()));
            } else if let Ok(addr) = EmailAddress::parse(a) {
                out.push(addr);
            }
        }
        out.dedup();
        Ok(out)
    }

    /// The message for a matched event, from the method's template (the
    /// tenant's override if any); a template that fails here was checked when
    /// saved, so this falls back to plain text rather than losing the event.
    async fn event_message(
        &self,
        tenant: &str,
        method: &Method,
        rule: &str,
        e: &Event,
        suppressed: i64,
        locale: Locale,
    ) -> crate::templates::Rendered {
        let name = method.template.as_deref().unwrap_or("event_notification");
        let mut vars = serde_json::json!({"event": e, "suppressed": suppressed, "rule_name": rule});
        if let (Some(obj), Some(data)) = (vars.as_object_mut(), e.data.as_object()) {
            for (k, v) in data {
                obj.entry(k.clone()).or_insert(v.clone());
            }
            if !obj.contains_key("tenant_name") {
                obj.insert(
                    "tenant_name".into(),
                    self.store.tenant_name(tenant).await.unwrap_or_default().into(),
                );
            }
        }
        match self.templates.render_template(tenant, name, locale, &vars).await {
            Ok(r) => r,
            Err(err) => {
                tracing::error!(error = %err, template = name, "a rule's template did not render; sending plain text");
                crate::templates::Rendered {
                    subject: format!("[{}] {}", e.severity.as_str(), e.title),
                    text: e.message.clone().unwrap_or_default(),
                    html: None,
                }
            }
        }
    }

    /// Dispatches the events written but not yet dispatched (the account
    /// events `health` writes with a new status); answers how many.
    pub async fn dispatch_pending(&self) -> Result<usize> {
        let mut done = 0;
        loop {
            let rows = self.store.take_pending_events(crate::now_ms(), 50).await?;
            if rows.is_empty() {
                return Ok(done);
            }
            for row in rows {
                done += 1;
                let event = Event {
                    kind: row.kind,
                    severity: Severity::parse(&row.severity).unwrap_or(Severity::Warning),
                    source: row.source,
                    title: row.title,
                    message: row.message,
                    data: row
                        .data
                        .as_deref()
                        .and_then(|d| serde_json::from_str(d).ok())
                        .unwrap_or(serde_json::Value::Null),
                };
                if let Err(e) = self
                    .dispatch_recorded(&row.tenant_id, row.id.clone(), event, row.created_at)
                    .await
                {
                    tracing::error!(event = %row.id, error = %e, "could not dispatch an account event");
                }
            }
        }
    }

    /// The event feed: dispatches account events as they are written (woken
    /// by `health`, and every few seconds for other nodes' events) until
    /// `shutdown` turns true.
    pub async fn run_event_feed(self, mut shutdown: watch::Receiver<bool>) {
        loop {
            if let Err(e) = self.dispatch_pending().await {
                tracing::error!(error = %e, "the event feed could not read pending events");
            }
            if *shutdown.borrow() {
                return;
            }
            tokio::select! {
                _ = self.events.notified() => {}
                _ = tokio::time::sleep(std::time::Duration::from_secs(2)) => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: &str, sev: Severity, source: Option<&str>, title: &str, msg: &str) -> Event {
        Event {
            kind: kind.into(),
            severity: sev,
            source: source.map(str::to_string),
            title: title.into(),
            message: Some(msg.into()),
            data: serde_json::Value::Null,
        }
    }

    #[test]
    fn globs() {
        assert!(glob("account.*", "account.authorization_expired"));
        assert!(glob("*.failed", "backup.failed"));
        assert!(glob("disk.?", "disk.1"));
        assert!(!glob("disk.?", "disk.10"));
        assert!(glob("*", ""));
        assert!(glob("Backup.*", "backup.done"), "case-insensitive");
        assert!(!glob("account.*", "accounts.x"));
    }

    #[test]
    fn rule_matching_table() {
        let e = ev(
            "backup.failed",
            Severity::Error,
            Some("nas-01"),
            "Backup failed",
            "Disk quota exceeded on volume 2",
        );
        let m = |types: &[&str], min: Severity, kw: &[&str], src: &[&str]| Match {
            types: types.iter().map(|s| s.to_string()).collect(),
            min_severity: min,
            keywords: kw.iter().map(|s| s.to_string()).collect(),
            sources: src.iter().map(|s| s.to_string()).collect(),
        };
        let table: &[(Match, bool)] = &[
            (Match::default(), true),
            (m(&["backup.*"], Severity::Info, &[], &[]), true),
            (m(&["disk.*"], Severity::Info, &[], &[]), false),
            (m(&["disk.*", "backup.failed"], Severity::Info, &[], &[]), true),
            (m(&[], Severity::Error, &[], &[]), true),
            (m(&[], Severity::Critical, &[], &[]), false),
            (m(&[], Severity::Info, &["QUOTA"], &[]), true),
            (m(&[], Severity::Info, &["temperature"], &[]), false),
            (m(&[], Severity::Info, &["temperature", "backup"], &[]), true),
            (m(&[], Severity::Info, &[], &["nas-*"]), true),
            (m(&[], Severity::Info, &[], &["router"]), false),
            (m(&["backup.*"], Severity::Warning, &["quota"], &["nas-01"]), true),
            (m(&["backup.*"], Severity::Warning, &["quota"], &["nas-02"]), false),
        ];
        for (i, (matcher, want)) in table.iter().enumerate() {
            assert_eq!(matcher.matches(&e), *want, "row {i}: {matcher:?}");
        }
        let no_source = ev("x", Severity::Info, None, "t", "m");
        assert!(!m(&[], Severity::Info, &[], &["nas-*"]).matches(&no_source));
    }

    #[test]
    fn events_are_checked() {
        let bad = EventInput {
            kind: Some("has space".into()),
            severity: Some("fatal".into()),
            ..Default::default()
        };
        let Err(Error::Invalid(errs)) = check_event(&bad) else {
            panic!()
        };
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["type", "severity", "title"]);
    }
}
