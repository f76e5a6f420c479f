//! API tokens, stored as SHA-256 hashes. A token belongs to one tenant; the
//! platform tenant's tokens are the platform admin's.

use super::Result;
use super::{Store, on_pool};

impl Store {
    pub async fn insert_token(&self, token_hash: &str, tenant_id: &str, label: &str) -> Result<()> {
        let now = crate::now_ms();
        on_pool!(self, |p| sqlx::query(
            "INSERT INTO api_tokens (token_hash, tenant_id, label, created_at) VALUES ($1, $2, $3, $4)"
        )
        .bind(token_hash)
        .bind(tenant_id)
        .bind(label)
        .bind(now)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// The tenant a token belongs to, if the token is known.
    pub async fn tenant_for_token(&self, token_hash: &str) -> Result<Option<String>> {
        let row: Option<(String,)> = on_pool!(self, |p| sqlx::query_as(
            "SELECT tenant_id FROM api_tokens WHERE token_hash = $1"
        )
        .bind(token_hash)
        .fetch_optional(p)
        .await)?;
        Ok(row.map(|r| r.0))
    }

    pub async fn count_tokens(&self, tenant_id: &str) -> Result<i64> {
        let row: (i64,) = on_pool!(self, |p| sqlx::query_as(
            "SELECT COUNT(*) FROM api_tokens WHERE tenant_id = $1"
        )
        .bind(tenant_id)
        .fetch_one(p)
        .await)?;
        Ok(row.0)
    }
}
