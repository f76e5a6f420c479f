//! Service accounts: list, add (discovery from the sender address, provider
//! presets with their advice), edit with write-only secrets, delete with the
//! rules that use it named, the test email, and OAuth2 (re)authorization.

use super::pages::{Done, notice};
use super::render::{Ctx, Fields, Form, Page, field_errors, see_other};
use crate::accounts::{AccountInput, AccountView, AuthInput, FromInput, TlsInput};
use crate::catalog::Catalog;
use crate::error::Error;
use crate::i18n::Locale;
use crate::status::AccountStatus;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use minijinja::{Value, context};
use serde::Deserialize;
use std::collections::BTreeMap;

/// The catalog's providers as the form shows them: name in the page's
/// language, what the preset fills in, and the advice about the secret.
fn providers(locale: Locale) -> Vec<Value> {
    Catalog::get()
        .providers
        .iter()
        .map(|p| {
            let endpoint = p.default_endpoint();
            context! {
                id => p.id.clone(),
                name => locale.pick(&p.name.en, &p.name.zh).to_string(),
                host => p.host.clone(),
                port => endpoint.map(|e| e.1),
                security => endpoint.map(|e| e.0.as_str()),
                username => p.username_literal.clone(),
                advice => p.secret_help.as_ref().map(|h| locale.pick(&h.en, &h.zh).to_string()),
                oauth => p.oauth.is_some(),
                oauth_only => matches!(p.secret_kind, crate::catalog::SecretKind::OauthOnly),
            }
        })
        .collect()
}

/// The form's values for an account being edited.
fn values_of(a: &AccountView) -> BTreeMap<String, String> {
    let mut v = BTreeMap::new();
    let mut put = |k: &str, val: Option<String>| {
        v.insert(k.to_string(), val.unwrap_or_default());
    };
    put("name", Some(a.name.clone()));
    put("provider", Some(a.provider.clone()));
    put("host", Some(a.host.clone()));
    put("port", Some(a.port.to_string()));
    put("security", Some(a.security.as_str().to_string()));
    put("auth_method", Some(a.auth.method.clone()));
    put("username", a.auth.username.clone());
    put("address", Some(a.from.address.clone()));
    put("from_name", a.from.name.clone());
    put("ca_pem", a.tls.ca_pem.clone());
    put("pin_sha256", a.tls.pin_sha256.clone());
    // No proxy of its own: the platform default applies ("" in the form).
    let proxy = a.proxy.clone().unwrap_or_default();
    put("proxy_kind", proxy.kind.clone());
    put("proxy_host", proxy.host.clone());
    put("proxy_port", proxy.port.map(|p| p.to_string()));
    put("proxy_username", proxy.username.clone());
    if let Some(o) = &a.auth.oauth {
        put("oauth_provider", Some(o.provider.clone()));
        put("oauth_client_id", Some(o.client_id.clone()));
        put("oauth_tenant_id", o.tenant_id.clone());
        put("oauth_authorize_url", Some(o.authorize_url.clone()));
        put("oauth_token_url", Some(o.token_url.clone()));
        put("oauth_scope", Some(o.scope.clone()));
    }
    v
}

/// The account input a form describes; empty secrets keep the stored ones.
fn input_of(f: &Fields, ctx: &Ctx) -> Result<AccountInput, Error> {
    let port = match f.opt("port") {
        None => None,
        Some(p) => Some(
            p.parse::<u16>()
                .map_err(|_| Error::field("port", ctx.t("error_port")))?,
        ),
    };
    let proxy = proxy_of(f, ctx)?;
    let method = f.opt("auth_method").unwrap_or_else(|| "password".into());
    let oauth = (method == "oauth2").then(|| crate::oauth::OAuthInput {
        provider: f.opt("oauth_provider"),
        flow: None,
        client_id: f.opt("oauth_client_id"),
        client_secret: f.opt("oauth_client_secret"),
        tenant_id: f.opt("oauth_tenant_id"),
        authorize_url: f.opt("oauth_authorize_url"),
        token_url: f.opt("oauth_token_url"),
        scope: f.opt("oauth_scope"),
        issuer: None,
    });
    Ok(AccountInput {
        name: f.opt("name"),
        provider: f.opt("provider"),
        host: f.opt("host"),
        port,
        security: f.opt("security"),
        auth: Some(AuthInput {
            method: Some(method),
            username: f.opt("username"),
            secret: f.opt("secret"),
            oauth,
            ..Default::default()
        }),
        from: Some(FromInput {
            address: f.opt("address"),
            name: f.opt("from_name"),
        }),
        tls: Some(TlsInput {
            ca_pem: f.opt("ca_pem").map(|_| f.raw("ca_pem")),
            skip_verify: None,
            // Empty clears the pin (the field is always on the form).
            pin_sha256: f.has("pin_sha256").then(|| f.get("pin_sha256")),
        }),
        timeout_secs: None,
        limits: None,
        backup_account: None,
        proxy,
    })
}

/// The proxy section: absent (a form without it) keeps the account's proxy;
/// "platform default" removes the account's own; an empty password keeps
/// the stored one.
fn proxy_of(f: &Fields, ctx: &Ctx) -> Result<Option<Option<crate::proxy::ProxyDoc>>, Error> {
    if !f.has("proxy_kind") {
        return Ok(None);
    }
    let Some(kind) = f.opt("proxy_kind") else {
        return Ok(Some(None));
    };
    if kind == "none" {
        return Ok(Some(Some(crate::proxy::ProxyDoc {
            kind: Some(kind),
            ..Default::default()
        })));
    }
    let port = match f.opt("proxy_port") {
        None => None,
        Some(p) => Some(
            p.parse::<u16>()
                .map_err(|_| Error::field("proxy.port", ctx.t("error_port")))?,
        ),
    };
    Ok(Some(Some(crate::proxy::ProxyDoc {
        kind: Some(kind),
        host: Some(f.get("proxy_host")),
        port,
        username: Some(f.get("proxy_username")),
        secret: f.opt("proxy_secret"),
        secret_set: None,
    })))
}

pub async fn list(ctx: Ctx, Query(q): Query<Done>) -> Page {
    match ctx.app.accounts.list_accounts(ctx.tenant()).await {
        Ok(list) => {
            let notice = notice(&ctx, q.done.as_deref());
            ctx.page(
                "accounts.html",
                "accounts",
                context! { accounts => list, notice => notice },
            )
        }
        Err(e) => ctx.error(e),
    }
}

fn form_page(ctx: &Ctx, status: StatusCode, v: BTreeMap<String, String>, extra: Value) -> Page {
    let selected = v.get("provider").cloned().unwrap_or_else(|| "custom".into());
    ctx.page_with(
        status,
        "account_form.html",
        "accounts",
        context! {
            v => v,
            providers => providers(ctx.locale),
            selected => selected,
            redirect_uri => ctx.app.config.redirect_uri(),
            ..extra
        },
    )
}

pub async fn new_page(ctx: Ctx) -> Page {
    let mut v = BTreeMap::new();
    v.insert("provider".to_string(), "custom".to_string());
    v.insert("auth_method".to_string(), "password".to_string());
    form_page(&ctx, StatusCode::OK, v, context! {})
}

/// Proposes settings for the sender address: the catalog first, then the
/// network (autoconfig, SRV, MX), a few seconds at most.
async fn discover(ctx: &Ctx, fields: &Fields) -> Page {
    let mut v = fields.values();
    let address = fields.get("address");
    let parsed = match crate::domain::EmailAddress::parse(&address) {
        Ok(a) => a,
        Err(m) => {
            let mut errors = BTreeMap::new();
            errors.insert("address".to_string(), m);
            return form_page(ctx, StatusCode::UNPROCESSABLE_ENTITY, v, context! { errors => errors });
        }
    };
    let mut found = crate::discovery::discover(
        &parsed,
        &crate::discovery::Options {
            offline: true,
            timeout: std::time::Duration::from_secs(3),
        },
    )
    .await;
    if found.proposals.is_empty() {
        found = crate::discovery::discover(
            &parsed,
            &crate::discovery::Options {
                offline: false,
                timeout: std::time::Duration::from_secs(3),
            },
        )
        .await;
    }
    let proposal = found.proposals.first().cloned();
    if let Some(p) = &proposal {
        v.insert("provider".into(), p.provider.clone().unwrap_or_else(|| "custom".into()));
        v.insert("host".into(), p.host.clone());
        v.insert("port".into(), p.port.to_string());
        v.insert("security".into(), p.security.as_str().to_string());
        if let Some(u) = &p.username {
            v.insert("username".into(), u.clone());
        }
        if v.get("name").is_none_or(|n| n.is_empty()) {
            v.insert("name".into(), address.clone());
        }
    }
    form_page(
        ctx,
        StatusCode::OK,
        v,
        context! {
            proposal => proposal.map(|p| context! { host => p.host, port => p.port, security => p.security.as_str(), source => p.source, provider => p.provider }),
            discovered => true,
        },
    )
}

pub async fn create(form: Form) -> Page {
    let Form { ctx, fields } = form;
    if fields.get("action") == "discover" {
        return discover(&ctx, &fields).await;
    }
    let result = match input_of(&fields, &ctx) {
        Ok(input) => ctx.app.accounts.create_account(ctx.tenant(), input).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(a) => see_other(&format!("/accounts/{}?done=done_created", a.id)),
        Err(e) => match field_errors(&e) {
            Some(errors) => form_page(
                &ctx,
                StatusCode::UNPROCESSABLE_ENTITY,
                fields.values(),
                context! { errors => errors },
            ),
            None => ctx.error(e),
        },
    }
}

#[derive(Deserialize, Default)]
pub struct ShowQuery {
    done: Option<String>,
    authorized: Option<String>,
}

/// The account's page: status, the test email, OAuth2 token health, the edit form.
async fn account_page(ctx: &Ctx, id: &str, status: StatusCode, extra: Value) -> Page {
    let row = match ctx.app.accounts.find_account(ctx.tenant(), id).await {
        Ok(r) => r,
        Err(e) => return ctx.error(e),
    };
    let view = match ctx.app.accounts.account_view(&row).await {
        Ok(v) => v,
        Err(e) => return ctx.error(e),
    };
    let values = values_of(&view);
    let expired = view.status == AccountStatus::AuthorizationExpired;
    let needs_auth = matches!(
        view.status,
        AccountStatus::AuthorizationExpired | AccountStatus::AuthorizationRequired
    );
    let oauth_code_flow = view
        .auth
        .oauth
        .as_ref()
        .is_some_and(|o| o.flow == crate::oauth::Flow::AuthorizationCode);
    let held = ctx
        .app
        .console_users
        .messages_in_window(
            ctx.tenant(),
            &crate::store::console::WindowFilter {
                status: Some("held".into()),
                account_id: Some(view.id.clone()),
                limit: 1000,
                ..Default::default()
            },
        )
        .await
        .map(|m| m.len())
        .unwrap_or(0);
    let selected = view.provider.clone();
    // What the handler passes (the form as typed, after a field error) wins.
    ctx.page_with(
        status,
        "account.html",
        "accounts",
        context! {
            ..extra,
            ..context! {
                a => view,
                v => values,
                expired => expired,
                needs_auth => needs_auth,
                oauth_code_flow => oauth_code_flow,
                held => held,
                providers => providers(ctx.locale),
                selected => selected,
                redirect_uri => ctx.app.config.redirect_uri(),
            }
        },
    )
}

pub async fn show(ctx: Ctx, Path(id): Path<String>, Query(q): Query<ShowQuery>) -> Page {
    let mut note = notice(&ctx, q.done.as_deref());
    if q.authorized.is_some() {
        note = Some(ctx.t("done_authorized"));
    }
    account_page(&ctx, &id, StatusCode::OK, context! { notice => note }).await
}

pub async fn edit(Path(id): Path<String>, form: Form) -> Page {
    let Form { ctx, fields } = form;
    let result = match input_of(&fields, &ctx) {
        Ok(input) => ctx.app.accounts.edit_account(ctx.tenant(), &id, input).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(a) => see_other(&format!("/accounts/{}?done=done_saved", a.id)),
        Err(e) => match field_errors(&e) {
            Some(errors) => {
                account_page(
                    &ctx,
                    &id,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    context! { errors => errors, v => fields.values(), editing => true },
                )
                .await
            }
            None => ctx.error(e),
        },
    }
}

/// The rules that send through the account, by name.
async fn rules_using(ctx: &Ctx, a: &AccountView) -> Vec<String> {
    ctx.app
        .rules
        .list_rules(ctx.tenant())
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| {
            r.methods
                .iter()
                .any(|m| m.account.as_deref().is_some_and(|x| x == a.id || x == a.name))
        })
        .map(|r| r.name)
        .collect()
}

pub async fn delete_page(ctx: Ctx, Path(id): Path<String>) -> Page {
    let row = match ctx.app.accounts.find_account(ctx.tenant(), &id).await {
        Ok(r) => r,
        Err(e) => return ctx.error(e),
    };
    let view = match ctx.app.accounts.account_view(&row).await {
        Ok(v) => v,
        Err(e) => return ctx.error(e),
    };
    let rules = rules_using(&ctx, &view).await;
    let default = ctx
        .app
        .settings
        .settings(ctx.tenant())
        .await
        .ok()
        .and_then(|s| s.default_account)
        .is_some_and(|d| d == view.id);
    ctx.page(
        "account_delete.html",
        "accounts",
        context! { a => view, rules => rules, is_default => default },
    )
}

pub async fn delete(Path(id): Path<String>, form: Form) -> Page {
    let Form { ctx, .. } = form;
    match ctx.app.accounts.delete_account(ctx.tenant(), &id).await {
        Ok(()) => see_other("/accounts?done=done_deleted"),
        Err(e) => ctx.error(e),
    }
}

/// Sends the test email and shows the report on the account's page.
pub async fn test(Path(id): Path<String>, form: Form) -> Page {
    let Form { ctx, fields } = form;
    let to = fields.get("to");
    match ctx.app.test_mail.test_account(ctx.tenant(), &id, &to, ctx.locale).await {
        Ok(report) => account_page(&ctx, &id, StatusCode::OK, context! { report => report, to => to }).await,
        Err(e) => match field_errors(&e) {
            Some(errors) => {
                account_page(
                    &ctx,
                    &id,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    context! { test_errors => errors, to => to },
                )
                .await
            }
            None => ctx.error(e),
        },
    }
}

/// Starts the OAuth2 flow; the callback comes back to the account's page.
/// The provider's page is reached through a link the script follows at once
/// (the CSP's form-action keeps forms on this site, redirects included).
pub async fn authorize(Path(id): Path<String>, form: Form) -> Page {
    let Form { ctx, .. } = form;
    let row = match ctx.app.accounts.find_account(ctx.tenant(), &id).await {
        Ok(r) => r,
        Err(e) => return ctx.error(e),
    };
    let auth = match ctx
        .app
        .authorizations
        .begin_authorization(ctx.tenant(), &row.id, None)
        .await
    {
        Ok(a) => a,
        Err(e) => return ctx.error(e),
    };
    let state = reqwest::Url::parse(&auth.authorize_url)
        .ok()
        .and_then(|u| u.query_pairs().find(|(k, _)| k == "state").map(|(_, v)| v.into_owned()));
    if let Some(state) = state
        && let Err(e) = ctx.app.console_users.remember_oauth_return(&state, &row.id).await
    {
        return ctx.error(e);
    }
    ctx.page(
        "authorize.html",
        "accounts",
        context! { url => auth.authorize_url, name => row.name.clone(), id => row.id.clone() },
    )
}

/// "Trust this certificate" in a test email's report: pins the fingerprint
/// the report showed (the page asked to compare it first).
pub async fn trust(Path(id): Path<String>, form: Form) -> Page {
    let Form { ctx, fields } = form;
    let input = AccountInput {
        tls: Some(TlsInput {
            pin_sha256: Some(fields.get("sha256")),
            ..Default::default()
        }),
        ..Default::default()
    };
    let result = if fields.get("sha256").is_empty() {
        Err(Error::field("tls.pin_sha256", ctx.t("error_no_fingerprint")))
    } else {
        ctx.app.accounts.edit_account(ctx.tenant(), &id, input).await
    };
    match result {
        Ok(a) => see_other(&format!("/accounts/{}?done=done_pinned", a.id)),
        Err(e) => match field_errors(&e) {
            Some(errors) => {
                account_page(
                    &ctx,
                    &id,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    context! { errors => errors, editing => true },
                )
                .await
            }
            None => ctx.error(e),
        },
    }
}
