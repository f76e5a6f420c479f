//! Per-tenant template overrides: one row per (tenant, template, locale).

use super::Result;
use super::{Store, on_pool};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TemplateRow {
    pub tenant_id: String,
    pub name: String,
    pub locale: String,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
    pub updated_at: i64,
}

impl Store {
    pub async fn get_template(&self, tenant_id: &str, name: &str, locale: &str) -> Result<Option<TemplateRow>> {
        Ok(on_pool!(self, |p| {
            sqlx::query_as::<_, TemplateRow>(
                "SELECT tenant_id, name, locale, subject, text, html, updated_at FROM templates \
                 WHERE tenant_id = $1 AND name = $2 AND locale = $3",
            )
            .bind(tenant_id)
            .bind(name)
            .bind(locale)
            .fetch_optional(p)
            .await
        })?)
    }

    /// The tenant's overrides, by name and locale.
    pub async fn list_templates(&self, tenant_id: &str) -> Result<Vec<TemplateRow>> {
        Ok(on_pool!(self, |p| {
            sqlx::query_as::<_, TemplateRow>(
                "SELECT tenant_id, name, locale, subject, text, html, updated_at FROM templates \
                 WHERE tenant_id = $1 ORDER BY name, locale",
            )
            .bind(tenant_id)
            .fetch_all(p)
            .await
        })?)
    }

    /// Creates or replaces the tenant's override.
    pub async fn put_template(&self, row: &TemplateRow) -> Result<()> {
        on_pool!(self, |p| {
            sqlx::query(
                "INSERT INTO templates (tenant_id, name, locale, subject, text, html, updated_at) \
                 VALUES ($1,$2,$3,$4,$5,$6,$7) ON CONFLICT (tenant_id, name, locale) DO UPDATE SET \
                 subject = excluded.subject, text = excluded.text, html = excluded.html, \
                 updated_at = excluded.updated_at",
            )
            .bind(&row.tenant_id)
            .bind(&row.name)
            .bind(&row.locale)
            .bind(&row.subject)
            .bind(&row.text)
            .bind(&row.html)
            .bind(row.updated_at)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Removes the tenant's override; answers whether there was one.
    pub async fn delete_template(&self, tenant_id: &str, name: &str, locale: &str) -> Result<bool> {
        let n = on_pool!(self, |p| {
            sqlx::query("DELETE FROM templates WHERE tenant_id = $1 AND name = $2 AND locale = $3")
                .bind(tenant_id)
                .bind(name)
                .bind(locale)
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(n > 0)
    }
}
