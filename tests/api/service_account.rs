//! Google service accounts with domain-wide delegation: Herald signs the
//! JWT-bearer assertion (RFC 7523) with the JSON key, a local token endpoint
//! verifies its RS256 signature with the key's public half and its `iss`,
//! `sub`, `scope`, `aud`, and the XOAUTH2 SMTP peer accepts the token it
//! issued; a sender without delegation and a disabled key are diagnosed with
//! where to fix them.

use crate::helpers::*;
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;

const CLIENT_EMAIL: &str = "herald-mailer@herald-test.iam.gserviceaccount.com";

/// A 2048-bit RSA key as Google issues it (PKCS#8 PEM), and its public half.
fn rsa_key(dir: &Path) -> (String, std::path::PathBuf) {
    let key = dir.join("sa.pem");
    let public = dir.join("sa.pub");
    let ok = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&key)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl (scripts/install-test-peers.sh)")
        .success();
    assert!(ok);
    let ok = Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&key)
        .arg("-out")
        .arg(&public)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    (std::fs::read_to_string(key).unwrap(), public)
}

/// The token endpoint (tests/peers/google_token_server.js).
fn token_server(public: &Path, extra: &[&str]) -> Peer {
    let mut cmd = Command::new("node");
    cmd.arg(repo().join("tests/peers/google_token_server.js"))
        .arg("--public-key")
        .arg(public)
        .arg("--client-email")
        .arg(CLIENT_EMAIL)
        .args(extra);
    start_peer(cmd, tempfile::tempdir().unwrap())
}

fn key_json(pem: &str, token_port: u16) -> String {
    json!({
        "type": "service_account",
        "project_id": "herald-test",
        "private_key_id": "0123456789abcdef",
        "private_key": pem,
        "client_email": CLIENT_EMAIL,
        "client_id": "109876543210987654321",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": format!("http://127.0.0.1:{token_port}/token"),
    })
    .to_string()
}

fn account(name: &str, from: &str, smtp_port: u16, key: &str) -> Value {
    json!({
        "name": name,
        "provider": "custom",
        "host": "127.0.0.1",
        "port": smtp_port,
        "security": "none",
        "from": {"address": from},
        "timeout_secs": 10,
        "auth": {"method": "google_service_account", "service_account_key": key},
    })
}

async fn stats(port: u16) -> Value {
    reqwest::get(format!("http://127.0.0.1:{port}/stats"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_service_account_sends_as_each_workspace_user_and_explains_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let (pem, public) = rsa_key(dir.path());
    let tokens = token_server(&public, &["--refuse-sub", "nodelegation@herald.test"]);
    let smtp = Peer::scripted(json!({
        "authMethods": ["XOAUTH2"],
        "xoauth2Jwks": format!("http://127.0.0.1:{}/jwks", tokens.port),
    }));
    let app = spawn_app().await;
    let key = key_json(&pem, tokens.port);

    let alice = app
        .create_account(account("alice", "alice@herald.test", smtp.port, &key))
        .await;
    assert_eq!(alice["auth"]["method"], "google_service_account", "{alice}");
    assert_eq!(alice["auth"]["secret_set"], true, "{alice}");
    assert!(
        !alice.to_string().contains("PRIVATE KEY"),
        "the key is write-only: {alice}"
    );

    // The test email: a token for alice, accepted by the XOAUTH2 peer.
    let report = app
        .test_email(alice["id"].as_str().unwrap(), "someone@example.org", "en")
        .await;
    assert_eq!(report["ok"], true, "{report}");
    let s = stats(tokens.port).await;
    assert_eq!(s["issued"], 1, "{s}");
    assert_eq!(s["subs"], json!(["alice@herald.test"]), "{s}");
    assert_eq!(s["errors"], json!([]), "{s}");
    assert!(
        client_lines(&report).iter().any(|l| l.starts_with("AUTH XOAUTH2")),
        "{report}"
    );

    // A queued message reuses the cached token: no second grant.
    let m: Value = app
        .post(
            "/api/v1/messages",
            &json!({"to": ["someone@example.org"], "subject": "Hi", "text": "x", "account": "alice"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let done = app.wait_message(m["id"].as_str().unwrap(), &["sent", "failed"]).await;
    assert_eq!(done["status"], "sent", "{done}");
    assert_eq!(stats(tokens.port).await["issued"], 1);
    smtp.wait_messages(2).await;

    // The same key for another user: its own token (sub = that sender).
    let bob = app
        .create_account(account("bob", "bob@herald.test", smtp.port, &key))
        .await;
    let report = app
        .test_email(bob["id"].as_str().unwrap(), "someone@example.org", "en")
        .await;
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(
        stats(tokens.port).await["subs"],
        json!(["alice@herald.test", "bob@herald.test"])
    );

    // Delegation not granted for this sender: the Admin console path, in both languages.
    let refused = app
        .create_account(account("refused", "nodelegation@herald.test", smtp.port, &key))
        .await;
    let id = refused["id"].as_str().unwrap();
    let report = app.test_email(id, "someone@example.org", "en").await;
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(report["stage"], "oauth_token", "{report}");
    assert_eq!(report["class"], "configuration", "{report}");
    assert!(
        report["reply"].as_str().unwrap().contains("unauthorized_client"),
        "{report}"
    );
    let hint = report["hint"].as_str().unwrap();
    assert!(
        hint.contains("Admin console") && hint.contains("Manage Domain Wide Delegation"),
        "{hint}"
    );
    let report = app.test_email(id, "someone@example.org", "zh-CN").await;
    assert!(report["hint"].as_str().unwrap().contains("管理全网域委派"), "{report}");
    let shown: Value = app.get(&format!("/api/v1/accounts/{id}")).await.json().await.unwrap();
    assert_eq!(shown["status"], "failing", "{shown}");

    // The key stays sealed at rest.
    let db = app.database_bytes();
    let needle = b"BEGIN PRIVATE KEY";
    assert!(
        !db.windows(needle.len()).any(|w| w == needle),
        "the key is stored in clear"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_disabled_key_and_a_bad_key_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let (pem, public) = rsa_key(dir.path());
    let tokens = token_server(&public, &["--disabled-key"]);
    let app = spawn_app().await;

    // Not a key: the field and the fix.
    let r = app
        .post(
            "/api/v1/accounts",
            &account("bad", "alice@herald.test", 2525, r#"{"type":"service_account"}"#),
        )
        .await;
    assert_eq!(r.status(), 422);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["errors"][0]["field"], "auth.service_account_key", "{p}");
    let mut missing = account("missing", "alice@herald.test", 2525, "");
    missing["auth"] = json!({"method": "google_service_account"});
    let r = app.post("/api/v1/accounts", &missing).await;
    assert_eq!(r.status(), 422);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["errors"][0]["field"], "auth.service_account_key", "{p}");

    // Google answers invalid_grant "Invalid JWT Signature." for a deleted or disabled key.
    let a = app
        .create_account(account(
            "disabled",
            "alice@herald.test",
            2525,
            &key_json(&pem, tokens.port),
        ))
        .await;
    let report = app
        .test_email(a["id"].as_str().unwrap(), "someone@example.org", "en")
        .await;
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(report["stage"], "oauth_token", "{report}");
    assert_eq!(report["class"], "configuration", "not a reauthorization: {report}");
    let hint = report["hint"].as_str().unwrap();
    assert!(hint.contains("IAM & Admin") && hint.contains("Keys"), "{hint}");
    let report = app
        .test_email(a["id"].as_str().unwrap(), "someone@example.org", "zh-CN")
        .await;
    assert!(report["hint"].as_str().unwrap().contains("服务帐号"), "{report}");
    app.stop().await;
}
