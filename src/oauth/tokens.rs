//! The token manager: an access token is served from the store until shortly
//! before it expires, then refreshed once per account however many sends are
//! waiting (a lock in this process, and a lease row in the database for
//! other nodes). A rotated refresh token is written before the new access
//! token is handed out, so a crash cannot lose the only valid refresh token.

use super::{Flow, OAuthSettings, client_secret, settings_of, token_client, token_context};
use crate::domain::Account;
use crate::health::{Health, Observation};
use crate::secrets::{Keyring, Secret};
use crate::store::Store;
use oauth2::basic::{BasicErrorResponse, BasicErrorResponseType};
use oauth2::{RefreshToken, RequestTokenError, Scope, TokenResponse};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

/// Refresh when the token has less than this left, so it cannot expire
/// mid-session; a token that lives less than three minutes gets a third of
/// its lifetime instead (see `margin_ms`).
const MARGIN_MS: i64 = 60_000;
/// How long one node may hold the refresh lease.
const LEASE_MS: i64 = 30_000;

/// Why no token could be had.
#[derive(Debug, Clone)]
pub enum TokenProblem {
    /// The grant is gone (invalid_grant, interaction_required, consent): a person must reauthorize.
    Expired(String),
    /// A setting is wrong (invalid_client, unauthorized_client, invalid_scope): names what to fix.
    Configuration(String),
    /// The server is down or slow, or the network failed: try again later.
    Unavailable(String),
}

impl TokenProblem {
    pub fn message(&self) -> &str {
        match self {
            TokenProblem::Expired(m) | TokenProblem::Configuration(m) | TokenProblem::Unavailable(m) => m,
        }
    }
}

/// Which stored access token may be served.
#[derive(Debug, Clone, Copy)]
enum Accept {
    /// One with more than the refresh margin left; any other is refreshed.
    BeforeMargin,
    /// One a refresh we waited for just stored: until it expires, however
    /// short-lived, or every waiter would refresh again in turn.
    Unexpired,
}

/// The refresh margin of a token stored at `issued_at` expiring at
/// `expires_at`: a minute, but at most a third of its lifetime, so a token
/// that lives 30 s is not stale the moment it arrives.
fn margin_ms(issued_at: i64, expires_at: i64) -> i64 {
    MARGIN_MS.min((expires_at - issued_at).max(0) / 3)
}

/// A usable access token, and whether it was just obtained.
pub struct AccessToken {
    pub token: Secret,
    pub fresh: bool,
}

fn from_error_code(code: &str, description: Option<&str>) -> TokenProblem {
    let detail = match description {
        Some(d) => format!("{code}: {d}"),
        None => code.to_string(),
    };
    match code {
        "invalid_grant" | "interaction_required" | "consent_required" | "login_required" | "access_denied" => {
            TokenProblem::Expired(detail)
        }
        "invalid_client" => TokenProblem::Configuration(format!(
            "{detail} — the client id or client secret is wrong or the secret expired: fix auth.oauth.client_id / auth.oauth.client_secret"
        )),
        "unauthorized_client" => TokenProblem::Configuration(format!(
            "{detail} — this client may not use this grant: check the app registration (redirect URI, grant types) and auth.oauth.flow"
        )),
        "invalid_scope" => {
            TokenProblem::Configuration(format!("{detail} — the scope is not allowed: fix auth.oauth.scope"))
        }
        "invalid_request" | "unsupported_grant_type" => {
            TokenProblem::Configuration(format!("{detail} — check auth.oauth.token_url and auth.oauth.flow"))
        }
        _ => TokenProblem::Unavailable(detail),
    }
}

/// Sorts a token endpoint failure into expired, configuration or unavailable.
pub fn classify<RE: std::error::Error + 'static>(e: &RequestTokenError<RE, BasicErrorResponse>) -> TokenProblem {
    match e {
        RequestTokenError::ServerResponse(r) => {
            let code = match r.error() {
                BasicErrorResponseType::InvalidGrant => "invalid_grant".to_string(),
                BasicErrorResponseType::InvalidClient => "invalid_client".to_string(),
                BasicErrorResponseType::UnauthorizedClient => "unauthorized_client".to_string(),
                BasicErrorResponseType::InvalidScope => "invalid_scope".to_string(),
                BasicErrorResponseType::InvalidRequest => "invalid_request".to_string(),
                BasicErrorResponseType::UnsupportedGrantType => "unsupported_grant_type".to_string(),
                BasicErrorResponseType::Extension(s) => s.clone(),
            };
            from_error_code(&code, r.error_description().map(String::as_str))
        }
        // An error answered with a body the client could not read as a token:
        // a JSON error (some servers send it with HTTP 200) or an HTML 5xx page.
        RequestTokenError::Parse(_, body) => {
            let v: Option<serde_json::Value> = serde_json::from_slice(body).ok();
            match v.as_ref().and_then(|v| v["error"].as_str()) {
                Some(code) => from_error_code(code, v.as_ref().and_then(|v| v["error_description"].as_str())),
                None => {
                    let text: String = String::from_utf8_lossy(body).chars().take(120).collect();
                    TokenProblem::Unavailable(format!(
                        "the token endpoint answered something that is not a token: {text}"
                    ))
                }
            }
        }
        RequestTokenError::Request(e) => {
            let mut msg = e.to_string();
            let mut refused = false;
            let mut src = e.source();
            while let Some(s) = src {
                msg = format!("{msg}: {s}");
                refused |= s.is::<crate::netguard::Refused>();
                src = s.source();
            }
            if refused {
                // Waiting will not help: the endpoint's name points inside the platform.
                return TokenProblem::Configuration(format!("the token endpoint was not called: {msg}"));
            }
            TokenProblem::Unavailable(format!("the token endpoint could not be reached: {msg}"))
        }
        RequestTokenError::Other(m) => TokenProblem::Unavailable(m.clone()),
    }
}

/// Access tokens of OAuth2 accounts, refreshed single-flight.
#[derive(Clone)]
pub struct Tokens {
    store: Store,
    keys: Keyring,
    /// HTTP client for the token endpoints.
    http: super::TokenHttp,
    /// One refresh at a time per account in this process.
    locks: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    health: Health,
}

impl Tokens {
    /// The token manager over the store; tokens are sealed with `keys`.
    pub fn new(store: Store, keys: Keyring, http: super::TokenHttp, health: Health) -> Tokens {
        Tokens {
            store,
            keys,
            http,
            locks: Arc::default(),
            health,
        }
    }

    /// A valid access token for the account; `force` refreshes even a token
    /// that looks valid (after the server rejected it).
    pub async fn access_token(&self, row: &Account, force: bool) -> Result<AccessToken, TokenProblem> {
        // A service account has no OAuth settings: its key is its secret.
        let settings = if row.auth_method == crate::status::AuthMethod::GoogleServiceAccount {
            None
        } else {
            Some(
                settings_of(row)
                    .ok_or_else(|| TokenProblem::Configuration("the account has no OAuth settings".into()))?,
            )
        };
        let internal =
            |e: crate::store::StoreError| TokenProblem::Unavailable(crate::error::Error::from(e).to_string());
        let seen = self.store.get_tokens(&row.id).await.map_err(internal)?;
        if !force && let Some(t) = self.cached(row, seen.as_ref(), Accept::BeforeMargin) {
            return Ok(AccessToken { token: t, fresh: false });
        }
        let seen_generation = seen.as_ref().map(|t| t.generation);

        // One refresh per account in this process: later callers wait here
        // and then find the token the first one stored.
        let lock = {
            let mut locks = self.locks.lock().expect("oauth locks");
            locks
                .entry(row.id.clone())
                .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(())))
                .clone()
        };
        let _guard = lock.lock().await;
        let now_row = self.store.get_tokens(&row.id).await.map_err(internal)?;
        if now_row.as_ref().map(|t| t.generation) != seen_generation
            && let Some(t) = self.cached(row, now_row.as_ref(), Accept::Unexpired)
        {
            return Ok(AccessToken { token: t, fresh: true });
        }
        if settings.as_ref().is_some_and(|s| s.flow == Flow::AuthorizationCode)
            && now_row.as_ref().and_then(|t| t.refresh_token.as_ref()).is_none()
        {
            return Err(TokenProblem::Expired(
                "no refresh token is stored: the account was never authorized".into(),
            ));
        }
        if now_row.is_none() {
            // Client credentials, service account: create the row so the lease has something to hold.
            let now = crate::now_ms();
            self.store
                .put_tokens(&crate::store::oauth::TokenRow {
                    account_id: row.id.clone(),
                    access_token: None,
                    access_expires_at: None,
                    refresh_token: None,
                    refresh_expires_at: None,
                    generation: 0,
                    refresh_lock_until: None,
                    updated_at: now,
                })
                .await
                .map_err(internal)?;
        }

        // One refresh per account across nodes: a lease row in the database.
        let deadline = tokio::time::Instant::now() + Duration::from_millis(LEASE_MS as u64);
        loop {
            let now = crate::now_ms();
            if self
                .store
                .lock_refresh(&row.id, now, now + LEASE_MS)
                .await
                .map_err(internal)?
            {
                break;
            }
            // Another node is refreshing: wait for its result.
            let other = self.store.get_tokens(&row.id).await.map_err(internal)?;
            if other.as_ref().map(|t| t.generation) != now_row.as_ref().map(|t| t.generation)
                && let Some(t) = self.cached(row, other.as_ref(), Accept::Unexpired)
            {
                return Ok(AccessToken { token: t, fresh: true });
            }
            if tokio::time::Instant::now() > deadline {
                return Err(TokenProblem::Unavailable(
                    "another node is refreshing this account's token and has not finished".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        // The lease is ours, but another node may have refreshed between our
        // read and our lease: use its token, or at least its (rotated) refresh token.
        let current = self.store.get_tokens(&row.id).await.map_err(internal)?;
        if current.as_ref().map(|t| t.generation) != now_row.as_ref().map(|t| t.generation)
            && let Some(t) = self.cached(row, current.as_ref(), Accept::Unexpired)
        {
            let _ = self.store.unlock_refresh(&row.id).await;
            return Ok(AccessToken { token: t, fresh: true });
        }
        let result = match &settings {
            Some(settings) => self.request_token(row, settings, current.as_ref()).await,
            None => self.request_service_account_token(row).await,
        };
        match result {
            Ok(t) => Ok(AccessToken { token: t, fresh: true }),
            Err(problem) => {
                let _ = self.store.unlock_refresh(&row.id).await;
                self.note_token_problem(row, &problem).await;
                Err(problem)
            }
        }
    }

    fn cached(&self, row: &Account, t: Option<&crate::store::oauth::TokenRow>, accept: Accept) -> Option<Secret> {
        let t = t?;
        let exp = t.access_expires_at?;
        let left = exp - crate::now_ms();
        let usable = match accept {
            Accept::BeforeMargin => left > margin_ms(t.updated_at, exp),
            Accept::Unexpired => left > 0,
        };
        if !usable {
            return None;
        }
        self.keys
            .open(&token_context(&row.id, "access"), t.access_token.as_deref()?)
            .ok()
    }

    async fn request_token(
        &self,
        row: &Account,
        settings: &OAuthSettings,
        stored: Option<&crate::store::oauth::TokenRow>,
    ) -> Result<Secret, TokenProblem> {
        let secret = client_secret(row, &self.keys).map_err(|e| TokenProblem::Configuration(format!("{e}")))?;
        let http = self
            .http
            .for_account_via_proxy(&self.store, &self.keys, row, &settings.token_url)
            .await?;
        let client =
            token_client(settings, secret.as_ref(), None).map_err(|e| TokenProblem::Configuration(format!("{e}")))?;
        let now = crate::now_ms();
        let response = match settings.flow {
            Flow::AuthorizationCode => {
                // Gone if the settings changed while we waited: a person must sign in again.
                let sealed = stored.and_then(|t| t.refresh_token.as_deref()).ok_or_else(|| {
                    TokenProblem::Expired("the tokens were discarded (the OAuth settings changed)".into())
                })?;
                let refresh = self
                    .keys
                    .open(&token_context(&row.id, "refresh"), sealed)
                    .map_err(|e| TokenProblem::Configuration(format!("{e}")))?;
                client
                    .exchange_refresh_token(&RefreshToken::new(refresh.expose().to_string()))
                    .request_async(&http)
                    .await
            }
            Flow::ClientCredentials => {
                let mut req = client.exchange_client_credentials();
                for s in settings.scope.split_whitespace() {
                    req = req.add_scope(Scope::new(s.to_string()));
                }
                req.request_async(&http).await
            }
        };
        let tokens = response.map_err(|e| classify(&e))?;
        let access = tokens.access_token().secret().clone();
        let expires_at = now + tokens.expires_in().unwrap_or(Duration::from_secs(3600)).as_millis() as i64;
        let rotated = tokens.refresh_token().map(|r| {
            self.keys
                .seal(&token_context(&row.id, "refresh"), &Secret::new(r.secret().clone()))
        });
        let refresh_exp = tokens
            .extra_fields()
            .refresh_token_expires_in
            .map(|s| now + s as i64 * 1000);
        self.store
            .store_refreshed(
                &row.id,
                &self
                    .keys
                    .seal(&token_context(&row.id, "access"), &Secret::new(access.clone())),
                expires_at,
                rotated.as_deref(),
                refresh_exp,
            )
            .await
            .map_err(|e| TokenProblem::Unavailable(format!("{e}")))?;
        tracing::info!(account = %row.id, rotated = rotated.is_some(), "access token refreshed");
        Ok(Secret::new(access))
    }

    /// A token for a service account to act as the account's sender (`sub`),
    /// stored like any other access token.
    async fn request_service_account_token(&self, row: &Account) -> Result<Secret, TokenProblem> {
        use super::service_account::{ServiceAccountKey, request};
        // The key is the account's secret, sealed under the same context as a password.
        let sealed = row.secret.as_deref().ok_or_else(|| {
            TokenProblem::Configuration("no service account key is stored: set auth.service_account_key".into())
        })?;
        let json = self
            .keys
            .open(&format!("account:{}:secret", row.id), sealed)
            .map_err(|e| TokenProblem::Configuration(format!("{e}")))?;
        let key = ServiceAccountKey::parse(json.expose())
            .map_err(|e| TokenProblem::Configuration(format!("auth.service_account_key {e}")))?;
        // A tenant's token endpoint must be public, like any other (netguard).
        let http = self
            .http
            .for_account(row, key.token_uri())
            .map_err(|refused| TokenProblem::Configuration(format!("the token endpoint was not called: {refused}")))?;
        let now = crate::now_ms();
        let (access, lifetime) = request(http, &key, row.from_address.as_str()).await?;
        let expires_at = now + lifetime.as_millis() as i64;
        self.store
            .store_refreshed(
                &row.id,
                &self.keys.seal(&token_context(&row.id, "access"), &access),
                expires_at,
                None,
                None,
            )
            .await
            .map_err(|e| TokenProblem::Unavailable(format!("{e}")))?;
        tracing::info!(account = %row.id, service_account = %key.client_email, "service account token obtained");
        Ok(access)
    }

    /// Puts what a token failure means on the account, where people look;
    /// an endpoint that is down says nothing about the account.
    pub async fn note_token_problem(&self, row: &Account, problem: &TokenProblem) {
        let observation = match problem {
            TokenProblem::Expired(detail) => {
                tracing::warn!(account = %row.id, detail, "authorization expired");
                Observation::GrantRevoked
            }
            TokenProblem::Configuration(m) => Observation::TokenRequestRefused { message: m.clone() },
            TokenProblem::Unavailable(_) => return,
        };
        if let Err(e) = self.health.observe(row, observation).await {
            tracing::error!(account = %row.id, error = %e, "could not record the account's state");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{MARGIN_MS, margin_ms};

    #[test]
    fn the_margin_scales_with_short_lifetimes() {
        assert_eq!(margin_ms(0, 3_600_000), MARGIN_MS, "an hour-long token: a minute");
        assert_eq!(margin_ms(0, 180_000), MARGIN_MS);
        assert_eq!(margin_ms(0, 30_000), 10_000, "a 30 s token: a third");
        assert_eq!(margin_ms(5_000, 5_000), 0, "expired as issued");
        assert_eq!(margin_ms(5_000, 1_000), 0, "a clock that went back");
    }
}
