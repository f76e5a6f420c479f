//! `/api/v1/channels`: webhook and chat-robot channels, and their test.

use super::{Caller, Json};
use crate::channels::{ChannelInput, ChannelView, Channels};
use crate::error::Result;
use crate::webhook::Report;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;

pub async fn list(caller: Caller, State(channels): State<Channels>) -> Result<axum::Json<Vec<ChannelView>>> {
    Ok(axum::Json(channels.list(&caller.tenant).await?))
}

/// 201 with the channel; a webhook created without a secret gets one, shown in this answer only.
pub async fn create(
    caller: Caller,
    State(channels): State<Channels>,
    Json(input): Json<ChannelInput>,
) -> Result<(StatusCode, axum::Json<ChannelView>)> {
    Ok((
        StatusCode::CREATED,
        axum::Json(channels.create(&caller.tenant, input).await?),
    ))
}

pub async fn show(
    caller: Caller,
    State(channels): State<Channels>,
    Path(id): Path<String>,
) -> Result<axum::Json<ChannelView>> {
    Ok(axum::Json(channels.get(&caller.tenant, &id).await?))
}

pub async fn edit(
    caller: Caller,
    State(channels): State<Channels>,
    Path(id): Path<String>,
    Json(input): Json<ChannelInput>,
) -> Result<axum::Json<ChannelView>> {
    Ok(axum::Json(channels.edit(&caller.tenant, &id, input).await?))
}

pub async fn remove(caller: Caller, State(channels): State<Channels>, Path(id): Path<String>) -> Result<StatusCode> {
    channels.delete(&caller.tenant, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestInput {
    /// `en` or `zh-CN`: the language of the hint and of the test notification.
    pub locale: Option<String>,
}

/// 200 whether or not the test went through: the report says.
pub async fn test(
    caller: Caller,
    State(channels): State<Channels>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<axum::Json<Report>> {
    let input: TestInput = if body.iter().all(u8::is_ascii_whitespace) {
        TestInput::default()
    } else {
        super::parse_json(&body)?
    };
    Ok(axum::Json(
        channels.test(&caller.tenant, &id, input.locale.as_deref()).await?,
    ))
}
