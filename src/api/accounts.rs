//! `/api/v1/accounts`: create, list, show, edit, delete, test.

use super::{Caller, Json};
use crate::accounts::Accounts;
use crate::accounts::{AccountInput, AccountView};
use crate::diagnosis::Report;
use crate::error::{Error, Result};
use crate::i18n::Locale;
use crate::testmail::TestMail;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;

type Out<T> = axum::Json<T>;

pub async fn list(caller: Caller, State(accounts): State<Accounts>) -> Result<Out<Vec<AccountView>>> {
    Ok(axum::Json(accounts.list_accounts(&caller.tenant).await?))
}

pub async fn create(
    caller: Caller,
    State(accounts): State<Accounts>,
    Json(input): Json<AccountInput>,
) -> Result<(StatusCode, Out<AccountView>)> {
    Ok((
        StatusCode::CREATED,
        axum::Json(accounts.create_account(&caller.tenant, input).await?),
    ))
}

pub async fn show(
    caller: Caller,
    State(accounts): State<Accounts>,
    Path(id): Path<String>,
) -> Result<Out<AccountView>> {
    let row = accounts.find_account(&caller.tenant, &id).await?;
    Ok(axum::Json(accounts.account_view(&row).await?))
}

pub async fn edit(
    caller: Caller,
    State(accounts): State<Accounts>,
    Path(id): Path<String>,
    Json(input): Json<AccountInput>,
) -> Result<Out<AccountView>> {
    Ok(axum::Json(accounts.edit_account(&caller.tenant, &id, input).await?))
}

pub async fn remove(caller: Caller, State(accounts): State<Accounts>, Path(id): Path<String>) -> Result<StatusCode> {
    accounts.delete_account(&caller.tenant, &id).await?;
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
    State(test_mail): State<TestMail>,
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
        test_mail.test_account(&caller.tenant, &id, &input.to, locale).await?,
    ))
}
