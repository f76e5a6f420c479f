//! The REST API: thin handlers over the services (each extracted from the
//! start-up wiring `App` through `FromRef`), one module per
//! route family. Every error is `application/problem+json` (RFC 9457).

mod accounts;
mod channels;
mod dkim;
mod messages;
pub mod oauth;
mod ops;
pub mod problem;
mod providers;
mod rules;
mod templates;
mod tenants;

use crate::error::{Error, FieldError};
use crate::services::Services;
use crate::tenants::Tenants;
use axum::Router;
use axum::body::Bytes;
use axum::extract::FromRef;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::routing::{delete, get, post};
use serde::de::DeserializeOwned;

pub fn router(app: Services) -> Router {
    Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/metrics", get(ops::metrics))
        .route("/api/openapi.json", get(ops::openapi))
        .route("/api/v1/providers", get(providers::list))
        .route("/api/v1/providers/discover", get(providers::discover))
        .route("/api/v1/accounts", get(accounts::list).post(accounts::create))
        .route(
            "/api/v1/accounts/{id}",
            get(accounts::show).patch(accounts::edit).delete(accounts::remove),
        )
        .route("/api/v1/accounts/{id}/test", post(accounts::test))
        .route("/api/v1/accounts/{id}/authorize", post(oauth::authorize))
        .route("/oauth2/callback", get(oauth::callback_page))
        .route("/api/v1/messages", get(messages::list).post(messages::create))
        .route("/api/v1/messages/batch", post(messages::batch))
        .route("/api/v1/messages/{id}", get(messages::show))
        .route("/api/v1/messages/{id}/retry", post(messages::retry))
        .route("/api/v1/messages/{id}/cancel", post(messages::cancel))
        .route("/api/v1/capture", get(messages::capture))
        .route("/api/v1/settings", get(ops::get_settings).put(ops::put_settings))
        .route("/api/v1/events", post(rules::event))
        .route("/api/v1/rules", get(rules::list).post(rules::create))
        .route(
            "/api/v1/rules/{id}",
            get(rules::show).patch(rules::edit).delete(rules::remove),
        )
        .route("/api/v1/channels", get(channels::list).post(channels::create))
        .route(
            "/api/v1/channels/{id}",
            get(channels::show).patch(channels::edit).delete(channels::remove),
        )
        .route("/api/v1/channels/{id}/test", post(channels::test))
        .route("/api/v1/tenants", get(tenants::list).post(tenants::create))
        .route("/api/v1/tenants/{id}", delete(tenants::remove))
        .route("/api/v1/dkim", get(dkim::list).post(dkim::create))
        .route("/api/v1/dkim/{id}", get(dkim::show).delete(dkim::remove))
        .route("/api/v1/dkim/{id}/check", post(dkim::check))
        .route("/api/v1/templates", get(templates::list))
        .route(
            "/api/v1/templates/{name}/{locale}",
            get(templates::show).put(templates::save).delete(templates::remove),
        )
        .route("/api/v1/templates/{name}/{locale}/preview", post(templates::preview))
        // The web console: its pages, at `/`.
        .merge(crate::console::router())
        .fallback(ops::not_found)
        // Batches of 1,000 messages of a few KB each exceed axum's 2 MB default.
        .layer(axum::extract::DefaultBodyLimit::max(32 * 1024 * 1024))
        .with_state(app)
}

/// Who is calling: the tenant their token belongs to.
pub struct Caller {
    pub tenant: String,
}

impl<S> FromRequestParts<S> for Caller
where
    Tenants: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let Some(token) = header.strip_prefix("Bearer ").map(str::trim).filter(|t| !t.is_empty()) else {
            return Err(Error::Unauthorized);
        };
        match Tenants::from_ref(state).caller_for_token(token).await? {
            Some(tenant) => Ok(Caller { tenant }),
            None => Err(Error::Unauthorized),
        }
    }
}

/// Time for a request's body to arrive (its headers have their own bound, at start-up).
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A JSON body whose errors name the field that is wrong (`auth.port: invalid type …`).
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        // A client that sends its body slowly holds a connection: bounded.
        let bytes = tokio::time::timeout(BODY_TIMEOUT, Bytes::from_request(req, state))
            .await
            .map_err(|_| {
                Error::Timeout(format!(
                    "the request body did not arrive within {} s",
                    BODY_TIMEOUT.as_secs()
                ))
            })?
            .map_err(|e| Error::field("body", format!("could not be read: {e}")))?;
        parse_json(&bytes).map(Json)
    }
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::field("body", "is empty: send a JSON object"));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let field = if path == "." || path.is_empty() {
            "body".to_string()
        } else {
            path
        };
        let message = if inner.is_syntax() || inner.is_eof() {
            format!("is not valid JSON ({inner})")
        } else {
            inner.to_string()
        };
        Error::Invalid(vec![FieldError::new(field, message)])
    })
}
