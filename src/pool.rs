//! Idle SMTP sessions kept per account, so that consecutive messages reuse
//! an open, authenticated connection instead of paying for TCP, TLS, EHLO
//! and AUTH each time. A session is returned only after a clean send; one
//! idle too long is checked with NOOP (or dropped) before reuse, and any
//! change to how the account connects retires its sessions.

use crate::smtp::Session;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Past this, an idle session is closed rather than reused.
const MAX_IDLE: Duration = Duration::from_secs(60);
/// Past this, an idle session is checked with NOOP before reuse.
const CHECK_AFTER: Duration = Duration::from_secs(5);

struct Idle {
    session: Session,
    since: Instant,
    version: i64,
}

#[derive(Default)]
pub struct SessionPool {
    idle: Mutex<HashMap<String, Vec<Idle>>>,
}

impl SessionPool {
    /// An idle session of this account and version, and whether it should be
    /// checked first (it idled a while).
    pub fn take(&self, account: &str, version: i64) -> Option<(Session, bool)> {
        let mut idle = self.idle.lock().expect("pool lock");
        let list = idle.get_mut(account)?;
        list.retain(|i| i.version == version && i.since.elapsed() < MAX_IDLE);
        list.pop().map(|i| {
            let check = i.since.elapsed() > CHECK_AFTER;
            (i.session, check)
        })
    }

    /// Keeps a session for reuse, at most `max` per account.
    pub fn put(&self, account: &str, version: i64, session: Session, max: usize) {
        let mut idle = self.idle.lock().expect("pool lock");
        let list = idle.entry(account.to_string()).or_default();
        if list.len() < max {
            list.push(Idle {
                session,
                since: Instant::now(),
                version,
            });
        }
    }

    /// Closes every idle session (shutdown).
    pub fn drain(&self) -> Vec<Session> {
        let mut idle = self.idle.lock().expect("pool lock");
        idle.drain()
            .flat_map(|(_, v)| v.into_iter().map(|i| i.session))
            .collect()
    }
}
