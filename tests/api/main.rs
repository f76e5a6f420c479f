//! Herald's integration tests: one binary, a file per feature. Each test
//! starts Herald on port 0 with a fresh data directory and talks to real,
//! independent SMTP peers on loopback (tests/peers).

mod helpers;

mod accounts;
mod addresses;
mod channels;
mod cli;
mod console;
mod delivery;
mod dkim;
mod messages;
mod oauth;
mod openapi;
mod pinning;
mod proxy;
mod service_account;
mod slow_clients;
mod storage;
mod templates;
mod tenants;
mod test_email;
mod upgrade;
