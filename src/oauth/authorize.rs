//! The authorization-code flow: a one-time state and a PKCE challenge bound
//! to the account and its OAuth settings, and the callback that exchanges the
//! code, stores the tokens sealed and releases the held messages.

use super::tokens;
use super::{Authorization, Authorized};
use super::{Flow, STATE_TTL_MS, client_secret, fingerprint, settings_of, token_client, token_context};
use crate::error::{Error, Result};
use crate::health::{Health, Observation};
use crate::secrets::{Keyring, Secret};
use crate::store::Store;
use crate::store::oauth::{StateRow, TokenRow};
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, CsrfToken, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    TokenResponse,
};
use std::time::Duration;

/// Authorizations: starting the OAuth2 sign-in of an account and completing
/// it from the provider's redirect.
#[derive(Clone)]
pub struct Authorizations {
    store: Store,
    keys: Keyring,
    http: super::TokenHttp,
    /// `HERALD_PUBLIC_URL/oauth2/callback`.
    redirect_uri: String,
    health: Health,
}

impl Authorizations {
    /// The flow over the store, sealing tokens with `keys`.
    pub fn new(
        store: Store,
        keys: Keyring,
        http: super::TokenHttp,
        redirect_uri: String,
        health: Health,
    ) -> Authorizations {
        Authorizations {
            store,
            keys,
            http,
            redirect_uri,
            health,
        }
    }

    /// Starts an authorization: a one-time state and a PKCE challenge, bound to
    /// this account and its current settings. `redirect_uri` defaults to
    /// `HERALD_PUBLIC_URL/oauth2/callback`; the CLI passes its loopback one.
    pub async fn begin_authorization(
        &self,
        tenant: &str,
        id_or_name: &str,
        redirect_uri: Option<String>,
    ) -> Result<Authorization> {
        let row = self
            .store
            .find_account(tenant, id_or_name)
            .await?
            .ok_or_else(|| Error::NotFound(format!("account '{id_or_name}'")))?;
        let Some(settings) = settings_of(&row).filter(|_| row.auth_method == crate::status::AuthMethod::OAuth2) else {
            return Err(Error::Conflict(format!(
                "account '{}' does not sign in with OAuth2 (auth.method is {})",
                row.name, row.auth_method
            )));
        };
        if settings.flow == Flow::ClientCredentials {
            return Err(Error::Conflict(
                "this account uses the client credentials flow: no one signs in; send a test email to request a token"
                    .into(),
            ));
        }
        let redirect_uri = redirect_uri.unwrap_or_else(|| self.redirect_uri.clone());
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let auth_url = AuthUrl::new(settings.authorize_url.clone())
            .map_err(|e| Error::field("auth.oauth.authorize_url", e.to_string()))?;
        let client = oauth2::basic::BasicClient::new(ClientId::new(settings.client_id.clone()))
            .set_auth_uri(auth_url)
            .set_redirect_uri(
                RedirectUrl::new(redirect_uri.clone()).map_err(|e| anyhow::anyhow!("redirect URI: {e}"))?,
            );
        let mut req = client
            .authorize_url(CsrfToken::new_random)
            .set_pkce_challenge(challenge);
        for s in settings.scope.split_whitespace() {
            req = req.add_scope(Scope::new(s.to_string()));
        }
        for (k, v) in &settings.authorize_params {
            req = req.add_extra_param(k.clone(), v.clone());
        }
        if let Some(u) = row.username.as_deref().filter(|u| u.contains('@')) {
            req = req.add_extra_param("login_hint", u.to_string());
        }
        let (url, state) = req.url();
        let now = crate::now_ms();
        self.store
            .insert_state(&StateRow {
                state_hash: crate::secrets::token_hash(state.secret()),
                account_id: row.id.clone(),
                tenant_id: tenant.to_string(),
                verifier: self
                    .keys
                    .seal(&token_context(&row.id, "pkce"), &Secret::new(verifier.secret().clone())),
                redirect_uri: redirect_uri.clone(),
                fingerprint: fingerprint(&row),
                created_at: now,
                expires_at: now + STATE_TTL_MS,
                used_at: None,
            })
            .await?;
        tracing::info!(account = %row.id, "authorization started");
        Ok(Authorization {
            authorize_url: url.to_string(),
            redirect_uri,
            expires_at: crate::rfc3339(now + STATE_TTL_MS),
        })
    }

    /// Completes an authorization from the redirect: checks the state and the
    /// issuer the redirect names (`iss`, when it names one), exchanges the
    /// code with the PKCE verifier, stores the tokens sealed, marks the
    /// account ready and releases its held messages. Nothing is stored on
    /// failure, and the state is spent either way.
    pub async fn complete_authorization(&self, state: &str, code: &str, iss: Option<&str>) -> Result<Authorized> {
        let bad = |m: &str| Error::field("state", m.to_string());
        let now = crate::now_ms();
        let st = self
            .store
            .take_state(&crate::secrets::token_hash(state), now)
            .await?
            .ok_or_else(|| bad("is unknown or was already used: start the authorization again"))?;
        if st.expires_at < now {
            return Err(bad("has expired: start the authorization again"));
        }
        let row = self
            .store
            .find_account(&st.tenant_id, &st.account_id)
            .await?
            .ok_or_else(|| bad("belongs to an account that no longer exists"))?;
        if fingerprint(&row) != st.fingerprint || row.auth_method != crate::status::AuthMethod::OAuth2 {
            return Err(bad(
                "was issued before the account's OAuth settings changed: start the authorization again",
            ));
        }
        let settings = settings_of(&row).ok_or_else(|| bad("belongs to an account without OAuth settings"))?;
        // A mix-up: the code came from another authorization server than the
        // one this authorization was started at. Never send it anywhere.
        if let Some(iss) = iss
            && !settings.issued_by(iss)
        {
            return Err(Error::field(
                "iss",
                format!(
                    "the redirect names the issuer {iss}, but this account signs in at {}: \
                     the response came from another authorization server and was refused. \
                     Start the authorization again",
                    settings
                        .issuer
                        .as_deref()
                        .unwrap_or("an authorization server without a known issuer")
                ),
            ));
        }
        let verifier = self.keys.open(&token_context(&row.id, "pkce"), &st.verifier)?;
        let secret = client_secret(&row, &self.keys)?;
        let client = token_client(&settings, secret.as_ref(), Some(&st.redirect_uri))?;
        let http = self
            .http
            .for_account_via_proxy(&self.store, &self.keys, &row, &settings.token_url)
            .await
            .map_err(|problem| match problem {
                tokens::TokenProblem::Configuration(m) => Error::field("oauth.token_url", m),
                other => Error::Conflict(other.message().to_string()),
            })?;
        let tokens = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.expose().to_string()))
            .request_async(&http)
            .await
            .map_err(|e| {
                let problem = tokens::classify(&e);
                Error::field(
                    "code",
                    format!("the token endpoint refused the code: {}", problem.message()),
                )
            })?;
        let refresh = tokens.refresh_token().map(|r| {
            self.keys
                .seal(&token_context(&row.id, "refresh"), &Secret::new(r.secret().clone()))
        });
        self.store
            .put_tokens(&TokenRow {
                account_id: row.id.clone(),
                access_token: Some(self.keys.seal(
                    &token_context(&row.id, "access"),
                    &Secret::new(tokens.access_token().secret().clone()),
                )),
                access_expires_at: Some(
                    now + tokens.expires_in().unwrap_or(Duration::from_secs(3600)).as_millis() as i64,
                ),
                refresh_token: refresh,
                refresh_expires_at: tokens
                    .extra_fields()
                    .refresh_token_expires_in
                    .map(|s| now + s as i64 * 1000),
                generation: 0,
                refresh_lock_until: None,
                updated_at: now,
            })
            .await?;
        let released = self.health.observe(&row, Observation::Authorized).await?.released;
        tracing::info!(account = %row.id, released, "account authorized");
        Ok(Authorized {
            account_id: row.id.clone(),
            account_name: row.name.clone(),
            released_messages: released,
        })
    }

    /// Spends a state the provider answered with an error, so it cannot be replayed.
    pub async fn discard_state(&self, state: &str) {
        let _ = self
            .store
            .take_state(&crate::secrets::token_hash(state), crate::now_ms())
            .await;
    }
}
