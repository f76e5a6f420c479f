//! DKIM key rows. The private key is stored sealed (see `secrets`); this
//! layer never sees it in clear.

use super::{Result, Store, on_pool};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DkimRow {
    pub id: String,
    pub tenant_id: String,
    /// The sending domain in A-labels, lower case.
    pub domain: String,
    pub selector: String,
    /// `rsa-sha256` or `ed25519-sha256`.
    pub algorithm: String,
    /// The private key (DER, base64), sealed.
    pub private_key: Vec<u8>,
    /// The public key as the `p=` tag holds it (base64).
    pub public_key: String,
    /// `published`, `missing`, `mismatch` or `unchecked`.
    pub status: String,
    pub status_detail: Option<String>,
    pub checked_at: Option<i64>,
    pub created_at: i64,
}

/// The columns, in `DkimRow`'s order (a macro: queries stay literal strings).
macro_rules! columns {
    () => {
        "id, tenant_id, domain, selector, algorithm, private_key, public_key, status, status_detail, checked_at, created_at"
    };
}

impl Store {
    pub async fn insert_dkim(&self, r: &DkimRow) -> Result<()> {
        on_pool!(self, |p| {
            sqlx::query(
                "INSERT INTO dkim_keys (id, tenant_id, domain, selector, algorithm, private_key, public_key, status, \
                 status_detail, checked_at, created_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)",
            )
            .bind(&r.id)
            .bind(&r.tenant_id)
            .bind(&r.domain)
            .bind(&r.selector)
            .bind(&r.algorithm)
            .bind(&r.private_key)
            .bind(&r.public_key)
            .bind(&r.status)
            .bind(&r.status_detail)
            .bind(r.checked_at)
            .bind(r.created_at)
            .execute(p)
            .await
            .map(|_| ())
        })
    }

    /// The tenant's keys, by domain, newest first within a domain.
    pub async fn list_dkim(&self, tenant_id: &str) -> Result<Vec<DkimRow>> {
        on_pool!(self, |p| sqlx::query_as::<_, DkimRow>(concat!(
            "SELECT ",
            columns!(),
            " FROM dkim_keys WHERE tenant_id = $1 ORDER BY domain, created_at DESC, id DESC"
        ))
        .bind(tenant_id)
        .fetch_all(p)
        .await)
    }

    pub async fn get_dkim(&self, tenant_id: &str, id: &str) -> Result<Option<DkimRow>> {
        on_pool!(self, |p| sqlx::query_as::<_, DkimRow>(concat!(
            "SELECT ",
            columns!(),
            " FROM dkim_keys WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(p)
        .await)
    }

    /// The key that signs the tenant's mail from `domain`: the newest.
    pub async fn signing_dkim(&self, tenant_id: &str, domain: &str) -> Result<Option<DkimRow>> {
        on_pool!(self, |p| sqlx::query_as::<_, DkimRow>(concat!(
            "SELECT ",
            columns!(),
            " FROM dkim_keys WHERE tenant_id = $1 AND domain = $2 ORDER BY created_at DESC, id DESC LIMIT 1"
        ))
        .bind(tenant_id)
        .bind(domain)
        .fetch_optional(p)
        .await)
    }

    pub async fn set_dkim_status(
        &self,
        tenant_id: &str,
        id: &str,
        status: &str,
        detail: Option<&str>,
        checked_at: i64,
    ) -> Result<()> {
        on_pool!(self, |p| sqlx::query(
            "UPDATE dkim_keys SET status = $3, status_detail = $4, checked_at = $5 WHERE tenant_id = $1 AND id = $2"
        )
        .bind(tenant_id)
        .bind(id)
        .bind(status)
        .bind(detail)
        .bind(checked_at)
        .execute(p)
        .await
        .map(|_| ()))
    }

    pub async fn delete_dkim(&self, tenant_id: &str, id: &str) -> Result<bool> {
        let n = on_pool!(self, |p| sqlx::query(
            "DELETE FROM dkim_keys WHERE tenant_id = $1 AND id = $2"
        )
        .bind(tenant_id)
        .bind(id)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }
}
