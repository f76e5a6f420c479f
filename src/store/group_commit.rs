//! Group commit: the writes of many concurrent callers (accepted messages,
//! delivery outcomes, the worker's claims) share one transaction, so one
//! fsync covers all that arrived while the previous commit ran. Each caller
//! is answered only once its own write is durable, exactly as if it had
//! committed alone.
//!
//! One task does the writing, which also keeps SQLite's single writer from
//! being fought over (a contended SQLite lock is waited for by sleeping).
//! Like writes go out as multi-row statements: a statement costs a round trip
//! to the database, more than its rows do. Under light load a group is a
//! single write, committed at once; nothing waits for a group to fill.

use super::messages::{AttemptRow, CapturedRow, MSG_COLUMNS, MessageRow, bind_message, claim_sql};
use super::{Pool, on_pool};
use crate::error::{Error, Result};
use std::collections::{HashMap, HashSet};
use tokio::sync::{mpsc, oneshot};

/// Writes waiting for the writer; senders wait when it is this far behind.
const QUEUE: usize = 4096;
/// The most writes in one transaction.
const GROUP: usize = 512;
/// Rows per multi-row statement, largest first. A few fixed sizes keep the
/// prepared-statement cache small.
const CHUNKS: [usize; 5] = [256, 64, 16, 4, 1];

/// One caller's write; it commits whole or not at all.
#[derive(Debug)]
pub enum Write {
    /// A new message. Answers `Done(false)` when the tenant already used its
    /// idempotency key (nothing is written then).
    Message(MessageRow),
    /// A batch of new messages: all or none.
    Messages(Vec<MessageRow>),
    /// What a delivery did: its attempts go to the log and the message takes
    /// its new state, which only the holder of the lease may write (answers
    /// `Done(false)` to a stale worker, whose attempts are still logged: they
    /// happened).
    Outcome(Outcome),
    /// Claims up to `limit` due messages until `lease_until`.
    Claim { now: i64, lease_until: i64, limit: i64 },
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

type Job = (Write, oneshot::Sender<Result<Answer>>);

#[derive(Clone, Debug)]
pub struct GroupCommit {
    jobs: mpsc::Sender<Job>,
}

impl GroupCommit {
    /// Starts the writer on the current runtime; it ends when the last
    /// handle is dropped.
    pub fn start(pool: Pool) -> GroupCommit {
        let (jobs, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(pool, rx));
        GroupCommit { jobs }
    }

    /// Commits `write` (with whatever else is waiting) and answers once it is durable.
    pub async fn write(&self, write: Write) -> Result<Answer> {
        let (tx, rx) = oneshot::channel();
        let gone = || Error::Internal(anyhow::anyhow!("the database writer has stopped"));
        self.jobs.send((write, tx)).await.map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    /// A write answered yes or no.
    pub async fn done(&self, write: Write) -> Result<bool> {
        match self.write(write).await? {
            Answer::Done(b) => Ok(b),
            Answer::Claimed(_) => Err(Error::Internal(anyhow::anyhow!("a write was answered with claims"))),
        }
    }
}

async fn run(pool: Pool, mut rx: mpsc::Receiver<Job>) {
    let mut jobs: Vec<Job> = Vec::with_capacity(GROUP);
    while rx.recv_many(&mut jobs, GROUP).await > 0 {
        let writes: Vec<&Write> = jobs.iter().map(|(w, _)| w).collect();
        let started = std::time::Instant::now();
        let committed = commit(&pool, &writes).await;
        tracing::trace!(
            writes = writes.len(),
            ms = started.elapsed().as_secs_f64() * 1e3,
            "group commit"
        );
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
                    let answer = commit(&pool, &[&write]).await.map(|mut a| a.pop().expect("one answer"));
                    let _ = reply.send(answer);
                }
            }
        }
    }
}

/// Splits `items` into runs of the sizes in `CHUNKS`.
fn chunks<T>(mut items: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        let size = CHUNKS.into_iter().find(|&c| c <= items.len())?;
        let (chunk, rest) = items.split_at(size);
        items = rest;
        Some(chunk)
    })
}

/// `($1,…,$k),($k+1,…)`: `rows` groups of `columns` parameters, each wrapped
/// by `wrap` (PostgreSQL needs the types of a VALUES list spelled out).
/// SQLite gets anonymous `?`s: it looks a numbered parameter up by a linear
/// search, which makes binding thousands of them quadratic.
fn placeholders(pool: &Pool, rows: usize, columns: usize, wrap: impl Fn(usize, &str) -> String) -> String {
    let mut out = String::with_capacity(rows * columns * 8);
    for r in 0..rows {
        out.push_str(if r == 0 { "(" } else { ",(" });
        for c in 0..columns {
            if c > 0 {
                out.push(',');
            }
            let p = match pool {
                Pool::Sqlite(_) => "?".to_string(),
                Pool::Postgres(_) => format!("${}", r * columns + c + 1),
            };
            out.push_str(&wrap(c, &p));
        }
        out.push(')');
    }
    out
}

/// The writes in one transaction; one answer per write.
async fn commit(pool: &Pool, writes: &[&Write]) -> Result<Vec<Answer>> {
    let new_messages: Vec<&MessageRow> = writes
        .iter()
        .flat_map(|w| match w {
            Write::Message(m) => std::slice::from_ref(m),
            Write::Messages(rows) => rows.as_slice(),
            _ => &[],
        })
        .collect();
    let outcomes: Vec<&Outcome> = writes
        .iter()
        .filter_map(|w| match w {
            Write::Outcome(o) => Some(o),
            _ => None,
        })
        .collect();
    let attempts: Vec<&AttemptRow> = outcomes.iter().flat_map(|o| &o.attempts).collect();
    // One multi-row UPDATE tells which messages it changed, by id: an id
    // twice in a group (a stale worker and the new holder) goes alone.
    let mut seen = HashSet::new();
    let (updates, singles): (Vec<&Outcome>, Vec<&Outcome>) = outcomes
        .iter()
        .partition(|o| o.captured.is_none() && o.content.is_none() && seen.insert(o.message.as_str()));
    let claim = claim_sql(pool);
    let now = crate::now_ms();

    let answers = on_pool!(OnPool { pool }, |p| {
        let mut tx = p.begin().await?;

        let mut inserted = HashSet::new();
        for chunk in chunks(&new_messages) {
            let sql = format!(
                "INSERT INTO messages ({MSG_COLUMNS}) VALUES {} ON CONFLICT (tenant_id, idempotency_key) DO NOTHING \
                 RETURNING id",
                placeholders(pool, chunk.len(), 14, |_, p| p.to_string())
            );
            let mut q = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql));
            for m in chunk {
                q = bind_message!(q, m);
            }
            inserted.extend(q.fetch_all(&mut *tx).await?);
        }
        // The content of each message that went in (not of an idempotent repeat).
        let contents: Vec<&&MessageRow> = new_messages.iter().filter(|m| inserted.contains(&m.id)).collect();
        for chunk in chunks(&contents) {
            let sql = format!(
                "INSERT INTO message_contents (id, content) VALUES {}",
                placeholders(pool, chunk.len(), 2, |_, p| p.to_string())
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for m in chunk {
                q = q.bind(&m.id).bind(&m.content);
            }
            q.execute(&mut *tx).await?;
        }

        for chunk in chunks(&attempts) {
            let sql = format!(
                "INSERT INTO attempts (id, message_id, at, account_id, outcome, stage, code, enhanced_code, reply, \
                 class, transcript) VALUES {}",
                placeholders(pool, chunk.len(), 11, |_, p| p.to_string())
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
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

        let mut held = HashSet::new();
        for chunk in chunks(&updates) {
            // VALUES columns are column1… on both databases.
            let types = ["TEXT", "BIGINT", "TEXT", "TEXT", "BIGINT"];
            let sql = format!(
                "UPDATE messages SET status = v.column3, last_error = v.column4, next_attempt_at = v.column5, \
                 lease_until = NULL, updated_at = {now} \
                 FROM (VALUES {}) AS v \
                 WHERE messages.id = v.column1 AND messages.status = 'sending' AND messages.lease_until = v.column2 \
                 RETURNING messages.id",
                placeholders(pool, chunk.len(), 5, |c, p| format!("CAST({p} AS {})", types[c]))
            );
            let mut q = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql));
            for o in chunk {
                q = q
                    .bind(&o.message)
                    .bind(o.lease_until)
                    .bind(&o.status)
                    .bind(&o.last_error)
                    .bind(o.next_attempt_at);
            }
            held.extend(q.fetch_all(&mut *tx).await?);
        }
        let mut single_held = Vec::with_capacity(singles.len());
        for o in &singles {
            let done = sqlx::query(
                "UPDATE messages SET status = $3, last_error = $4, next_attempt_at = $5, lease_until = NULL, \
                 captured = $6, updated_at = $7 WHERE id = $1 AND status = 'sending' AND lease_until = $2",
            )
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
            if done && let Some(content) = &o.content {
                sqlx::query("UPDATE message_contents SET content = $2 WHERE id = $1")
                    .bind(&o.message)
                    .bind(content)
                    .execute(&mut *tx)
                    .await?;
            }
            if done && let Some(c) = &o.captured {
                sqlx::query(
                    "INSERT INTO captured (id, tenant_id, message_id, mail_from, rcpt_to, subject, raw, at) \
                     VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
                )
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
            single_held.push(done);
        }

        // Claims last: what this group queued or deferred is claimable at once.
        let mut claimed = Vec::new();
        for w in writes {
            if let Write::Claim {
                now,
                lease_until,
                limit,
            } = w
            {
                let mut rows = sqlx::query_as::<_, MessageRow>(sqlx::AssertSqlSafe(claim.as_str()))
                    .bind(*now)
                    .bind(*lease_until)
                    .bind(*limit)
                    .fetch_all(&mut *tx)
                    .await?;
                let mut found: HashMap<String, String> = HashMap::with_capacity(rows.len());
                for chunk in chunks(&rows) {
                    let sql = format!(
                        "SELECT id, content FROM message_contents WHERE id IN ({})",
                        placeholders(pool, chunk.len(), 1, |_, p| p.to_string()).replace(['(', ')'], "")
                    );
                    let mut q = sqlx::query_as::<_, (String, String)>(sqlx::AssertSqlSafe(sql));
                    for r in chunk {
                        q = q.bind(&r.id);
                    }
                    found.extend(q.fetch_all(&mut *tx).await?);
                }
                for r in &mut rows {
                    r.content = found.remove(&r.id).unwrap_or_default();
                }
                claimed.push(rows);
            }
        }

        // A batch is all or none: a row it could not insert undoes the group
        // (whose writes are then committed one by one).
        for w in writes {
            if let Write::Messages(rows) = w
                && let Some(m) = rows.iter().find(|m| !inserted.contains(&m.id))
            {
                return Err(Error::Conflict(format!(
                    "message {} was not inserted: its id or idempotency key is taken",
                    m.id
                )));
            }
        }
        tx.commit().await?;
        Ok::<_, Error>((inserted, held, single_held, claimed))
    })?;

    let (inserted, held, single_held, claimed) = answers;
    let mut claimed = claimed.into_iter();
    Ok(writes
        .iter()
        .map(|w| match w {
            Write::Message(m) => Answer::Done(inserted.contains(&m.id)),
            Write::Messages(_) => Answer::Done(true),
            Write::Outcome(o) => Answer::Done(match singles.iter().position(|s| std::ptr::eq(*s, o)) {
                Some(i) => single_held[i],
                None => held.contains(&o.message),
            }),
            Write::Claim { .. } => Answer::Claimed(claimed.next().unwrap_or_default()),
        })
        .collect())
}

/// Lets `on_pool!` (written for a `Store`) run on the bare pool.
struct OnPool<'a> {
    pool: &'a Pool,
}
