//! Rules, the events they match, and the throttle windows.

use super::Result;
use super::{Store, on_pool};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RuleRow {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub enabled: i64,
    pub match_json: String,
    pub methods_json: String,
    pub throttle_secs: i64,
    pub system_key: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRow {
    pub id: String,
    pub tenant_id: String,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub severity: String,
    pub source: Option<String>,
    pub title: String,
    pub message: Option<String>,
    pub data: Option<String>,
    pub created_at: i64,
}

/// The insert of an event, bound on any pool or transaction: `dispatched_at`
/// None leaves the event to the event feed.
macro_rules! insert_event_query {
    ($e:expr, $dispatched_at:expr) => {
        sqlx::query(
            "INSERT INTO events (id, tenant_id, type, severity, source, title, message, data, created_at, \
             dispatched_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)",
        )
        .bind(&$e.id)
        .bind(&$e.tenant_id)
        .bind(&$e.kind)
        .bind(&$e.severity)
        .bind(&$e.source)
        .bind(&$e.title)
        .bind(&$e.message)
        .bind(&$e.data)
        .bind($e.created_at)
        .bind($dispatched_at)
    };
}
pub(crate) use insert_event_query;

const RULE_COLUMNS: &str =
    "id, tenant_id, name, enabled, match_json, methods_json, throttle_secs, system_key, created_at, updated_at";

impl Store {
    /// Inserts a rule; `Duplicate` when the tenant has one of that name.
    pub async fn insert_rule(&self, r: &RuleRow) -> Result<()> {
        let sql = format!("INSERT INTO rules ({RULE_COLUMNS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)");
        on_pool!(self, |p| sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(&r.id)
            .bind(&r.tenant_id)
            .bind(&r.name)
            .bind(r.enabled)
            .bind(&r.match_json)
            .bind(&r.methods_json)
            .bind(r.throttle_secs)
            .bind(&r.system_key)
            .bind(r.created_at)
            .bind(r.updated_at)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Writes a rule's settings; `Duplicate` when the new name is another rule's.
    pub async fn update_rule(&self, r: &RuleRow) -> Result<()> {
        on_pool!(self, |p| sqlx::query(
            "UPDATE rules SET name=$3, enabled=$4, match_json=$5, methods_json=$6, throttle_secs=$7, updated_at=$8 \
             WHERE id=$1 AND tenant_id=$2"
        )
        .bind(&r.id)
        .bind(&r.tenant_id)
        .bind(&r.name)
        .bind(r.enabled)
        .bind(&r.match_json)
        .bind(&r.methods_json)
        .bind(r.throttle_secs)
        .bind(r.updated_at)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn list_rules(&self, tenant_id: &str) -> Result<Vec<RuleRow>> {
        let sql = format!("SELECT {RULE_COLUMNS} FROM rules WHERE tenant_id = $1 ORDER BY created_at, id");
        Ok(on_pool!(self, |p| sqlx::query_as::<_, RuleRow>(sqlx::AssertSqlSafe(
            sql.as_str()
        ))
        .bind(tenant_id)
        .fetch_all(p)
        .await)?)
    }

    pub async fn find_rule(&self, tenant_id: &str, id_or_name: &str) -> Result<Option<RuleRow>> {
        let sql = format!("SELECT {RULE_COLUMNS} FROM rules WHERE tenant_id = $1 AND (id = $2 OR name = $2)");
        Ok(on_pool!(self, |p| sqlx::query_as::<_, RuleRow>(sqlx::AssertSqlSafe(
            sql.as_str()
        ))
        .bind(tenant_id)
        .bind(id_or_name)
        .fetch_optional(p)
        .await)?)
    }

    pub async fn delete_rule(&self, tenant_id: &str, id: &str) -> Result<bool> {
        let n = on_pool!(self, |p| sqlx::query(
            "DELETE FROM rules WHERE tenant_id = $1 AND id = $2"
        )
        .bind(tenant_id)
        .bind(id)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    pub async fn has_system_rule(&self, tenant_id: &str, key: &str) -> Result<bool> {
        let row: (i64,) = on_pool!(self, |p| sqlx::query_as(
            "SELECT COUNT(*) FROM rules WHERE tenant_id = $1 AND system_key = $2"
        )
        .bind(tenant_id)
        .bind(key)
        .fetch_one(p)
        .await)?;
        Ok(row.0 > 0)
    }

    /// Records an event that is dispatched now, by its caller (`POST /events`).
    pub async fn insert_event(&self, e: &EventRow) -> Result<()> {
        on_pool!(self, |p| insert_event_query!(e, Some(e.created_at))
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Takes up to `limit` events written but not yet dispatched (account
    /// events), oldest first, marking them dispatched: on several nodes each
    /// event is taken by one.
    pub async fn take_pending_events(&self, now: i64, limit: i64) -> Result<Vec<EventRow>> {
        // A read first: the feed polls, and a write (even one that changes
        // nothing) would take the database's write lock from the writer.
        let pending: Option<i64> = on_pool!(self, |p| sqlx::query_scalar(
            "SELECT 1 FROM events WHERE dispatched_at IS NULL LIMIT 1"
        )
        .fetch_optional(p)
        .await)?;
        if pending.is_none() {
            return Ok(Vec::new());
        }
        let mut rows: Vec<EventRow> = on_pool!(self, |p| sqlx::query_as(
            "UPDATE events SET dispatched_at = $1 WHERE id IN \
             (SELECT id FROM events WHERE dispatched_at IS NULL ORDER BY created_at LIMIT $2) \
             AND dispatched_at IS NULL \
             RETURNING id, tenant_id, type, severity, source, title, message, data, created_at"
        )
        .bind(now)
        .bind(limit)
        .fetch_all(p)
        .await)?;
        rows.sort_by_key(|r| r.created_at);
        Ok(rows)
    }

    /// The throttle gate of a rule. Inside the window the event is counted
    /// and `None` comes back; otherwise a new window opens and the number of
    /// events suppressed in the last one comes back (to say so in the message).
    pub async fn pass_throttle(&self, rule_id: &str, now: i64, window_ms: i64) -> Result<Option<i64>> {
        for _ in 0..5 {
            let counted = on_pool!(self, |p| sqlx::query(
                "UPDATE rule_throttle SET suppressed = suppressed + 1 WHERE rule_id = $1 AND window_until > $2"
            )
            .bind(rule_id)
            .bind(now)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
            if counted == 1 {
                return Ok(None);
            }
            let old: Option<(i64, i64)> = on_pool!(self, |p| sqlx::query_as(
                "SELECT window_until, suppressed FROM rule_throttle WHERE rule_id = $1"
            )
            .bind(rule_id)
            .fetch_optional(p)
            .await)?;
            let opened = match old {
                None => on_pool!(self, |p| {
                    sqlx::query(
                    "INSERT INTO rule_throttle (rule_id, window_until, suppressed) VALUES ($1, $2, 0) ON CONFLICT (rule_id) DO NOTHING"
                )
                .bind(rule_id)
                .bind(now + window_ms)
                .execute(p)
                .await
                .map(|r| r.rows_affected())
                })?,
                // Only the caller that still sees the old window may open the next one.
                Some((until, _)) => on_pool!(self, |p| {
                    sqlx::query(
                    "UPDATE rule_throttle SET window_until = $3, suppressed = 0 WHERE rule_id = $1 AND window_until = $2"
                )
                .bind(rule_id)
                .bind(until)
                .bind(now + window_ms)
                .execute(p)
                .await
                .map(|r| r.rows_affected())
                })?,
            };
            if opened == 1 {
                return Ok(Some(old.map(|(_, s)| s).unwrap_or(0)));
            }
        }
        Ok(None)
    }
}
