//! Group commit: the writes of many concurrent callers (accepted messages,
//! delivery outcomes, the worker's claims) share one transaction, so one
//! fsync covers all that arrived while the previous commit ran. Each caller
//! is answered only once its own write is durable, exactly as if it had
//! committed alone.
//!
//! One writer does all of it, which also keeps SQLite's single write lock
//! from being fought over (a contended SQLite lock is waited for by sleeping).
//! Like writes go out as multi-row statements. On SQLite the writer is a
//! thread of its own that owns its connection (`sqlite_writer`): a group runs
//! start to finish without leaving it, where through sqlx every statement
//! would be a hop to the connection's thread and back — under load, waits for
//! a core that cost more than the statements. On PostgreSQL it is a task.
//! Under light load a group is a single write, committed at once; nothing
//! waits for a group to fill.

use super::messages::{AttemptRow, CapturedRow, MSG_COLUMNS, MessageRow, bind_message, claim_sql, interrupted_attempt};
use super::{Condition, Result, StoreError};
use sqlx::PgPool;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Writes waiting for the writer; senders wait when it is this far behind.
const QUEUE: usize = 4096;
/// The most writes in one transaction.
pub(super) const GROUP: usize = 512;

/// One caller's write; it commits whole or not at all.
#[derive(Debug)]
pub enum Write {
    /// A new message. Answers `Done(false)` when the tenant already used its
    /// idempotency key (nothing is written then).
    Message(MessageRow),
    /// A batch of new messages: all or none.
    Messages(Vec<MessageRow>),
    /// What a delivery did: its attempts go to the log and the message takes
    /// its new state, both only while the writer holds the lease (answers
    /// `Done(false)` to a stale worker, whose attempts are dropped: the log
    /// tells what the holder did, never a late outcome after it).
    Outcome(Outcome),
    /// Claims up to `limit` due messages until `lease_until`.
    Claim { now: i64, lease_until: i64, limit: i64 },
    /// Rewrites the one row of `storage_probe`: whether a write goes through
    /// again after a storage condition (disk full …). Answers `Done(true)`.
    Probe,
}

#[derive(Debug)]
pub enum Answer {
    Done(bool),
    Claimed(Vec<MessageRow>),
}

#[derive(Debug)]
pub struct Outcome {
    pub message: String,
    pub lease_until: i64,
    pub status: String,
    pub last_error: Option<String>,
    pub next_attempt_at: i64,
    /// Replaces the stored content (the recipients left to retry).
    pub content: Option<String>,
    pub attempts: Vec<AttemptRow>,
    /// The copy kept in the capture mailbox, for a message with no account.
    pub captured: Option<CapturedRow>,
}

pub(super) type Job = (Write, oneshot::Sender<Result<Answer>>);

#[derive(Clone, Debug)]
pub struct GroupCommit {
    jobs: mpsc::Sender<Job>,
    /// Told what each write met.
    condition: Arc<Condition>,
}

impl GroupCommit {
    /// The SQLite writer: a thread with its own connection to `file`.
    pub fn sqlite(file: &std::path::Path, condition: Arc<Condition>) -> anyhow::Result<GroupCommit> {
        let conn = super::sqlite_writer::open(file)?;
        let (jobs, rx) = mpsc::channel(QUEUE);
        std::thread::Builder::new()
            .name("herald-writer".into())
            .spawn(move || super::sqlite_writer::run(conn, rx))?;
        Ok(GroupCommit { jobs, condition })
    }

    /// The PostgreSQL writer: a task on the current runtime.
    pub fn postgres(pool: PgPool, condition: Arc<Condition>) -> GroupCommit {
        let (jobs, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run_postgres(pool, rx));
        GroupCommit { jobs, condition }
    }

    /// Commits `write` (with whatever else is waiting) and answers once it is
    /// durable. A write that changed rows ends a storage condition; one that
    /// a condition refused starts it.
    pub async fn write(&self, write: Write) -> Result<Answer> {
        let (tx, rx) = oneshot::channel();
        let gone = || StoreError::Internal(anyhow::anyhow!("the database writer has stopped"));
        self.jobs.send((write, tx)).await.map_err(|_| gone())?;
        match rx.await.map_err(|_| gone())? {
            Ok(answer) => {
                if answer.wrote() {
                    self.condition.wrote();
                }
                Ok(answer)
            }
            Err(e) => Err(self.condition.noted(e)),
        }
    }

    /// Whether the writer still takes writes (it stops only if it failed).
    pub fn running(&self) -> bool {
        !self.jobs.is_closed()
    }

    /// A write answered yes or no.
    pub async fn done(&self, write: Write) -> Result<bool> {
        match self.write(write).await? {
            Answer::Done(b) => Ok(b),
            Answer::Claimed(_) => Err(StoreError::Internal(anyhow::anyhow!(
                "a write was answered with claims"
            ))),
        }
    }
}

impl Answer {
    /// Whether the write changed rows (a claim of nothing, or an idempotent
    /// repeat, may commit without writing to the device).
    fn wrote(&self) -> bool {
        match self {
            Answer::Done(done) => *done,
            Answer::Claimed(rows) => !rows.is_empty(),
        }
    }
}

/// A group's writes sorted by kind, as the statements will take them.
pub(super) struct Plan<'a> {
    pub writes: &'a [&'a Write],
    pub new_messages: Vec<&'a MessageRow>,
    /// Outcomes written by one multi-row UPDATE, which tells which messages
    /// it changed by id.
    pub updates: Vec<&'a Outcome>,
    /// Outcomes written one by one: with a capture or new content, or an id
    /// twice in the group (a stale worker and the new holder).
    pub singles: Vec<&'a Outcome>,
    pub claims: Vec<(i64, i64, i64)>,
    /// Whether the group holds a probe.
    pub probe: bool,
}

impl<'a> Plan<'a> {
    pub fn new(writes: &'a [&'a Write]) -> Plan<'a> {
        let mut plan = Plan {
            writes,
            new_messages: Vec::new(),
            updates: Vec::new(),
            singles: Vec::new(),
            claims: Vec::new(),
            probe: false,
        };
        let mut seen = HashSet::new();
        for w in writes {
            match w {
                Write::Message(m) => plan.new_messages.push(m),
                Write::Messages(rows) => plan.new_messages.extend(rows),
                Write::Outcome(o) => {
                    if o.captured.is_none() && o.content.is_none() && seen.insert(o.message.as_str()) {
                        plan.updates.push(o);
                    } else {
                        plan.singles.push(o);
                    }
                }
                Write::Claim {
                    now,
                    lease_until,
                    limit,
                } => plan.claims.push((*now, *lease_until, *limit)),
                Write::Probe => plan.probe = true,
            }
        }
        plan
    }

    /// A batch is all or none: a row it could not insert undoes the group
    /// (whose writes are then committed one by one).
    pub fn check_batches(&self, inserted: &HashSet<String>) -> Result<()> {
        for w in self.writes {
            if let Write::Messages(rows) = w
                && let Some(m) = rows.iter().find(|m| !inserted.contains(&m.id))
            {
                return Err(StoreError::Duplicate {
                    key: format!("the id or idempotency key of message {}", m.id),
                });
            }
        }
        Ok(())
    }

    /// The new messages that went in (not an idempotent repeat): their
    /// content is written next.
    pub fn inserted(&self, inserted: &HashSet<String>) -> Vec<&'a MessageRow> {
        self.new_messages
            .iter()
            .copied()
            .filter(|m| inserted.contains(&m.id))
            .collect()
    }

    /// The attempts of the outcomes whose lease held, to be logged: a
    /// stale worker's attempts are no more written than its outcome is.
    pub fn held_attempts(&self, done: &Executed) -> Vec<&'a AttemptRow> {
        let updates = self.updates.iter().filter(|o| done.held.contains(&o.message));
        let singles = self
            .singles
            .iter()
            .zip(&done.single_held)
            .filter(|(_, held)| **held)
            .map(|(o, _)| o);
        updates.chain(singles).flat_map(|o| &o.attempts).collect()
    }

    /// One answer per write, from what the statements reported.
    pub fn answers(&self, done: Executed) -> Vec<Answer> {
        let mut claimed = done.claimed.into_iter();
        self.writes
            .iter()
            .map(|w| match w {
                Write::Message(m) => Answer::Done(done.inserted.contains(&m.id)),
                Write::Messages(_) => Answer::Done(true),
                Write::Outcome(o) => Answer::Done(match self.singles.iter().position(|s| std::ptr::eq(*s, o)) {
                    Some(i) => done.single_held[i],
                    None => done.held.contains(&o.message),
                }),
                Write::Claim { .. } => Answer::Claimed(claimed.next().unwrap_or_default()),
                Write::Probe => Answer::Done(true),
            })
            .collect()
    }
}

/// What a group's statements reported.
#[derive(Default)]
pub(super) struct Executed {
    /// Ids of the messages inserted (an idempotent repeat is not).
    pub inserted: HashSet<String>,
    /// Ids of the messages the multi-row UPDATE changed (lease held).
    pub held: HashSet<String>,
    /// Per `Plan::singles`: whether its lease held.
    pub single_held: Vec<bool>,
    /// Per claim, the rows claimed, with their content.
    pub claimed: Vec<Vec<MessageRow>>,
}

/// Claimed rows given the contents read for them.
pub(super) fn with_contents(mut rows: Vec<MessageRow>, mut found: HashMap<String, String>) -> Vec<MessageRow> {
    for r in &mut rows {
        r.content = found.remove(&r.id).unwrap_or_default();
    }
    rows
}

/// How a statement numbers its parameters.
#[derive(Clone, Copy)]
pub(super) enum Params {
    /// `$1, $2, …` (PostgreSQL).
    Numbered,
    /// `?, ?, …` in order (SQLite: it looks a numbered parameter up by a
    /// linear search, which makes binding thousands of them quadratic).
    Anonymous,
}

/// `(…),(…)`: `rows` groups of `columns` parameters, each wrapped by `wrap`
/// (PostgreSQL needs the types of a VALUES list spelled out).
pub(super) fn placeholders(
    params: Params,
    rows: usize,
    columns: usize,
    wrap: impl Fn(usize, &str) -> String,
) -> String {
    let mut out = String::with_capacity(rows * columns * 8);
    for r in 0..rows {
        out.push_str(if r == 0 { "(" } else { ",(" });
        for c in 0..columns {
            if c > 0 {
                out.push(',');
            }
            let p = match params {
                Params::Anonymous => "?".to_string(),
                Params::Numbered => format!("${}", r * columns + c + 1),
            };
            out.push_str(&wrap(c, &p));
        }
        out.push(')');
    }
    out
}

/// The statements of a group, for `rows` rows where they take many.
pub(super) mod sql {
    use super::{MSG_COLUMNS, Params, placeholders};

    pub fn insert_messages(p: Params, rows: usize) -> String {
        format!(
            "INSERT INTO messages ({MSG_COLUMNS}) VALUES {} ON CONFLICT (tenant_id, idempotency_key) DO NOTHING \
             RETURNING id",
            placeholders(p, rows, 14, |_, p| p.to_string())
        )
    }

    pub fn insert_contents(p: Params, rows: usize) -> String {
        format!(
            "INSERT INTO message_contents (id, content) VALUES {}",
            placeholders(p, rows, 2, |_, p| p.to_string())
        )
    }

    pub fn insert_attempts(p: Params, rows: usize) -> String {
        format!(
            "INSERT INTO attempts (id, message_id, at, account_id, outcome, stage, code, enhanced_code, reply, \
             class, transcript) VALUES {}",
            placeholders(p, rows, 11, |_, p| p.to_string())
        )
    }

    /// Rows of (id, lease_until, status, last_error, next_attempt_at, now);
    /// VALUES columns are column1… on both databases.
    pub fn update_outcomes(p: Params, rows: usize) -> String {
        let types = ["TEXT", "BIGINT", "TEXT", "TEXT", "BIGINT", "BIGINT"];
        format!(
            "UPDATE messages SET status = v.column3, last_error = v.column4, next_attempt_at = v.column5, \
             lease_until = NULL, updated_at = v.column6 FROM (VALUES {}) AS v \
             WHERE messages.id = v.column1 AND messages.status = 'sending' AND messages.lease_until = v.column2 \
             RETURNING messages.id",
            placeholders(p, rows, 6, |c, p| format!("CAST({p} AS {})", types[c]))
        )
    }

    pub fn contents_of(p: Params, rows: usize) -> String {
        let list = placeholders(p, rows, 1, |_, p| p.to_string()).replace(['(', ')'], "");
        format!("SELECT id, content FROM message_contents WHERE id IN ({list})")
    }

    /// $1 id, $2 lease, $3 status, $4 last_error, $5 next_attempt_at, $6 captured, $7 now.
    pub const UPDATE_ONE: &str = "UPDATE messages SET status = $3, last_error = $4, next_attempt_at = $5, \
        lease_until = NULL, captured = $6, updated_at = $7 WHERE id = $1 AND status = 'sending' AND lease_until = $2";
    pub const UPDATE_CONTENT: &str = "UPDATE message_contents SET content = $2 WHERE id = $1";
    pub const PROBE: &str =
        "INSERT INTO storage_probe (id, at) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET at = excluded.at";
    pub const INSERT_CAPTURED: &str = "INSERT INTO captured (id, tenant_id, message_id, mail_from, rcpt_to, subject, \
        raw, at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)";
}

/// Rows per multi-row statement on PostgreSQL: as many as its parameter
/// limit allows (every statement is a round trip).
const PG_CHUNK: usize = 256;

async fn run_postgres(pool: PgPool, mut rx: mpsc::Receiver<Job>) {
    let mut jobs: Vec<Job> = Vec::with_capacity(GROUP);
    while rx.recv_many(&mut jobs, GROUP).await > 0 {
        let writes: Vec<&Write> = jobs.iter().map(|(w, _)| w).collect();
        let committed = commit_postgres(&pool, &writes).await;
        match committed {
            Ok(answers) => {
                for ((_, reply), answer) in jobs.drain(..).zip(answers) {
                    let _ = reply.send(Ok(answer));
                }
            }
            // One bad write must not fail the others: each alone, with its own answer.
            Err(e) if jobs.len() == 1 => {
                let (_, reply) = jobs.pop().expect("one job");
                let _ = reply.send(Err(e));
            }
            Err(e) => {
                tracing::debug!(error = %e, writes = jobs.len(), "a group commit failed; committing its writes one by one");
                for (write, reply) in jobs.drain(..) {
                    let answer = commit_postgres(&pool, &[&write])
                        .await
                        .map(|mut a| a.pop().expect("one answer"));
                    let _ = reply.send(answer);
                }
            }
        }
    }
}

async fn commit_postgres(pool: &PgPool, writes: &[&Write]) -> Result<Vec<Answer>> {
    let plan = Plan::new(writes);
    let p = Params::Numbered;
    let now = crate::now_ms();
    let mut done = Executed::default();
    let mut tx = pool.begin().await?;

    for chunk in plan.new_messages.chunks(PG_CHUNK) {
        let mut q = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql::insert_messages(p, chunk.len())));
        for m in chunk {
            q = bind_message!(q, m);
        }
        done.inserted.extend(q.fetch_all(&mut *tx).await?);
    }
    plan.check_batches(&done.inserted)?;
    let contents = plan.inserted(&done.inserted);
    for chunk in contents.chunks(PG_CHUNK) {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql::insert_contents(p, chunk.len())));
        for m in chunk {
            q = q.bind(&m.id).bind(&m.content);
        }
        q.execute(&mut *tx).await?;
    }
    for chunk in plan.updates.chunks(PG_CHUNK) {
        let mut q = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql::update_outcomes(p, chunk.len())));
        for o in chunk {
            q = q
                .bind(&o.message)
                .bind(o.lease_until)
                .bind(&o.status)
                .bind(&o.last_error)
                .bind(o.next_attempt_at)
                .bind(now);
        }
        done.held.extend(q.fetch_all(&mut *tx).await?);
    }
    for o in &plan.singles {
        let held = sqlx::query(sql::UPDATE_ONE)
            .bind(&o.message)
            .bind(o.lease_until)
            .bind(&o.status)
            .bind(&o.last_error)
            .bind(o.next_attempt_at)
            .bind(i64::from(o.captured.is_some()))
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if held && let Some(content) = &o.content {
            sqlx::query(sql::UPDATE_CONTENT)
                .bind(&o.message)
                .bind(content)
                .execute(&mut *tx)
                .await?;
        }
        if held && let Some(c) = &o.captured {
            sqlx::query(sql::INSERT_CAPTURED)
                .bind(&c.id)
                .bind(&c.tenant_id)
                .bind(&c.message_id)
                .bind(&c.mail_from)
                .bind(&c.rcpt_to)
                .bind(&c.subject)
                .bind(&c.raw)
                .bind(c.at)
                .execute(&mut *tx)
                .await?;
        }
        done.single_held.push(held);
    }
    insert_attempts_postgres(&mut tx, &plan.held_attempts(&done)).await?;
    if plan.probe {
        sqlx::query(sql::PROBE).bind(now).execute(&mut *tx).await?;
    }
    // Claims last: what this group queued or deferred is claimable at once.
    for (now, lease_until, limit) in &plan.claims {
        let mut rows = Vec::new();
        for expired in [false, true] {
            let claimed = sqlx::query_as::<_, MessageRow>(sqlx::AssertSqlSafe(claim_sql(true, expired)))
                .bind(now)
                .bind(lease_until)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
            if expired && !claimed.is_empty() {
                let log: Vec<AttemptRow> = claimed.iter().map(|r| interrupted_attempt(r, *now)).collect();
                insert_attempts_postgres(&mut tx, &log.iter().collect::<Vec<_>>()).await?;
            }
            rows.extend(claimed);
        }
        let mut found: HashMap<String, String> = HashMap::with_capacity(rows.len());
        for chunk in rows.chunks(PG_CHUNK) {
            let mut q = sqlx::query_as::<_, (String, String)>(sqlx::AssertSqlSafe(sql::contents_of(p, chunk.len())));
            for r in chunk {
                q = q.bind(&r.id);
            }
            found.extend(q.fetch_all(&mut *tx).await?);
        }
        done.claimed.push(with_contents(rows, found));
    }
    tx.commit().await?;
    Ok(plan.answers(done))
}

async fn insert_attempts_postgres(tx: &mut sqlx::PgConnection, attempts: &[&AttemptRow]) -> Result<()> {
    for chunk in attempts.chunks(PG_CHUNK) {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql::insert_attempts(Params::Numbered, chunk.len())));
        for a in chunk {
            q = q
                .bind(&a.id)
                .bind(&a.message_id)
                .bind(a.at)
                .bind(&a.account_id)
                .bind(&a.outcome)
                .bind(&a.stage)
                .bind(a.code)
                .bind(&a.enhanced_code)
                .bind(&a.reply)
                .bind(&a.class)
                .bind(&a.transcript);
        }
        q.execute(&mut *tx).await?;
    }
    Ok(())
}
