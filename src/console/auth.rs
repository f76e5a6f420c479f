//! Signing in and out, the one-time setup link, the language switch.

use super::i18n;
use super::render::{
    Form, LANG_COOKIE, PRE_CSRF_COOKIE, SESSION_COOKIE, base_context, cookie, locale_of, read_form, render, same_token,
    see_other, set_cookie,
};
use crate::console_users::{NewSession, SignInError};
use crate::i18n::Locale;
use crate::services::Services;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use minijinja::context;
use serde::Deserialize;
use std::net::SocketAddr;

#[derive(Deserialize, Default)]
pub struct SigninQuery {
    next: Option<String>,
    lang: Option<String>,
    done: Option<String>,
}

/// Only a path of this site: never a redirect elsewhere.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.starts_with("/\\") => n.to_string(),
        _ => "/".to_string(),
    }
}

/// The page of a visitor not signed in, with a fresh double-submit token.
fn visitor_page(
    app: &Services,
    headers: &HeaderMap,
    lang: Option<&str>,
    status: StatusCode,
    name: &str,
    page: minijinja::Value,
) -> Response {
    let chosen = lang.and_then(Locale::parse);
    let locale = chosen.unwrap_or_else(|| locale_of(headers, None));
    let token = cookie(headers, PRE_CSRF_COOKIE)
        .filter(|c| c.len() > 20)
        .map(String::from)
        .unwrap_or_else(crate::secrets::new_token);
    let base = context! { form_token => token.clone(), ..base_context(locale, None, "signin") };
    let mut res = render(status, name, base, page);
    let secure = app.console_users.secure_cookies();
    res.headers_mut()
        .append(header::SET_COOKIE, set_cookie(PRE_CSRF_COOKIE, &token, None, secure));
    if let Some(l) = chosen {
        res.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(LANG_COOKIE, l.as_str(), Some(31_536_000), secure),
        );
    }
    res
}

pub async fn signin_page(State(app): State<Services>, headers: HeaderMap, Query(q): Query<SigninQuery>) -> Response {
    let next = safe_next(q.next.as_deref());
    let notice = q.done.filter(|d| d == "signed_out").map(|_| "signed_out");
    visitor_page(
        &app,
        &headers,
        q.lang.as_deref(),
        StatusCode::OK,
        "signin.html",
        context! { next => next, notice => notice },
    )
}

/// A session was opened: its cookie, and on to the page.
fn signed_in(app: &Services, s: NewSession, to: &str) -> Response {
    let mut res = see_other(to);
    let secure = app.console_users.secure_cookies();
    res.headers_mut()
        .append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, &s.cookie, None, secure));
    if let Some(l) = s.user.locale.as_deref() {
        res.headers_mut()
            .append(header::SET_COOKIE, set_cookie(LANG_COOKIE, l, Some(31_536_000), secure));
    }
    res
}

/// The address a sign-in comes from, for the rate limit.
fn client_ip(req: &Request) -> String {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

pub async fn signin(State(app): State<Services>, req: Request) -> Response {
    let headers = req.headers().clone();
    let ip = client_ip(&req);
    let fields = match read_form(req, &app).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let next = safe_next(Some(&fields.get("next")));
    let username = fields.get("username");
    let refuse = |key: &str, minutes: Option<i64>| {
        visitor_page(
            &app,
            &headers,
            None,
            if key == "signin_limited" {
                StatusCode::TOO_MANY_REQUESTS
            } else {
                StatusCode::UNAUTHORIZED
            },
            "signin.html",
            context! { next => next.clone(), username => username.clone(), error => key, minutes => minutes },
        )
    };
    if !same_token(&fields.get("csrf"), cookie(&headers, PRE_CSRF_COOKIE).unwrap_or("")) {
        return refuse("signin_expired_form", None);
    }
    match app.console_users.sign_in(&username, &fields.raw("password"), &ip).await {
        Ok(s) => signed_in(&app, s, &next),
        Err(SignInError::Wrong) => refuse("signin_wrong", None),
        Err(SignInError::Limited(m)) => refuse("signin_limited", Some(m)),
        Err(SignInError::Other(e)) => {
            tracing::error!(error = %e, "console sign-in failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                i18n::text(locale_of(&headers, None), "error_unavailable"),
            )
                .into_response()
        }
    }
}

pub async fn signout(form: Form) -> Response {
    if let Some(c) = cookie_of(&form) {
        let _ = form.ctx.app.console_users.sign_out(&c).await;
    }
    let mut res = see_other("/signin?done=signed_out");
    res.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", Some(0), form.ctx.app.console_users.secure_cookies()),
    );
    res
}

fn cookie_of(form: &Form) -> Option<String> {
    form.ctx.session_cookie.clone()
}

pub async fn setup_page(
    State(app): State<Services>,
    headers: HeaderMap,
    Path(token): Path<String>,
    Query(q): Query<SigninQuery>,
) -> Response {
    let user = app.console_users.setup_user(&token).await.ok().flatten();
    let status = if user.is_some() {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    };
    visitor_page(
        &app,
        &headers,
        q.lang.as_deref(),
        status,
        "setup.html",
        context! { username => user, token => token },
    )
}

pub async fn setup(State(app): State<Services>, Path(token): Path<String>, req: Request) -> Response {
    let headers = req.headers().clone();
    let fields = match read_form(req, &app).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let user = app.console_users.setup_user(&token).await.ok().flatten();
    if !same_token(&fields.get("csrf"), cookie(&headers, PRE_CSRF_COOKIE).unwrap_or("")) {
        return visitor_page(
            &app,
            &headers,
            None,
            StatusCode::FORBIDDEN,
            "setup.html",
            context! { username => user, token => token, error => "signin_expired_form" },
        );
    }
    match app
        .console_users
        .complete_setup(&token, &fields.raw("password"), &fields.raw("confirm"))
        .await
    {
        Ok(s) => signed_in(&app, s, "/?done=password_set"),
        Err(e) => visitor_page(
            &app,
            &headers,
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
            "setup.html",
            context! { username => user, token => token, errors => super::render::field_errors(&e) },
        ),
    }
}

/// The language switch: remembered in a cookie and on the user.
pub async fn language(form: Form) -> Response {
    let lang = Locale::parse(&form.fields.get("lang")).unwrap_or_default();
    let _ = form
        .ctx
        .app
        .console_users
        .set_locale(&form.ctx.user.id, lang.as_str())
        .await;
    let back = safe_next(Some(&form.fields.get("back")));
    let mut res = see_other(&back);
    res.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(
            LANG_COOKIE,
            lang.as_str(),
            Some(31_536_000),
            form.ctx.app.console_users.secure_cookies(),
        ),
    );
    res
}
