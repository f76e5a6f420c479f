//! `/api/v1/rules` and `/api/v1/events`.

use super::{Caller, Json};
use crate::error::Result;
use crate::rules::Rules;
use crate::rules::{EventInput, EventOutcome, RuleInput, RuleView};
use axum::extract::{Path, State};
use axum::http::StatusCode;

pub async fn list(caller: Caller, State(rules): State<Rules>) -> Result<axum::Json<Vec<RuleView>>> {
    Ok(axum::Json(rules.list_rules(&caller.tenant).await?))
}

pub async fn create(
    caller: Caller,
    State(rules): State<Rules>,
    Json(input): Json<RuleInput>,
) -> Result<(StatusCode, axum::Json<RuleView>)> {
    Ok((
        StatusCode::CREATED,
        axum::Json(rules.create_rule(&caller.tenant, input).await?),
    ))
}

pub async fn show(caller: Caller, State(rules): State<Rules>, Path(id): Path<String>) -> Result<axum::Json<RuleView>> {
    Ok(axum::Json(rules.get_rule(&caller.tenant, &id).await?))
}

pub async fn edit(
    caller: Caller,
    State(rules): State<Rules>,
    Path(id): Path<String>,
    Json(input): Json<RuleInput>,
) -> Result<axum::Json<RuleView>> {
    Ok(axum::Json(rules.edit_rule(&caller.tenant, &id, input).await?))
}

pub async fn remove(caller: Caller, State(rules): State<Rules>, Path(id): Path<String>) -> Result<StatusCode> {
    rules.delete_rule(&caller.tenant, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// 202: the event is recorded and its messages are queued.
pub async fn event(
    caller: Caller,
    State(rules): State<Rules>,
    Json(input): Json<EventInput>,
) -> Result<(StatusCode, axum::Json<EventOutcome>)> {
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(rules.post_event(&caller.tenant, input).await?),
    ))
}
