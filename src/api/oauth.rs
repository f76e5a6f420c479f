//! OAuth2: starting an authorization, and the redirect URI that completes it.

use super::Caller;
use crate::error::Error;
use crate::oauth::Authorization;
use crate::oauth::Authorizations;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

pub async fn authorize(
    caller: Caller,
    State(authorizations): State<Authorizations>,
    Path(id): Path<String>,
) -> Result<axum::Json<Authorization>, Error> {
    Ok(axum::Json(
        authorizations.begin_authorization(&caller.tenant, &id, None).await?,
    ))
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    pub code: Option<String>,
    pub state: Option<String>,
    /// The issuer of the response (RFC 9207), when the server names it.
    pub iss: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// The redirect URI. Answers a page for the person in the browser: success,
/// or a 400 that says what went wrong; nothing is stored on failure. An
/// authorization started from the console goes back to the account's page.
pub async fn callback_page(
    State(authorizations): State<Authorizations>,
    State(console): State<crate::console_users::ConsoleUsers>,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let state = q.state.clone();
    let answer = callback(State(authorizations), Query(q)).await;
    if answer.0 == StatusCode::OK
        && let Some(state) = state
        && let Some(account) = console.take_oauth_return(&state).await
    {
        return Redirect::to(&format!("/accounts/{account}?authorized=1")).into_response();
    }
    answer.into_response()
}

/// The callback's page (the CLI's loopback redirect shows it too).
pub async fn callback(
    State(authorizations): State<Authorizations>,
    Query(q): Query<CallbackQuery>,
) -> (StatusCode, Html<String>) {
    if let Some(err) = &q.error {
        // The person declined, or the provider refused: spend the state so it cannot be replayed.
        if let Some(s) = &q.state {
            authorizations.discard_state(s).await;
        }
        let detail = q
            .error_description
            .as_deref()
            .map(|d| format!(" ({d})"))
            .unwrap_or_default();
        return page(
            StatusCode::BAD_REQUEST,
            "Authorization was not granted",
            "授权未完成",
            &format!("The provider answered: {err}{detail}. Start the authorization again from Herald."),
        );
    }
    let (Some(code), Some(state)) = (q.code.as_deref(), q.state.as_deref()) else {
        return page(
            StatusCode::BAD_REQUEST,
            "Authorization failed",
            "授权失败",
            "The redirect carries no code or no state: start the authorization again from Herald.",
        );
    };
    match authorizations
        .complete_authorization(state, code, q.iss.as_deref())
        .await
    {
        Ok(done) => {
            let released = if done.released_messages > 0 {
                format!(" {} held message(s) are being sent now.", done.released_messages)
            } else {
                String::new()
            };
            page(
                StatusCode::OK,
                "Authorization complete",
                "授权成功",
                &format!(
                    "The account \"{}\" is authorized and ready to send.{released} You can close this window.",
                    done.account_name
                ),
            )
        }
        Err(Error::Invalid(list)) => {
            let msg = list
                .iter()
                .map(|f| format!("{}: {}", f.field, f.message))
                .collect::<Vec<_>>()
                .join("; ");
            page(StatusCode::BAD_REQUEST, "Authorization failed", "授权失败", &msg)
        }
        Err(e) => {
            tracing::error!(error = %e, "completing an authorization failed");
            page(
                StatusCode::BAD_REQUEST,
                "Authorization failed",
                "授权失败",
                &e.to_string(),
            )
        }
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn page(status: StatusCode, title: &str, title_zh: &str, message: &str) -> (StatusCode, Html<String>) {
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t} — Herald</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem}}</style></head>\
         <body><h1>{t} · {tz}</h1><p>{m}</p></body></html>",
        t = escape(title),
        tz = escape(title_zh),
        m = escape(message)
    );
    (status, Html(body))
}
