//! Mail accounts: the SMTP services a tenant sends through. Creating one from
//! a catalog preset fills in host, port and security; every input is checked
//! and all problems are reported at once, each naming its field.
//!
//! Secrets are write-only: they go in through `AccountInput`, are sealed
//! with the data directory's key, and never come out through `AccountView`.

use crate::catalog::{Catalog, Provider, Security, UsernameForm};
use crate::connect::secret_context;
use crate::diagnosis::Report;
use crate::domain::Account;
use crate::domain::{EmailAddress, HeaderText, Hostname};
use crate::error::{Error, OnDuplicate, Problems, Result};
use crate::health::{Health, Observation};
use crate::secrets::{Keyring, Secret};
use crate::status::{AccountStatus, AuthMethod};
use crate::store::Store;
use crate::store::accounts::AccountRow;
use serde::{Deserialize, Serialize};

/// Seconds each step of an SMTP session may take, unless the account says otherwise.
pub const DEFAULT_TIMEOUT_SECS: u64 = 30;

/// Fields of an account as the API and the CLI accept them; on an edit,
/// an absent field keeps its value (and an absent secret keeps the secret).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountInput {
    pub name: Option<String>,
    pub provider: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub security: Option<String>,
    pub auth: Option<AuthInput>,
    pub from: Option<FromInput>,
    pub tls: Option<TlsInput>,
    pub timeout_secs: Option<u64>,
    pub limits: Option<LimitsInput>,
    /// Id or name of another account of the tenant; empty string clears it.
    pub backup_account: Option<String>,
    /// The proxy to reach the server through; `null` removes it (the
    /// platform default applies again), `{"kind":"none"}` connects directly.
    #[serde(default, deserialize_with = "present")]
    pub proxy: Option<Option<crate::proxy::ProxyDoc>>,
}

/// A field that may be absent (keep), `null` (clear) or a value.
fn present<'de, D, T>(d: D) -> std::result::Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthInput {
    pub method: Option<String>,
    pub username: Option<String>,
    pub secret: Option<String>,
    pub oauth: Option<crate::oauth::OAuthInput>,
    /// A Google service account's JSON key (method google_service_account); write-only.
    pub service_account_key: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FromInput {
    pub address: Option<String>,
    pub name: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsInput {
    pub ca_pem: Option<String>,
    pub skip_verify: Option<bool>,
    /// Hex SHA-256 of the one server certificate to trust; empty string clears it.
    pub pin_sha256: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsInput {
    pub connections: Option<u32>,
    pub per_minute: Option<u32>,
    pub per_day: Option<u32>,
}

/// An account as the API shows it: no secret, only whether one is set.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountView {
    pub id: String,
    pub name: String,
    pub provider: String,
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub auth: AuthView,
    pub from: FromView,
    pub tls: TlsView,
    pub timeout_secs: u64,
    pub limits: LimitsView,
    pub backup_account: Option<String>,
    /// The account's own proxy (its secret never shown); absent: the platform default, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<crate::proxy::ProxyDoc>,
    pub status: AccountStatus,
    pub status_message: Option<String>,
    /// The OAuth2 redirect URI to register at the provider.
    pub redirect_uri: String,
    pub last_report: Option<Report>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthView {
    pub method: String,
    pub username: Option<String>,
    /// True when a secret is stored; the secret itself is never shown.
    pub secret_set: bool,
    /// OAuth2 settings and token state, for auth.method oauth2.
    pub oauth: Option<crate::oauth::OAuthView>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FromView {
    pub address: String,
    pub name: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TlsView {
    pub ca_pem: Option<String>,
    pub skip_verify: bool,
    /// The pinned certificate's SHA-256 (lower-case hex), when one is pinned.
    #[serde(default)]
    pub pin_sha256: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LimitsView {
    pub connections: Option<u32>,
    pub per_minute: Option<u32>,
    pub per_day: Option<u32>,
}

impl AccountView {
    /// The account as the API shows it (without its OAuth2 token state).
    pub fn from_account(row: &Account, redirect_uri: String) -> AccountView {
        AccountView {
            id: row.id.clone(),
            name: row.name.clone(),
            provider: row.provider.clone(),
            host: row.host.clone(),
            port: row.port,
            security: row.security,
            auth: AuthView {
                method: row.auth_method.as_str().to_string(),
                username: row.username.clone(),
                secret_set: row.secret.is_some(),
                oauth: None,
            },
            from: FromView {
                address: row.from_address.as_str().to_string(),
                name: row.from_name.clone(),
            },
            tls: TlsView {
                ca_pem: row.tls_ca_pem.clone(),
                skip_verify: row.tls_skip_verify,
                pin_sha256: row.tls_pin_sha256.clone(),
            },
            timeout_secs: row.timeout_secs,
            limits: LimitsView {
                connections: row.limit_connections,
                per_minute: row.limit_per_minute,
                per_day: row.limit_per_day,
            },
            backup_account: row.backup_account.clone(),
            proxy: crate::proxy::ProxySettings::from_stored(row.proxy.as_deref())
                .map(|p| p.view(row.proxy_secret.is_some())),
            status: row.status,
            status_message: row.status_message.clone(),
            redirect_uri,
            last_report: row.last_report.as_deref().and_then(|r| serde_json::from_str(r).ok()),
            created_at: crate::rfc3339(row.created_at),
            updated_at: crate::rfc3339(row.updated_at),
        }
    }
}

/// The account's state while an input is applied to it.
struct Draft {
    name: Option<String>,
    provider: String,
    host: Option<String>,
    port: Option<u16>,
    security: Option<String>,
    auth_method: Option<String>,
    username: Option<String>,
    new_secret: Option<String>,
    has_secret: bool,
    from_address: Option<String>,
    from_name: Option<String>,
    ca_pem: Option<String>,
    skip_verify: bool,
    pin_sha256: Option<String>,
    /// The stored proxy, and whether its password is stored.
    proxy_current: Option<crate::proxy::ProxySettings>,
    has_proxy_secret: bool,
    /// The proxy as given: `Some(None)` removes it.
    proxy_input: Option<Option<crate::proxy::ProxyDoc>>,
    timeout_secs: u64,
    limits: (Option<u32>, Option<u32>, Option<u32>),
    limits_given: bool,
    backup: Option<String>,
    oauth_current: Option<crate::oauth::OAuthSettings>,
    oauth_input: Option<crate::oauth::OAuthInput>,
    has_client_secret: bool,
    /// A new service account key given.
    new_service_account_key: Option<String>,
    /// The stored secret is a service account key (the stored method is google_service_account).
    has_service_account_key: bool,
}

impl Draft {
    fn empty() -> Draft {
        Draft {
            name: None,
            provider: "custom".into(),
            host: None,
            port: None,
            security: None,
            auth_method: None,
            username: None,
            new_secret: None,
            has_secret: false,
            from_address: None,
            from_name: None,
            ca_pem: None,
            skip_verify: false,
            pin_sha256: None,
            proxy_current: None,
            has_proxy_secret: false,
            proxy_input: None,
            timeout_secs: DEFAULT_TIMEOUT_SECS,
            limits: (None, None, None),
            limits_given: false,
            backup: None,
            oauth_current: None,
            oauth_input: None,
            has_client_secret: false,
            new_service_account_key: None,
            has_service_account_key: false,
        }
    }

    fn from_account(r: &Account) -> Draft {
        Draft {
            name: Some(r.name.clone()),
            provider: r.provider.clone(),
            host: Some(r.host.clone()),
            port: Some(r.port),
            security: Some(r.security.as_str().to_string()),
            auth_method: Some(r.auth_method.as_str().to_string()),
            username: r.username.clone(),
            new_secret: None,
            has_secret: r.secret.is_some() && r.auth_method == AuthMethod::Password,
            from_address: Some(r.from_address.as_str().to_string()),
            from_name: r.from_name.clone(),
            ca_pem: r.tls_ca_pem.clone(),
            skip_verify: r.tls_skip_verify,
            pin_sha256: r.tls_pin_sha256.clone(),
            proxy_current: crate::proxy::ProxySettings::from_stored(r.proxy.as_deref()),
            has_proxy_secret: r.proxy_secret.is_some(),
            proxy_input: None,
            timeout_secs: r.timeout_secs,
            limits: (r.limit_connections, r.limit_per_minute, r.limit_per_day),
            limits_given: true,
            backup: r.backup_account.clone(),
            oauth_current: crate::oauth::settings_of(r),
            oauth_input: None,
            has_client_secret: r.oauth_client_secret.is_some(),
            new_service_account_key: None,
            has_service_account_key: r.auth_method == AuthMethod::GoogleServiceAccount && r.secret.is_some(),
        }
    }

    /// Overlays the given fields. A change of provider re-derives what the
    /// preset decides (host, port, security) unless the input sets them too.
    fn apply(&mut self, input: AccountInput) {
        if let Some(p) = input.provider {
            if p != self.provider {
                self.host = None;
                self.port = None;
                self.security = None;
                if !self.limits_given || input.limits.is_none() {
                    self.limits = (None, None, None);
                    self.limits_given = false;
                }
            }
            self.provider = p;
        }
        if input.name.is_some() {
            self.name = input.name;
        }
        if input.host.is_some() {
            self.host = input.host;
        }
        if input.security.is_some() {
            if input.port.is_none() && input.security != self.security {
                self.port = None;
            }
            self.security = input.security;
        }
        if input.port.is_some() {
            self.port = input.port;
        }
        if let Some(a) = input.auth {
            if a.method.is_some() {
                self.auth_method = a.method.clone();
            }
            if a.username.is_some() {
                self.username = a.username;
            }
            if let Some(s) = a.secret.filter(|s| !is_mask(s)) {
                self.new_secret = Some(s);
            }
            // A service account key without a method means "sign in as the service account".
            if let Some(k) = a.service_account_key.filter(|s| !is_mask(s)) {
                if a.method.is_none() {
                    self.auth_method = Some(AuthMethod::GoogleServiceAccount.as_str().into());
                }
                self.new_service_account_key = Some(k);
            }
            // OAuth settings without a method mean "sign in with OAuth2".
            if let Some(mut o) = a.oauth {
                if a.method.is_none() {
                    self.auth_method = Some("oauth2".into());
                }
                o.client_secret = o.client_secret.filter(|s| !is_mask(s));
                self.oauth_input = Some(o);
            }
        }
        if let Some(f) = input.from {
            if f.address.is_some() {
                self.from_address = f.address;
            }
            if f.name.is_some() {
                self.from_name = f.name;
            }
        }
        if let Some(t) = input.tls {
            if t.ca_pem.is_some() {
                self.ca_pem = t.ca_pem;
            }
            if let Some(s) = t.skip_verify {
                self.skip_verify = s;
            }
            if t.pin_sha256.is_some() {
                self.pin_sha256 = t.pin_sha256;
            }
        }
        if input.proxy.is_some() {
            self.proxy_input = input.proxy;
        }
        if let Some(t) = input.timeout_secs {
            self.timeout_secs = t;
        }
        if let Some(l) = input.limits {
            self.limits = (
                l.connections.or(self.limits.0),
                l.per_minute.or(self.limits.1),
                l.per_day.or(self.limits.2),
            );
            self.limits_given = true;
        }
        if let Some(b) = input.backup_account {
            self.backup = Some(b);
        }
    }
}

/// Whether a secret is the mask Herald shows in its place (`********` in
/// transcripts) or any other run of `*`: a form that sends back what it was
/// shown gives no secret, so the stored one stays.
fn is_mask(secret: &str) -> bool {
    !secret.is_empty() && secret.bytes().all(|b| b == b'*')
}

/// Everything checked; what goes into the row.
struct Checked {
    name: String,
    provider: String,
    host: String,
    port: u16,
    security: Security,
    auth_method: AuthMethod,
    username: Option<String>,
    from_address: EmailAddress,
    from_name: Option<String>,
    ca_pem: Option<String>,
    skip_verify: bool,
    pin_sha256: Option<String>,
    /// The proxy to store (`None`: none of its own), and what happens to its password.
    proxy: Option<crate::proxy::ProxySettings>,
    proxy_secret: crate::proxy::SecretChange,
    timeout_secs: u64,
    limits: (Option<u32>, Option<u32>, Option<u32>),
    oauth: Option<crate::oauth::OAuthSettings>,
}

fn check(d: &Draft, creating: bool) -> Result<Checked> {
    let catalog = Catalog::get();
    let mut p = Problems::default();

    let name = match d.name.as_deref().map(str::trim) {
        None | Some("") => {
            p.add(
                "name",
                "is required: give the account a name people recognise, e.g. \"Support mailbox\"",
            );
            String::new()
        }
        Some(n) => p
            .check("name", HeaderText::parse(n).map(|h| h.as_str().to_string()))
            .unwrap_or_default(),
    };

    let provider: Option<&Provider> = catalog.provider(&d.provider);
    if provider.is_none() {
        p.add(
            "provider",
            format!(
                "'{}' is not in the catalog: use one of the ids of GET /api/v1/providers, or \"custom\"",
                d.provider
            ),
        );
    }

    let security = match d.security.as_deref() {
        Some(s) => p.check(
            "security",
            Security::parse(s).ok_or_else(|| {
                format!("'{s}' is not one of none, tls (implicit TLS, usually port 465), starttls (usually port 587)")
            }),
        ),
        None => match provider.and_then(|p| p.default_security) {
            Some(s) => Some(s),
            None => {
                if provider.is_some() {
                    p.add("security", "is required for a custom server: tls (implicit TLS, usually port 465), starttls (usually port 587) or none");
                }
                None
            }
        },
    };

    let port = match (d.port, security) {
        (Some(0), _) => {
            p.add("port", "must be between 1 and 65535");
            None
        }
        (Some(port), _) => Some(port),
        (None, Some(sec)) => match provider.and_then(|p| p.ports.for_security(sec)) {
            Some(port) => Some(port),
            None if provider.is_some_and(|p| p.id != "custom") => {
                p.add(
                    "port",
                    format!(
                        "{} offers no port for security {}: choose another security or set the port",
                        provider.map(|p| p.name.en.as_str()).unwrap_or(""),
                        sec.as_str()
                    ),
                );
                None
            }
            None => Some(match sec {
                Security::Tls => 465,
                Security::Starttls => 587,
                Security::None => 25,
            }),
        },
        (None, None) => None,
    };

    let host = match d.host.as_deref().map(str::trim).filter(|h| !h.is_empty()) {
        Some(h) => p.check("host", Hostname::parse(h).map(|h| h.as_str().to_string())),
        None => match provider.map(|p| p.host.as_str()).filter(|h| !h.is_empty()) {
            Some(h) => Some(h.to_string()),
            None => {
                p.add(
                    "host",
                    "is required for this provider: give the SMTP server's host name, e.g. smtp.example.com",
                );
                None
            }
        },
    };

    let from_address = match d.from_address.as_deref() {
        None => {
            p.add(
                "from.address",
                "is required: the address messages are sent from, e.g. noreply@example.com",
            );
            None
        }
        Some(a) => p.check("from.address", EmailAddress::parse(a)),
    };
    let from_name = match d.from_name.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(n) => p
            .check("from.name", HeaderText::parse(n))
            .map(|h| h.as_str().to_string()),
    };

    let auth_method = d.auth_method.clone().unwrap_or_else(|| {
        let custom_without_secret = d.provider == "custom" && d.new_secret.is_none() && d.username.is_none();
        if custom_without_secret {
            "none".into()
        } else {
            "password".into()
        }
    });
    let mut oauth = None;
    let mut username = d
        .username
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_string);
    match auth_method.as_str() {
        "none" => username = None,
        "password" => {
            if username.is_none() {
                match provider.map(|p| (p.username, p.username_literal.clone())) {
                    Some((UsernameForm::Literal, Some(lit))) => username = Some(lit),
                    Some((UsernameForm::Custom, _)) if d.provider != "custom" => {
                        p.add("auth.username", "is required for this provider: it issues a separate SMTP login (see the provider's SMTP settings)")
                    }
                    _ => username = from_address.as_ref().map(|a| a.as_str().to_string()),
                }
            }
            if let Some(u) = &username
                && u.contains(['\r', '\n', '\0'])
            {
                p.add("auth.username", "contains a line break or NUL");
            }
            let has_secret = d.new_secret.as_deref().is_some_and(|s| !s.is_empty())
                || (!creating && d.has_secret && d.new_secret.is_none());
            if !has_secret {
                let kind = provider.map(secret_word).unwrap_or("password");
                p.add("auth.secret", format!("is required with auth.method password: give the {kind} (write-only: it is stored encrypted and never shown again)"));
            }
            if provider.is_some_and(|p| p.secret_kind == crate::catalog::SecretKind::OauthOnly) {
                p.add(
                    "auth.method",
                    format!(
                        "{} accepts only OAuth2 sign-in; password sign-in is refused by the provider",
                        provider.map(|p| p.name.en.as_str()).unwrap_or("")
                    ),
                );
            }
        }
        "oauth2" => {
            // XOAUTH2 names the mailbox: the sender address unless told otherwise.
            if username.is_none() {
                username = from_address.as_ref().map(|a| a.as_str().to_string());
            }
            let input = d.oauth_input.clone().unwrap_or_default();
            match crate::oauth::resolve(&d.provider, d.oauth_current.as_ref(), &input) {
                Ok(o) => {
                    let secret_given = input.client_secret.as_deref().is_some_and(|s| !s.is_empty());
                    let has_secret = secret_given || (!creating && d.has_client_secret);
                    if o.flow == crate::oauth::Flow::ClientCredentials && !has_secret {
                        p.add(
                            "auth.oauth.client_secret",
                            "is required for the client credentials flow: the client secret from the app registration",
                        );
                    }
                    oauth = Some(o);
                }
                Err(Error::Invalid(list)) => p.0.extend(list),
                Err(e) => return Err(e),
            }
        }
        "google_service_account" => {
            // The token's `sub` and the XOAUTH2 user are the sender.
            username = from_address.as_ref().map(|a| a.as_str().to_string());
            match d.new_service_account_key.as_deref().map(str::trim).filter(|k| !k.is_empty()) {
                Some(k) => {
                    if let Err(m) = crate::oauth::service_account::ServiceAccountKey::parse(k) {
                        p.add("auth.service_account_key", m);
                    }
                }
                None if !creating && d.has_service_account_key => {}
                None => p.add(
                    "auth.service_account_key",
                    "is required with auth.method google_service_account: paste the service account's JSON key (Google Cloud console → IAM & Admin → Service Accounts → Keys; write-only: stored encrypted and never shown again)",
                ),
            }
        }
        other => p.add(
            "auth.method",
            format!("'{other}' is not one of none, password, oauth2, google_service_account"),
        ),
    }

    let ca_pem = d
        .ca_pem
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    if let Some(pem) = &ca_pem
        && let Err(m) = crate::smtp::tls::parse_ca_pem(pem)
    {
        p.add("tls.ca_pem", m);
    }
    let pin_sha256 = match d.pin_sha256.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(pin) => p
            .check("tls.pin_sha256", crate::smtp::certificate::parse_pin(pin))
            .map(|pin| crate::smtp::certificate::pin_text(&pin)),
    };
    if pin_sha256.is_some() && d.skip_verify {
        p.add(
            "tls.pin_sha256",
            "cannot be combined with tls.skip_verify: a pinned certificate is verified; set tls.skip_verify to false",
        );
    }
    let (proxy, proxy_secret) = match &d.proxy_input {
        None => (d.proxy_current.clone(), crate::proxy::SecretChange::Keep),
        Some(None) => (None, crate::proxy::SecretChange::Clear),
        Some(Some(doc)) => {
            match crate::proxy::check("proxy", doc, d.proxy_current.as_ref(), d.has_proxy_secret, &mut p) {
                Some((s, secret)) => (Some(s), secret),
                None => (None, crate::proxy::SecretChange::Keep),
            }
        }
    };
    if !(1..=600).contains(&d.timeout_secs) {
        p.add("timeout_secs", "must be between 1 and 600 seconds");
    }
    let preset_limits = provider.map(|p| p.limits.clone()).unwrap_or_default();
    let limits = if d.limits_given {
        d.limits
    } else {
        (
            preset_limits.connections,
            preset_limits.per_minute,
            preset_limits.per_day,
        )
    };
    for (field, v) in [
        ("limits.connections", limits.0),
        ("limits.per_minute", limits.1),
        ("limits.per_day", limits.2),
    ] {
        if v == Some(0) {
            p.add(field, "must be at least 1, or left out for no limit");
        }
    }

    p.into_result()?;
    Ok(Checked {
        name,
        provider: d.provider.clone(),
        host: host.expect("checked"),
        port: port.expect("checked"),
        security: security.expect("checked"),
        auth_method: AuthMethod::parse(&auth_method).expect("checked"),
        username,
        from_address: from_address.expect("checked"),
        from_name,
        ca_pem,
        skip_verify: d.skip_verify,
        pin_sha256,
        proxy,
        proxy_secret,
        timeout_secs: d.timeout_secs,
        limits,
        oauth,
    })
}

/// The provider's word for its secret, for messages.
fn secret_word(p: &Provider) -> &'static str {
    use crate::catalog::SecretKind as K;
    match p.secret_kind {
        K::Password => "password",
        K::AppPassword => "app password",
        K::AuthorizationCode => "authorization code (授权码)",
        K::ClientPassword => "client-specific password (客户端专用密码)",
        K::ApiKey => "API key",
        K::SmtpCredential => "SMTP password",
        K::OauthOnly => "OAuth2 authorization",
    }
}

async fn resolve_backup(store: &Store, tenant: &str, self_id: &str, backup: Option<&str>) -> Result<Option<String>> {
    match backup.map(str::trim).filter(|b| !b.is_empty()) {
        None => Ok(None),
        Some(b) => match store.find_account(tenant, b).await? {
            Some(row) if row.id == self_id => Err(Error::field("backup_account", "cannot be the account itself")),
            Some(row) => Ok(Some(row.id)),
            None => Err(Error::field(
                "backup_account",
                format!("no account '{b}' in this tenant: give the id or name of another account"),
            )),
        },
    }
}

/// The accounts of each tenant: create, read, edit, delete.
#[derive(Clone)]
pub struct Accounts {
    store: Store,
    keys: Keyring,
    /// The OAuth2 redirect URI, shown on every account.
    redirect_uri: String,
    health: Health,
}

impl Accounts {
    /// The service over the store, sealing secrets with `keys`.
    pub fn new(store: Store, keys: Keyring, redirect_uri: String, health: Health) -> Accounts {
        Accounts {
            store,
            keys,
            redirect_uri,
            health,
        }
    }

    /// The account as the API shows it, with its OAuth2 token state.
    pub async fn account_view(&self, row: &Account) -> Result<AccountView> {
        let mut v = AccountView::from_account(row, self.redirect_uri.clone());
        v.auth.oauth = crate::oauth::oauth_view(&self.store, row).await?;
        Ok(v)
    }

    fn seal_client_secret(&self, id: &str, draft: &Draft) -> Option<Vec<u8>> {
        let s = draft
            .oauth_input
            .as_ref()?
            .client_secret
            .as_deref()
            .filter(|s| !s.is_empty())?;
        Some(
            self.keys
                .seal(&crate::oauth::client_secret_context(id), &Secret::new(s)),
        )
    }

    /// The proxy password to store: sealed when a new one is given, the
    /// stored one kept, or none.
    fn proxy_secret(&self, id: &str, c: &Checked, stored: Option<&Vec<u8>>) -> Option<Vec<u8>> {
        use crate::proxy::SecretChange;
        c.proxy.as_ref().filter(|p| p.username.is_some())?;
        match &c.proxy_secret {
            SecretChange::Set(s) => Some(
                self.keys
                    .seal(&crate::proxy::account_secret_context(id), &Secret::new(s.as_str())),
            ),
            SecretChange::Keep => stored.cloned(),
            SecretChange::Clear => None,
        }
    }

    /// The status a new or re-configured OAuth account starts in.
    fn oauth_start_status(oauth: Option<&crate::oauth::OAuthSettings>) -> AccountStatus {
        match oauth.map(|o| o.flow) {
            Some(crate::oauth::Flow::AuthorizationCode) => AccountStatus::AuthorizationRequired,
            _ => AccountStatus::Unverified,
        }
    }

    /// Creates an account of the tenant from a checked input.
    pub async fn create_account(&self, tenant: &str, input: AccountInput) -> Result<AccountView> {
        let mut draft = Draft::empty();
        draft.apply(input);
        let c = check(&draft, true)?;
        let id = crate::store::new_id();
        let backup = resolve_backup(&self.store, tenant, &id, draft.backup.as_deref()).await?;
        let now = crate::now_ms();
        let secret = match c.auth_method {
            AuthMethod::GoogleServiceAccount => draft.new_service_account_key.as_deref().map(str::trim),
            AuthMethod::Password => draft.new_secret.as_deref(),
            _ => None,
        }
        .filter(|s| !s.is_empty())
        .map(|s| self.keys.seal(&secret_context(&id), &Secret::new(s)));
        let oauth_json = c
            .oauth
            .as_ref()
            .map(|o| serde_json::to_string(o).expect("serializable"));
        let client_secret = c.oauth.as_ref().and_then(|_| self.seal_client_secret(&id, &draft));
        let start_status = Self::oauth_start_status(c.oauth.as_ref());
        let proxy_secret = self.proxy_secret(&id, &c, None);
        let row = Account {
            id,
            tenant_id: tenant.to_string(),
            name: c.name,
            provider: c.provider,
            host: c.host,
            port: c.port,
            security: c.security,
            auth_method: c.auth_method,
            username: c.username,
            secret,
            oauth: oauth_json,
            oauth_client_secret: client_secret,
            from_address: c.from_address,
            from_name: c.from_name,
            tls_ca_pem: c.ca_pem,
            tls_skip_verify: c.skip_verify,
            tls_pin_sha256: c.pin_sha256,
            proxy: c.proxy.as_ref().map(|p| p.to_stored()),
            proxy_secret,
            timeout_secs: c.timeout_secs,
            limit_connections: c.limits.0,
            limit_per_minute: c.limits.1,
            limit_per_day: c.limits.2,
            backup_account: backup,
            status: start_status,
            status_message: None,
            last_report: None,
            created_at: now,
            updated_at: now,
        };
        self.store
            .insert_account(&AccountRow::from(&row))
            .await
            .on_duplicate(|| {
                Error::field(
                    "name",
                    format!(
                        "an account named '{}' exists already: choose another name or edit that account",
                        row.name
                    ),
                )
            })?;
        tracing::info!(account = %row.id, tenant, provider = %row.provider, host = %row.host, "account created");
        self.account_view(&row).await
    }

    /// The tenant's account by id or name.
    pub async fn find_account(&self, tenant: &str, id_or_name: &str) -> Result<Account> {
        self.store
            .find_account(tenant, id_or_name)
            .await?
            .ok_or_else(|| Error::NotFound(format!("account '{id_or_name}'")))
    }

    /// The tenant's accounts, as the API shows them.
    pub async fn list_accounts(&self, tenant: &str) -> Result<Vec<AccountView>> {
        let mut out = Vec::new();
        for r in self.store.list_accounts(tenant).await? {
            out.push(self.account_view(&r).await?);
        }
        Ok(out)
    }

    /// Applies an edit: absent fields keep their values, an absent secret keeps the secret.
    pub async fn edit_account(&self, tenant: &str, id_or_name: &str, input: AccountInput) -> Result<AccountView> {
        let old = self.find_account(tenant, id_or_name).await?;
        let mut draft = Draft::from_account(&old);
        draft.apply(input);
        let c = check(&draft, false)?;
        let backup = resolve_backup(&self.store, tenant, &old.id, draft.backup.as_deref()).await?;
        let secret = match c.auth_method {
            AuthMethod::GoogleServiceAccount => match draft.new_service_account_key.as_deref().map(str::trim) {
                Some(k) if !k.is_empty() => Some(self.keys.seal(&secret_context(&old.id), &Secret::new(k))),
                _ if draft.has_service_account_key => old.secret.clone(),
                _ => None,
            },
            AuthMethod::Password => match draft.new_secret.as_deref() {
                Some(s) if !s.is_empty() => Some(self.keys.seal(&secret_context(&old.id), &Secret::new(s))),
                // A service account key is not a password.
                _ if old.auth_method == AuthMethod::Password => old.secret.clone(),
                _ => None,
            },
            _ => None,
        };
        let oauth_json = c
            .oauth
            .as_ref()
            .map(|o| serde_json::to_string(o).expect("serializable"));
        let client_secret = match c.oauth {
            None => None,
            Some(_) => self
                .seal_client_secret(&old.id, &draft)
                .or_else(|| old.oauth_client_secret.clone()),
        };
        let proxy_secret = self.proxy_secret(&old.id, &c, old.proxy_secret.as_ref());
        let mut row = Account {
            tls_pin_sha256: c.pin_sha256,
            proxy: c.proxy.as_ref().map(|p| p.to_stored()),
            proxy_secret,
            oauth: oauth_json,
            oauth_client_secret: client_secret,
            name: c.name,
            provider: c.provider,
            host: c.host,
            port: c.port,
            security: c.security,
            auth_method: c.auth_method,
            username: c.username,
            secret,
            from_address: c.from_address,
            from_name: c.from_name,
            tls_ca_pem: c.ca_pem,
            tls_skip_verify: c.skip_verify,
            timeout_secs: c.timeout_secs,
            limit_connections: c.limits.0,
            limit_per_minute: c.limits.1,
            limit_per_day: c.limits.2,
            backup_account: backup,
            updated_at: crate::now_ms(),
            ..old.clone()
        };
        // A change to how Herald connects or signs in has not been proven yet.
        let connection_changed = row.provider != old.provider
            || row.host != old.host
            || row.port != old.port
            || row.security != old.security
            || row.auth_method != old.auth_method
            || row.username != old.username
            || row.secret != old.secret
            || row.tls_ca_pem != old.tls_ca_pem
            || row.tls_skip_verify != old.tls_skip_verify
            || row.tls_pin_sha256 != old.tls_pin_sha256
            || row.proxy != old.proxy
            || row.proxy_secret != old.proxy_secret;
        // Tokens belong to a provider, a client and a scope: any change to
        // those discards them, and a person must authorize again.
        let oauth_changed = crate::oauth::settings_of(&row) != crate::oauth::settings_of(&old)
            || row.oauth_client_secret != old.oauth_client_secret
            || row.auth_method != old.auth_method
            // A service account's token is for its key and for the sender it acts as.
            || (row.auth_method == AuthMethod::GoogleServiceAccount
                && (row.secret != old.secret || row.from_address != old.from_address));
        self.store
            .update_account(&AccountRow::from(&row))
            .await
            .on_duplicate(|| {
                Error::field(
                    "name",
                    format!("an account named '{}' exists already: choose another name", row.name),
                )
            })?;
        if oauth_changed {
            self.store.delete_tokens(&row.id).await?;
        }
        let status = self
            .health
            .observe(
                &row,
                Observation::Reconfigured {
                    connection_changed,
                    oauth_changed,
                    auth_method: row.auth_method,
                    oauth_start: Self::oauth_start_status(c.oauth.as_ref()),
                },
            )
            .await?
            .status;
        if status != row.status {
            row.status = status;
            row.status_message = None;
        }
        tracing::info!(account = %row.id, tenant, connection_changed, oauth_changed, "account edited");
        self.account_view(&row).await
    }

    /// Deletes the tenant's account.
    pub async fn delete_account(&self, tenant: &str, id_or_name: &str) -> Result<()> {
        let row = self.find_account(tenant, id_or_name).await?;
        self.store.delete_account(tenant, &row.id).await?;
        tracing::info!(account = %row.id, tenant, "account deleted");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::is_mask;

    #[test]
    fn the_mask_and_any_run_of_stars_are_no_secret() {
        assert!(is_mask("********"), "the transcript's mask");
        assert!(is_mask("*"));
        assert!(!is_mask(""));
        assert!(!is_mask("pa**word"));
        assert!(!is_mask(" ******** "));
    }
}
