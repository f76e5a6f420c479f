//! The overview, settings, tenants, templates and capture mailbox pages.

use super::render::{Ctx, Form, Page, field_errors, see_other};
use crate::error::Error;
use crate::settings::Settings;
use crate::status::AccountStatus;
use crate::store::PLATFORM;
use crate::templates::{TemplateSource, target};
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use minijinja::context;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Deserialize, Default)]
pub struct Done {
    pub done: Option<String>,
}

/// A notice after a form: only keys the translation files have are shown.
pub fn notice(ctx: &Ctx, done: Option<&str>) -> Option<String> {
    done.filter(|d| d.starts_with("done_") || *d == "password_set")
        .map(|d| {
            if d == "password_set" {
                "done_password_set".to_string()
            } else {
                d.to_string()
            }
        })
        .filter(|k| super::i18n::strings(ctx.locale).contains_key(k))
        .map(|k| ctx.t(&k))
}

/// One bar pair of the 24-hour chart.
#[derive(Serialize)]
struct Bar {
    x: i64,
    sent_h: i64,
    sent_y: i64,
    fail_h: i64,
    fail_y: i64,
    sent: i64,
    failed: i64,
}

#[derive(Serialize)]
struct Chart {
    account: String,
    name: String,
    sent: i64,
    failed: i64,
    bars: Vec<Bar>,
}

const CHART_H: i64 = 48;

pub async fn overview(ctx: Ctx, Query(q): Query<Done>) -> Page {
    let tenant = ctx.tenant().to_string();
    let app = ctx.app.clone();
    let accounts = match app.accounts.list_accounts(&tenant).await {
        Ok(a) => a,
        Err(e) => return ctx.error(e),
    };
    let counts: BTreeMap<String, i64> = match app.console_users.message_counts(&tenant).await {
        Ok(c) => c.into_iter().collect(),
        Err(e) => return ctx.error(e),
    };
    let now = crate::now_ms();
    let hour_now = now / 3_600_000;
    let hourly = match app
        .console_users
        .hourly_attempts(&tenant, (hour_now - 23) * 3_600_000)
        .await
    {
        Ok(h) => h,
        Err(e) => return ctx.error(e),
    };
    let charts: Vec<Chart> = accounts
        .iter()
        .map(|a| {
            let mut sent = [0i64; 24];
            let mut failed = [0i64; 24];
            for h in hourly.iter().filter(|h| h.account_id.as_deref() == Some(a.id.as_str())) {
                let i = (h.hour - (hour_now - 23)).clamp(0, 23) as usize;
                match h.outcome.as_str() {
                    "sent" => sent[i] += h.n,
                    "captured" | "interrupted" => {}
                    _ => failed[i] += h.n,
                }
            }
            let max = sent.iter().chain(failed.iter()).copied().max().unwrap_or(0).max(1);
            let bars = (0..24)
                .map(|i| {
                    let sh = sent[i] * CHART_H / max;
                    let fh = failed[i] * CHART_H / max;
                    Bar {
                        x: i as i64 * 10,
                        sent_h: sh,
                        sent_y: CHART_H - sh,
                        fail_h: fh,
                        fail_y: CHART_H - fh,
                        sent: sent[i],
                        failed: failed[i],
                    }
                })
                .collect();
            Chart {
                account: a.id.clone(),
                name: a.name.clone(),
                sent: sent.iter().sum(),
                failed: failed.iter().sum(),
                bars,
            }
        })
        .collect();
    let expired: Vec<_> = accounts
        .iter()
        .filter(|a| a.status == AccountStatus::AuthorizationExpired)
        .map(|a| context! { id => a.id.clone(), name => a.name.clone() })
        .collect();
    let failing: Vec<_> = accounts
        .iter()
        .filter(|a| a.status == AccountStatus::Failing)
        .map(|a| context! { id => a.id.clone(), name => a.name.clone(), message => a.status_message.clone() })
        .collect();
    let day_ago = crate::rfc3339(now - 24 * 3_600_000);
    let captured = match app.outbox.captured(&tenant, 200).await {
        Ok(c) => c.iter().filter(|c| c.at >= day_ago).count(),
        Err(e) => return ctx.error(e),
    };
    let count = |s: &str| counts.get(s).copied().unwrap_or(0);
    let notice = notice(&ctx, q.done.as_deref());
    ctx.page(
        "overview.html",
        "overview",
        context! {
            notice => notice,
            accounts => accounts,
            queued => count("queued") + count("sending"),
            deferred => count("deferred"),
            held => count("held"),
            failed => count("failed"),
            sent => count("sent"),
            charts => charts,
            expired => expired,
            failing => failing,
            captured => captured,
        },
    )
}

/// Whose settings a page edits: the user's own tenant, or (for the platform
/// admin, from the tenants page) another tenant.
struct Target {
    tenant: String,
    /// Where the form posts.
    action: String,
    /// The tenant's name when it is not the user's own.
    other: Option<String>,
}

fn own(ctx: &Ctx) -> Target {
    Target {
        tenant: ctx.tenant().to_string(),
        action: "/settings".into(),
        other: None,
    }
}

/// Another tenant's settings: the platform admin only, and a tenant that exists.
async fn other(ctx: &Ctx, id: &str) -> Result<Target, Page> {
    if let Some(p) = require_platform(ctx) {
        return Err(p);
    }
    let tenants = ctx
        .app
        .tenants
        .list_tenants(ctx.tenant())
        .await
        .map_err(|e| ctx.error(e))?;
    let t = tenants
        .into_iter()
        .find(|t| t.id == id)
        .ok_or_else(|| ctx.error(Error::NotFound(format!("tenant '{id}'"))))?;
    Ok(Target {
        action: format!("/tenants/{}/settings", t.id),
        tenant: t.id,
        other: Some(t.name),
    })
}

async fn settings_page(
    ctx: &Ctx,
    target: &Target,
    status: StatusCode,
    v: BTreeMap<String, String>,
    extra: minijinja::Value,
) -> Page {
    let accounts = ctx.app.accounts.list_accounts(&target.tenant).await.unwrap_or_default();
    let section = if target.other.is_some() { "tenants" } else { "settings" };
    ctx.page_with(
        status,
        "settings.html",
        section,
        context! {
            ..extra,
            ..context! {
                v => v,
                accounts => accounts,
                action => target.action.clone(),
                other_tenant => target.other.clone(),
                scope_platform => target.tenant == PLATFORM,
                redirect_uri => ctx.app.config.redirect_uri(),
                public_url => ctx.app.config.public_url.clone(),
            }
        },
    )
}

async fn show_settings(ctx: &Ctx, target: &Target, done: Option<&str>) -> Page {
    let s = match ctx.app.settings.settings(&target.tenant).await {
        Ok(s) => s,
        Err(e) => return ctx.error(e),
    };
    let notice = notice(ctx, done);
    settings_page(
        ctx,
        target,
        StatusCode::OK,
        settings_values(&s),
        context! { notice => notice },
    )
    .await
}

pub async fn settings(ctx: Ctx, Query(q): Query<Done>) -> Page {
    show_settings(&ctx, &own(&ctx), q.done.as_deref()).await
}

pub async fn tenant_settings(ctx: Ctx, Path(id): Path<String>, Query(q): Query<Done>) -> Page {
    match other(&ctx, &id).await {
        Ok(target) => show_settings(&ctx, &target, q.done.as_deref()).await,
        Err(p) => p,
    }
}

fn settings_values(s: &Settings) -> BTreeMap<String, String> {
    let mut v = BTreeMap::new();
    v.insert("default_account".into(), s.default_account.clone().unwrap_or_default());
    v.insert("from_name".into(), s.from_name.clone().unwrap_or_default());
    v.insert("locale".into(), s.locale.clone().unwrap_or_else(|| "en".into()));
    v.insert(
        "fallback_to_platform".into(),
        if s.fallback_to_platform.unwrap_or(true) {
            "on"
        } else {
            ""
        }
        .into(),
    );
    v.insert(
        "admin_emails".into(),
        s.admin_emails.clone().unwrap_or_default().join("\n"),
    );
    v.insert(
        "tenant_daily_cap".into(),
        s.tenant_daily_cap.map(|c| c.to_string()).unwrap_or_default(),
    );
    v
}

pub async fn save_settings(form: Form) -> Page {
    let target = own(&form.ctx);
    save(form, target).await
}

pub async fn save_tenant_settings(Path(id): Path<String>, form: Form) -> Page {
    match other(&form.ctx, &id).await {
        Ok(target) => save(form, target).await,
        Err(p) => p,
    }
}

async fn save(form: Form, target: Target) -> Page {
    let Form { ctx, fields } = form;
    let cap = fields.opt("tenant_daily_cap");
    let cap_parsed = cap.as_deref().map(|c| c.parse::<i64>());
    let result = if let Some(Err(_)) = cap_parsed {
        Err(Error::field("tenant_daily_cap", ctx.t("error_whole_number")))
    } else {
        // The default proxy is set through the API: the form keeps it.
        let proxy = match ctx.app.settings.settings(&target.tenant).await {
            Ok(s) => s.proxy,
            Err(e) => return ctx.error(e),
        };
        let input = Settings {
            proxy,
            default_account: fields.opt("default_account"),
            from_name: fields.opt("from_name"),
            locale: fields.opt("locale"),
            public_url: None,
            // The platform has no platform to fall back to.
            fallback_to_platform: Some(target.tenant == PLATFORM || fields.has("fallback_to_platform")),
            admin_emails: Some(fields.list("admin_emails")),
            tenant_daily_cap: cap_parsed.and_then(|r| r.ok()),
        };
        ctx.app.settings.put_settings(&target.tenant, input).await
    };
    match result {
        Ok(_) => see_other(&format!("{}?done=done_saved", target.action)),
        Err(e) => {
            let Some(errors) = field_errors(&e) else {
                return ctx.error(e);
            };
            let mut v = fields.values();
            if !fields.has("fallback_to_platform") {
                v.insert("fallback_to_platform".into(), String::new());
            }
            settings_page(
                &ctx,
                &target,
                StatusCode::UNPROCESSABLE_ENTITY,
                v,
                context! { errors => errors },
            )
            .await
        }
    }
}

/// The page refusing a tenant admin what only the platform admin may do.
fn require_platform(ctx: &Ctx) -> Option<Page> {
    (!ctx.user.is_platform()).then(|| ctx.error(Error::Forbidden(ctx.t("error_platform_only"))))
}

async fn tenants_page(
    ctx: &Ctx,
    created: Option<minijinja::Value>,
    errors: Option<BTreeMap<String, String>>,
    notice: Option<String>,
) -> Page {
    let tenants = match ctx.app.tenants.list_tenants(PLATFORM).await {
        Ok(t) => t,
        Err(e) => return ctx.error(e),
    };
    let mut rows = Vec::new();
    for t in tenants {
        let users = ctx.app.console_users.users_of(&t.id).await.unwrap_or_default();
        rows.push(context! {
            id => t.id.clone(),
            name => t.name.clone(),
            created_at => t.created_at.clone(),
            platform => t.id == PLATFORM,
            admins => users.iter().map(|(n, set)| context! { name => n.clone(), set => *set }).collect::<Vec<_>>(),
        });
    }
    let status = if errors.is_some() {
        axum::http::StatusCode::UNPROCESSABLE_ENTITY
    } else {
        axum::http::StatusCode::OK
    };
    ctx.page_with(
        status,
        "tenants.html",
        "tenants",
        context! { tenants => rows, created => created, errors => errors, notice => notice },
    )
}

pub async fn tenants(ctx: Ctx, Query(q): Query<Done>) -> Page {
    if let Some(p) = require_platform(&ctx) {
        return p;
    }
    let notice = notice(&ctx, q.done.as_deref());
    tenants_page(&ctx, None, None, notice).await
}

pub async fn create_tenant(form: Form) -> Page {
    let Form { ctx, fields } = form;
    if let Some(p) = require_platform(&ctx) {
        return p;
    }
    let username = fields.get("username");
    if username.is_empty() {
        let mut e = BTreeMap::new();
        e.insert("username".to_string(), ctx.t("error_required"));
        return tenants_page(&ctx, None, Some(e), None).await;
    }
    let created = match ctx
        .app
        .tenants
        .create_tenant(
            ctx.tenant(),
            crate::tenants::TenantInput {
                name: fields.opt("name"),
            },
        )
        .await
    {
        Ok(c) => c,
        Err(e) => return tenants_page(&ctx, None, field_errors(&e), None).await,
    };
    let link = match ctx.app.console_users.create_tenant_admin(&created.id, &username).await {
        Ok(l) => l,
        Err(e) => {
            // The tenant without its admin would be unreachable from the console.
            let _ = ctx.app.tenants.delete_tenant(ctx.tenant(), &created.id).await;
            return tenants_page(&ctx, None, field_errors(&e), None).await;
        }
    };
    let shown = context! {
        name => created.name.clone(),
        username => username,
        link => link,
        token => created.token.clone(),
    };
    tenants_page(&ctx, Some(shown), None, None).await
}

pub async fn delete_tenant(Path(id): Path<String>, form: Form) -> Page {
    let Form { ctx, .. } = form;
    if let Some(p) = require_platform(&ctx) {
        return p;
    }
    match ctx.app.tenants.delete_tenant(ctx.tenant(), &id).await {
        Ok(()) => see_other("/tenants?done=done_deleted"),
        Err(e) => ctx.error(e),
    }
}

pub async fn templates(ctx: Ctx) -> Page {
    match ctx.app.templates.list(ctx.tenant()).await {
        Ok(list) => ctx.page("templates.html", "templates", context! { templates => list }),
        Err(e) => ctx.error(e),
    }
}

pub async fn template(ctx: Ctx, Path((name, locale)): Path<(String, String)>, Query(q): Query<Done>) -> Page {
    let (name, locale) = match target(&name, &locale) {
        Ok(t) => t,
        Err(e) => return ctx.error(e),
    };
    let view = match ctx.app.templates.show(ctx.tenant(), name, locale).await {
        Ok(v) => v,
        Err(e) => return ctx.error(e),
    };
    let preview = crate::templates::sample_vars(name).ok().and_then(|vars| {
        crate::templates::render(
            name,
            locale,
            &vars,
            Some(&TemplateSource {
                subject: view.subject.clone(),
                text: view.text.clone(),
                html: view.html.clone(),
            }),
        )
        .ok()
    });
    let notice = notice(&ctx, q.done.as_deref());
    ctx.page(
        "template.html",
        "templates",
        context! { tpl => view, preview => preview, notice => notice },
    )
}

pub async fn save_template(Path((name, locale)): Path<(String, String)>, form: Form) -> Page {
    let Form { ctx, fields } = form;
    let (name, locale) = match target(&name, &locale) {
        Ok(t) => t,
        Err(e) => return ctx.error(e),
    };
    let action = fields.get("action");
    if action == "reset" {
        return match ctx.app.templates.reset(ctx.tenant(), name, locale).await {
            Ok(_) => see_other(&format!("/templates/{name}/{}?done=done_reset", locale.as_str())),
            Err(e) => ctx.error(e),
        };
    }
    let source = TemplateSource {
        subject: fields.raw("subject"),
        text: fields.raw("text"),
        html: fields.opt("html").map(|_| fields.raw("html")),
    };
    let result = if action == "preview" {
        crate::templates::check(name, &source).map(Some)
    } else {
        ctx.app
            .templates
            .save(ctx.tenant(), name, locale, source.clone())
            .await
            .map(|_| None)
    };
    match result {
        Ok(None) => see_other(&format!("/templates/{name}/{}?done=done_saved", locale.as_str())),
        other => {
            let (preview, errors) = match other {
                Ok(p) => (p, None),
                Err(e) => match field_errors(&e) {
                    Some(errs) => (None, Some(errs)),
                    None => return ctx.error(e),
                },
            };
            let view = match ctx.app.templates.show(ctx.tenant(), name, locale).await {
                Ok(v) => v,
                Err(e) => return ctx.error(e),
            };
            let status = if errors.is_some() {
                axum::http::StatusCode::UNPROCESSABLE_ENTITY
            } else {
                axum::http::StatusCode::OK
            };
            ctx.page_with(
                status,
                "template.html",
                "templates",
                context! {
                    tpl => view,
                    draft => context! { subject => source.subject, text => source.text, html => source.html },
                    preview => preview,
                    errors => errors,
                },
            )
        }
    }
}

pub async fn capture(ctx: Ctx) -> Page {
    let list = match ctx.app.outbox.captured(ctx.tenant(), 100).await {
        Ok(l) => l,
        Err(e) => return ctx.error(e),
    };
    let accounts = ctx.app.accounts.list_accounts(ctx.tenant()).await.unwrap_or_default();
    ctx.page(
        "capture.html",
        "capture",
        context! { captured => list, no_accounts => accounts.is_empty() },
    )
}
