//! The web console's tables: its users, their one-time setup links, sessions,
//! failed sign-ins (the rate limit), the OAuth2 authorizations started from a
//! console page; and the read-only summaries its overview and delivery log
//! show (counts by status, sends per hour, messages in a time window).

use super::Result;
use super::messages::MessageRow;
use super::{Store, on_pool};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ConsoleUserRow {
    pub id: String,
    pub tenant_id: String,
    pub username: String,
    pub password_hash: Option<String>,
    pub locale: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRow {
    pub user_id: String,
    pub csrf: String,
    pub expires_at: i64,
}

/// Sends and failures of one account in one hour.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct HourlyRow {
    pub account_id: Option<String>,
    pub hour: i64,
    pub outcome: String,
    pub n: i64,
}

/// Messages in a time window, for the delivery log.
#[derive(Debug, Default, Clone)]
pub struct WindowFilter {
    pub status: Option<String>,
    pub account_id: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    /// Skip this many (paging).
    pub offset: i64,
    pub limit: i64,
}

const USER_COLUMNS: &str = "id, tenant_id, username, password_hash, locale, created_at, updated_at";

impl Store {
    pub async fn insert_console_user(&self, u: &ConsoleUserRow) -> Result<()> {
        on_pool!(self, |p| sqlx::query(
            "INSERT INTO console_users (id, tenant_id, username, password_hash, locale, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)"
        )
        .bind(&u.id)
        .bind(&u.tenant_id)
        .bind(&u.username)
        .bind(&u.password_hash)
        .bind(&u.locale)
        .bind(u.created_at)
        .bind(u.updated_at)
        .execute(p)
        .await
        .map(|_| ()))
    }

    pub async fn console_user(&self, id: &str) -> Result<Option<ConsoleUserRow>> {
        on_pool!(self, |p| sqlx::query_as::<_, ConsoleUserRow>(sqlx::AssertSqlSafe(
            format!("SELECT {USER_COLUMNS} FROM console_users WHERE id = $1")
        ))
        .bind(id)
        .fetch_optional(p)
        .await)
    }

    pub async fn console_user_by_name(&self, username: &str) -> Result<Option<ConsoleUserRow>> {
        on_pool!(self, |p| sqlx::query_as::<_, ConsoleUserRow>(sqlx::AssertSqlSafe(
            format!("SELECT {USER_COLUMNS} FROM console_users WHERE username = $1")
        ))
        .bind(username)
        .fetch_optional(p)
        .await)
    }

    pub async fn console_users_of(&self, tenant_id: &str) -> Result<Vec<ConsoleUserRow>> {
        on_pool!(self, |p| sqlx::query_as::<_, ConsoleUserRow>(sqlx::AssertSqlSafe(
            format!("SELECT {USER_COLUMNS} FROM console_users WHERE tenant_id = $1 ORDER BY created_at, username")
        ))
        .bind(tenant_id)
        .fetch_all(p)
        .await)
    }

    /// Sets the password hash and ends every session of the user.
    pub async fn set_console_password(&self, user_id: &str, hash: &str, now: i64) -> Result<()> {
        on_pool!(self, |p| async {
            let mut tx = p.begin().await?;
            sqlx::query("UPDATE console_users SET password_hash = $1, updated_at = $2 WHERE id = $3")
                .bind(hash)
                .bind(now)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM console_sessions WHERE user_id = $1")
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        }
        .await)
    }

    pub async fn set_console_locale(&self, user_id: &str, locale: &str) -> Result<()> {
        on_pool!(self, |p| sqlx::query(
            "UPDATE console_users SET locale = $1 WHERE id = $2"
        )
        .bind(locale)
        .bind(user_id)
        .execute(p)
        .await
        .map(|_| ()))
    }

    /// A new setup link for the user; the older ones stop working.
    pub async fn insert_setup_token(&self, token_hash: &str, user_id: &str, now: i64, expires_at: i64) -> Result<()> {
        on_pool!(self, |p| {
            async {
            let mut tx = p.begin().await?;
            sqlx::query("DELETE FROM console_setup_tokens WHERE user_id = $1")
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO console_setup_tokens (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(token_hash)
            .bind(user_id)
            .bind(now)
            .bind(expires_at)
            .execute(&mut *tx)
            .await?;
            tx.commit().await
        }
        .await
        })
    }

    /// The user a setup link (unused, unexpired) belongs to.
    pub async fn setup_token_user(&self, token_hash: &str, now: i64) -> Result<Option<String>> {
        on_pool!(self, |p| sqlx::query_scalar::<_, String>(
            "SELECT user_id FROM console_setup_tokens WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2"
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(p)
        .await)
    }

    /// Spends a setup link: true when it was still unused (single use).
    pub async fn spend_setup_token(&self, token_hash: &str, now: i64) -> Result<bool> {
        let n = on_pool!(self, |p| {
            sqlx::query(
            "UPDATE console_setup_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2"
        )
        .bind(token_hash)
        .bind(now)
        .execute(p)
        .await
        .map(|r| r.rows_affected())
        })?;
        Ok(n == 1)
    }

    pub async fn insert_console_session(
        &self,
        id_hash: &str,
        user_id: &str,
        csrf: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<()> {
        on_pool!(self, |p| sqlx::query(
            "INSERT INTO console_sessions (id_hash, user_id, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)"
        )
        .bind(id_hash)
        .bind(user_id)
        .bind(csrf)
        .bind(now)
        .bind(expires_at)
        .execute(p)
        .await
        .map(|_| ()))
    }

    pub async fn console_session(&self, id_hash: &str, now: i64) -> Result<Option<SessionRow>> {
        on_pool!(self, |p| sqlx::query_as::<_, SessionRow>(
            "SELECT user_id, csrf, expires_at FROM console_sessions WHERE id_hash = $1 AND expires_at > $2"
        )
        .bind(id_hash)
        .bind(now)
        .fetch_optional(p)
        .await)
    }

    pub async fn delete_console_session(&self, id_hash: &str) -> Result<()> {
        on_pool!(self, |p| sqlx::query(
            "DELETE FROM console_sessions WHERE id_hash = $1 OR expires_at < $2"
        )
        .bind(id_hash)
        .bind(crate::now_ms())
        .execute(p)
        .await
        .map(|_| ()))
    }

    pub async fn note_signin_failure(&self, keys: &[String], now: i64) -> Result<()> {
        on_pool!(self, |p| async {
            let mut tx = p.begin().await?;
            for k in keys {
                sqlx::query("INSERT INTO console_signin_failures (key, at) VALUES ($1, $2)")
                    .bind(k)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            // Old failures no longer count.
            sqlx::query("DELETE FROM console_signin_failures WHERE at < $1")
                .bind(now - 24 * 3600 * 1000)
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        }
        .await)
    }

    /// Failures of `key` since `since`, and the oldest of them.
    pub async fn signin_failures(&self, key: &str, since: i64) -> Result<(i64, Option<i64>)> {
        on_pool!(self, |p| sqlx::query_as::<_, (i64, Option<i64>)>(
            "SELECT COUNT(*), MIN(at) FROM console_signin_failures WHERE key = $1 AND at >= $2"
        )
        .bind(key)
        .bind(since)
        .fetch_one(p)
        .await)
    }

    pub async fn clear_signin_failures(&self, key: &str) -> Result<()> {
        on_pool!(self, |p| sqlx::query(
            "DELETE FROM console_signin_failures WHERE key = $1"
        )
        .bind(key)
        .execute(p)
        .await
        .map(|_| ()))
    }

    pub async fn insert_oauth_return(&self, state_hash: &str, account_id: &str, expires_at: i64) -> Result<()> {
        on_pool!(self, |p| sqlx::query(
            "INSERT INTO console_oauth_returns (state_hash, account_id, expires_at) VALUES ($1, $2, $3)"
        )
        .bind(state_hash)
        .bind(account_id)
        .bind(expires_at)
        .execute(p)
        .await
        .map(|_| ()))
    }

    /// The account whose console page started this authorization, once.
    pub async fn take_oauth_return(&self, state_hash: &str, now: i64) -> Result<Option<String>> {
        on_pool!(self, |p| sqlx::query_scalar::<_, String>(
            "DELETE FROM console_oauth_returns WHERE state_hash = $1 AND expires_at > $2 RETURNING account_id"
        )
        .bind(state_hash)
        .bind(now)
        .fetch_optional(p)
        .await)
    }

    /// The tenant's messages by status.
    pub async fn tenant_message_counts(&self, tenant_id: &str) -> Result<Vec<(String, i64)>> {
        on_pool!(self, |p| sqlx::query_as::<_, (String, i64)>(
            "SELECT status, COUNT(*) FROM messages WHERE tenant_id = $1 GROUP BY status"
        )
        .bind(tenant_id)
        .fetch_all(p)
        .await)
    }

    /// The tenant's delivery attempts since `since`, per account, hour and outcome.
    pub async fn hourly_attempts(&self, tenant_id: &str, since: i64) -> Result<Vec<HourlyRow>> {
        on_pool!(self, |p| sqlx::query_as::<_, HourlyRow>(
            "SELECT a.account_id, (a.at / 3600000) AS hour, a.outcome, COUNT(*) AS n \
             FROM attempts a JOIN messages m ON m.id = a.message_id \
             WHERE m.tenant_id = $1 AND a.at >= $2 \
             GROUP BY a.account_id, (a.at / 3600000), a.outcome"
        )
        .bind(tenant_id)
        .bind(since)
        .fetch_all(p)
        .await)
    }

    /// The tenant's messages, newest first, within the filter's window.
    pub async fn messages_in_window(&self, tenant_id: &str, f: &WindowFilter) -> Result<Vec<MessageRow>> {
        // The state with its content (subject and recipients for the list).
        let sql = "SELECT m.id, m.tenant_id, m.account_id, m.status, m.message_id, m.idempotency_key, \
             m.attempts, m.next_attempt_at, m.lease_until, m.last_error, m.captured, m.created_at, m.updated_at, \
             m.route, c.content FROM messages m JOIN message_contents c ON c.id = m.id WHERE m.tenant_id = $1 \
             AND ($2 IS NULL OR m.status = $2) AND ($3 IS NULL OR m.account_id = $3) \
             AND m.created_at >= $4 AND m.created_at <= $5 \
             ORDER BY m.created_at DESC, m.id DESC LIMIT $6 OFFSET $7";
        on_pool!(self, |p| sqlx::query_as::<_, MessageRow>(sqlx::AssertSqlSafe(sql))
            .bind(tenant_id)
            .bind(&f.status)
            .bind(&f.account_id)
            .bind(f.since.unwrap_or(0))
            .bind(f.until.unwrap_or(i64::MAX))
            .bind(f.limit)
            .bind(f.offset)
            .fetch_all(p)
            .await)
    }
}
