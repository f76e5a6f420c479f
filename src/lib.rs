//! Herald: a self-hosted notification center that sends system email through
//! whatever mail service the operator, or each tenant, chooses.
//!
//! Layers point one way (`docs/ARCHITECTURE.md`, checked by
//! `tests/architecture.rs`): `startup` wires the services; the edges (`api`,
//! `cli`) call the services (`accounts`, `outbox`, `rules`, …); the services
//! call the engine (`delivery`, `health`, `oauth`, `connect`) and the store;
//! the engine calls the transports (`smtp`), with `diagnosis` turning any
//! SMTP failure into a stage, a class and a hint from the `catalog`.

pub mod accounts;
pub mod api;
pub mod catalog;
pub mod cli;
pub mod compose;
pub mod config;
pub mod connect;
pub mod delivery;
pub mod diagnosis;
pub mod discovery;
pub mod domain;
pub mod error;
pub mod health;
pub mod i18n;
pub mod metrics;
pub mod oauth;
pub mod outbox;
pub mod pool;
pub mod rules;
pub mod secrets;
pub mod services;
pub mod settings;
pub mod smtp;
pub mod startup;
pub mod status;
pub mod store;
pub mod templates;
pub mod tenants;
pub mod testmail;

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
