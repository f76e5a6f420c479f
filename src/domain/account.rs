//! A mail account as the services and the engine use it: its stored row
//! parsed once (`store::accounts` converts), so that its security, sign-in
//! method, status and sender are types, not text, everywhere after.

use super::EmailAddress;
use crate::catalog::Security;
use crate::status::{AccountStatus, AuthMethod};

/// An account of a tenant. Secrets stay sealed (`secrets` opens them for
/// the one session that needs them).
#[derive(Debug, Clone)]
pub struct Account {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    /// The catalog preset it was made from, or `custom`.
    pub provider: String,
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub auth_method: AuthMethod,
    pub username: Option<String>,
    /// The password, app password, authorization code or API key, sealed.
    pub secret: Option<Vec<u8>>,
    /// OAuth2 settings as JSON (`oauth::settings_of` reads them).
    pub oauth: Option<String>,
    /// The OAuth2 client secret, sealed.
    pub oauth_client_secret: Option<Vec<u8>>,
    pub from_address: EmailAddress,
    pub from_name: Option<String>,
    pub tls_ca_pem: Option<String>,
    pub tls_skip_verify: bool,
    /// Lower-case hex SHA-256 of the one server certificate trusted (`tls.pin_sha256`).
    pub tls_pin_sha256: Option<String>,
    /// The account's own proxy as JSON (`proxy::ProxySettings`); none: the platform default.
    pub proxy: Option<String>,
    /// The proxy password, sealed.
    pub proxy_secret: Option<Vec<u8>>,
    pub timeout_secs: u64,
    pub limit_connections: Option<u32>,
    pub limit_per_minute: Option<u32>,
    pub limit_per_day: Option<u32>,
    /// Id of the account that takes over when this one fails.
    pub backup_account: Option<String>,
    pub status: AccountStatus,
    pub status_message: Option<String>,
    /// The last test email's report, as JSON.
    pub last_report: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Account {
    /// The login: the username, else the sender address.
    pub fn login(&self) -> String {
        self.username
            .clone()
            .unwrap_or_else(|| self.from_address.as_str().to_string())
    }
}
