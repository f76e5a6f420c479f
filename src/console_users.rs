//! The web console's users and sessions: the platform admin and each tenant's
//! admins, their passwords (argon2), one-time setup links, server-side
//! sessions with a CSRF token each, the sign-in rate limit, and which console
//! page started an OAuth2 authorization (so the callback returns there).

use crate::error::{Error, Result};
use crate::store::console::{ConsoleUserRow, HourlyRow, WindowFilter};
use crate::store::messages::MessageRow;
use crate::store::{PLATFORM, Store};

/// The platform admin's user name.
pub const PLATFORM_ADMIN: &str = "admin";
/// How long a setup link works.
const SETUP_TTL_MS: i64 = 24 * 3600 * 1000;
/// How long a session lasts.
const SESSION_TTL_MS: i64 = 12 * 3600 * 1000;
/// Failed sign-ins allowed per user name and per address in `WINDOW_MS`.
pub const MAX_FAILURES: i64 = 5;
const WINDOW_MS: i64 = 15 * 60 * 1000;
/// Shortest password accepted.
pub const MIN_PASSWORD: usize = 10;

/// A signed-in console user.
#[derive(Debug, Clone)]
pub struct SessionUser {
    pub id: String,
    pub username: String,
    pub tenant: String,
    pub locale: Option<String>,
    pub csrf: String,
}

impl SessionUser {
    pub fn is_platform(&self) -> bool {
        self.tenant == PLATFORM
    }
}

/// Why a sign-in was refused.
#[derive(Debug)]
pub enum SignInError {
    /// Wrong user name or password (never says which).
    Wrong,
    /// Too many failures: try again in this many minutes.
    Limited(i64),
    Other(Error),
}

impl From<Error> for SignInError {
    fn from(e: Error) -> Self {
        SignInError::Other(e)
    }
}

impl From<crate::store::StoreError> for SignInError {
    fn from(e: crate::store::StoreError) -> Self {
        SignInError::Other(e.into())
    }
}

/// A new session: its cookie value (shown once) and the user.
pub struct NewSession {
    pub cookie: String,
    pub user: SessionUser,
}

/// The console's users and sessions.
#[derive(Clone)]
pub struct ConsoleUsers {
    store: Store,
    /// HERALD_PUBLIC_URL: where setup links point.
    public_url: String,
}

fn hash_password(password: &str) -> Result<String> {
    use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Internal(anyhow::anyhow!("hashing a password: {e}")))
}

fn verify_password(password: &str, hash: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    PasswordHash::new(hash)
        .map(|h| {
            argon2::Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A hash to verify against when the user does not exist, so that both cases take as long.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("not a password of anyone").unwrap_or_default())
}

/// Checks a new password; the message is for the `password` field.
pub fn check_password(password: &str, confirm: &str) -> Result<()> {
    if password.chars().count() < MIN_PASSWORD {
        return Err(Error::field(
            "password",
            format!("must be at least {MIN_PASSWORD} characters"),
        ));
    }
    if password != confirm {
        return Err(Error::field("confirm", "does not match the password"));
    }
    Ok(())
}

impl ConsoleUsers {
    pub fn new(store: Store, public_url: String) -> ConsoleUsers {
        ConsoleUsers { store, public_url }
    }

    /// Whether cookies must be `Secure` (the console is served over HTTPS).
    pub fn secure_cookies(&self) -> bool {
        self.public_url.starts_with("https://")
    }

    fn setup_link(&self, token: &str) -> String {
        format!("{}/setup/{token}", self.public_url)
    }

    async fn new_setup_link(&self, user_id: &str) -> Result<String> {
        let token = crate::secrets::new_token();
        let now = crate::now_ms();
        self.store
            .insert_setup_token(&crate::secrets::token_hash(&token), user_id, now, now + SETUP_TTL_MS)
            .await?;
        Ok(self.setup_link(&token))
    }

    async fn ensure_user(&self, tenant: &str, username: &str) -> Result<ConsoleUserRow> {
        if let Some(u) = self.store.console_user_by_name(username).await? {
            return Ok(u);
        }
        let now = crate::now_ms();
        let row = ConsoleUserRow {
            id: crate::store::new_id(),
            tenant_id: tenant.to_string(),
            username: username.to_string(),
            password_hash: None,
            locale: None,
            created_at: now,
            updated_at: now,
        };
        self.store.insert_console_user(&row).await?;
        Ok(row)
    }

    /// On `herald serve`: when the platform admin has no password yet, a
    /// setup link to set it (a new one at each start until it is used).
    pub async fn first_start_link(&self) -> Result<Option<String>> {
        let admin = self.ensure_user(PLATFORM, PLATFORM_ADMIN).await?;
        if admin.password_hash.is_some() {
            return Ok(None);
        }
        Ok(Some(self.new_setup_link(&admin.id).await?))
    }

    /// `herald admin reset-password`: a new setup link for a user (the
    /// platform admin by default); the password stays until it is used.
    pub async fn reset_link(&self, username: Option<&str>) -> Result<String> {
        let user = match username {
            None | Some(PLATFORM_ADMIN) => self.ensure_user(PLATFORM, PLATFORM_ADMIN).await?,
            Some(name) => self
                .store
                .console_user_by_name(name)
                .await?
                .ok_or_else(|| Error::NotFound(format!("console user '{name}'")))?,
        };
        self.new_setup_link(&user.id).await
    }

    /// Creates a tenant's admin and answers the setup link, shown once.
    pub async fn create_tenant_admin(&self, tenant: &str, username: &str) -> Result<String> {
        let username = username.trim();
        if username.is_empty() || username.len() > 100 || username.chars().any(|c| c.is_control() || c == ' ') {
            return Err(Error::field(
                "username",
                "is required: 1 to 100 characters without spaces, e.g. acme-admin",
            ));
        }
        if self.store.console_user_by_name(username).await?.is_some() {
            return Err(Error::field(
                "username",
                format!("'{username}' is taken: choose another user name"),
            ));
        }
        let user = self.ensure_user(tenant, username).await?;
        self.new_setup_link(&user.id).await
    }

    /// The console users of a tenant.
    pub async fn users_of(&self, tenant: &str) -> Result<Vec<(String, bool)>> {
        Ok(self
            .store
            .console_users_of(tenant)
            .await?
            .into_iter()
            .map(|u| (u.username, u.password_hash.is_some()))
            .collect())
    }

    /// The user name a setup link is for, while it works.
    pub async fn setup_user(&self, token: &str) -> Result<Option<String>> {
        let now = crate::now_ms();
        let Some(id) = self
            .store
            .setup_token_user(&crate::secrets::token_hash(token), now)
            .await?
        else {
            return Ok(None);
        };
        Ok(self.store.console_user(&id).await?.map(|u| u.username))
    }

    /// Sets the password through a setup link (single use) and signs in.
    pub async fn complete_setup(&self, token: &str, password: &str, confirm: &str) -> Result<NewSession> {
        check_password(password, confirm)?;
        let now = crate::now_ms();
        let hash_of_token = crate::secrets::token_hash(token);
        let user_id = self
            .store
            .setup_token_user(&hash_of_token, now)
            .await?
            .ok_or_else(|| Error::field("token", "this setup link was used or has expired"))?;
        let password = password.to_string();
        let hash = tokio::task::spawn_blocking(move || hash_password(&password))
            .await
            .map_err(anyhow::Error::from)??;
        if !self.store.spend_setup_token(&hash_of_token, now).await? {
            return Err(Error::field("token", "this setup link was used or has expired"));
        }
        self.store.set_console_password(&user_id, &hash, now).await?;
        let user = self
            .store
            .console_user(&user_id)
            .await?
            .ok_or_else(|| Error::NotFound("console user".into()))?;
        tracing::info!(user = %user.username, "console password set through a setup link");
        self.open_session(user).await
    }

    async fn open_session(&self, user: ConsoleUserRow) -> Result<NewSession> {
        let cookie = crate::secrets::new_token();
        let csrf = crate::secrets::new_token();
        let now = crate::now_ms();
        self.store
            .insert_console_session(
                &crate::secrets::token_hash(&cookie),
                &user.id,
                &csrf,
                now,
                now + SESSION_TTL_MS,
            )
            .await?;
        Ok(NewSession {
            cookie,
            user: SessionUser {
                id: user.id,
                username: user.username,
                tenant: user.tenant_id,
                locale: user.locale,
                csrf,
            },
        })
    }

    /// Signs in, at most `MAX_FAILURES` failures per user name and per
    /// address in 15 minutes.
    pub async fn sign_in(
        &self,
        username: &str,
        password: &str,
        ip: &str,
    ) -> std::result::Result<NewSession, SignInError> {
        let now = crate::now_ms();
        let keys = [format!("user:{}", username.trim()), format!("ip:{ip}")];
        for k in &keys {
            let (n, oldest) = self.store.signin_failures(k, now - WINDOW_MS).await?;
            if n >= MAX_FAILURES {
                let free_at = oldest.unwrap_or(now) + WINDOW_MS;
                let minutes = ((free_at - now) as f64 / 60_000.0).ceil().max(1.0) as i64;
                return Err(SignInError::Limited(minutes));
            }
        }
        let user = self.store.console_user_by_name(username.trim()).await?;
        let hash = user
            .as_ref()
            .and_then(|u| u.password_hash.clone())
            .unwrap_or_else(|| decoy_hash().to_string());
        let password = password.to_string();
        let ok = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
            .await
            .unwrap_or(false);
        match user.filter(|u| ok && u.password_hash.is_some()) {
            Some(u) => {
                self.store.clear_signin_failures(&keys[0]).await?;
                tracing::info!(user = %u.username, "console sign-in");
                Ok(self.open_session(u).await?)
            }
            None => {
                self.store.note_signin_failure(&keys, now).await?;
                tracing::warn!(user = %username, %ip, "console sign-in refused");
                Err(SignInError::Wrong)
            }
        }
    }

    /// The user of a session cookie, while it lasts.
    pub async fn session(&self, cookie: &str) -> Result<Option<SessionUser>> {
        let Some(s) = self
            .store
            .console_session(&crate::secrets::token_hash(cookie), crate::now_ms())
            .await?
        else {
            return Ok(None);
        };
        Ok(self.store.console_user(&s.user_id).await?.map(|u| SessionUser {
            id: u.id,
            username: u.username,
            tenant: u.tenant_id,
            locale: u.locale,
            csrf: s.csrf,
        }))
    }

    pub async fn sign_out(&self, cookie: &str) -> Result<()> {
        Ok(self
            .store
            .delete_console_session(&crate::secrets::token_hash(cookie))
            .await?)
    }

    pub async fn set_locale(&self, user_id: &str, locale: &str) -> Result<()> {
        Ok(self.store.set_console_locale(user_id, locale).await?)
    }

    /// Notes that the authorization whose state is `state` was started from
    /// the account's console page.
    pub async fn remember_oauth_return(&self, state: &str, account_id: &str) -> Result<()> {
        Ok(self
            .store
            .insert_oauth_return(
                &crate::secrets::token_hash(state),
                account_id,
                crate::now_ms() + 3600 * 1000,
            )
            .await?)
    }

    /// The account whose console page started this authorization, if one did.
    pub async fn take_oauth_return(&self, state: &str) -> Option<String> {
        self.store
            .take_oauth_return(&crate::secrets::token_hash(state), crate::now_ms())
            .await
            .ok()
            .flatten()
    }

    /// The tenant's messages by status (the overview).
    pub async fn message_counts(&self, tenant: &str) -> Result<Vec<(String, i64)>> {
        Ok(self.store.tenant_message_counts(tenant).await?)
    }

    /// The tenant's attempts of the last `hours` hours per account and hour.
    pub async fn hourly_attempts(&self, tenant: &str, since: i64) -> Result<Vec<HourlyRow>> {
        Ok(self.store.hourly_attempts(tenant, since).await?)
    }

    /// The delivery log's page of messages.
    pub async fn messages_in_window(&self, tenant: &str, filter: &WindowFilter) -> Result<Vec<MessageRow>> {
        Ok(self.store.messages_in_window(tenant, filter).await?)
    }
}
