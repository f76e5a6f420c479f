//! DKIM: keys per sending domain, the TXT record Herald shows, its DNS check
//! (published / missing / mismatch, against a real DNS server on loopback),
//! and signatures verified at the receiving SMTP server by dkimpy with
//! exactly that record — RSA and Ed25519, rotation, non-ASCII headers, long
//! lines.

use crate::helpers::*;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Command;

/// The records file both peers read, and the two peers.
struct Dns {
    records: PathBuf,
    _dir: tempfile::TempDir,
    server: Peer,
}

impl Dns {
    fn start() -> Dns {
        let dir = tempfile::tempdir().unwrap();
        let records = dir.path().join("records.json");
        std::fs::write(&records, "{}").unwrap();
        let mut cmd = Command::new("python3");
        cmd.arg(repo().join("tests/peers/dkim_peers.py"))
            .arg("dns")
            .arg("--records")
            .arg(&records);
        let server = start_peer(cmd, tempfile::tempdir().unwrap());
        Dns {
            records,
            _dir: dir,
            server,
        }
    }

    fn publish(&self, records: Value) {
        let tmp = self.records.with_extension("tmp");
        std::fs::write(&tmp, records.to_string()).unwrap();
        std::fs::rename(tmp, &self.records).unwrap();
    }

    /// The SMTP server that verifies with dkimpy against these records.
    fn verifying_smtp(&self) -> Peer {
        let maildir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("python3");
        cmd.arg(repo().join("tests/peers/dkim_peers.py"))
            .arg("smtp")
            .arg("--records")
            .arg(&self.records)
            .arg("--maildir")
            .arg(maildir.path());
        start_peer(cmd, maildir)
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.server.port)
    }
}

async fn add_key(app: &TestApp, body: Value) -> Value {
    let r = app.post("/api/v1/dkim", &body).await;
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, 201, "{v}");
    v
}

async fn check(app: &TestApp, id: &str) -> Value {
    let r = app.post(&format!("/api/v1/dkim/{id}/check"), &json!({})).await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn send(app: &TestApp, subject: &str, text: &str) -> Value {
    let m: Value = app
        .post(
            "/api/v1/messages",
            &json!({"to": ["rcpt@example.org"], "subject": subject, "text": text, "account": "signed"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let done = app.wait_message(m["id"].as_str().unwrap(), &["sent", "failed"]).await;
    assert_eq!(done["status"], "sent", "{done}");
    done
}

fn assert_verified(m: &Value, selector: &str, algorithm: &str) {
    let data = m["data"].as_str().unwrap();
    assert_eq!(m["dkim"]["ok"], true, "dkimpy: {} in\n{data}", m["dkim"]);
    assert_eq!(m["dkim"]["domain"], "herald.test", "{}", m["dkim"]);
    assert_eq!(m["dkim"]["selector"], selector, "{}", m["dkim"]);
    assert!(data.starts_with("DKIM-Signature:"), "{data}");
    assert!(data.contains(&format!("a={algorithm}")), "{data}");
    assert!(data.contains("c=relaxed/relaxed"), "{data}");
}

#[tokio::test]
async fn the_record_is_checked_and_every_message_from_the_domain_is_signed() {
    let dns = Dns::start();
    let smtp = dns.verifying_smtp();
    let app = spawn_app_with(&[("HERALD_DNS_SERVER", &dns.address())]).await;
    let mut account = local_account("signed", smtp.port, "none", None, None);
    account["from"]["name"] = json!("Herald 通知中心");
    let account = app.create_account(account).await;

    // RSA by default; the record to publish is shown, never the private key.
    let rsa = add_key(&app, json!({"domain": "Herald.Test"})).await;
    let rsa_id = rsa["id"].as_str().unwrap();
    let selector = rsa["selector"].as_str().unwrap().to_string();
    assert_eq!(rsa["domain"], "herald.test");
    assert_eq!(rsa["algorithm"], "rsa-sha256");
    assert_eq!(rsa["status"], "unchecked");
    assert_eq!(rsa["signing"], true);
    assert_eq!(rsa["dns_name"], format!("{selector}._domainkey.herald.test"));
    let value = rsa["dns_value"].as_str().unwrap().to_string();
    assert!(value.starts_with("v=DKIM1; k=rsa; p=MII"), "{value}");
    assert!(!rsa.to_string().to_lowercase().contains("private"), "{rsa}");
    let name = rsa["dns_name"].as_str().unwrap().to_string();

    // The three outcomes of the check.
    let missing = check(&app, rsa_id).await;
    assert_eq!(missing["status"], "missing", "{missing}");
    assert!(missing["hint"]["en"].as_str().unwrap().contains(&value), "{missing}");
    assert!(missing["hint"]["zh-CN"].as_str().unwrap().contains("TXT"), "{missing}");
    dns.publish(json!({&name: ["v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAother"]}));
    let mismatch = check(&app, rsa_id).await;
    assert_eq!(mismatch["status"], "mismatch", "{mismatch}");
    assert!(
        mismatch["hint"]["en"].as_str().unwrap().contains("different key"),
        "{mismatch}"
    );
    dns.publish(json!({&name: [&value]}));
    let published = check(&app, rsa_id).await;
    assert_eq!(published["status"], "published", "{published}");
    assert_eq!(published["hint"], Value::Null);
    let shown: Value = app.get(&format!("/api/v1/dkim/{rsa_id}")).await.json().await.unwrap();
    assert_eq!(shown["status"], "published", "the check is stored: {shown}");

    // A queued message and the test email, both verified by dkimpy with the
    // record as shown: non-ASCII subject and display name, a long line.
    let long_line = "0123456789 ".repeat(120);
    send(
        &app,
        "欢迎 — DKIM über alles",
        &format!("Hello 你好\n{long_line}\n.\nend"),
    )
    .await;
    let report = app
        .test_email(account["id"].as_str().unwrap(), "rcpt@example.org", "zh-CN")
        .await;
    assert_eq!(report["ok"], true, "{report}");
    let got = smtp.wait_messages(2).await;
    for m in &got {
        assert_verified(m, &selector, "rsa-sha256");
    }
    assert!(got[0]["data"].as_str().unwrap().contains("=?utf-8?"), "encoded headers");

    // Rotation: an Ed25519 key with a new selector signs from now on; the
    // RSA key stays listed (and published) until deleted.
    let taken = app
        .post("/api/v1/dkim", &json!({"domain": "herald.test", "selector": selector}))
        .await;
    assert_eq!(taken.status(), 422);
    let problem: Value = taken.json().await.unwrap();
    assert_eq!(problem["errors"][0]["field"], "selector", "{problem}");
    let ed = add_key(
        &app,
        json!({"domain": "herald.test", "selector": "ed2026", "algorithm": "ed25519-sha256"}),
    )
    .await;
    assert!(
        ed["dns_value"].as_str().unwrap().starts_with("v=DKIM1; k=ed25519; p="),
        "{ed}"
    );
    let list: Vec<Value> = app.get("/api/v1/dkim").await.json().await.unwrap();
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(list[0]["id"], ed["id"]);
    assert_eq!(list[0]["signing"], true);
    assert_eq!(list[1]["id"], rsa["id"]);
    assert_eq!(list[1]["signing"], false);
    dns.publish(json!({&name: [&value], ed["dns_name"].as_str().unwrap(): [ed["dns_value"]]}));
    assert_eq!(check(&app, ed["id"].as_str().unwrap()).await["status"], "published");
    send(&app, "Ed25519 签名", &format!("{long_line}\nbye")).await;
    let got = smtp.wait_messages(3).await;
    assert_verified(&got[2], "ed2026", "ed25519-sha256");

    // Deleting the new key: the RSA key signs again.
    let r = app
        .delete(&format!("/api/v1/dkim/{}", ed["id"].as_str().unwrap()))
        .await;
    assert_eq!(r.status(), 204);
    send(&app, "back to RSA", "x").await;
    let got = smtp.wait_messages(4).await;
    assert_verified(&got[3], &selector, "rsa-sha256");
    app.stop().await;
}

#[tokio::test]
async fn bad_dkim_input_names_the_field() {
    let app = spawn_app().await;
    let r = app
        .post(
            "/api/v1/dkim",
            &json!({"domain": "localhost", "selector": "bad selector", "algorithm": "dsa"}),
        )
        .await;
    assert_eq!(r.status(), 422);
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );
    let p: Value = r.json().await.unwrap();
    let fields: Vec<&str> = p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["domain", "selector", "algorithm"], "{p}");
    let r = app.post("/api/v1/dkim", &json!({})).await;
    assert_eq!(r.status(), 422);
    let r = app.get("/api/v1/dkim/nope").await;
    assert_eq!(r.status(), 404);
    // A domain without a key sends unsigned, as before.
    let list: Vec<Value> = app.get("/api/v1/dkim").await.json().await.unwrap();
    assert!(list.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn dkim_keys_on_postgresql_and_per_tenant() {
    let app = spawn_app_pg().await;
    let rsa = add_key(&app, json!({"domain": "example.com", "selector": "a"})).await;
    let ed = add_key(&app, json!({"domain": "example.com", "algorithm": "ed25519"})).await;
    let list: Vec<Value> = app.get("/api/v1/dkim").await.json().await.unwrap();
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(list[0]["id"], ed["id"], "the newest signs: {list:?}");
    assert_eq!(list[0]["signing"], true);
    // Another tenant sees none of them.
    let t: Value = app
        .post("/api/v1/tenants", &json!({"name": "Acme"}))
        .await
        .json()
        .await
        .unwrap();
    let token = t["token"].as_str().expect("the tenant's token").to_string();
    let theirs: Value = app
        .http
        .get(app.url("/api/v1/dkim"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(theirs, json!([]));
    let r = app
        .http
        .get(app.url(&format!("/api/v1/dkim/{}", rsa["id"].as_str().unwrap())))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = app
        .delete(&format!("/api/v1/dkim/{}", rsa["id"].as_str().unwrap()))
        .await;
    assert_eq!(r.status(), 204);
    let shown: Value = app
        .get(&format!("/api/v1/dkim/{}", ed["id"].as_str().unwrap()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(shown["signing"], true);
    app.stop().await;
}
