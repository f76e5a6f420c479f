//! Errors as `application/problem+json` (RFC 9457), with the list of field
//! errors for validation problems.

use crate::error::{Error, FieldError};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'static str,
    status: u16,
    detail: String,
    #[serde(skip_serializing_if = "<[FieldError]>::is_empty")]
    errors: &'a [FieldError],
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, title) = match &self {
            Error::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "Invalid input"),
            Error::NotFound(_) => (StatusCode::NOT_FOUND, "Not found"),
            Error::Conflict(_) => (StatusCode::CONFLICT, "Conflict"),
            Error::Unauthorized => (StatusCode::UNAUTHORIZED, "Unauthorized"),
            Error::Forbidden(_) => (StatusCode::FORBIDDEN, "Forbidden"),
            Error::Timeout(_) => (StatusCode::REQUEST_TIMEOUT, "Request timeout"),
            Error::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "Service unavailable"),
            Error::Internal(e) => {
                tracing::error!(error = %format!("{e:#}"), "internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, "Internal error")
            }
        };
        let empty = Vec::new();
        let errors = match &self {
            Error::Invalid(list) => list,
            _ => &empty,
        };
        let detail = match &self {
            Error::Internal(_) => "something went wrong inside Herald; the log has the details".to_string(),
            Error::Unavailable(u) => format!(
                "Herald's database is unavailable: {u}. The request was not completed; retry after {} seconds",
                u.retry_after_secs()
            ),
            other => other.to_string(),
        };
        let body = Problem {
            kind: "about:blank",
            title,
            status: status.as_u16(),
            detail,
            errors,
        };
        let mut resp = (status, serde_json::to_string(&body).unwrap_or_default()).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Error::Unavailable(u) = &self {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(u.retry_after_secs()));
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Unavailable;

    #[tokio::test]
    async fn a_storage_condition_is_503_with_retry_after_naming_the_cause() {
        let resp = Error::Unavailable(Unavailable::NoSpace).into_response();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "30");
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/problem+json");
        let body = axum::body::to_bytes(resp.into_body(), 1 << 16).await.unwrap();
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(problem["status"], 503);
        let detail = problem["detail"].as_str().unwrap();
        assert!(
            detail.contains("no space left on the data directory's device"),
            "{detail}"
        );
    }
}
