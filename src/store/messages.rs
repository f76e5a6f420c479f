//! The outbox tables: messages (their state; the content, written once, is
//! apart in `message_contents`), their delivery attempts, and the capture
//! mailbox that holds what was sent while no mail service was configured.
//!
//! A message is claimed by setting `status = 'sending'` and a lease in one
//! short statement; the send happens outside any transaction, and the result
//! is written only by the holder of the lease.

use super::Result;
use super::group_commit::{Answer, Outcome, Write};
use super::{Store, on_pool};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MessageRow {
    pub id: String,
    pub tenant_id: String,
    pub account_id: Option<String>,
    pub status: String,
    pub message_id: String,
    pub idempotency_key: Option<String>,
    /// The message as JSON (`outbox::Content`), from `message_contents`.
    #[sqlx(default)]
    pub content: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub lease_until: Option<i64>,
    pub last_error: Option<String>,
    pub captured: i64,
    pub created_at: i64,
    pub updated_at: i64,
    /// How the sending account was chosen (`account`, `tenant_default`,
    /// `platform_default`, `capture`) and why, for the delivery log.
    pub route: Option<String>,
}

/// The state columns; the content lives in `message_contents`.
pub(super) const MSG_COLUMNS: &str = "id, tenant_id, account_id, status, message_id, idempotency_key, attempts, \
    next_attempt_at, lease_until, last_error, captured, created_at, updated_at, route";

/// A whole message: its state joined with its content (`m` and `c`).
const MSG_SELECT: &str = "SELECT m.id, m.tenant_id, m.account_id, m.status, m.message_id, m.idempotency_key, \
    m.attempts, m.next_attempt_at, m.lease_until, m.last_error, m.captured, m.created_at, m.updated_at, m.route, \
    c.content FROM messages m JOIN message_contents c ON c.id = m.id";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AttemptRow {
    pub id: String,
    pub message_id: String,
    pub at: i64,
    pub account_id: Option<String>,
    pub outcome: String,
    pub stage: Option<String>,
    pub code: Option<i64>,
    pub enhanced_code: Option<String>,
    pub reply: Option<String>,
    pub class: Option<String>,
    pub transcript: Option<String>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CapturedRow {
    pub id: String,
    pub tenant_id: String,
    pub message_id: String,
    pub mail_from: String,
    pub rcpt_to: String,
    pub subject: String,
    pub raw: String,
    pub at: i64,
}

/// Filters for listing messages.
#[derive(Debug, Default, Clone)]
pub struct MessageFilter {
    pub status: Option<String>,
    pub account_id: Option<String>,
    /// Only messages created before this id (paging backwards in time).
    pub before: Option<String>,
    pub limit: i64,
}

/// Binds a message's state columns in `MSG_COLUMNS` order, on either database.
macro_rules! bind_message {
    ($query:expr, $m:expr) => {
        $query
            .bind(&$m.id)
            .bind(&$m.tenant_id)
            .bind(&$m.account_id)
            .bind(&$m.status)
            .bind(&$m.message_id)
            .bind(&$m.idempotency_key)
            .bind($m.attempts)
            .bind($m.next_attempt_at)
            .bind($m.lease_until)
            .bind(&$m.last_error)
            .bind($m.captured)
            .bind($m.created_at)
            .bind($m.updated_at)
            .bind(&$m.route)
    };
}
pub(super) use bind_message;

impl Store {
    /// Inserts a message; with an idempotency key already used by the tenant,
    /// inserts nothing and answers the existing message instead.
    pub async fn insert_message(&self, m: &MessageRow) -> Result<(MessageRow, bool)> {
        if self.writer.done(Write::Message(m.clone())).await? {
            return Ok((m.clone(), true));
        }
        let key = m.idempotency_key.as_deref().unwrap_or_default();
        let sql = format!("{MSG_SELECT} WHERE m.tenant_id = $1 AND m.idempotency_key = $2");
        let existing = on_pool!(self, |p| sqlx::query_as::<_, MessageRow>(sqlx::AssertSqlSafe(
            sql.as_str()
        ))
        .bind(&m.tenant_id)
        .bind(key)
        .fetch_one(p)
        .await)?;
        Ok((existing, false))
    }

    /// Inserts many messages in one transaction: all or none are accepted.
    pub async fn insert_messages(&self, rows: Vec<MessageRow>) -> Result<()> {
        self.writer.done(Write::Messages(rows)).await?;
        Ok(())
    }

    /// Records what a delivery did (attempts, new state, captured copy) in
    /// one transaction; false when the lease no longer holds.
    pub async fn record_outcome(&self, outcome: Outcome) -> Result<bool> {
        self.writer.done(Write::Outcome(outcome)).await
    }

    /// The tenant's messages with these idempotency keys, in the keys' order.
    pub async fn messages_by_keys(&self, tenant_id: &str, keys: &[String]) -> Result<Vec<MessageRow>> {
        let mut found = std::collections::HashMap::new();
        for chunk in keys.chunks(200) {
            let list: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
            let sql = format!(
                "{MSG_SELECT} WHERE m.tenant_id = $1 AND m.idempotency_key IN ({})",
                list.join(",")
            );
            let rows = on_pool!(self, |p| {
                let mut q = sqlx::query_as::<_, MessageRow>(sqlx::AssertSqlSafe(sql.as_str())).bind(tenant_id);
                for k in chunk {
                    q = q.bind(k);
                }
                q.fetch_all(p).await
            })?;
            for r in rows {
                found.insert(r.idempotency_key.clone().unwrap_or_default(), r);
            }
        }
        Ok(keys.iter().filter_map(|k| found.remove(k)).collect())
    }

    pub async fn get_message(&self, tenant_id: &str, id: &str) -> Result<Option<MessageRow>> {
        let sql = format!("{MSG_SELECT} WHERE m.tenant_id = $1 AND m.id = $2");
        Ok(on_pool!(self, |p| sqlx::query_as::<_, MessageRow>(
            sqlx::AssertSqlSafe(sql.as_str())
        )
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(p)
        .await)?)
    }

    pub async fn list_messages(&self, tenant_id: &str, f: &MessageFilter) -> Result<Vec<MessageRow>> {
        let sql = format!(
            "{MSG_SELECT} WHERE m.tenant_id = $1 \
             AND ($2 IS NULL OR m.status = $2) AND ($3 IS NULL OR m.account_id = $3) AND ($4 IS NULL OR m.id < $4) \
             ORDER BY m.id DESC LIMIT $5"
        );
        Ok(on_pool!(self, |p| sqlx::query_as::<_, MessageRow>(
            sqlx::AssertSqlSafe(sql.as_str())
        )
        .bind(tenant_id)
        .bind(&f.status)
        .bind(&f.account_id)
        .bind(&f.before)
        .bind(f.limit)
        .fetch_all(p)
        .await)?)
    }

    /// Claims up to `limit` due messages for this worker until `lease_until`
    /// (in the group commit: a claim is a write). A message whose lease ran
    /// out (its worker died) is due again.
    pub async fn claim_due(&self, now: i64, lease_until: i64, limit: i64) -> Result<Vec<MessageRow>> {
        match self
            .writer
            .write(Write::Claim {
                now,
                lease_until,
                limit,
            })
            .await?
        {
            Answer::Claimed(rows) => Ok(rows),
            Answer::Done(_) => Ok(Vec::new()),
        }
    }

    /// Claims one message by id (the CLI delivering what it just queued).
    pub async fn claim_message(&self, id: &str, now: i64, lease_until: i64) -> Result<Option<MessageRow>> {
        let sql = format!(
            "UPDATE messages SET status = 'sending', lease_until = $3, attempts = attempts + 1, updated_at = $2 \
             WHERE id = $1 AND status IN ('queued', 'deferred') RETURNING {MSG_COLUMNS}"
        );
        let row = on_pool!(self, |p| sqlx::query_as::<_, MessageRow>(sqlx::AssertSqlSafe(
            sql.as_str()
        ))
        .bind(id)
        .bind(now)
        .bind(lease_until)
        .fetch_optional(p)
        .await)?;
        let Some(mut row) = row else { return Ok(None) };
        row.content = on_pool!(self, |p| sqlx::query_scalar::<_, String>(
            "SELECT content FROM message_contents WHERE id = $1"
        )
        .bind(id)
        .fetch_one(p)
        .await)?;
        Ok(Some(row))
    }

    /// Messages an account sent since `since`, and the oldest of them (its limits).
    pub async fn sent_since(&self, account_id: &str, since: i64) -> Result<(i64, Option<i64>)> {
        Ok(on_pool!(self, |p| sqlx::query_as::<_, (i64, Option<i64>)>(
            "SELECT COUNT(*), MIN(at) FROM attempts WHERE account_id = $1 AND outcome = 'sent' AND at >= $2"
        )
        .bind(account_id)
        .bind(since)
        .fetch_one(p)
        .await)?)
    }

    /// Puts every claimed message back in the queue: at the start of a single
    /// node on SQLite, whose previous run's claims died with it. Each gets an
    /// `interrupted` attempt in its log: the server may have taken it before
    /// the stop, and it goes out again (with the same Message-ID).
    pub async fn release_all_claims(&self) -> Result<u64> {
        let now = crate::now_ms();
        let why = INTERRUPTED;
        Ok(on_pool!(self, |p| {
            let mut tx = p.begin().await?;
            // The write first: it takes SQLite's write lock (waiting for it),
            // where a read first would hold a snapshot another writer could
            // make stale before this transaction writes.
            let claimed: Vec<(String, Option<String>)> = sqlx::query_as(
                "UPDATE messages SET status = 'queued', lease_until = NULL, next_attempt_at = $1 \
                 WHERE status = 'sending' RETURNING id, account_id",
            )
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
            for (id, account) in &claimed {
                sqlx::query(
                    "INSERT INTO attempts (id, message_id, at, account_id, outcome, reply, class) \
                     VALUES ($1, $2, $3, $4, 'interrupted', $5, 'transient')",
                )
                .bind(super::new_id())
                .bind(id)
                .bind(now)
                .bind(account)
                .bind(why)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(claimed.len() as u64)
        })?)
    }

    /// Cancels a message that has not gone out (queued, deferred or held).
    pub async fn cancel_message(&self, tenant_id: &str, id: &str) -> Result<bool> {
        let now = crate::now_ms();
        let done = on_pool!(self, |p| sqlx::query(
            "UPDATE messages SET status = 'cancelled', updated_at = $3 \
             WHERE tenant_id = $1 AND id = $2 AND status IN ('queued', 'deferred', 'held')"
        )
        .bind(tenant_id)
        .bind(id)
        .bind(now)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(done == 1)
    }

    /// Puts a failed or cancelled message back in the queue.
    pub async fn requeue_message(&self, tenant_id: &str, id: &str) -> Result<bool> {
        let now = crate::now_ms();
        let done = on_pool!(self, |p| sqlx::query(
            "UPDATE messages SET status = 'queued', next_attempt_at = $3, updated_at = $3 \
             WHERE tenant_id = $1 AND id = $2 AND status IN ('failed', 'deferred', 'held', 'cancelled')"
        )
        .bind(tenant_id)
        .bind(id)
        .bind(now)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(done == 1)
    }

    pub async fn attempts_of(&self, message_id: &str) -> Result<Vec<AttemptRow>> {
        Ok(on_pool!(self, |p| sqlx::query_as::<_, AttemptRow>(
            "SELECT id, message_id, at, account_id, outcome, stage, code, enhanced_code, reply, class, transcript \
             FROM attempts WHERE message_id = $1 ORDER BY at, id"
        )
        .bind(message_id)
        .fetch_all(p)
        .await)?)
    }

    pub async fn list_captured(&self, tenant_id: &str, limit: i64) -> Result<Vec<CapturedRow>> {
        Ok(on_pool!(self, |p| sqlx::query_as::<_, CapturedRow>(
            "SELECT id, tenant_id, message_id, mail_from, rcpt_to, subject, raw, at FROM captured \
             WHERE tenant_id = $1 ORDER BY at DESC, id DESC LIMIT $2"
        )
        .bind(tenant_id)
        .bind(limit)
        .fetch_all(p)
        .await)?)
    }

    /// Messages a tenant sent through the platform's account since `since` (its daily cap).
    pub async fn count_platform_routed(&self, tenant_id: &str, since: i64) -> Result<i64> {
        let row: (i64,) = on_pool!(self, |p| {
            sqlx::query_as(
            "SELECT COUNT(*) FROM messages WHERE tenant_id = $1 AND route LIKE 'platform_default%' AND created_at >= $2"
        )
        .bind(tenant_id)
        .bind(since)
        .fetch_one(p)
        .await
        })?;
        Ok(row.0)
    }

    /// Message counts by status, for `/metrics`.
    pub async fn message_counts(&self) -> Result<Vec<(String, i64)>> {
        Ok(on_pool!(self, |p| sqlx::query_as::<_, (String, i64)>(
            "SELECT status, COUNT(*) FROM messages GROUP BY status ORDER BY status"
        )
        .fetch_all(p)
        .await)?)
    }
}

/// The claim statements (`$1` now, `$2` the lease's end, `$3` how many; on
/// SQLite `?1`…): the due messages, and those whose lease ran out (their
/// worker died or stalled), which the delivery log marks as interrupted.
pub(super) fn claim_sql(postgres: bool, expired: bool) -> String {
    // An index walk with a LIMIT, no sort: with a deep queue an ORDER BY over
    // every due row made each claim cost O(queue). (The IN list is walked
    // status by status, each by next_attempt_at.)
    let due = if expired {
        "status = 'sending' AND lease_until < $1"
    } else {
        // Held messages with a time (a limit's window) come back by themselves.
        "status IN ('deferred', 'held', 'queued') AND next_attempt_at <= $1"
    };
    let update = "UPDATE messages SET status = 'sending', lease_until = $2, attempts = attempts + 1, updated_at = $1";
    if postgres {
        // The due condition stands in the outer WHERE too: a row another
        // node claimed meanwhile is re-checked against it and skipped, and
        // SKIP LOCKED keeps nodes from queueing behind each other's claims.
        format!(
            "{update} WHERE {due} AND id IN (SELECT id FROM messages WHERE {due} LIMIT $3 FOR UPDATE SKIP LOCKED) \
             RETURNING {MSG_COLUMNS}"
        )
    } else {
        // SQLite runs the statement alone (one writer), so the subquery's
        // rows are still due; a due condition out here would lead its
        // planner to walk every due row of the queue instead of the ids.
        format!("{update} WHERE id IN (SELECT id FROM messages WHERE {due} LIMIT $3) RETURNING {MSG_COLUMNS}")
            .replace('$', "?")
    }
}

/// The delivery-log entry of a message whose claim ran out mid-send.
pub(super) fn interrupted_attempt(row: &MessageRow, now: i64) -> AttemptRow {
    AttemptRow {
        id: super::new_id(),
        message_id: row.id.clone(),
        at: now,
        account_id: row.account_id.clone(),
        outcome: "interrupted".into(),
        stage: None,
        code: None,
        enhanced_code: None,
        reply: Some(INTERRUPTED.into()),
        class: Some("transient".into()),
        transcript: None,
    }
}

/// Why a message was sent again after its sender stopped.
const INTERRUPTED: &str = "Herald stopped while this message was being sent; it is sent again with the same \
    Message-ID, so the recipient may receive it twice";
