//! Storage failures: a database that takes no writes answers 503 with
//! Retry-After and says why (also in /healthz and /metrics), accepts nothing
//! it cannot keep, and recovers by itself once the cause is gone. The full
//! disk is real (the data directory on a small tmpfs, filled); so is the
//! read-only database (PostgreSQL sessions made read-only, as on a standby:
//! a tmpfs cannot be remounted read-only while Herald has files open).

use crate::helpers::*;
use serde_json::{Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A tmpfs mounted for one test, unmounted when dropped (lazily: a test that
/// failed may leave Herald's files open).
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`16m`); why not, when it cannot be mounted.
    fn mount(size: &str) -> Result<Tmpfs, String> {
        let uid = Command::new("id")
            .arg("-u")
            .output()
            .map_err(|e| format!("id -u: {e}"))?;
        let uid = String::from_utf8_lossy(&uid.stdout).trim().to_string();
        if uid != "0" {
            return Err(format!("mounting a tmpfs needs root, and this runs as uid {uid}"));
        }
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

/// Fills the device holding `dir` to the last byte; answers the filler file.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).expect("create the filler");
    for chunk in [1 << 20, 4096, 1] {
        let block = vec![0u8; chunk];
        while f.write_all(&block).is_ok() {}
    }
    let _ = f.sync_all();
    path
}

async fn healthz(app: &TestApp) -> (u16, Value) {
    let r = app.http.get(app.url("/healthz")).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn metrics(app: &TestApp) -> String {
    app.get("/metrics").await.text().await.unwrap()
}

fn message(i: usize) -> Value {
    // Large enough that the write-ahead log must grow for each.
    json!({"to": ["a@example.com"], "subject": format!("message {i}"), "text": "x".repeat(64 * 1024)})
}

/// Posts a message; its id when accepted, else the response.
async fn post(app: &TestApp, i: usize) -> Result<String, reqwest::Response> {
    let r = app.post("/api/v1/messages", &message(i)).await;
    if r.status() != 202 {
        return Err(r);
    }
    Ok(r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string())
}

/// Posts messages until one is refused, noting those accepted meanwhile (a
/// write may still fit, a session may still be open): the refusal must be a
/// 503 with Retry-After whose detail says `says`, and the condition `cause`
/// must show in /healthz and /metrics.
async fn refused_until_it_clears(app: &TestApp, accepted: &mut Vec<String>, cause: &str, says: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let refused = loop {
        match post(app, accepted.len()).await {
            Ok(id) => accepted.push(id),
            Err(r) => break r,
        }
        assert!(
            Instant::now() < deadline,
            "{} messages accepted, none refused",
            accepted.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["content-type"], "application/problem+json");
    let retry: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry > 0);
    let problem: Value = refused.json().await.unwrap();
    assert!(problem["detail"].as_str().unwrap().contains(says), "{problem}");

    let (status, health) = healthz(app).await;
    assert_eq!(status, 503, "{health}");
    assert!(health["status"].as_str().unwrap().contains(says), "{health}");
    assert_eq!(health["cause"], cause);
    let m = metrics(app).await;
    assert!(
        m.contains(&format!("herald_storage_unavailable{{cause=\"{cause}\"}} 1")),
        "{m}"
    );
    assert!(
        !m.contains(&format!("herald_storage_errors_total{{cause=\"{cause}\"}} 0")),
        "{m}"
    );
}

/// Once the cause is gone, Herald is healthy again by itself, accepts and
/// sends a message, and every message it accepted before is still there.
async fn recovers(app: &TestApp, accepted: &[String], cause: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, health) = healthz(app).await;
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "still unhealthy: {health}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let m = metrics(app).await;
    assert!(
        m.contains(&format!("herald_storage_unavailable{{cause=\"{cause}\"}} 0")),
        "{m}"
    );
    let after = post(app, accepted.len()).await.expect("a message accepted again");
    let sent = app.wait_message(&after, &["sent"]).await;
    assert_eq!(sent["captured"], true, "{sent}");
    for id in accepted {
        let r = app.get(&format!("/api/v1/messages/{id}")).await;
        assert_eq!(r.status(), 200, "accepted message {id} is gone");
    }
}

#[tokio::test]
async fn a_full_disk_answers_503_until_space_is_freed_and_loses_no_accepted_message() {
    let tmpfs = match Tmpfs::mount("16m") {
        Ok(t) => t,
        Err(why) => {
            // Straight to stderr: the test harness would swallow eprintln!.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED storage::a_full_disk_…: no tmpfs for the data directory: {why}"
            );
            return;
        }
    };
    let data = tmpfs.path().to_str().unwrap().to_string();
    let app = spawn_app_with(&[("HERALD_DATA_DIR", &data)]).await;
    let mut accepted = Vec::new();
    for i in 0..3 {
        accepted.push(post(&app, i).await.expect("accepted"));
    }

    let filler = fill(tmpfs.path());
    refused_until_it_clears(&app, &mut accepted, "no_space", "no space left").await;

    std::fs::remove_file(&filler).unwrap();
    recovers(&app, &accepted, "no_space").await;
    app.stop().await;
}

/// Makes the database's new sessions read-only (or writable again) and ends
/// the current ones, as a failover to a standby would.
async fn set_read_only(admin: &mut sqlx::PgConnection, database: &str, on: bool) {
    let value = if on { "on" } else { "off" };
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE {database} SET default_transaction_read_only = {value}"
    )))
    .execute(&mut *admin)
    .await
    .unwrap();
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind(database)
    .execute(&mut *admin)
    .await
    .unwrap();
}

#[tokio::test]
async fn a_read_only_database_answers_503_until_it_takes_writes_again() {
    use sqlx::Connection;
    let url = new_pg_database().await;
    let database = url.rsplit('/').next().unwrap().to_string();
    let app = spawn_app_with(&[("HERALD_DATABASE_URL", &url)]).await;
    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
    let mut accepted = vec![post(&app, 0).await.expect("accepted")];

    set_read_only(&mut admin, &database, true).await;
    refused_until_it_clears(&app, &mut accepted, "read_only", "read-only").await;

    set_read_only(&mut admin, &database, false).await;
    recovers(&app, &accepted, "read_only").await;
    admin.close().await.unwrap();
    app.stop().await;
}
