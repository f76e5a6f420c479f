//! The SQLite side of the group commit: one thread owns a write connection
//! (rusqlite on the same SQLite library sqlx links) and runs each group
//! start to finish without leaving it. The statements and the plan are the
//! group commit's; only the driver differs.

use super::Result;
use super::group_commit::{Answer, Executed, GROUP, Job, Params, Plan, Write, sql, with_contents};
use super::messages::{AttemptRow, MessageRow, claim_sql, interrupted_attempt};
use rusqlite::{Connection, ToSql, TransactionBehavior};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::mpsc;

/// Rows per multi-row statement: a few fixed sizes, so that the prepared
/// statements are reused (sizes tried largest first).
const CHUNKS: [usize; 5] = [256, 64, 16, 4, 1];

pub fn open(file: &std::path::Path) -> anyhow::Result<Connection> {
    let conn = Connection::open(file)?;
    // As the pool's connections: WAL, and a commit on disk before it returns.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Runs until every sender is gone.
pub fn run(mut conn: Connection, mut rx: mpsc::Receiver<Job>) {
    let mut jobs: Vec<Job> = Vec::with_capacity(GROUP);
    while let Some(job) = rx.blocking_recv() {
        jobs.push(job);
        while jobs.len() < GROUP {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        // New messages first, in a transaction of their own: a caller waiting
        // for its 202 should not also wait for the delivery bookkeeping that
        // came in beside it (an fsync here is far cheaper than that wait).
        let (accepts, rest): (Vec<Job>, Vec<Job>) = jobs
            .drain(..)
            .partition(|(w, _)| matches!(w, Write::Message(_) | Write::Messages(_)));
        for group in [accepts, rest] {
            if !group.is_empty() {
                settle(&mut conn, group);
            }
        }
    }
}

/// Commits a group and answers each of its callers.
fn settle(conn: &mut Connection, mut jobs: Vec<Job>) {
    let writes: Vec<&Write> = jobs.iter().map(|(w, _)| w).collect();
    match commit(conn, &writes) {
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
                let answer = commit(conn, &[&write]).map(|mut a| a.pop().expect("one answer"));
                let _ = reply.send(answer);
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

fn commit(conn: &mut Connection, writes: &[&Write]) -> Result<Vec<Answer>> {
    let plan = Plan::new(writes);
    let p = Params::Anonymous;
    let now = crate::now_ms();
    let mut done = Executed::default();
    // IMMEDIATE: the write lock up front, never a read upgraded mid-way.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;

    for chunk in chunks(&plan.new_messages) {
        let mut stmt = tx.prepare_cached(&sql::insert_messages(p, chunk.len()))?;
        let mut args: Vec<&dyn ToSql> = Vec::with_capacity(chunk.len() * 14);
        for m in chunk {
            args.extend([
                &m.id as &dyn ToSql,
                &m.tenant_id,
                &m.account_id,
                &m.status,
                &m.message_id,
                &m.idempotency_key,
                &m.attempts,
                &m.next_attempt_at,
                &m.lease_until,
                &m.last_error,
                &m.captured,
                &m.created_at,
                &m.updated_at,
                &m.route,
            ]);
        }
        let ids = stmt.query_map(&args[..], |r| r.get::<_, String>(0))?;
        for id in ids {
            done.inserted.insert(id?);
        }
    }
    plan.check_batches(&done.inserted)?;
    let contents = plan.inserted(&done.inserted);
    for chunk in chunks(&contents) {
        let mut stmt = tx.prepare_cached(&sql::insert_contents(p, chunk.len()))?;
        let args: Vec<&dyn ToSql> = chunk.iter().flat_map(|m| [&m.id as &dyn ToSql, &m.content]).collect();
        stmt.execute(&args[..])?;
    }
    for chunk in chunks(&plan.updates) {
        let mut stmt = tx.prepare_cached(&sql::update_outcomes(p, chunk.len()))?;
        let mut args: Vec<&dyn ToSql> = Vec::with_capacity(chunk.len() * 6);
        for o in chunk {
            args.extend([
                &o.message as &dyn ToSql,
                &o.lease_until,
                &o.status,
                &o.last_error,
                &o.next_attempt_at,
                &now,
            ]);
        }
        let ids = stmt.query_map(&args[..], |r| r.get::<_, String>(0))?;
        for id in ids {
            done.held.insert(id?);
        }
    }
    for o in &plan.singles {
        let captured = i64::from(o.captured.is_some());
        let held = tx
            .prepare_cached(&sql::UPDATE_ONE.replace('$', "?"))?
            .execute(rusqlite::params![
                o.message,
                o.lease_until,
                o.status,
                o.last_error,
                o.next_attempt_at,
                captured,
                now
            ])?
            == 1;
        if held && let Some(content) = &o.content {
            tx.prepare_cached(&sql::UPDATE_CONTENT.replace('$', "?"))?
                .execute(rusqlite::params![o.message, content])?;
        }
        if held && let Some(c) = &o.captured {
            tx.prepare_cached(&sql::INSERT_CAPTURED.replace('$', "?"))?
                .execute(rusqlite::params![
                    c.id,
                    c.tenant_id,
                    c.message_id,
                    c.mail_from,
                    c.rcpt_to,
                    c.subject,
                    c.raw,
                    c.at
                ])?;
        }
        done.single_held.push(held);
    }
    insert_attempts(&tx, &plan.held_attempts(&done))?;
    if plan.probe {
        tx.prepare_cached(&sql::PROBE.replace('$', "?"))?.execute([now])?;
    }
    // Claims last: what this group queued or deferred is claimable at once.
    for (now, lease_until, limit) in &plan.claims {
        let mut rows = Vec::new();
        for expired in [false, true] {
            let claimed = {
                let mut stmt = tx.prepare_cached(&claim_sql(false, expired))?;
                let claimed = stmt.query_map(rusqlite::params![now, lease_until, limit], message_row)?;
                claimed.collect::<rusqlite::Result<Vec<MessageRow>>>()?
            };
            if expired && !claimed.is_empty() {
                let log: Vec<AttemptRow> = claimed.iter().map(|r| interrupted_attempt(r, *now)).collect();
                insert_attempts(&tx, &log.iter().collect::<Vec<_>>())?;
            }
            rows.extend(claimed);
        }
        let mut found: HashMap<String, String> = HashMap::with_capacity(rows.len());
        for chunk in chunks(&rows) {
            let mut stmt = tx.prepare_cached(&sql::contents_of(p, chunk.len()))?;
            let args: Vec<&dyn ToSql> = chunk.iter().map(|r| &r.id as &dyn ToSql).collect();
            let pairs = stmt.query_map(&args[..], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
            for pair in pairs {
                let (id, content) = pair?;
                found.insert(id, content);
            }
        }
        done.claimed.push(with_contents(rows, found));
    }
    tx.commit()?;
    Ok(plan.answers(done))
}

fn insert_attempts(tx: &rusqlite::Transaction, attempts: &[&AttemptRow]) -> Result<()> {
    for chunk in chunks(attempts) {
        let mut stmt = tx.prepare_cached(&sql::insert_attempts(Params::Anonymous, chunk.len()))?;
        let mut args: Vec<&dyn ToSql> = Vec::with_capacity(chunk.len() * 11);
        for a in chunk {
            args.extend([
                &a.id as &dyn ToSql,
                &a.message_id,
                &a.at,
                &a.account_id,
                &a.outcome,
                &a.stage,
                &a.code,
                &a.enhanced_code,
                &a.reply,
                &a.class,
                &a.transcript,
            ]);
        }
        stmt.execute(&args[..])?;
    }
    Ok(())
}

/// A claimed row, in `MSG_COLUMNS` order (its content is read next).
fn message_row(r: &rusqlite::Row) -> rusqlite::Result<MessageRow> {
    Ok(MessageRow {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        account_id: r.get(2)?,
        status: r.get(3)?,
        message_id: r.get(4)?,
        idempotency_key: r.get(5)?,
        attempts: r.get(6)?,
        next_attempt_at: r.get(7)?,
        lease_until: r.get(8)?,
        last_error: r.get(9)?,
        captured: r.get(10)?,
        created_at: r.get(11)?,
        updated_at: r.get(12)?,
        route: r.get(13)?,
        content: String::new(),
    })
}
