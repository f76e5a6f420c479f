//! Notification rules: list, create, edit, enable / disable, and the dry run:
//! a sample event, whether it matches, the recipients (`@admins` expanded),
//! the route each message would take, the message in both languages; and
//! the same message sent for real, as a test of the rule.

use super::pages::{Done, notice};
use super::render::{Ctx, Fields, Form, Page, field_errors, see_other};
use crate::error::Error;
use crate::i18n::Locale;
use crate::rules::{ADMINS, EventInput, Match, Method, RuleInput, RuleView, Severity};
use crate::store::PLATFORM;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use minijinja::{Value, context};
use std::collections::BTreeMap;

const SEVERITIES: [&str; 4] = ["info", "warning", "error", "critical"];

pub async fn list(ctx: Ctx, Query(q): Query<Done>) -> Page {
    match ctx.app.rules.list_rules(ctx.tenant()).await {
        Ok(rules) => {
            let notice = notice(&ctx, q.done.as_deref());
            ctx.page("rules.html", "rules", context! { rules => rules, notice => notice })
        }
        Err(e) => ctx.error(e),
    }
}

fn values_of(r: &RuleView) -> BTreeMap<String, String> {
    let mut v = BTreeMap::new();
    v.insert("name".into(), r.name.clone());
    v.insert("enabled".into(), if r.enabled { "on".into() } else { String::new() });
    v.insert("types".into(), r.matcher.types.join(", "));
    v.insert("min_severity".into(), r.matcher.min_severity.as_str().into());
    v.insert("keywords".into(), r.matcher.keywords.join(", "));
    v.insert("sources".into(), r.matcher.sources.join(", "));
    v.insert("throttle_secs".into(), r.throttle_secs.to_string());
    v.insert(
        "channels".into(),
        r.methods
            .iter()
            .filter(|m| m.channel != "email")
            .map(|m| m.channel.clone())
            .collect::<Vec<_>>()
            .join(","),
    );
    if let Some(m) = r.methods.iter().find(|m| m.channel == "email") {
        v.insert("account".into(), m.account.clone().unwrap_or_default());
        v.insert("to".into(), m.to.join(", "));
        v.insert("template".into(), m.template.clone().unwrap_or_default());
    }
    v
}

async fn rule_page(
    ctx: &Ctx,
    status: StatusCode,
    rule: Option<&RuleView>,
    v: BTreeMap<String, String>,
    extra: Value,
) -> Page {
    let accounts = ctx.app.accounts.list_accounts(ctx.tenant()).await.unwrap_or_default();
    let channels = ctx.app.channels.list(ctx.tenant()).await.unwrap_or_default();
    let checked: Vec<String> = v
        .get("channels")
        .map(|c| c.split(',').filter(|x| !x.is_empty()).map(String::from).collect())
        .unwrap_or_default();
    ctx.page_with(
        status,
        "rule.html",
        "rules",
        context! {
            rule => rule,
            v => v,
            accounts => accounts,
            channels => channels,
            checked => checked,
            severities => SEVERITIES,
            ..extra
        },
    )
}

pub async fn new_page(ctx: Ctx) -> Page {
    let mut v = BTreeMap::new();
    v.insert("enabled".into(), "on".into());
    v.insert("min_severity".into(), "warning".into());
    v.insert("to".into(), ADMINS.into());
    v.insert("throttle_secs".into(), "0".into());
    rule_page(&ctx, StatusCode::OK, None, v, context! {}).await
}

/// The form as typed, the ticked channels included.
fn typed(f: &Fields) -> BTreeMap<String, String> {
    let mut v = f.values();
    v.insert("channels".into(), f.all("channel").join(","));
    v
}

/// The rule a form describes; `methods` keeps the rule's other methods.
fn input_of(f: &Fields, ctx: &Ctx, others: &[Method]) -> Result<RuleInput, Error> {
    let throttle = match f.opt("throttle_secs") {
        None => 0,
        Some(t) => t
            .parse::<u64>()
            .map_err(|_| Error::field("throttle_secs", ctx.t("error_whole_number")))?,
    };
    let min_severity = Severity::parse(&f.get("min_severity")).unwrap_or_default();
    let mut methods = vec![Method {
        channel: "email".into(),
        account: f.opt("account"),
        to: f.list("to"),
        from_name: None,
        template: f.opt("template"),
    }];
    // The rule's other email methods stay; its channels are the ones ticked
    // (a channel it had keeps its settings).
    methods.extend(others.iter().filter(|m| m.channel == "email").skip(1).cloned());
    for id in f.all("channel") {
        let kept = others.iter().find(|m| m.channel == id).cloned();
        methods.push(kept.unwrap_or(Method {
            channel: id,
            account: None,
            to: Vec::new(),
            from_name: None,
            template: None,
        }));
    }
    Ok(RuleInput {
        name: f.opt("name"),
        enabled: Some(f.has("enabled")),
        matcher: Some(Match {
            types: f.list("types"),
            min_severity,
            keywords: f.list("keywords"),
            sources: f.list("sources"),
        }),
        methods: Some(methods),
        throttle_secs: Some(throttle),
    })
}

/// Field errors of a rule name the nested fields (`methods[0].to[1]`, `match.types`): shown at the form's fields.
fn form_errors(e: &Error) -> Option<BTreeMap<String, String>> {
    field_errors(e).map(|m| {
        m.into_iter()
            .map(|(k, v)| {
                let field = if k.starts_with("methods[0].to") {
                    "to".to_string()
                } else if let Some(rest) = k.strip_prefix("methods[0].") {
                    rest.to_string()
                } else if let Some(rest) = k.strip_prefix("match.") {
                    rest.split('[').next().unwrap_or(rest).to_string()
                } else {
                    k
                };
                (field, v)
            })
            .collect()
    })
}

pub async fn create(form: Form) -> Page {
    let Form { ctx, fields } = form;
    let result = match input_of(&fields, &ctx, &[]) {
        Ok(input) => ctx.app.rules.create_rule(ctx.tenant(), input).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(r) => see_other(&format!("/rules/{}?done=done_created", r.id)),
        Err(e) => match form_errors(&e) {
            Some(errors) => {
                rule_page(
                    &ctx,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    None,
                    typed(&fields),
                    context! { errors => errors },
                )
                .await
            }
            None => ctx.error(e),
        },
    }
}

pub async fn show(ctx: Ctx, Path(id): Path<String>, Query(q): Query<Done>) -> Page {
    let rule = match ctx.app.rules.get_rule(ctx.tenant(), &id).await {
        Ok(r) => r,
        Err(e) => return ctx.error(e),
    };
    let notice = notice(&ctx, q.done.as_deref());
    let v = values_of(&rule);
    rule_page(
        &ctx,
        StatusCode::OK,
        Some(&rule),
        v,
        context! { notice => notice, sample => sample_event(&rule) },
    )
    .await
}

/// A sample event the rule matches, to start a dry run from.
fn sample_event(r: &RuleView) -> BTreeMap<&'static str, String> {
    let mut s = BTreeMap::new();
    let kind = r
        .matcher
        .types
        .first()
        .map(|t| t.replace('*', "example"))
        .unwrap_or_else(|| "backup.failed".into());
    s.insert("type", kind);
    s.insert(
        "severity",
        r.matcher.min_severity.max(Severity::Warning).as_str().to_string(),
    );
    s.insert(
        "source",
        r.matcher
            .sources
            .first()
            .map(|x| x.replace('*', "host1"))
            .unwrap_or_default(),
    );
    let keyword = r.matcher.keywords.first().cloned().unwrap_or_default();
    s.insert("title", format!("Nightly backup failed {keyword}").trim().to_string());
    s.insert("message", "The backup job exited with code 2.".into());
    s
}

pub async fn edit(Path(id): Path<String>, form: Form) -> Page {
    let Form { ctx, fields } = form;
    let rule = match ctx.app.rules.get_rule(ctx.tenant(), &id).await {
        Ok(r) => r,
        Err(e) => return ctx.error(e),
    };
    let result = match input_of(&fields, &ctx, &rule.methods) {
        Ok(input) => ctx.app.rules.edit_rule(ctx.tenant(), &id, input).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(r) => see_other(&format!("/rules/{}?done=done_saved", r.id)),
        Err(e) => match form_errors(&e) {
            Some(errors) => {
                rule_page(
                    &ctx,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    Some(&rule),
                    typed(&fields),
                    context! { errors => errors, sample => sample_event(&rule) },
                )
                .await
            }
            None => ctx.error(e),
        },
    }
}

pub async fn toggle(Path(id): Path<String>, form: Form) -> Page {
    let Form { ctx, .. } = form;
    let rule = match ctx.app.rules.get_rule(ctx.tenant(), &id).await {
        Ok(r) => r,
        Err(e) => return ctx.error(e),
    };
    let input = RuleInput {
        enabled: Some(!rule.enabled),
        ..Default::default()
    };
    match ctx.app.rules.edit_rule(ctx.tenant(), &id, input).await {
        Ok(r) => see_other(&format!(
            "/rules?done={}",
            if r.enabled { "done_enabled" } else { "done_disabled" }
        )),
        Err(e) => ctx.error(e),
    }
}

/// The recipients a method's list resolves to (`@admins`: the tenant's and the platform's).
async fn recipients(ctx: &Ctx, to: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for a in to {
        if a == ADMINS {
            let mut admins = ctx
                .app
                .settings
                .settings(ctx.tenant())
                .await
                .ok()
                .and_then(|s| s.admin_emails)
                .unwrap_or_default();
            if ctx.tenant() != PLATFORM {
                admins.extend(
                    ctx.app
                        .settings
                        .settings(PLATFORM)
                        .await
                        .ok()
                        .and_then(|s| s.admin_emails)
                        .unwrap_or_default(),
                );
            }
            out.extend(admins);
        } else {
            out.push(a.clone());
        }
    }
    out.dedup();
    out
}

pub async fn dry_run(Path(id): Path<String>, form: Form) -> Page {
    let Form { ctx, fields } = form;
    let rule = match ctx.app.rules.get_rule(ctx.tenant(), &id).await {
        Ok(r) => r,
        Err(e) => return ctx.error(e),
    };
    let sample: BTreeMap<&'static str, String> = ["type", "severity", "source", "title", "message"]
        .into_iter()
        .map(|k| (k, fields.get(&format!("event_{k}"))))
        .collect();
    let input = EventInput {
        kind: fields.opt("event_type"),
        severity: fields.opt("event_severity"),
        source: fields.opt("event_source"),
        title: fields.opt("event_title"),
        message: fields.opt("event_message"),
        data: None,
    };
    let event = match crate::rules::check_event(&input) {
        Ok(e) => e,
        Err(e) => {
            let errors = field_errors(&e).map(|m| {
                m.into_iter()
                    .map(|(k, v)| (format!("event_{k}"), v))
                    .collect::<BTreeMap<_, _>>()
            });
            return rule_page(
                &ctx,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(&rule),
                values_of(&rule),
                context! { sample => sample, dry_errors => errors },
            )
            .await;
        }
    };
    let matched = rule.enabled && rule.matcher.matches(&event);
    let tenant_name = ctx
        .app
        .tenants
        .list_tenants(ctx.tenant())
        .await
        .ok()
        .and_then(|l| l.into_iter().find(|t| t.id == ctx.tenant()).map(|t| t.name))
        .unwrap_or_default();
    let mut methods = Vec::new();
    let mut sent = Vec::new();
    for m in rule.methods.iter().filter(|m| m.channel == "email") {
        let to = recipients(&ctx, &m.to).await;
        let route = match ctx
            .app
            .outbox
            .resolve_route(ctx.tenant(), m.account.as_deref(), None)
            .await
        {
            Ok(r) => r.text(),
            Err(e) => e.to_string(),
        };
        let name = m.template.as_deref().unwrap_or("event_notification");
        let vars =
            serde_json::json!({"event": event, "suppressed": 0, "rule_name": rule.name, "tenant_name": tenant_name});
        let mut rendered = BTreeMap::new();
        for locale in [Locale::En, Locale::ZhCn] {
            let r = ctx
                .app
                .templates
                .render_template(ctx.tenant(), name, locale, &vars)
                .await;
            rendered.insert(
                locale.as_str(),
                match r {
                    Ok(r) => context! { subject => r.subject, text => r.text },
                    Err(e) => context! { error => e.to_string() },
                },
            );
        }
        if fields.get("action") == "send" && matched && !to.is_empty() {
            let locale = ctx
                .app
                .settings
                .settings(ctx.tenant())
                .await
                .ok()
                .and_then(|s| s.locale)
                .and_then(|l| Locale::parse(&l))
                .unwrap_or_default();
            let r = ctx
                .app
                .templates
                .render_template(ctx.tenant(), name, locale, &vars)
                .await;
            if let Ok(r) = r {
                let msg = crate::outbox::MessageInput {
                    to: to.clone(),
                    subject: Some(r.subject),
                    text: Some(r.text),
                    html: r.html,
                    account: m.account.clone(),
                    ..Default::default()
                };
                match ctx.app.outbox.accept_message(ctx.tenant(), msg, None).await {
                    Ok((v, _)) => sent.push(v.id),
                    Err(e) => return ctx.error(e),
                }
            }
        }
        methods.push(context! { to => to, route => route, rendered => rendered, account => m.account.clone() });
    }
    rule_page(
        &ctx,
        StatusCode::OK,
        Some(&rule),
        values_of(&rule),
        context! {
            sample => sample,
            dry => context! { matched => matched, methods => methods, sent => sent },
        },
    )
    .await
}
