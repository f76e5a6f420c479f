//! Health, metrics, the OpenAPI document, settings.

use super::{Caller, Json};
use crate::error::{Error, Result};
use crate::metrics::{Metrics, StorageCause};
use crate::outbox::Outbox;
use crate::settings::Settings;
use crate::settings::SettingsBook;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

const OPENAPI: &str = include_str!("../../docs/openapi.json");

/// 200 while the database takes writes; 503 naming the storage condition
/// (`{"status": "no space left on the data directory's device", "cause": "no_space"}`)
/// while one stands.
pub async fn healthz(State(outbox): State<Outbox>) -> Response {
    match outbox.storage().await {
        Ok(()) => (StatusCode::OK, axum::Json(serde_json::json!({"status": "ok"}))).into_response(),
        Err(u) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, u.retry_after_secs().to_string())],
            axum::Json(serde_json::json!({"status": u.to_string(), "cause": u.label()})),
        )
            .into_response(),
    }
}

pub async fn metrics(State(outbox): State<Outbox>, State(metrics): State<Arc<Metrics>>) -> Result<impl IntoResponse> {
    let current = outbox.storage().await.err();
    // Without a database to count in, the rest still shows why.
    let counts = match outbox.count_by_status().await {
        Ok(counts) => Some(counts),
        Err(Error::Unavailable(_)) => None,
        Err(e) => return Err(e),
    };
    let storage: Vec<StorageCause> = outbox
        .storage_refusals()
        .into_iter()
        .map(|(u, refused)| StorageCause {
            label: u.label(),
            refused,
            current: current == Some(u),
        })
        .collect();
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics.render(counts.as_deref(), &storage),
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
