//! Tenants: the platform (`platform`) and the organisations it serves.

use super::Result;
use super::{Store, on_pool};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TenantRow {
    pub id: String,
    pub name: String,
    pub created_at: i64,
}

impl Store {
    pub async fn insert_tenant(&self, t: &TenantRow) -> Result<()> {
        let _changed = self.changing();
        on_pool!(self, |p| sqlx::query(
            "INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)"
        )
        .bind(&t.id)
        .bind(&t.name)
        .bind(t.created_at)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn list_tenants(&self) -> Result<Vec<TenantRow>> {
        Ok(on_pool!(self, |p| sqlx::query_as::<_, TenantRow>(
            "SELECT id, name, created_at FROM tenants ORDER BY created_at, id"
        )
        .fetch_all(p)
        .await)?)
    }

    pub async fn get_tenant(&self, id: &str) -> Result<Option<TenantRow>> {
        Ok(on_pool!(self, |p| sqlx::query_as::<_, TenantRow>(
            "SELECT id, name, created_at FROM tenants WHERE id = $1"
        )
        .bind(id)
        .fetch_optional(p)
        .await)?)
    }

    /// Removes a tenant and, by cascade, everything it owns.
    pub async fn delete_tenant(&self, id: &str) -> Result<bool> {
        let _changed = self.changing();
        let n = on_pool!(self, |p| sqlx::query("DELETE FROM tenants WHERE id = $1")
            .bind(id)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    /// The tenant's name, for display names and templates (its id if it has none).
    pub async fn tenant_name(&self, id: &str) -> Result<String> {
        Ok(self
            .get_tenant(id)
            .await?
            .map(|t| t.name)
            .unwrap_or_else(|| id.to_string()))
    }
}
