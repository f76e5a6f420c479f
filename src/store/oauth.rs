//! OAuth2 rows: the account's tokens (sealed) and pending authorizations.

use super::Result;
use super::{Store, on_pool};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TokenRow {
    pub account_id: String,
    pub access_token: Option<Vec<u8>>,
    pub access_expires_at: Option<i64>,
    pub refresh_token: Option<Vec<u8>>,
    pub refresh_expires_at: Option<i64>,
    pub generation: i64,
    pub refresh_lock_until: Option<i64>,
    pub updated_at: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StateRow {
    pub state_hash: String,
    pub account_id: String,
    pub tenant_id: String,
    pub verifier: Vec<u8>,
    pub redirect_uri: String,
    pub fingerprint: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

const TOKEN_COLUMNS: &str = "account_id, access_token, access_expires_at, refresh_token, refresh_expires_at, \
    generation, refresh_lock_until, updated_at";

impl Store {
    pub async fn get_tokens(&self, account_id: &str) -> Result<Option<TokenRow>> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM oauth_tokens WHERE account_id = $1");
        Ok(on_pool!(self, |p| sqlx::query_as::<_, TokenRow>(sqlx::AssertSqlSafe(
            sql.as_str()
        ))
        .bind(account_id)
        .fetch_optional(p)
        .await)?)
    }

    /// Stores a new set of tokens (a new authorization), replacing any old ones.
    pub async fn put_tokens(&self, t: &TokenRow) -> Result<()> {
        on_pool!(self, |p| sqlx::query(
            "INSERT INTO oauth_tokens (account_id, access_token, access_expires_at, refresh_token, refresh_expires_at, \
             generation, refresh_lock_until, updated_at) VALUES ($1,$2,$3,$4,$5,$6,NULL,$7) \
             ON CONFLICT (account_id) DO UPDATE SET access_token = excluded.access_token, \
             access_expires_at = excluded.access_expires_at, refresh_token = excluded.refresh_token, \
             refresh_expires_at = excluded.refresh_expires_at, generation = oauth_tokens.generation + 1, \
             refresh_lock_until = NULL, updated_at = excluded.updated_at"
        )
        .bind(&t.account_id)
        .bind(&t.access_token)
        .bind(t.access_expires_at)
        .bind(&t.refresh_token)
        .bind(t.refresh_expires_at)
        .bind(t.generation)
        .bind(t.updated_at)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Takes the refresh lease for `until`; false when another node holds it.
    pub async fn lock_refresh(&self, account_id: &str, now: i64, until: i64) -> Result<bool> {
        let n = on_pool!(self, |p| sqlx::query(
            "UPDATE oauth_tokens SET refresh_lock_until = $3 WHERE account_id = $1 \
             AND (refresh_lock_until IS NULL OR refresh_lock_until < $2)"
        )
        .bind(account_id)
        .bind(now)
        .bind(until)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Writes refreshed tokens and releases the lease in one statement, so a
    /// rotated refresh token is on disk before the new access token is used.
    pub async fn store_refreshed(
        &self,
        account_id: &str,
        access: &[u8],
        access_expires_at: i64,
        refresh: Option<&[u8]>,
        refresh_expires_at: Option<i64>,
    ) -> Result<()> {
        let now = crate::now_ms();
        on_pool!(self, |p| sqlx::query(
            "UPDATE oauth_tokens SET access_token = $2, access_expires_at = $3, \
             refresh_token = COALESCE($4, refresh_token), refresh_expires_at = COALESCE($5, refresh_expires_at), \
             generation = generation + 1, refresh_lock_until = NULL, updated_at = $6 WHERE account_id = $1"
        )
        .bind(account_id)
        .bind(access)
        .bind(access_expires_at)
        .bind(refresh)
        .bind(refresh_expires_at)
        .bind(now)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn unlock_refresh(&self, account_id: &str) -> Result<()> {
        on_pool!(self, |p| sqlx::query(
            "UPDATE oauth_tokens SET refresh_lock_until = NULL WHERE account_id = $1"
        )
        .bind(account_id)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn delete_tokens(&self, account_id: &str) -> Result<()> {
        on_pool!(self, |p| sqlx::query("DELETE FROM oauth_tokens WHERE account_id = $1")
            .bind(account_id)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn insert_state(&self, s: &StateRow) -> Result<()> {
        on_pool!(self, |p| sqlx::query(
            "INSERT INTO oauth_states (state_hash, account_id, tenant_id, verifier, redirect_uri, fingerprint, \
             created_at, expires_at, used_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,NULL)"
        )
        .bind(&s.state_hash)
        .bind(&s.account_id)
        .bind(&s.tenant_id)
        .bind(&s.verifier)
        .bind(&s.redirect_uri)
        .bind(&s.fingerprint)
        .bind(s.created_at)
        .bind(s.expires_at)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Marks a state used and answers it; None when unknown or already used.
    /// One statement, so two callbacks racing with the same state cannot both win.
    pub async fn take_state(&self, state_hash: &str, now: i64) -> Result<Option<StateRow>> {
        Ok(on_pool!(self, |p| {
            sqlx::query_as::<_, StateRow>(
            "UPDATE oauth_states SET used_at = $2 WHERE state_hash = $1 AND used_at IS NULL \
             RETURNING state_hash, account_id, tenant_id, verifier, redirect_uri, fingerprint, created_at, expires_at, used_at"
        )
        .bind(state_hash)
        .bind(now)
        .fetch_optional(p)
        .await
        })?)
    }

    /// Releases an account's held messages (after a re-authorization).
    pub async fn release_held(&self, account_id: &str) -> Result<u64> {
        let now = crate::now_ms();
        Ok(on_pool!(self, |p| sqlx::query(
            "UPDATE messages SET status = 'queued', next_attempt_at = $2, updated_at = $2 \
             WHERE account_id = $1 AND status = 'held'"
        )
        .bind(account_id)
        .bind(now)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?)
    }
}
