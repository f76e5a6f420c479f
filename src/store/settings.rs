//! Per-tenant settings: the default account, the sender display name, the locale.

use super::Result;
use super::{Store, on_pool};

#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct SettingsRow {
    pub tenant_id: String,
    pub default_account: Option<String>,
    pub from_name: Option<String>,
    pub locale: Option<String>,
    pub fallback_to_platform: i64,
    pub updated_at: i64,
    /// JSON list of addresses told when something needs an admin.
    pub admin_emails: Option<String>,
    /// Platform settings only: messages per tenant per day through the platform's account.
    pub tenant_daily_cap: Option<i64>,
    /// The default proxy as JSON (`proxy::ProxySettings`); platform settings only.
    pub proxy: Option<String>,
    /// Its password, sealed.
    pub proxy_secret: Option<Vec<u8>>,
}

impl Store {
    pub async fn get_settings(&self, tenant_id: &str) -> Result<SettingsRow> {
        let row = on_pool!(self, |p| {
            sqlx::query_as::<_, SettingsRow>(
                "SELECT tenant_id, default_account, from_name, locale, fallback_to_platform, updated_at, admin_emails, \
             tenant_daily_cap, proxy, proxy_secret FROM settings WHERE tenant_id = $1",
            )
            .bind(tenant_id)
            .fetch_optional(p)
            .await
        })?;
        Ok(row.unwrap_or(SettingsRow {
            tenant_id: tenant_id.to_string(),
            fallback_to_platform: 1,
            ..Default::default()
        }))
    }

    pub async fn put_settings(&self, s: &SettingsRow) -> Result<()> {
        let _changed = self.changing();
        on_pool!(self, |p| {
            sqlx::query(
            "INSERT INTO settings (tenant_id, default_account, from_name, locale, fallback_to_platform, updated_at, \
             admin_emails, tenant_daily_cap, proxy, proxy_secret) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10) ON CONFLICT (tenant_id) DO UPDATE SET \
             default_account = excluded.default_account, from_name = excluded.from_name, locale = excluded.locale, \
             fallback_to_platform = excluded.fallback_to_platform, updated_at = excluded.updated_at, \
             admin_emails = excluded.admin_emails, tenant_daily_cap = excluded.tenant_daily_cap, \
             proxy = excluded.proxy, proxy_secret = excluded.proxy_secret"
        )
        .bind(&s.tenant_id)
        .bind(&s.default_account)
        .bind(&s.from_name)
        .bind(&s.locale)
        .bind(s.fallback_to_platform)
        .bind(s.updated_at)
        .bind(&s.admin_emails)
        .bind(s.tenant_daily_cap)
        .bind(&s.proxy)
        .bind(&s.proxy_secret)
        .execute(p)
        .await
        .map(|r| r.rows_affected())
        })?;
        Ok(())
    }
}
