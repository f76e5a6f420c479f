//! Webhook and chat-robot channels: one row per named destination of a
//! tenant, its URL, secret and headers sealed.

use super::Result;
use super::{Store, on_pool};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ChannelRow {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    /// `webhook`, `slack`, `teams`, `dingtalk`, `feishu`, `wecom`.
    pub kind: String,
    /// The sealed URL (it may hold a token).
    pub url: Vec<u8>,
    /// The URL with any token masked, for every output.
    pub url_display: String,
    /// The sealed signing secret.
    pub secret: Option<Vec<u8>>,
    /// The sealed headers, as a JSON object.
    pub headers: Option<Vec<u8>>,
    /// The header names, as a JSON list (values are write-only).
    pub header_names: String,
    pub per_minute: Option<i64>,
    pub status: String,
    pub status_message: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str = "id, tenant_id, name, kind, url, url_display, secret, headers, header_names, per_minute, \
    status, status_message, created_at, updated_at";

impl Store {
    /// Inserts a channel; `Duplicate` when the tenant has one of that name.
    pub async fn insert_channel(&self, c: &ChannelRow) -> Result<()> {
        let _changed = self.changing();
        let sql = format!("INSERT INTO channels ({COLUMNS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14)");
        on_pool!(self, |p| sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(&c.id)
            .bind(&c.tenant_id)
            .bind(&c.name)
            .bind(&c.kind)
            .bind(&c.url)
            .bind(&c.url_display)
            .bind(&c.secret)
            .bind(&c.headers)
            .bind(&c.header_names)
            .bind(c.per_minute)
            .bind(&c.status)
            .bind(&c.status_message)
            .bind(c.created_at)
            .bind(c.updated_at)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Writes a channel's settings; `Duplicate` when the new name is another channel's.
    pub async fn update_channel(&self, c: &ChannelRow) -> Result<()> {
        let _changed = self.changing();
        on_pool!(self, |p| sqlx::query(
            "UPDATE channels SET name=$3, kind=$4, url=$5, url_display=$6, secret=$7, headers=$8, header_names=$9, \
             per_minute=$10, status=$11, status_message=$12, updated_at=$13 WHERE id=$1 AND tenant_id=$2"
        )
        .bind(&c.id)
        .bind(&c.tenant_id)
        .bind(&c.name)
        .bind(&c.kind)
        .bind(&c.url)
        .bind(&c.url_display)
        .bind(&c.secret)
        .bind(&c.headers)
        .bind(&c.header_names)
        .bind(c.per_minute)
        .bind(&c.status)
        .bind(&c.status_message)
        .bind(c.updated_at)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Records what the last test or delivery said about a channel.
    pub async fn set_channel_status(&self, id: &str, status: &str, message: Option<&str>) -> Result<()> {
        on_pool!(self, |p| sqlx::query(
            "UPDATE channels SET status=$2, status_message=$3 WHERE id=$1 AND (status <> $2 OR \
             COALESCE(status_message, '') <> COALESCE($3, ''))"
        )
        .bind(id)
        .bind(status)
        .bind(message)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn list_channels(&self, tenant_id: &str) -> Result<Vec<ChannelRow>> {
        let sql = format!("SELECT {COLUMNS} FROM channels WHERE tenant_id = $1 ORDER BY name");
        Ok(on_pool!(self, |p| sqlx::query_as::<_, ChannelRow>(
            sqlx::AssertSqlSafe(sql.as_str())
        )
        .bind(tenant_id)
        .fetch_all(p)
        .await)?)
    }

    /// A tenant's channel by id or name.
    pub async fn find_channel(&self, tenant_id: &str, id_or_name: &str) -> Result<Option<ChannelRow>> {
        let sql = format!("SELECT {COLUMNS} FROM channels WHERE tenant_id = $1 AND (id = $2 OR name = $2)");
        Ok(on_pool!(self, |p| sqlx::query_as::<_, ChannelRow>(
            sqlx::AssertSqlSafe(sql.as_str())
        )
        .bind(tenant_id)
        .bind(id_or_name)
        .fetch_optional(p)
        .await)?)
    }

    /// A channel by id, whatever its tenant (the delivery worker).
    pub async fn channel_by_id(&self, id: &str) -> Result<Option<ChannelRow>> {
        let sql = format!("SELECT {COLUMNS} FROM channels WHERE id = $1");
        Ok(on_pool!(self, |p| sqlx::query_as::<_, ChannelRow>(
            sqlx::AssertSqlSafe(sql.as_str())
        )
        .bind(id)
        .fetch_optional(p)
        .await)?)
    }

    pub async fn delete_channel(&self, tenant_id: &str, id: &str) -> Result<()> {
        let _changed = self.changing();
        on_pool!(self, |p| sqlx::query(
            "DELETE FROM channels WHERE tenant_id = $1 AND id = $2"
        )
        .bind(tenant_id)
        .bind(id)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }
}
