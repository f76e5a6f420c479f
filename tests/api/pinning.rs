//! Trusting a server's own certificate by its pinned SHA-256 fingerprint,
//! and every refused certificate worded plainly in the report, with what
//! the server presented (fingerprint, subject, issuer, names, validity):
//! real TLS SMTP peers (aiosmtpd) presenting a one-step `openssl req -x509`
//! certificate, an expired one and one for another host.

use crate::helpers::*;
use serde_json::{Value, json};
use std::process::Command;

/// A certificate and key for the peer, with the CA a user would paste.
fn certs_of(cert_pem: &str, key_pem: &str, ca_pem: &str) -> Certs {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cert.pem"), cert_pem).unwrap();
    std::fs::write(dir.path().join("key.pem"), key_pem).unwrap();
    Certs {
        dir,
        ca_pem: ca_pem.to_string(),
    }
}

/// The usual self-signed certificate of a small office: one openssl
/// command, a CA certificate used as the server's own.
fn openssl_one_step() -> Certs {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
        ])
        .arg("-keyout")
        .arg(dir.path().join("key.pem"))
        .arg("-out")
        .arg(dir.path().join("cert.pem"))
        .output()
        .expect("openssl (run scripts/install-test-peers.sh)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let pem = std::fs::read_to_string(dir.path().join("cert.pem")).unwrap();
    Certs { dir, ca_pem: pem }
}

/// openssl's own SHA-256 fingerprint of the certificate: `AB:CD:…`.
fn openssl_fingerprint(certs: &Certs) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(certs.cert())
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    text.trim().split_once('=').unwrap().1.to_string()
}

fn ca() -> (rcgen::CertificateParams, rcgen::KeyPair, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Pinning test CA");
    let pem = params.self_signed(&key).unwrap().pem();
    (params, key, pem)
}

/// A leaf for `names`, signed by a CA; `edit` changes its parameters.
fn leaf(names: &[&str], edit: impl FnOnce(&mut rcgen::CertificateParams)) -> Certs {
    let (ca_params, ca_key, ca_pem) = ca();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, names[0]);
    edit(&mut params);
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let cert = params.signed_by(&key, &issuer).unwrap();
    certs_of(&cert.pem(), &key.serialize_pem(), &ca_pem)
}

fn tls_peer(certs: &Certs) -> Peer {
    Peer::aiosmtpd(PyPeer {
        mode: "tls",
        certs: Some(certs),
        user: None,
        require_tls: false,
    })
}

fn account(name: &str, peer: &Peer, tls: Value) -> Value {
    let mut body = local_account(name, peer.port, "tls", None, None);
    body["tls"] = tls;
    body
}

#[tokio::test]
async fn a_one_step_self_signed_certificate_is_explained_refused_and_accepted_once_pinned() {
    let app = spawn_app().await;
    let certs = openssl_one_step();
    let fingerprint = openssl_fingerprint(&certs);
    let hex = fingerprint.replace(':', "").to_lowercase();
    let peer = tls_peer(&certs);

    // Without a pin: refused, worded plainly, the certificate shown.
    let acc = app.create_account(account("office", &peer, json!({}))).await;
    let id = acc["id"].as_str().unwrap().to_string();
    let report = app.test_email(&id, "to@example.com", "en").await;
    assert_eq!(
        (report["ok"].clone(), report["stage"].clone()),
        (json!(false), json!("tls")),
        "{report}"
    );
    let reply = report["reply"].as_str().unwrap();
    assert!(
        reply.contains("CA certificate as its own") && reply.contains("self-signed"),
        "{reply}"
    );
    assert!(reply.contains(&hex), "the fingerprint is in the words: {reply}");
    let cert = &report["certificate"];
    assert_eq!(cert["sha256"], hex, "{cert}");
    assert_eq!(cert["subject"], "CN=localhost");
    assert_eq!(cert["issuer"], "CN=localhost");
    assert_eq!(cert["names"], json!(["localhost"]));
    assert_eq!(
        (cert["self_signed"].clone(), cert["ca"].clone()),
        (json!(true), json!(true))
    );
    assert!(cert["not_after"].as_str().unwrap() > cert["not_before"].as_str().unwrap());
    let hint = report["hint"].as_str().unwrap();
    assert!(
        hint.contains("tls.pin_sha256") && hint.contains(&hex),
        "the hint says how to pin it: {hint}"
    );
    let zh = app.test_email(&id, "to@example.com", "zh-CN").await;
    assert!(zh["hint"].as_str().unwrap().contains("固定"), "{zh}");

    // Pasted as the CA: still refused (WebPKI takes no CA as a server), and said so.
    let r = app
        .patch(
            &format!("/api/v1/accounts/{id}"),
            &json!({"tls": {"ca_pem": certs.ca_pem}}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let report = app.test_email(&id, "to@example.com", "en").await;
    assert_eq!(report["stage"], "tls", "{report}");
    assert!(
        report["reply"].as_str().unwrap().contains("CA certificate as its own"),
        "{report}"
    );

    // Pinned, as openssl prints the fingerprint: the test email goes through.
    let r = app
        .patch(
            &format!("/api/v1/accounts/{id}"),
            &json!({"tls": {"ca_pem": "", "pin_sha256": fingerprint}}),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let acc: Value = r.json().await.unwrap();
    assert_eq!(acc["tls"]["pin_sha256"], hex, "stored in one form: {acc}");
    let report = app.test_email(&id, "to@example.com", "en").await;
    assert_eq!(report["ok"], true, "{report}");
    assert!(
        client_lines(&report)
            .iter()
            .any(|l| l.contains("pinned") && l.contains(&hex)),
        "{report}"
    );
    assert_eq!(peer.wait_messages(1).await.len(), 1);

    // Another certificate at the same place is refused: the pin is exact.
    let other = openssl_one_step();
    let impostor = tls_peer(&other);
    let r = app
        .patch(&format!("/api/v1/accounts/{id}"), &json!({"port": impostor.port}))
        .await;
    assert_eq!(r.status(), 200);
    let report = app.test_email(&id, "to@example.com", "en").await;
    assert_eq!(report["stage"], "tls", "{report}");
    assert!(
        report["reply"].as_str().unwrap().contains("not the one pinned"),
        "{report}"
    );
    assert_eq!(
        report["certificate"]["sha256"],
        openssl_fingerprint(&other).replace(':', "").to_lowercase()
    );
    assert_eq!(impostor.count(), 0);
    app.stop().await;
}

#[tokio::test]
async fn a_self_signed_server_certificate_is_called_self_signed() {
    let app = spawn_app().await;
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, "localhost");
    let cert = params.self_signed(&key).unwrap();
    let certs = certs_of(&cert.pem(), &key.serialize_pem(), "");
    let peer = tls_peer(&certs);
    let acc = app.create_account(account("self-signed", &peer, json!({}))).await;
    let report = app
        .test_email(acc["id"].as_str().unwrap(), "to@example.com", "en")
        .await;
    assert_eq!(report["stage"], "tls", "{report}");
    assert!(report["reply"].as_str().unwrap().contains("is self-signed"), "{report}");
    assert_eq!(report["certificate"]["self_signed"], true);
    assert_eq!(report["certificate"]["ca"], false);
    app.stop().await;
}

#[tokio::test]
async fn an_expired_certificate_says_when_it_expired() {
    let app = spawn_app().await;
    let certs = leaf(&["localhost", "127.0.0.1"], |p| {
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2020, 1, 2);
    });
    let peer = tls_peer(&certs);
    let acc = app
        .create_account(account("expired", &peer, json!({"ca_pem": certs.ca_pem})))
        .await;
    let report = app
        .test_email(acc["id"].as_str().unwrap(), "to@example.com", "en")
        .await;
    assert_eq!(report["stage"], "tls", "{report}");
    let reply = report["reply"].as_str().unwrap();
    assert!(reply.contains("expired on 2020-01-02"), "{reply}");
    assert_eq!(report["certificate"]["not_after"], "2020-01-02T00:00:00Z");
    assert!(report["hint"].as_str().unwrap().contains("renew"), "{report}");
    app.stop().await;
}

#[tokio::test]
async fn a_certificate_for_another_host_names_the_hosts_it_is_for() {
    let app = spawn_app().await;
    let certs = leaf(&["mail.example.com"], |_| {});
    let peer = tls_peer(&certs);
    let acc = app
        .create_account(account("wrong-host", &peer, json!({"ca_pem": certs.ca_pem})))
        .await;
    let report = app
        .test_email(acc["id"].as_str().unwrap(), "to@example.com", "en")
        .await;
    assert_eq!(report["stage"], "tls", "{report}");
    let reply = report["reply"].as_str().unwrap();
    assert!(reply.contains("is for mail.example.com, not for localhost"), "{reply}");
    assert_eq!(report["certificate"]["names"], json!(["mail.example.com"]));
    assert_eq!(report["certificate"]["issuer"], "CN=Pinning test CA");
    app.stop().await;
}

#[tokio::test]
async fn a_pin_that_is_not_a_fingerprint_names_the_field() {
    let app = spawn_app().await;
    let mut body = local_account("bad-pin", 465, "tls", None, None);
    body["tls"] = json!({"pin_sha256": "abc"});
    let r = app.post("/api/v1/accounts", &body).await;
    assert_eq!(r.status(), 422);
    let p: Value = r.json().await.unwrap();
    assert!(p.to_string().contains("tls.pin_sha256"), "{p}");
    body["tls"] = json!({"pin_sha256": "ab".repeat(32), "skip_verify": true});
    let r = app.post("/api/v1/accounts", &body).await;
    assert_eq!(r.status(), 422, "a pin and no verification contradict each other");
    app.stop().await;
}
