//! `/api/v1/tenants`: the platform admin's.

use super::{Caller, Json};
use crate::error::Result;
use crate::tenants::Tenants;
use crate::tenants::{CreatedTenant, TenantInput, TenantView};
use axum::extract::{Path, State};
use axum::http::StatusCode;

pub async fn list(caller: Caller, State(tenants): State<Tenants>) -> Result<axum::Json<Vec<TenantView>>> {
    Ok(axum::Json(tenants.list_tenants(&caller.tenant).await?))
}

/// 201 with the tenant admin's token, shown this once.
pub async fn create(
    caller: Caller,
    State(tenants): State<Tenants>,
    Json(input): Json<TenantInput>,
) -> Result<(StatusCode, axum::Json<CreatedTenant>)> {
    Ok((
        StatusCode::CREATED,
        axum::Json(tenants.create_tenant(&caller.tenant, input).await?),
    ))
}

pub async fn remove(caller: Caller, State(tenants): State<Tenants>, Path(id): Path<String>) -> Result<StatusCode> {
    tenants.delete_tenant(&caller.tenant, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
