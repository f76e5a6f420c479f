//! Counters for `/metrics` (Prometheus text); the queue depth comes from the
//! database at scrape time.

use crate::status::MessageStatus;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Counters for `/metrics`; queue depth comes from the database at scrape time.
#[derive(Default)]
pub struct Metrics {
    accepted: AtomicU64,
    tests_ok: AtomicU64,
    tests_failed: AtomicU64,
    attempts: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
    /// Attempts per account and outcome.
    per_account: std::sync::Mutex<std::collections::BTreeMap<(String, String), u64>>,
    /// Webhook and chat-robot attempts (and channel tests) per kind and outcome.
    per_channel_kind: std::sync::Mutex<std::collections::BTreeMap<(String, String), u64>>,
    /// Send latency histogram: counts per upper bound in seconds.
    latency_buckets: [AtomicU64; LATENCY_BOUNDS.len()],
    latency_count: AtomicU64,
    latency_sum_ms: AtomicU64,
}

/// A storage condition (disk full …) as `/metrics` shows it.
pub struct StorageCause {
    /// `no_space`, `read_only`, `io_error`, `unreachable`.
    pub label: &'static str,
    /// Operations it refused since the start.
    pub refused: u64,
    /// Whether it stands now.
    pub current: bool,
}

/// Upper bounds of the send latency histogram, in seconds.
pub const LATENCY_BOUNDS: [f64; 8] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

impl Metrics {
    pub fn record_accepted(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_test(&self, ok: bool) {
        if ok { &self.tests_ok } else { &self.tests_failed }.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_attempt(&self, class: &str) {
        *self
            .attempts
            .lock()
            .expect("metrics lock")
            .entry(class.to_string())
            .or_default() += 1;
    }

    pub fn record_account(&self, account: &str, outcome: &str) {
        *self
            .per_account
            .lock()
            .expect("metrics lock")
            .entry((account.to_string(), outcome.to_string()))
            .or_default() += 1;
    }

    /// A webhook or chat-robot attempt (outcome `sent`, `transient`,
    /// `permanent`, `configuration`) or test (`test_ok`, `test_failed`).
    pub fn record_channel(&self, kind: &str, outcome: &str) {
        *self
            .per_channel_kind
            .lock()
            .expect("metrics lock")
            .entry((kind.to_string(), outcome.to_string()))
            .or_default() += 1;
    }

    pub fn observe_send(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (i, bound) in LATENCY_BOUNDS.iter().enumerate() {
            if secs <= *bound {
                self.latency_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_ms.fetch_add(d.as_millis() as u64, Ordering::Relaxed);
    }

    /// Prometheus text exposition; the queue by status when the database
    /// could count it.
    pub fn render(&self, queue: Option<&[(String, i64)]>, storage: &[StorageCause]) -> String {
        let mut out = String::new();
        if let Some(queue) = queue {
            out.push_str("# HELP herald_messages Messages in the store by status.\n# TYPE herald_messages gauge\n");
            for s in MessageStatus::ALL.iter().map(|s| s.as_str()) {
                let n = queue.iter().find(|(st, _)| st == s).map(|(_, n)| *n).unwrap_or(0);
                out.push_str(&format!("herald_messages{{status=\"{s}\"}} {n}\n"));
            }
        }
        out.push_str("# HELP herald_storage_errors_total Storage operations refused by a storage condition, by cause.\n# TYPE herald_storage_errors_total counter\n");
        for c in storage {
            out.push_str(&format!(
                "herald_storage_errors_total{{cause=\"{}\"}} {}\n",
                c.label, c.refused
            ));
        }
        out.push_str("# HELP herald_storage_unavailable 1 for the storage condition that refuses writes now.\n# TYPE herald_storage_unavailable gauge\n");
        for c in storage {
            out.push_str(&format!(
                "herald_storage_unavailable{{cause=\"{}\"}} {}\n",
                c.label,
                u8::from(c.current)
            ));
        }
        out.push_str("# HELP herald_messages_accepted_total Messages accepted by this process.\n# TYPE herald_messages_accepted_total counter\n");
        out.push_str(&format!(
            "herald_messages_accepted_total {}\n",
            self.accepted.load(Ordering::Relaxed)
        ));
        out.push_str("# HELP herald_delivery_attempts_total Delivery attempts by outcome class.\n# TYPE herald_delivery_attempts_total counter\n");
        for (class, n) in self.attempts.lock().expect("metrics lock").iter() {
            out.push_str(&format!("herald_delivery_attempts_total{{class=\"{class}\"}} {n}\n"));
        }
        out.push_str("# HELP herald_account_attempts_total Delivery attempts per account and outcome (this process).\n# TYPE herald_account_attempts_total counter\n");
        for ((account, outcome), n) in self.per_account.lock().expect("metrics lock").iter() {
            out.push_str(&format!(
                "herald_account_attempts_total{{account=\"{account}\",outcome=\"{outcome}\"}} {n}\n"
            ));
        }
        out.push_str("# HELP herald_channel_attempts_total Webhook and chat-robot attempts and tests per kind and outcome (this process).\n# TYPE herald_channel_attempts_total counter\n");
        for ((kind, outcome), n) in self.per_channel_kind.lock().expect("metrics lock").iter() {
            out.push_str(&format!(
                "herald_channel_attempts_total{{kind=\"{kind}\",outcome=\"{outcome}\"}} {n}\n"
            ));
        }
        out.push_str(
            "# HELP herald_test_emails_total Test emails by result.\n# TYPE herald_test_emails_total counter\n",
        );
        out.push_str(&format!(
            "herald_test_emails_total{{ok=\"true\"}} {}\n",
            self.tests_ok.load(Ordering::Relaxed)
        ));
        out.push_str(&format!(
            "herald_test_emails_total{{ok=\"false\"}} {}\n",
            self.tests_failed.load(Ordering::Relaxed)
        ));
        out.push_str(
            "# HELP herald_send_seconds Time to deliver one message over SMTP.\n# TYPE herald_send_seconds histogram\n",
        );
        for (i, bound) in LATENCY_BOUNDS.iter().enumerate() {
            out.push_str(&format!(
                "herald_send_seconds_bucket{{le=\"{bound}\"}} {}\n",
                self.latency_buckets[i].load(Ordering::Relaxed)
            ));
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        out.push_str(&format!("herald_send_seconds_bucket{{le=\"+Inf\"}} {count}\n"));
        out.push_str(&format!(
            "herald_send_seconds_sum {}\n",
            self.latency_sum_ms.load(Ordering::Relaxed) as f64 / 1000.0
        ));
        out.push_str(&format!("herald_send_seconds_count {count}\n"));
        out
    }
}
