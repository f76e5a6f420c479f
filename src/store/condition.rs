//! Whether the database takes writes, as the last ones found it: a storage
//! condition (disk full, read-only, I/O error, unreachable) stands from the
//! operation it refused until a write goes through again. Every refusal is
//! counted by cause, for `/metrics`.

use super::error::{Result, StoreError, Unavailable};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Condition {
    /// 0: none; else 1 + the index of the cause in `Unavailable::ALL`.
    current: AtomicU8,
    refused: [AtomicU64; Unavailable::ALL.len()],
    /// When a probe last ran (milliseconds since the epoch).
    probed_at: AtomicU64,
}

fn index(u: Unavailable) -> usize {
    Unavailable::ALL
        .iter()
        .position(|c| *c == u)
        .expect("every cause is in ALL")
}

impl Condition {
    /// A driver's result, as the store answers it, its condition noted.
    pub fn checked<T>(&self, r: std::result::Result<T, sqlx::Error>) -> Result<T> {
        r.map_err(|e| self.noted(StoreError::from(e)))
    }

    /// Notes the condition behind a failure, if it is one, and answers it.
    pub fn noted(&self, e: StoreError) -> StoreError {
        if let Some(u) = e.unavailable() {
            self.refused[index(u)].fetch_add(1, Ordering::Relaxed);
            let code = 1 + index(u) as u8;
            if self.current.swap(code, Ordering::AcqRel) != code {
                tracing::error!(
                    cause = u.label(),
                    "storage unavailable: {u}; answering 503 until a write goes through"
                );
            }
        }
        e
    }

    /// A write went through: whatever stood is over.
    pub fn wrote(&self) {
        // A load first: the common case writes nothing to the shared line.
        if self.current.load(Ordering::Acquire) != 0 {
            let was = self.current.swap(0, Ordering::AcqRel);
            if let Some(u) = was.checked_sub(1).map(|i| Unavailable::ALL[i as usize]) {
                tracing::info!(cause = u.label(), "storage available again: a write went through");
            }
        }
    }

    /// The condition standing now, if any.
    pub fn current(&self) -> Option<Unavailable> {
        let code = self.current.load(Ordering::Acquire);
        code.checked_sub(1).map(|i| Unavailable::ALL[i as usize])
    }

    /// Whether a probe may run now (at most one a second); claims its turn.
    pub fn probe_due(&self) -> bool {
        let now = crate::now_ms().max(0) as u64;
        let last = self.probed_at.load(Ordering::Acquire);
        now.saturating_sub(last) >= 1000
            && self
                .probed_at
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }

    /// Operations each cause refused.
    pub fn refusals(&self) -> [(Unavailable, u64); Unavailable::ALL.len()] {
        Unavailable::ALL.map(|u| (u, self.refused[index(u)].load(Ordering::Relaxed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_condition_stands_until_a_write_goes_through() {
        let c = Condition::default();
        assert_eq!(c.current(), None);
        let _ = c.noted(StoreError::Unavailable(Unavailable::NoSpace));
        let _ = c.noted(StoreError::Unavailable(Unavailable::NoSpace));
        let _ = c.noted(StoreError::NotFound("x".into()));
        assert_eq!(c.current(), Some(Unavailable::NoSpace));
        assert_eq!(c.refusals()[0], (Unavailable::NoSpace, 2));
        c.wrote();
        assert_eq!(c.current(), None);
        assert_eq!(c.refusals()[0], (Unavailable::NoSpace, 2), "counts stay");
    }

    #[test]
    fn probes_take_turns() {
        let c = Condition::default();
        assert!(c.probe_due());
        assert!(!c.probe_due(), "one a second");
    }
}
