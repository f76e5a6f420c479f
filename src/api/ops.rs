//! Health, metrics, the OpenAPI document, settings.

use super::{Caller, Json};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::outbox::Outbox;
use crate::settings::Settings;
use crate::settings::SettingsBook;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use std::sync::Arc;

const OPENAPI: &str = include_str!("../../docs/openapi.json");

pub async fn healthz(State(outbox): State<Outbox>) -> impl IntoResponse {
    if outbox.healthy().await {
        (StatusCode::OK, axum::Json(serde_json::json!({"status": "ok"})))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"status": "database unavailable"})),
        )
    }
}

pub async fn metrics(State(outbox): State<Outbox>, State(metrics): State<Arc<Metrics>>) -> Result<impl IntoResponse> {
    let counts = outbox.count_by_status().await?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics.render(&counts),
    ))
}

pub async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

pub async fn not_found() -> Error {
    Error::NotFound("this path".into())
}

pub async fn get_settings(caller: Caller, State(settings): State<SettingsBook>) -> Result<axum::Json<Settings>> {
    Ok(axum::Json(settings.settings(&caller.tenant).await?))
}

/// Replaces the settings; `public_url` is the server's (HERALD_PUBLIC_URL) and read-only here.
pub async fn put_settings(
    caller: Caller,
    State(settings): State<SettingsBook>,
    Json(input): Json<Settings>,
) -> Result<axum::Json<Settings>> {
    Ok(axum::Json(settings.put_settings(&caller.tenant, input).await?))
}
