//! Load generator for Herald's accept path, used by `scripts/bench.sh`.
//!
//! Posts `--count` messages with `--body-bytes` of plain text each, either one
//! per request (`POST /api/v1/messages`) or `--batch-size` per request
//! (`POST /api/v1/messages/batch`), from `--concurrency` requests in flight,
//! and prints one line of JSON:
//!
//! ```json
//! {"sent":20000,"seconds":3.1,"rate":6451.6,"p50_ms":4.2,"p99_ms":11.0,
//!  "mode":"single","requests":20000,"errors":0,"concurrency":32,"batch_size":1}
//! ```
//!
//! `sent` counts messages the server answered 202 for; `p50_ms`/`p99_ms` are
//! per request (one message in `single` mode, one whole batch in `batch`
//! mode). Exits 1 if any request failed (the first failures go to stderr).
//!
//!     cargo run --release --example loadgen -- --base http://127.0.0.1:8080 \
//!         --token "$HERALD_ADMIN_TOKEN" --mode batch --count 100000 --batch-size 1000

use clap::{Parser, ValueEnum};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    Single,
    Batch,
}

#[derive(Parser, Debug)]
#[command(about = "Posts messages to Herald and reports the accept rate and latency")]
struct Args {
    /// Herald's base URL, e.g. http://127.0.0.1:8080
    #[arg(long)]
    base: String,
    /// API token (Bearer)
    #[arg(long, env = "HERALD_TOKEN")]
    token: String,
    #[arg(long, value_enum, default_value = "single")]
    mode: Mode,
    /// Messages to post in all
    #[arg(long, default_value_t = 10_000)]
    count: u64,
    /// Requests in flight at once
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Messages per request in batch mode (Herald takes up to 1000)
    #[arg(long, default_value_t = 1000)]
    batch_size: u64,
    /// Sending account (id or name); the tenant's default when absent
    #[arg(long)]
    account: Option<String>,
    /// Size of each message's text body, in bytes
    #[arg(long, default_value_t = 2048)]
    body_bytes: usize,
    /// Recipient of every message
    #[arg(long, default_value = "user@bench.test")]
    to: String,
    /// Prefix of the subjects ("<prefix> <n>"), to tell runs apart
    #[arg(long, default_value = "bench")]
    subject: String,
    /// Per-request timeout, seconds
    #[arg(long, default_value_t = 300)]
    timeout_secs: u64,
}

/// A plain-text body of exactly `n` bytes: printable ASCII lines of at most
/// 78 characters ending in "\n" (what a real notification looks like, and
/// nothing that needs quoted-printable or base64).
fn body(n: usize) -> String {
    const WORDS: &str = "Your weekly report is ready. Open the console to see the details of every job, \
        the volumes that are close to full and the accounts that need attention. ";
    let mut out = String::with_capacity(n);
    let mut col = 0;
    for c in WORDS.chars().cycle() {
        if out.len() >= n {
            break;
        }
        if out.len() + 1 == n || col == 77 {
            out.push('\n');
            col = 0;
        } else {
            out.push(c);
            col += 1;
        }
    }
    out
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn message(args: &Args, text: &str, n: u64) -> Value {
    let mut m = json!({
        "to": [args.to],
        "subject": format!("{} {n}", args.subject),
        "text": text,
    });
    if let Some(a) = &args.account {
        m["account"] = json!(a);
    }
    m
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Arc::new(Args::parse());
    if args.mode == Mode::Batch && !(1..=1000).contains(&args.batch_size) {
        eprintln!("loadgen: --batch-size must be between 1 and 1000");
        std::process::exit(2);
    }
    let per_request = match args.mode {
        Mode::Single => 1,
        Mode::Batch => args.batch_size,
    };
    let url = match args.mode {
        Mode::Single => format!("{}/api/v1/messages", args.base.trim_end_matches('/')),
        Mode::Batch => format!("{}/api/v1/messages/batch", args.base.trim_end_matches('/')),
    };
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency.max(1))
        .timeout(Duration::from_secs(args.timeout_secs))
        .build()
        .expect("HTTP client");
    let text: Arc<str> = body(args.body_bytes).into();

    // Messages are handed out in request-sized slices from one counter.
    let next = Arc::new(AtomicU64::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.concurrency.max(1) {
        let (args, http, url, text) = (args.clone(), http.clone(), url.clone(), text.clone());
        let (next, sent, errors) = (next.clone(), sent.clone(), errors.clone());
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let first = next.fetch_add(per_request, Ordering::Relaxed);
                if first >= args.count {
                    break;
                }
                let n = per_request.min(args.count - first);
                let payload = match args.mode {
                    Mode::Single => message(&args, &text, first),
                    Mode::Batch => {
                        json!({"messages": (first..first + n).map(|i| message(&args, &text, i)).collect::<Vec<_>>()})
                    }
                };
                let body = serde_json::to_vec(&payload).expect("JSON");
                let t = Instant::now();
                let result = http
                    .post(&url)
                    .bearer_auth(&args.token)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                let outcome = match result {
                    Ok(r) => {
                        let status = r.status();
                        // Read the whole answer, so the connection is reused.
                        match r.bytes().await {
                            Ok(_) if status.as_u16() == 202 => Ok(()),
                            Ok(b) => Err(format!(
                                "HTTP {status}: {}",
                                String::from_utf8_lossy(&b[..b.len().min(500)])
                            )),
                            Err(e) => Err(format!("reading the answer: {e}")),
                        }
                    }
                    Err(e) => Err(format!("request: {e}")),
                };
                latencies.push(t.elapsed().as_secs_f64() * 1000.0);
                match outcome {
                    Ok(()) => {
                        sent.fetch_add(n, Ordering::Relaxed);
                    }
                    Err(e) => {
                        if errors.fetch_add(1, Ordering::Relaxed) < 5 {
                            eprintln!("loadgen: messages {first}..{}: {e}", first + n);
                        }
                    }
                }
            }
            latencies
        });
    }
    let mut latencies = Vec::new();
    while let Some(l) = tasks.join_next().await {
        latencies.extend(l.expect("a loadgen task panicked"));
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort_by(|a, b| a.total_cmp(b));
    let sent = sent.load(Ordering::Relaxed);
    let errors = errors.load(Ordering::Relaxed);
    let round = |x: f64, d: i32| (x * 10f64.powi(d)).round() / 10f64.powi(d);
    let report = json!({
        "sent": sent,
        "seconds": round(seconds, 3),
        "rate": round(if seconds > 0.0 { sent as f64 / seconds } else { 0.0 }, 1),
        "p50_ms": round(percentile(&latencies, 50.0), 2),
        "p99_ms": round(percentile(&latencies, 99.0), 2),
        "mode": match args.mode { Mode::Single => "single", Mode::Batch => "batch" },
        "requests": latencies.len(),
        "errors": errors,
        "concurrency": args.concurrency,
        "batch_size": per_request,
    });
    println!("{report}");
    if errors > 0 {
        std::process::exit(1);
    }
}
