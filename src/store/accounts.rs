//! Account rows. Secrets are stored sealed (see `secrets`); this layer never
//! sees them in clear.

use super::{Result, Store, StoreError, on_pool};
use crate::catalog::Security;
use crate::domain::{Account, EmailAddress};
use crate::status::{AccountStatus, AuthMethod};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AccountRow {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub provider: String,
    pub host: String,
    pub port: i64,
    pub security: String,
    pub auth_method: String,
    pub username: Option<String>,
    pub secret: Option<Vec<u8>>,
    pub oauth: Option<String>,
    pub oauth_client_secret: Option<Vec<u8>>,
    pub from_address: String,
    pub from_name: Option<String>,
    pub tls_ca_pem: Option<String>,
    pub tls_skip_verify: i64,
    pub timeout_secs: i64,
    pub limit_connections: Option<i64>,
    pub limit_per_minute: Option<i64>,
    pub limit_per_day: Option<i64>,
    pub backup_account: Option<String>,
    pub status: String,
    pub status_message: Option<String>,
    pub last_report: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub tls_pin_sha256: Option<String>,
    pub proxy: Option<String>,
    pub proxy_secret: Option<Vec<u8>>,
}

/// A stored row as the domain's `Account`; a row whose security, sign-in
/// method or sender does not parse was not written by Herald, and says so.
impl TryFrom<AccountRow> for Account {
    type Error = String;

    fn try_from(r: AccountRow) -> std::result::Result<Account, String> {
        let bad = |what: &str, value: &str| format!("account {}: stored {what} '{value}' is not valid", r.id);
        Ok(Account {
            port: u16::try_from(r.port).map_err(|_| bad("port", &r.port.to_string()))?,
            security: Security::parse(&r.security).ok_or_else(|| bad("security", &r.security))?,
            auth_method: AuthMethod::parse(&r.auth_method).ok_or_else(|| bad("auth method", &r.auth_method))?,
            from_address: EmailAddress::parse(&r.from_address).map_err(|_| bad("sender", &r.from_address))?,
            status: AccountStatus::from_stored(&r.status),
            tls_skip_verify: r.tls_skip_verify != 0,
            timeout_secs: r.timeout_secs.max(1) as u64,
            limit_connections: r.limit_connections.map(|v| v.clamp(0, u32::MAX as i64) as u32),
            limit_per_minute: r.limit_per_minute.map(|v| v.clamp(0, u32::MAX as i64) as u32),
            limit_per_day: r.limit_per_day.map(|v| v.clamp(0, u32::MAX as i64) as u32),
            id: r.id,
            tenant_id: r.tenant_id,
            name: r.name,
            provider: r.provider,
            host: r.host,
            username: r.username,
            secret: r.secret,
            oauth: r.oauth,
            oauth_client_secret: r.oauth_client_secret,
            from_name: r.from_name,
            tls_ca_pem: r.tls_ca_pem,
            tls_pin_sha256: r.tls_pin_sha256,
            proxy: r.proxy,
            proxy_secret: r.proxy_secret,
            backup_account: r.backup_account,
            status_message: r.status_message,
            last_report: r.last_report,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

/// The row an account is written back as.
impl From<&Account> for AccountRow {
    fn from(a: &Account) -> AccountRow {
        AccountRow {
            id: a.id.clone(),
            tenant_id: a.tenant_id.clone(),
            name: a.name.clone(),
            provider: a.provider.clone(),
            host: a.host.clone(),
            port: a.port.into(),
            security: a.security.as_str().to_string(),
            auth_method: a.auth_method.as_str().to_string(),
            username: a.username.clone(),
            secret: a.secret.clone(),
            oauth: a.oauth.clone(),
            oauth_client_secret: a.oauth_client_secret.clone(),
            from_address: a.from_address.as_str().to_string(),
            from_name: a.from_name.clone(),
            tls_ca_pem: a.tls_ca_pem.clone(),
            tls_skip_verify: a.tls_skip_verify.into(),
            timeout_secs: a.timeout_secs as i64,
            limit_connections: a.limit_connections.map(i64::from),
            limit_per_minute: a.limit_per_minute.map(i64::from),
            limit_per_day: a.limit_per_day.map(i64::from),
            backup_account: a.backup_account.clone(),
            status: a.status.as_str().to_string(),
            status_message: a.status_message.clone(),
            last_report: a.last_report.clone(),
            created_at: a.created_at,
            updated_at: a.updated_at,
            tls_pin_sha256: a.tls_pin_sha256.clone(),
            proxy: a.proxy.clone(),
            proxy_secret: a.proxy_secret.clone(),
        }
    }
}

/// A row read back, as an `Account`.
fn parse(row: AccountRow) -> Result<Account> {
    Account::try_from(row).map_err(|e| StoreError::Internal(anyhow::anyhow!(e)))
}

const COLUMNS: &str = "id, tenant_id, name, provider, host, port, security, auth_method, username, secret, oauth, \
    oauth_client_secret, from_address, from_name, tls_ca_pem, tls_skip_verify, timeout_secs, limit_connections, \
    limit_per_minute, limit_per_day, backup_account, status, status_message, last_report, created_at, updated_at, \
    tls_pin_sha256, proxy, proxy_secret";

impl Store {
    /// Inserts an account; `Duplicate` when the tenant has one of that name.
    pub async fn insert_account(&self, a: &AccountRow) -> Result<()> {
        let _changed = self.changing();
        let sql = format!(
            "INSERT INTO accounts ({COLUMNS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21,$22,$23,$24,$25,$26,$27,$28,$29)"
        );
        on_pool!(self, |p| sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(&a.id)
            .bind(&a.tenant_id)
            .bind(&a.name)
            .bind(&a.provider)
            .bind(&a.host)
            .bind(a.port)
            .bind(&a.security)
            .bind(&a.auth_method)
            .bind(&a.username)
            .bind(&a.secret)
            .bind(&a.oauth)
            .bind(&a.oauth_client_secret)
            .bind(&a.from_address)
            .bind(&a.from_name)
            .bind(&a.tls_ca_pem)
            .bind(a.tls_skip_verify)
            .bind(a.timeout_secs)
            .bind(a.limit_connections)
            .bind(a.limit_per_minute)
            .bind(a.limit_per_day)
            .bind(&a.backup_account)
            .bind(&a.status)
            .bind(&a.status_message)
            .bind(&a.last_report)
            .bind(a.created_at)
            .bind(a.updated_at)
            .bind(&a.tls_pin_sha256)
            .bind(&a.proxy)
            .bind(&a.proxy_secret)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Writes the account's settings: every column but the identity, the
    /// creation time and the status (`health` writes that). `Duplicate` when
    /// the new name is another account's.
    pub async fn update_account(&self, a: &AccountRow) -> Result<()> {
        let _changed = self.changing();
        let changed = on_pool!(self, |p| sqlx::query(
            "UPDATE accounts SET name=$3, provider=$4, host=$5, port=$6, security=$7, auth_method=$8, username=$9, \
             secret=$10, oauth=$11, oauth_client_secret=$12, from_address=$13, from_name=$14, tls_ca_pem=$15, \
             tls_skip_verify=$16, timeout_secs=$17, limit_connections=$18, limit_per_minute=$19, limit_per_day=$20, \
             backup_account=$21, updated_at=$22, tls_pin_sha256=$23, proxy=$24, proxy_secret=$25 \
             WHERE id=$1 AND tenant_id=$2"
        )
        .bind(&a.id)
        .bind(&a.tenant_id)
        .bind(&a.name)
        .bind(&a.provider)
        .bind(&a.host)
        .bind(a.port)
        .bind(&a.security)
        .bind(&a.auth_method)
        .bind(&a.username)
        .bind(&a.secret)
        .bind(&a.oauth)
        .bind(&a.oauth_client_secret)
        .bind(&a.from_address)
        .bind(&a.from_name)
        .bind(&a.tls_ca_pem)
        .bind(a.tls_skip_verify)
        .bind(a.timeout_secs)
        .bind(a.limit_connections)
        .bind(a.limit_per_minute)
        .bind(a.limit_per_day)
        .bind(&a.backup_account)
        .bind(a.updated_at)
        .bind(&a.tls_pin_sha256)
        .bind(&a.proxy)
        .bind(&a.proxy_secret)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        if changed == 0 {
            return Err(StoreError::NotFound(format!("account {}", a.id)));
        }
        Ok(())
    }

    /// Finds an account of the tenant by id or by name.
    pub async fn find_account(&self, tenant_id: &str, id_or_name: &str) -> Result<Option<Account>> {
        let sql = format!("SELECT {COLUMNS} FROM accounts WHERE tenant_id = $1 AND (id = $2 OR name = $2)");
        let row = on_pool!(self, |p| sqlx::query_as::<_, AccountRow>(sqlx::AssertSqlSafe(
            sql.as_str()
        ))
        .bind(tenant_id)
        .bind(id_or_name)
        .fetch_optional(p)
        .await)?;
        row.map(parse).transpose()
    }

    /// An account by id whatever its tenant: only for routes Herald itself
    /// resolved (a tenant's message sent through the platform's account).
    pub async fn account_by_id(&self, id: &str) -> Result<Option<Account>> {
        let sql = format!("SELECT {COLUMNS} FROM accounts WHERE id = $1");
        let row = on_pool!(self, |p| sqlx::query_as::<_, AccountRow>(sqlx::AssertSqlSafe(
            sql.as_str()
        ))
        .bind(id)
        .fetch_optional(p)
        .await)?;
        row.map(parse).transpose()
    }

    /// The tenant's accounts, oldest first.
    pub async fn list_accounts(&self, tenant_id: &str) -> Result<Vec<Account>> {
        let sql = format!("SELECT {COLUMNS} FROM accounts WHERE tenant_id = $1 ORDER BY created_at");
        let rows = on_pool!(self, |p| sqlx::query_as::<_, AccountRow>(sqlx::AssertSqlSafe(
            sql.as_str()
        ))
        .bind(tenant_id)
        .fetch_all(p)
        .await)?;
        rows.into_iter().map(parse).collect()
    }

    pub async fn delete_account(&self, tenant_id: &str, id: &str) -> Result<bool> {
        let _changed = self.changing();
        let done = on_pool!(self, |p| sqlx::query(
            "DELETE FROM accounts WHERE tenant_id = $1 AND id = $2"
        )
        .bind(tenant_id)
        .bind(id)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(done > 0)
    }

    /// Writes an account's new status, and the event it raises if any, in
    /// one transaction. Only `health::Health::observe` calls this: an
    /// account's status has one writer.
    pub async fn set_account_status(
        &self,
        id: &str,
        status: &str,
        status_message: Option<&str>,
        last_report: Option<&str>,
        event: Option<&super::rules::EventRow>,
    ) -> Result<()> {
        let _changed = self.changing();
        let now = crate::now_ms();
        on_pool!(self, |p| {
            let mut tx = p.begin().await?;
            sqlx::query(
                "UPDATE accounts SET status=$2, status_message=$3, last_report=COALESCE($4, last_report), updated_at=$5 \
                 WHERE id=$1",
            )
            .bind(id)
            .bind(status)
            .bind(status_message)
            .bind(last_report)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if let Some(e) = event {
                super::rules::insert_event_query!(e, None::<i64>)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await
        })?;
        Ok(())
    }
}
