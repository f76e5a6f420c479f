//! What every console page shares: who is signed in and in which language
//! (`Ctx`), forms checked against the session's CSRF token (`Fields`), the
//! template environment, the embedded assets and the security headers.

use super::i18n;
use crate::console_users::{ConsoleUsers, SessionUser};
use crate::error::Error;
use crate::i18n::Locale;
use crate::services::Services;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::{Environment, Value, context};
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// The session cookie.
pub const SESSION_COOKIE: &str = "herald_session";
/// The language chosen with the switch.
pub const LANG_COOKIE: &str = "herald_lang";
/// The sign-in form's CSRF token (double submit: no session exists yet).
pub const PRE_CSRF_COOKIE: &str = "herald_csrf";

/// A rendered page or a redirect: what the console handlers answer.
pub type Page = Response;

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../../console/templates/base.html")),
    ("signin.html", include_str!("../../console/templates/signin.html")),
    ("setup.html", include_str!("../../console/templates/setup.html")),
    ("error.html", include_str!("../../console/templates/error.html")),
    ("overview.html", include_str!("../../console/templates/overview.html")),
    ("accounts.html", include_str!("../../console/templates/accounts.html")),
    (
        "account_form.html",
        include_str!("../../console/templates/account_form.html"),
    ),
    ("account.html", include_str!("../../console/templates/account.html")),
    (
        "account_delete.html",
        include_str!("../../console/templates/account_delete.html"),
    ),
    ("messages.html", include_str!("../../console/templates/messages.html")),
    ("message.html", include_str!("../../console/templates/message.html")),
    ("rules.html", include_str!("../../console/templates/rules.html")),
    ("rule.html", include_str!("../../console/templates/rule.html")),
    ("settings.html", include_str!("../../console/templates/settings.html")),
    ("tenants.html", include_str!("../../console/templates/tenants.html")),
    ("templates.html", include_str!("../../console/templates/templates.html")),
    ("template.html", include_str!("../../console/templates/template.html")),
    ("capture.html", include_str!("../../console/templates/capture.html")),
    ("report.html", include_str!("../../console/templates/report.html")),
    (
        "account_fields.html",
        include_str!("../../console/templates/account_fields.html"),
    ),
    ("authorize.html", include_str!("../../console/templates/authorize.html")),
    ("channels.html", include_str!("../../console/templates/channels.html")),
    ("channel.html", include_str!("../../console/templates/channel.html")),
    (
        "channel_form.html",
        include_str!("../../console/templates/channel_form.html"),
    ),
    (
        "channel_fields.html",
        include_str!("../../console/templates/channel_fields.html"),
    ),
    (
        "channel_delete.html",
        include_str!("../../console/templates/channel_delete.html"),
    ),
    (
        "channel_report.html",
        include_str!("../../console/templates/channel_report.html"),
    ),
    ("dkim.html", include_str!("../../console/templates/dkim.html")),
    (
        "dkim_delete.html",
        include_str!("../../console/templates/dkim_delete.html"),
    ),
];

/// The names of the embedded templates (for the translation test).
#[cfg(test)]
pub fn template_sources() -> impl Iterator<Item = (&'static str, &'static str)> {
    TEMPLATES.iter().copied()
}

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            env.add_template(name, source).expect("console templates compile");
        }
        env.add_filter("when", when);
        env.add_filter("ms", |ms: i64| crate::rfc3339(ms));
        // The first `n` characters, and an ellipsis when there were more.
        env.add_filter("clip", |s: String, n: usize| {
            if s.chars().count() > n {
                s.chars().take(n).collect::<String>() + "…"
            } else {
                s
            }
        });
        env
    })
}

/// A timestamp as a `<time>` the script formats in the page's language;
/// without the script, the UTC time.
fn when(rfc3339: Option<String>) -> Value {
    let Some(s) = rfc3339.filter(|s| !s.is_empty()) else {
        return Value::from("—");
    };
    let fallback = s
        .get(..16)
        .map(|d| d.replace('T', " ") + " UTC")
        .unwrap_or_else(|| s.clone());
    let esc = |t: &str| t.replace('&', "&amp;").replace('<', "&lt;").replace('"', "&quot;");
    Value::from_safe_string(format!("<time datetime=\"{}\">{}</time>", esc(&s), esc(&fallback)))
}

/// Renders a template with the page's shared context.
pub fn render(status: StatusCode, name: &str, base: Value, page: Value) -> Response {
    let ctx = context! { ..page, ..base };
    match env().get_template(name).and_then(|t| t.render(ctx)) {
        Ok(html) => {
            let mut res = (status, html).into_response();
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            res.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            res
        }
        Err(e) => {
            tracing::error!(error = %e, template = name, "rendering a console page failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "the page could not be rendered").into_response()
        }
    }
}

/// A cookie from the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, Path=/, Secure over HTTPS.
pub fn set_cookie(name: &str, value: &str, max_age: Option<i64>, secure: bool) -> HeaderValue {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
    if let Some(a) = max_age {
        c.push_str(&format!("; Max-Age={a}"));
    }
    if secure {
        c.push_str("; Secure");
    }
    HeaderValue::from_str(&c).expect("cookie values are ASCII")
}

/// The language of a request: the switch's cookie, else the user's choice,
/// else the browser's, else English.
pub fn locale_of(headers: &HeaderMap, user: Option<&SessionUser>) -> Locale {
    cookie(headers, LANG_COOKIE)
        .and_then(Locale::parse)
        .or_else(|| user.and_then(|u| u.locale.as_deref()).and_then(Locale::parse))
        .or_else(|| {
            headers
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').find_map(Locale::parse))
        })
        .unwrap_or_default()
}

/// Context shared by every page, signed in or not.
pub fn base_context(locale: Locale, user: Option<&SessionUser>, section: &str) -> Value {
    context! {
        t => i18n::strings(locale),
        lang => locale.as_str(),
        other_lang => match locale { Locale::En => "zh-CN", Locale::ZhCn => "en" },
        section => section,
        version => env!("CARGO_PKG_VERSION"),
        user => user.map(|u| context! {
            name => u.username.clone(),
            platform => u.is_platform(),
            tenant => u.tenant.clone(),
        }),
        csrf => user.map(|u| u.csrf.clone()),
    }
}

/// A signed-in request: the user, the page's language and the services.
pub struct Ctx {
    pub user: SessionUser,
    pub locale: Locale,
    pub app: Services,
    /// The path and query asked for (where the language switch returns).
    pub here: String,
    /// The session cookie (to sign out).
    pub session_cookie: Option<String>,
}

impl Ctx {
    /// The tenant the user acts for.
    pub fn tenant(&self) -> &str {
        &self.user.tenant
    }

    /// A translated string.
    pub fn t(&self, key: &str) -> String {
        i18n::text(self.locale, key)
    }

    /// Renders a page (200).
    pub fn page(&self, name: &str, section: &str, page: Value) -> Page {
        self.page_with(StatusCode::OK, name, section, page)
    }

    pub fn page_with(&self, status: StatusCode, name: &str, section: &str, page: Value) -> Page {
        let base = context! { here => self.here.clone(), ..base_context(self.locale, Some(&self.user), section) };
        render(status, name, base, page)
    }

    /// The page for an error that is not a field's (not found, forbidden, …).
    pub fn error(&self, e: Error) -> Page {
        let (status, key) = match &e {
            Error::NotFound(_) => (StatusCode::NOT_FOUND, "error_not_found"),
            Error::Forbidden(_) => (StatusCode::FORBIDDEN, "error_forbidden"),
            Error::Conflict(_) | Error::Invalid(_) => (StatusCode::CONFLICT, "error_conflict"),
            Error::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "error_unavailable"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "error_internal"),
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %e, "console page failed");
        }
        self.page_with(
            status,
            "error.html",
            "",
            context! { title => self.t(key), detail => e.to_string() },
        )
    }
}

/// Field errors by field name, for the form that was sent; other errors as `None`.
pub fn field_errors(e: &Error) -> Option<BTreeMap<String, String>> {
    match e {
        Error::Invalid(list) => Some(list.iter().map(|f| (f.field.clone(), f.message.clone())).collect()),
        _ => None,
    }
}

/// Back to the sign-in page, then to where the person was going.
fn to_signin(parts: &Parts) -> Response {
    let next = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let target = if next == "/" || !next.starts_with('/') || next.starts_with("//") {
        "/signin".to_string()
    } else {
        format!("/signin?next={}", urlencode(next))
    };
    Redirect::to(&target).into_response()
}

/// Percent-encodes a query value.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl FromRequestParts<Services> for Ctx {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &Services) -> Result<Self, Self::Rejection> {
        let users: &ConsoleUsers = &app.console_users;
        let Some(cookie) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(to_signin(parts));
        };
        let user = match users.session(cookie).await {
            Ok(Some(u)) => u,
            Ok(None) => return Err(to_signin(parts)),
            Err(e) => {
                tracing::error!(error = %e, "reading a console session failed");
                return Err((StatusCode::SERVICE_UNAVAILABLE, "the database is unavailable").into_response());
            }
        };
        let locale = locale_of(&parts.headers, Some(&user));
        let session_cookie = Some(cookie.to_string());
        Ok(Ctx {
            session_cookie,
            user,
            locale,
            app: app.clone(),
            here: parts
                .uri
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_else(|| "/".into()),
        })
    }
}

/// A form's fields, in order; a name may repeat.
#[derive(Debug, Default, Clone)]
pub struct Fields(pub Vec<(String, String)>);

impl Fields {
    pub fn parse(body: &[u8]) -> Option<Fields> {
        serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
            .ok()
            .map(Fields)
    }

    /// The field's value, trimmed ("" when absent).
    pub fn get(&self, name: &str) -> String {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default()
    }

    /// The field's value untrimmed (passwords, templates).
    pub fn raw(&self, name: &str) -> String {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.to_string())
            .unwrap_or_default()
    }

    /// The value, or `None` when empty.
    pub fn opt(&self, name: &str) -> Option<String> {
        Some(self.get(name)).filter(|v| !v.is_empty())
    }

    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }

    /// A list typed one per line or separated by commas.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.get(name)
            .split(['\n', ','])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    }

    /// Every value given for a name (checkboxes sharing it), trimmed, empty ones left out.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, v)| k == name && !v.trim().is_empty())
            .map(|(_, v)| v.trim().to_string())
            .collect()
    }

    /// The fields as a map, to fill a form in again.
    pub fn values(&self) -> BTreeMap<String, String> {
        self.0
            .iter()
            .filter(|(k, _)| !k.contains("secret") && k != "csrf" && !k.contains("password"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// Constant-time comparison of two tokens.
pub fn same_token(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    !a.is_empty() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// A form posted by a signed-in user, its CSRF token checked: a form
/// without the session's token is refused with a 403 page.
pub struct Form {
    pub ctx: Ctx,
    pub fields: Fields,
}

/// Largest form accepted (templates are the largest).
const FORM_LIMIT: usize = 1024 * 1024;
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Reads a form body, bounded in size and time.
pub async fn read_form(req: Request, state: &Services) -> Result<Fields, Response> {
    let bytes = tokio::time::timeout(BODY_TIMEOUT, Bytes::from_request(req, state))
        .await
        .map_err(|_| StatusCode::REQUEST_TIMEOUT.into_response())?
        .map_err(|e| e.into_response())?;
    if bytes.len() > FORM_LIMIT {
        return Err(StatusCode::PAYLOAD_TOO_LARGE.into_response());
    }
    Fields::parse(&bytes).ok_or_else(|| StatusCode::BAD_REQUEST.into_response())
}

impl FromRequest<Services> for Form {
    type Rejection = Response;

    async fn from_request(req: Request, app: &Services) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let ctx = Ctx::from_request_parts(&mut parts, app).await?;
        let fields = read_form(Request::from_parts(parts, body), app).await?;
        if !same_token(&fields.get("csrf"), &ctx.user.csrf) {
            tracing::warn!(user = %ctx.user.username, path = %ctx.here, "console form without its CSRF token refused");
            let t = ctx.t("error_csrf");
            let detail = ctx.t("error_csrf_detail");
            return Err(ctx.page_with(
                StatusCode::FORBIDDEN,
                "error.html",
                "",
                context! { title => t, detail => detail },
            ));
        }
        Ok(Form { ctx, fields })
    }
}

/// A redirect after a form (303, so the browser GETs the target).
pub fn see_other(to: &str) -> Page {
    Redirect::to(to).into_response()
}

/// The embedded stylesheet, script and icon, cached by the browser for a day
/// (their links carry the version).
pub async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind): (&'static [u8], &str) = match file.as_str() {
        "console.css" => (
            include_bytes!("../../console/assets/console.css"),
            "text/css; charset=utf-8",
        ),
        "console.js" => (
            include_bytes!("../../console/assets/console.js"),
            "text/javascript; charset=utf-8",
        ),
        "icon.svg" => (include_bytes!("../../console/assets/icon.svg"), "image/svg+xml"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        body,
    )
        .into_response()
}

/// The security headers of every console response.
pub async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             frame-ancestors 'none'; form-action 'self'; base-uri 'self'",
        ),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    res
}
