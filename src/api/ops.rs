//! Health, metrics, the OpenAPI document, settings.

use super::{Caller, Json};
use crate::app::App;
use crate::error::{Error, Problems, Result};
use crate::i18n::Locale;
use crate::store::settings::SettingsRow;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};

const OPENAPI: &str = include_str!("../../docs/openapi.json");

pub async fn healthz(State(app): State<App>) -> impl IntoResponse {
    if app.store.ping().await {
        (StatusCode::OK, axum::Json(serde_json::json!({"status": "ok"})))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"status": "database unavailable"})),
        )
    }
}

pub async fn metrics(State(app): State<App>) -> Result<impl IntoResponse> {
    let counts = app.store.message_counts().await?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(&counts),
    ))
}

pub async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

pub async fn not_found() -> Error {
    Error::NotFound("this path".into())
}

#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    default_account: Option<String>,
    from_name: Option<String>,
    locale: Option<String>,
    #[serde(default)]
    public_url: Option<String>,
    fallback_to_platform: Option<bool>,
}

fn view(app: &App, s: &SettingsRow) -> Settings {
    Settings {
        default_account: s.default_account.clone(),
        from_name: s.from_name.clone(),
        locale: Some(s.locale.clone().unwrap_or_else(|| "en".into())),
        public_url: Some(app.config.public_url.clone()),
        fallback_to_platform: Some(s.fallback_to_platform != 0),
    }
}

pub async fn get_settings(caller: Caller, State(app): State<App>) -> Result<axum::Json<Settings>> {
    let s = app.store.get_settings(&caller.tenant).await?;
    Ok(axum::Json(view(&app, &s)))
}

/// Replaces the settings; `public_url` is the server's (HERALD_PUBLIC_URL) and read-only here.
pub async fn put_settings(
    caller: Caller,
    State(app): State<App>,
    Json(input): Json<Settings>,
) -> Result<axum::Json<Settings>> {
    let mut p = Problems::default();
    let default_account = match input
        .default_account
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => None,
        Some(a) => match app.store.find_account(&caller.tenant, a).await? {
            Some(row) => Some(row.id),
            None => {
                p.add("default_account", format!("no account '{a}' in this tenant"));
                None
            }
        },
    };
    let from_name = match input.from_name.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(n) => p
            .check("from_name", crate::domain::HeaderText::parse(n))
            .map(|h| h.as_str().to_string()),
    };
    let locale = match input.locale.as_deref() {
        None => None,
        Some(l) => p.check(
            "locale",
            Locale::parse(l)
                .map(|l| l.as_str().to_string())
                .ok_or_else(|| format!("'{l}' is not one of en, zh-CN")),
        ),
    };
    if let Some(u) = &input.public_url
        && u.trim_end_matches('/') != app.config.public_url
    {
        p.add(
            "public_url",
            "is set by the server (HERALD_PUBLIC_URL), not through the API",
        );
    }
    p.into_result()?;
    let row = SettingsRow {
        tenant_id: caller.tenant.clone(),
        default_account,
        from_name,
        locale,
        fallback_to_platform: input.fallback_to_platform.unwrap_or(true) as i64,
        updated_at: crate::now_ms(),
    };
    app.store.put_settings(&row).await?;
    Ok(axum::Json(view(&app, &row)))
}
