//! `/api/v1/messages` and the capture mailbox.

use super::{Caller, Json};
use crate::error::{Error, Result};
use crate::outbox::{CapturedView, MessageInput, MessageView, Outbox};
use crate::store::messages::MessageFilter;
use axum::extract::{FromRef, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};

/// 202 once the message is on disk; 200 with the same message when the
/// Idempotency-Key was seen before.
pub async fn create(
    caller: Caller,
    State(outbox): State<Outbox>,
    headers: HeaderMap,
    Json(input): Json<MessageInput>,
) -> Result<(StatusCode, axum::Json<MessageView>)> {
    let key = idempotency_key(&headers)?;
    let (view, created) = outbox.accept_message(&caller.tenant, input, key).await?;
    Ok((
        if created { StatusCode::ACCEPTED } else { StatusCode::OK },
        axum::Json(view),
    ))
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>> {
    Ok(match headers.get("idempotency-key") {
        Some(v) => Some(
            v.to_str()
                .map_err(|_| Error::field("Idempotency-Key", "must be printable ASCII"))?
                .to_string(),
        ),
        None => None,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchInput {
    messages: Vec<MessageInput>,
}

#[derive(Serialize)]
pub struct BatchAccepted {
    messages: Vec<MessageView>,
}

/// A turn to process a batch, taken before its body is read: the bodies of
/// the batches that wait stay unread rather than in memory.
pub struct BatchTurn {
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl<S> axum::extract::FromRequestParts<S> for BatchTurn
where
    Outbox: axum::extract::FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request_parts(_: &mut axum::http::request::Parts, state: &S) -> Result<Self> {
        let outbox = Outbox::from_ref(state);
        Ok(BatchTurn {
            _permit: outbox.batch_turn().await,
        })
    }
}

/// 202 once every message of the batch is on disk, in one transaction; a
/// bad message refuses the whole batch (422 naming `messages[i].field`).
/// 200 with the batch accepted the first time when its Idempotency-Key repeats.
pub async fn batch(
    caller: Caller,
    State(outbox): State<Outbox>,
    headers: HeaderMap,
    _turn: BatchTurn,
    Json(input): Json<BatchInput>,
) -> Result<(StatusCode, axum::Json<BatchAccepted>)> {
    let key = idempotency_key(&headers)?;
    let (messages, created) = outbox.accept_batch(&caller.tenant, input.messages, key).await?;
    Ok((
        if created { StatusCode::ACCEPTED } else { StatusCode::OK },
        axum::Json(BatchAccepted { messages }),
    ))
}

#[derive(Deserialize)]
pub struct ListQuery {
    status: Option<String>,
    account: Option<String>,
    before: Option<String>,
    limit: Option<i64>,
}

pub async fn list(
    caller: Caller,
    State(outbox): State<Outbox>,
    Query(q): Query<ListQuery>,
) -> Result<axum::Json<Vec<MessageView>>> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(Error::field("limit", "must be between 1 and 500"));
    }
    let filter = MessageFilter {
        status: q.status,
        account_id: q.account,
        before: q.before,
        limit,
    };
    Ok(axum::Json(outbox.list_messages(&caller.tenant, filter).await?))
}

pub async fn show(
    caller: Caller,
    State(outbox): State<Outbox>,
    Path(id): Path<String>,
) -> Result<axum::Json<MessageView>> {
    Ok(axum::Json(outbox.get_message(&caller.tenant, &id).await?))
}

pub async fn cancel(
    caller: Caller,
    State(outbox): State<Outbox>,
    Path(id): Path<String>,
) -> Result<axum::Json<MessageView>> {
    Ok(axum::Json(outbox.cancel_message(&caller.tenant, &id).await?))
}

pub async fn retry(
    caller: Caller,
    State(outbox): State<Outbox>,
    Path(id): Path<String>,
) -> Result<axum::Json<MessageView>> {
    Ok(axum::Json(outbox.retry_message(&caller.tenant, &id).await?))
}

/// What went to the capture mailbox because no account was configured.
pub async fn capture(caller: Caller, State(outbox): State<Outbox>) -> Result<axum::Json<Vec<CapturedView>>> {
    Ok(axum::Json(outbox.captured(&caller.tenant, 200).await?))
}
