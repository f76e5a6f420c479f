//! The test email against real peers: success, and each failure diagnosed
//! with the right stage, class and hint.

use crate::helpers::*;
use serde_json::{Value, json};

const USER: &str = "alice";
const PASSWORD: &str = "correct-horse-battery";

#[tokio::test]
async fn starttls_with_auth_sends_and_marks_ready() {
    let certs = Certs::new();
    let peer = Peer::aiosmtpd(PyPeer {
        mode: "starttls",
        certs: Some(&certs),
        user: Some((USER, PASSWORD)),
        require_tls: true,
    });
    let app = spawn_app().await;
    let acc = app
        .create_account(local_account(
            "ops",
            peer.port,
            "starttls",
            Some((USER, PASSWORD)),
            Some(&certs.ca_pem),
        ))
        .await;
    assert_eq!(acc["status"], "unverified");

    let report = app
        .test_email(acc["id"].as_str().unwrap(), "someone@example.com", "en")
        .await;
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["stage"], "done");
    assert_eq!(report["code"], 250);
    let lines = client_lines(&report);
    assert!(lines.iter().any(|l| l == "STARTTLS"), "{lines:?}");
    assert!(lines.iter().any(|l| l == "AUTH PLAIN ********"), "{lines:?}");
    assert!(
        !report.to_string().contains(PASSWORD),
        "the transcript never shows the password"
    );

    let msgs = peer.wait_messages(1).await;
    assert_eq!(msgs[0]["auth_login"], USER);
    assert_eq!(msgs[0]["rcpt_tos"], json!(["someone@example.com"]));
    assert!(
        msgs[0]["data"].as_str().unwrap().contains("configured successfully"),
        "{}",
        msgs[0]["data"]
    );

    let acc: Value = app
        .get(&format!("/api/v1/accounts/{}", acc["id"].as_str().unwrap()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(acc["status"], "ready");
    assert_eq!(acc["last_report"]["ok"], true);
    app.stop().await;
}

#[tokio::test]
async fn implicit_tls_sends_in_chinese() {
    let certs = Certs::new();
    let peer = Peer::aiosmtpd(PyPeer {
        mode: "tls",
        certs: Some(&certs),
        user: Some((USER, PASSWORD)),
        require_tls: false,
    });
    let app = spawn_app().await;
    let acc = app
        .create_account(local_account(
            "smtps",
            peer.port,
            "tls",
            Some((USER, PASSWORD)),
            Some(&certs.ca_pem),
        ))
        .await;
    let report = app
        .test_email(acc["id"].as_str().unwrap(), "someone@example.com", "zh-CN")
        .await;
    assert_eq!(report["ok"], true, "{report}");
    let msgs = peer.wait_messages(1).await;
    let data = msgs[0]["data"].as_str().unwrap();
    // The Chinese subject is RFC 2047-encoded; the body says configured in Chinese.
    assert!(data.contains("Subject: =?utf-8?"), "{data}");
    assert!(
        data.contains("邮件服务已经配置成功") || data.contains("Content-Transfer-Encoding"),
        "{data}"
    );
    app.stop().await;
}

#[tokio::test]
async fn wrong_password_is_diagnosed_at_auth_with_masked_transcript() {
    let certs = Certs::new();
    let peer = Peer::aiosmtpd(PyPeer {
        mode: "starttls",
        certs: Some(&certs),
        user: Some((USER, PASSWORD)),
        require_tls: true,
    });
    let app = spawn_app().await;
    let acc = app
        .create_account(local_account(
            "ops",
            peer.port,
            "starttls",
            Some((USER, "wrong-password-123")),
            Some(&certs.ca_pem),
        ))
        .await;
    let report = app
        .test_email(acc["id"].as_str().unwrap(), "someone@example.com", "en")
        .await;
    assert_eq!(report["ok"], false);
    assert_eq!(report["stage"], "auth", "{report}");
    assert_eq!(report["code"], 535);
    assert_eq!(report["enhanced_code"], "5.7.8");
    assert_eq!(report["class"], "configuration");
    assert!(!report["hint"].as_str().unwrap().is_empty());
    assert!(!report.to_string().contains("wrong-password-123"));
    assert!(client_lines(&report).iter().any(|l| l == "AUTH PLAIN ********"));
    assert!(peer.messages().is_empty());

    let acc: Value = app
        .get(&format!("/api/v1/accounts/{}", acc["id"].as_str().unwrap()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(acc["status"], "failing");
    assert!(acc["status_message"].as_str().unwrap().contains("535"), "{acc}");
    assert_eq!(acc["last_report"]["stage"], "auth");
    app.stop().await;
}

#[tokio::test]
async fn untrusted_certificate_is_refused_before_any_credential() {
    let certs = Certs::new();
    let peer = Peer::aiosmtpd(PyPeer {
        mode: "starttls",
        certs: Some(&certs),
        user: Some((USER, PASSWORD)),
        require_tls: true,
    });
    let app = spawn_app().await;
    // No tls.ca_pem: the test CA is not trusted.
    let acc = app
        .create_account(local_account(
            "ops",
            peer.port,
            "starttls",
            Some((USER, PASSWORD)),
            None,
        ))
        .await;
    let report = app
        .test_email(acc["id"].as_str().unwrap(), "someone@example.com", "en")
        .await;
    assert_eq!(report["ok"], false);
    assert_eq!(report["stage"], "tls", "{report}");
    assert_eq!(report["class"], "configuration");
    assert!(report["reply"].as_str().unwrap().contains("not trusted"), "{report}");
    assert!(
        client_lines(&report).iter().all(|l| !l.starts_with("AUTH")),
        "no AUTH before TLS"
    );
    app.stop().await;
}

#[tokio::test]
async fn missing_starttls_is_refused_before_auth() {
    let peer = Peer::aiosmtpd(PyPeer {
        mode: "plain",
        certs: None,
        user: Some((USER, PASSWORD)),
        require_tls: false,
    });
    let app = spawn_app().await;
    let acc = app
        .create_account(local_account(
            "ops",
            peer.port,
            "starttls",
            Some((USER, PASSWORD)),
            None,
        ))
        .await;
    let report = app
        .test_email(acc["id"].as_str().unwrap(), "someone@example.com", "en")
        .await;
    assert_eq!(report["ok"], false);
    assert_eq!(report["stage"], "starttls", "{report}");
    assert_eq!(report["class"], "configuration");
    assert!(
        client_lines(&report)
            .iter()
            .all(|l| !l.starts_with("AUTH") && !l.starts_with("MAIL"))
    );
    app.stop().await;
}

#[tokio::test]
async fn implicit_tls_against_a_plain_port_fails_fast_and_says_so() {
    let peer = Peer::aiosmtpd(PyPeer {
        mode: "plain",
        certs: None,
        user: None,
        require_tls: false,
    });
    let app = spawn_app().await;
    let mut body = local_account("ops", peer.port, "tls", None, None);
    body["timeout_secs"] = json!(20);
    let acc = app.create_account(body).await;
    let report = app
        .test_email(acc["id"].as_str().unwrap(), "someone@example.com", "en")
        .await;
    assert_eq!(report["ok"], false);
    assert_eq!(report["stage"], "tls", "{report}");
    assert!(report["reply"].as_str().unwrap().contains("plain text"), "{report}");
    assert!(
        report["hint"].as_str().unwrap().to_lowercase().contains("starttls"),
        "{report}"
    );
    // It did not wait for the 20 s timeout to find out.
    assert!(report["elapsed_ms"].as_u64().unwrap() < 10_000, "{report}");
    app.stop().await;
}

#[tokio::test]
async fn smtp_sink_accepts_the_test_email() {
    let sink = Sink::start().await;
    let app = spawn_app().await;
    let acc = app
        .create_account(local_account("sink", sink.port, "none", None, None))
        .await;
    let report = app
        .test_email(acc["id"].as_str().unwrap(), "someone@example.com", "en")
        .await;
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["code"], 250);
    app.stop().await;
}

/// A scripted peer replaying a provider's telltale reply; the account uses
/// that provider's preset with the host and port pointed at the peer.
async fn telltale(provider: &str, spec: Value, locale: &str) -> Value {
    let peer = Peer::scripted(spec);
    let app = spawn_app().await;
    let acc = app
        .create_account(json!({
            "name": "p", "provider": provider, "host": "127.0.0.1", "port": peer.port, "security": "none",
            "auth": {"method": "password", "username": "user@example.com", "secret": "secret-value"},
            "from": {"address": "user@example.com"}, "timeout_secs": 10
        }))
        .await;
    let report = app
        .test_email(acc["id"].as_str().unwrap(), "someone@example.com", locale)
        .await;
    app.stop().await;
    report
}

#[tokio::test]
async fn qq_535_asks_for_the_authorization_code() {
    let r = telltale("qq", json!({"auth": {"reply": "535 Login Fail. Please enter your authorization code to login. More information in http://service.mail.qq.com/cgi-bin/help?subtype=1&&id=28&&no=1001256"}}), "zh-CN").await;
    assert_eq!(r["stage"], "auth", "{r}");
    assert_eq!(r["code"], 535);
    assert_eq!(r["class"], "configuration");
    assert!(r["hint"].as_str().unwrap().contains("授权码"), "{r}");
}

#[tokio::test]
async fn gmail_534_multiline_asks_for_an_app_password() {
    let r = telltale("gmail", json!({"auth": {"reply": "534-5.7.9 Application-specific password required. Learn more at\n534 5.7.9 https://support.google.com/mail/?p=InvalidSecondFactor"}}), "en").await;
    assert_eq!(r["stage"], "auth", "{r}");
    assert_eq!(r["code"], 534);
    assert_eq!(r["enhanced_code"], "5.7.9");
    assert!(
        r["hint"].as_str().unwrap().to_lowercase().contains("app password"),
        "{r}"
    );
}

#[tokio::test]
async fn office365_smtp_auth_disabled_for_the_tenant() {
    let r = telltale("office365", json!({"auth": {"reply": "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information."}}), "en").await;
    assert_eq!(r["stage"], "auth", "{r}");
    assert_eq!(r["enhanced_code"], "5.7.139");
    assert_eq!(r["class"], "configuration");
    let hint = r["hint"].as_str().unwrap();
    assert!(
        hint.contains("SMTP AUTH") || hint.to_lowercase().contains("authenticated smtp"),
        "{hint}"
    );
    assert!(
        hint.to_lowercase().contains("tenant")
            || hint.to_lowercase().contains("organization")
            || hint.contains("Exchange"),
        "{hint}"
    );
}

#[tokio::test]
async fn netease_550_no_permission_at_mail_from() {
    let r = telltale("netease163", json!({"mailFrom": "550 User has no permission"}), "zh-CN").await;
    assert_eq!(r["stage"], "mail_from", "{r}");
    assert_eq!(r["code"], 550);
    assert!(r["hint"].as_str().unwrap().contains("SMTP"), "{r}");
}

#[tokio::test]
async fn greeting_421_is_transient() {
    let r = telltale(
        "custom",
        json!({"greeting": "421 4.7.0 Try again later, closing connection"}),
        "en",
    )
    .await;
    assert_eq!(r["stage"], "greeting", "{r}");
    assert_eq!(r["code"], 421);
    assert_eq!(r["class"], "transient");
}

#[tokio::test]
async fn unknown_recipient_is_permanent_at_rcpt() {
    let peer = Peer::scripted(json!({"rcptTo": {"nobody@example.com": "550 5.1.1 No such user here"}}));
    let app = spawn_app().await;
    let acc = app
        .create_account(local_account("p", peer.port, "none", None, None))
        .await;
    let r = app
        .test_email(acc["id"].as_str().unwrap(), "nobody@example.com", "en")
        .await;
    assert_eq!(r["stage"], "rcpt_to", "{r}");
    assert_eq!(r["enhanced_code"], "5.1.1");
    assert_eq!(r["class"], "permanent");
    app.stop().await;
}

/// With provider `custom` (what many users pick, typing the host by hand),
/// a distinctive reply is still recognised across the whole catalog.
#[tokio::test]
async fn a_custom_account_gets_the_providers_hint_for_a_distinctive_reply() {
    let reply = "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. \
                 Visit https://aka.ms/smtp_auth_disabled for more information.";
    let custom = telltale("custom", json!({"auth": {"reply": reply}}), "en").await;
    let preset = telltale("office365", json!({"auth": {"reply": reply}}), "en").await;
    assert_eq!(custom["stage"], "auth", "{custom}");
    assert_eq!(custom["class"], "configuration", "{custom}");
    assert_eq!(
        custom["hint"], preset["hint"],
        "the same fix as with the preset: {custom}"
    );
    assert!(custom["hint"].as_str().unwrap().contains("SMTP AUTH"), "{custom}");
}
