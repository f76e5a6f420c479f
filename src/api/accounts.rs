//! `/api/v1/accounts`: create, list, show, edit, delete, test.

use super::{Caller, Json};
use crate::accounts::{AccountInput, AccountView};
use crate::app::App;
use crate::diagnosis::Report;
use crate::error::{Error, Result};
use crate::i18n::Locale;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;

type Out<T> = axum::Json<T>;

pub async fn list(caller: Caller, State(app): State<App>) -> Result<Out<Vec<AccountView>>> {
    Ok(axum::Json(app.list_accounts(&caller.tenant).await?))
}

pub async fn create(
    caller: Caller,
    State(app): State<App>,
    Json(input): Json<AccountInput>,
) -> Result<(StatusCode, Out<AccountView>)> {
    Ok((
        StatusCode::CREATED,
        axum::Json(app.create_account(&caller.tenant, input).await?),
    ))
}

pub async fn show(caller: Caller, State(app): State<App>, Path(id): Path<String>) -> Result<Out<AccountView>> {
    let row = app.find_account(&caller.tenant, &id).await?;
    Ok(axum::Json(app.account_view(&row).await?))
}

pub async fn edit(
    caller: Caller,
    State(app): State<App>,
    Path(id): Path<String>,
    Json(input): Json<AccountInput>,
) -> Result<Out<AccountView>> {
    Ok(axum::Json(app.edit_account(&caller.tenant, &id, input).await?))
}

pub async fn remove(caller: Caller, State(app): State<App>, Path(id): Path<String>) -> Result<StatusCode> {
    app.delete_account(&caller.tenant, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestInput {
    to: String,
    locale: Option<String>,
}

/// 200 whether or not the send worked: the report says which.
pub async fn test(
    caller: Caller,
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(input): Json<TestInput>,
) -> Result<Out<Report>> {
    let locale = match input.locale.as_deref() {
        Some(l) => Locale::parse(l).ok_or_else(|| Error::field("locale", format!("'{l}' is not one of en, zh-CN")))?,
        None => headers
            .get(axum::http::header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .and_then(Locale::parse)
            .unwrap_or_default(),
    };
    Ok(axum::Json(
        app.test_account(&caller.tenant, &id, &input.to, locale).await?,
    ))
}
