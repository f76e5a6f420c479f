//! The provider catalog and discovery.

use super::Caller;
use crate::catalog::{Catalog, Provider};
use crate::discovery::{self, Discovery};
use crate::domain::EmailAddress;
use crate::error::{Error, Result};
use axum::Json;
use axum::extract::Query;
use serde::Deserialize;
use std::time::Duration;

pub async fn list(_caller: Caller) -> Json<&'static [Provider]> {
    Json(&Catalog::get().providers)
}

#[derive(Deserialize)]
pub struct DiscoverQuery {
    address: Option<String>,
    offline: Option<bool>,
}

pub async fn discover(_caller: Caller, Query(q): Query<DiscoverQuery>) -> Result<Json<Discovery>> {
    let address = q
        .address
        .ok_or_else(|| Error::field("address", "is required: ?address=name@example.com"))?;
    let address = EmailAddress::parse(&address).map_err(|m| Error::field("address", m))?;
    let opts = discovery::Options {
        offline: q.offline.unwrap_or(false),
        timeout: Duration::from_secs(5),
    };
    Ok(Json(discovery::discover(&address, &opts).await))
}
