#![warn(missing_docs)]
//! Herald: a self-hosted notification center that sends system email through
//! whatever mail service the operator, or each tenant, chooses.
//!
//! Layers point one way (`docs/ARCHITECTURE.md`, checked by
//! `tests/architecture.rs`): `startup` wires the services; the edges (`api`,
//! `cli`) call the services (`accounts`, `outbox`, `rules`, …); the services
//! call the engine (`delivery`, `health`, `oauth`, `connect`) and the store;
//! the engine calls the transports (`smtp`), with `diagnosis` turning any
//! SMTP failure into a stage, a class and a hint from the `catalog`.

pub(crate) mod accounts;
pub(crate) mod api;
pub(crate) mod catalog;
pub(crate) mod channels;
pub mod cli;
pub(crate) mod compose;
pub mod config;
pub(crate) mod connect;
pub(crate) mod console;
pub(crate) mod console_users;
pub(crate) mod delivery;
pub(crate) mod diagnosis;
pub(crate) mod discovery;
pub(crate) mod dkim;
pub(crate) mod domain;
pub(crate) mod error;
pub(crate) mod health;
pub(crate) mod i18n;
pub(crate) mod metrics;
pub(crate) mod netguard;
pub(crate) mod oauth;
pub(crate) mod outbox;
pub(crate) mod pool;
pub(crate) mod proxy;
pub(crate) mod robots;
pub(crate) mod rules;
pub(crate) mod secrets;
pub mod services;
pub(crate) mod settings;
pub(crate) mod smtp;
pub mod startup;
pub(crate) mod status;
/// Public for the upgrade test, which reads a migrated database directly;
/// not an interface.
#[doc(hidden)]
pub mod store;
pub(crate) mod templates;
pub(crate) mod tenants;
pub(crate) mod testmail;
pub(crate) mod webhook;

/// Milliseconds since the Unix epoch: how every timestamp is stored.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// RFC 3339 rendering of a stored timestamp, for the API.
pub fn rfc3339(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
