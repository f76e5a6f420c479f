//! Health, metrics, the OpenAPI document, settings.

use super::{Caller, Json};
use crate::app::App;
use crate::error::{Error, Result};
use crate::settings::Settings;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

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

pub async fn get_settings(caller: Caller, State(app): State<App>) -> Result<axum::Json<Settings>> {
    Ok(axum::Json(app.settings(&caller.tenant).await?))
}

/// Replaces the settings; `public_url` is the server's (HERALD_PUBLIC_URL) and read-only here.
pub async fn put_settings(
    caller: Caller,
    State(app): State<App>,
    Json(input): Json<Settings>,
) -> Result<axum::Json<Settings>> {
    Ok(axum::Json(app.put_settings(&caller.tenant, input).await?))
}
