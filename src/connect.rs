//! Opening an authenticated SMTP session for an account: the password from
//! the sealed secret, or an OAuth2 access token from the token manager, with
//! one forced refresh and retry when the server rejects a token that was not
//! fresh. Shared by the test email and the delivery worker.

use crate::diagnosis::{Condition, Failure, Stage};
use crate::domain::Account;
use crate::error::{Error, Result};
use crate::health::{Health, Observation};
use crate::netguard::{AllowList, NetPolicy};
use crate::oauth::tokens::{TokenProblem, Tokens};
use crate::secrets::Keyring;
use crate::smtp::{Credentials, Dialer, Direct, ServerSettings, Session, Transcript};
use crate::status::AuthMethod;
use crate::store::Store;
use std::sync::Arc;
use std::time::Duration;

/// The context an account's password is sealed under.
pub(crate) fn secret_context(account_id: &str) -> String {
    format!("account:{account_id}:secret")
}

/// Identifies how the account connects and signs in: pooled sessions made
/// under other settings are not reused (a status change does not count).
pub fn connection_version(row: &Account) -> i64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (
        &row.host,
        row.port,
        row.security.as_str(),
        row.auth_method.as_str(),
        &row.username,
        &row.secret,
    )
        .hash(&mut h);
    (
        &row.oauth,
        &row.oauth_client_secret,
        &row.tls_ca_pem,
        row.tls_skip_verify,
        row.from_address.as_str(),
    )
        .hash(&mut h);
    (&row.tls_pin_sha256, &row.proxy, &row.proxy_secret).hash(&mut h);
    h.finish() as i64
}

/// How to reach and sign in to the account's server; `net` says which
/// addresses its host may resolve to.
pub fn server_settings(row: &Account, net: NetPolicy) -> ServerSettings {
    ServerSettings {
        host: row.host.clone(),
        port: row.port,
        security: row.security,
        ca_pem: row.tls_ca_pem.clone(),
        skip_verify: row.tls_skip_verify,
        pin_sha256: row
            .tls_pin_sha256
            .as_deref()
            .and_then(|p| crate::smtp::certificate::parse_pin(p).ok()),
        timeout: Duration::from_secs(row.timeout_secs.max(1)),
        helo_name: helo_name(row.from_address.ascii_domain()),
        net,
    }
}

/// The EHLO name: the sender's domain (in A-labels), a name the server can
/// relate to us.
fn helo_name(domain: &str) -> String {
    if domain.is_empty() {
        "localhost".into()
    } else {
        domain.to_string()
    }
}

/// The credentials, decrypted for the one session that needs them.
pub fn credentials(row: &Account, keys: &Keyring) -> Result<Credentials> {
    match row.auth_method {
        AuthMethod::None => Ok(Credentials::None),
        AuthMethod::Password => {
            let sealed = row
                .secret
                .as_deref()
                .ok_or_else(|| Error::field("auth.secret", "no secret is stored: set auth.secret"))?;
            let secret = keys.open(&secret_context(&row.id), sealed)?;
            Ok(Credentials::Password {
                username: row.login(),
                secret,
            })
        }
        AuthMethod::OAuth2 | AuthMethod::GoogleServiceAccount => Err(Error::field(
            "auth.method",
            "oauth2 and google_service_account sign in with an access token, not a stored secret",
        )),
    }
}

fn token_failure(p: &TokenProblem) -> Failure {
    let condition = match p {
        TokenProblem::Expired(_) => Condition::OauthExpired,
        TokenProblem::Configuration(_) => Condition::OauthConfiguration,
        TokenProblem::Unavailable(_) => Condition::OauthUnavailable,
    };
    Failure::condition(Stage::OauthToken, condition, p.message().to_string())
}

/// Opens authenticated sessions for accounts.
#[derive(Clone)]
pub struct Connector {
    store: Store,
    keys: Keyring,
    tokens: Tokens,
    health: Health,
    allow: Arc<AllowList>,
    dkim: crate::dkim::Dkim,
}

impl Connector {
    /// Passwords are opened with `keys`; access tokens come from `tokens`;
    /// a tenant's servers (and its own proxy) must be public or on `allow`;
    /// messages are signed with the tenant's DKIM keys.
    pub fn new(
        store: Store,
        keys: Keyring,
        tokens: Tokens,
        health: Health,
        allow: Arc<AllowList>,
        dkim: crate::dkim::Dkim,
    ) -> Connector {
        Connector {
            store,
            keys,
            tokens,
            health,
            allow,
            dkim,
        }
    }

    /// The message as composed for the account, DKIM-signed when the
    /// account's tenant has a key for the sender's domain.
    pub async fn sign(&self, row: &Account, raw: Vec<u8>) -> Vec<u8> {
        self.dkim.sign(&row.tenant_id, &row.from_address, raw).await
    }

    /// The platform's accounts may use internal relays; a tenant's may not.
    pub fn net_policy(&self, row: &Account) -> NetPolicy {
        if row.tenant_id == crate::store::PLATFORM {
            NetPolicy::unrestricted()
        } else {
            NetPolicy::restricted(self.allow.clone())
        }
    }

    /// How the account's server is reached: through its proxy (its own, else
    /// the platform default), else directly. A tenant's own proxy must be on
    /// an address the tenant may reach; the platform's default proxy is the
    /// platform admin's choice, wherever it is.
    async fn dialer(&self, row: &Account, transcript: &Transcript) -> std::result::Result<Box<dyn Dialer>, Failure> {
        match crate::proxy::route_for(&self.store, &self.keys, row).await {
            Ok(Some(mut route)) => {
                if route.source == crate::proxy::Source::Account {
                    route.dialer.net = self.net_policy(row);
                } else {
                    transcript.note("the account has no proxy of its own: the platform default proxy applies");
                }
                Ok(Box::new(route.dialer))
            }
            Ok(None) => Ok(Box::new(Direct)),
            Err(e) => Err(Failure::condition(
                Stage::Proxy,
                Condition::ProxyUnreachable,
                format!("the proxy settings could not be read: {e}"),
            )),
        }
    }

    /// A session signed in as the account, recorded into `transcript`.
    pub async fn open_session(&self, row: &Account, transcript: &Transcript) -> std::result::Result<Session, Failure> {
        let settings = server_settings(row, self.net_policy(row));
        let dialer = self.dialer(row, transcript).await?;
        if !row.auth_method.uses_tokens() {
            let credentials = credentials(row, &self.keys)
                .map_err(|e| Failure::condition(Stage::Auth, Condition::AuthUnsupported, e.to_string()))?;
            return Session::open_with(dialer.as_ref(), &settings, &credentials, transcript.clone()).await;
        }
        let username = row.login();
        let mut token = self
            .tokens
            .access_token(row, false)
            .await
            .map_err(|p| token_failure(&p))?;
        loop {
            transcript.note(if token.fresh {
                "using a new OAuth2 access token"
            } else {
                "using the cached OAuth2 access token"
            });
            let credentials = Credentials::XOAuth2 {
                username: username.clone(),
                token: token.token.clone(),
            };
            match Session::open_with(dialer.as_ref(), &settings, &credentials, transcript.clone()).await {
                // The server refused a token we had not just obtained: it may
                // have been revoked early. Get a new one and try once more.
                Err(f) if f.stage() == Stage::Auth && f.reply().is_some() && !token.fresh => {
                    transcript.note("the server refused the access token: requesting a new one");
                    token = self
                        .tokens
                        .access_token(row, true)
                        .await
                        .map_err(|p| token_failure(&p))?;
                }
                // Refused with a token that is fresh: the grant no longer lets us send.
                Err(f) if f.stage() == Stage::Auth && f.reply().is_some() => {
                    if let Err(e) = self.health.observe(row, Observation::FreshTokenRefused).await {
                        tracing::error!(account = %row.id, error = %e, "could not record the account's state");
                    }
                    return Err(f);
                }
                other => return other,
            }
        }
    }
}
