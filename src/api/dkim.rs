//! `/api/v1/dkim`: DKIM keys per sending domain: create, list, show, delete,
//! check the DNS record.

use super::{Caller, Json};
use crate::dkim::{Dkim, DkimInput, DkimView};
use crate::error::Result;
use axum::extract::{Path, State};
use axum::http::StatusCode;

type Out<T> = axum::Json<T>;

pub async fn list(caller: Caller, State(dkim): State<Dkim>) -> Result<Out<Vec<DkimView>>> {
    Ok(axum::Json(dkim.list(&caller.tenant).await?))
}

pub async fn create(
    caller: Caller,
    State(dkim): State<Dkim>,
    Json(input): Json<DkimInput>,
) -> Result<(StatusCode, Out<DkimView>)> {
    Ok((StatusCode::CREATED, axum::Json(dkim.add(&caller.tenant, input).await?)))
}

pub async fn show(caller: Caller, State(dkim): State<Dkim>, Path(id): Path<String>) -> Result<Out<DkimView>> {
    Ok(axum::Json(dkim.show(&caller.tenant, &id).await?))
}

pub async fn remove(caller: Caller, State(dkim): State<Dkim>, Path(id): Path<String>) -> Result<StatusCode> {
    dkim.remove(&caller.tenant, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Looks the record up now; 200 whatever it found (the status says).
pub async fn check(caller: Caller, State(dkim): State<Dkim>, Path(id): Path<String>) -> Result<Out<DkimView>> {
    Ok(axum::Json(dkim.check(&caller.tenant, &id).await?))
}
