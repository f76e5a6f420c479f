//! Addresses beyond plain ASCII atoms, as they reach a real server:
//! internationalised domains as A-labels, non-ASCII local parts only with
//! SMTPUTF8, quoted local parts exactly as given.

use crate::helpers::*;
use serde_json::{Value, json};

const PLAIN: PyPeer<'static> = PyPeer {
    mode: "plain",
    certs: None,
    user: None,
    require_tls: false,
};

/// A peer that records the wire (started with `peer_options`), Herald, and
/// an account that sends from `from` through the peer.
async fn start(peer_options: &[&str], from: &str) -> (Peer, TestApp, Value) {
    let peer = Peer::aiosmtpd_wire(PLAIN, peer_options);
    let app = spawn_app().await;
    let mut account = local_account("plain", peer.port, "none", None, None);
    account["from"]["address"] = json!(from);
    let acc = app.create_account(account).await;
    (peer, app, acc)
}

/// Posts a message to `to` through `account` and waits until it is done.
async fn send_to(app: &TestApp, account: &Value, to: &[&str]) -> Value {
    let r = app
        .post(
            "/api/v1/messages",
            &json!({"to": to, "subject": "Hi", "text": "x", "account": account["id"]}),
        )
        .await;
    let m: Value = r.json().await.unwrap();
    let id = m["id"].as_str().unwrap_or_else(|| panic!("accepted: {m}"));
    app.wait_message(id, &["sent", "failed"]).await
}

/// Checks that `done` was sent, that the envelope commands the peer heard
/// are `envelope`, and that it holds one message, to `rcpt_tos`; answers
/// that message as the peer stored it.
async fn assert_sent(done: &Value, peer: &Peer, envelope: &[&str], rcpt_tos: &[&str]) -> Value {
    assert_eq!(done["status"], "sent", "{done}");
    assert_eq!(peer.envelope_lines(), envelope, "{done}");
    let got = peer.wait_messages(1).await;
    assert_eq!(got[0]["rcpt_tos"], json!(rcpt_tos));
    got[0].clone()
}

#[tokio::test]
async fn without_smtputf8_an_idn_domain_goes_as_its_a_label_and_a_non_ascii_local_part_is_refused_alone() {
    let (peer, app, acc) = start(&["--no-smtputf8"], "noreply@herald.test").await;

    let done = send_to(
        &app,
        &acc,
        &["idn@bücher.example", "用户@example.com", "bob@example.com"],
    )
    .await;

    let got = assert_sent(
        &done,
        &peer,
        &[
            "MAIL FROM:<noreply@herald.test>",
            "RCPT TO:<idn@xn--bcher-kva.example>",
            "RCPT TO:<bob@example.com>",
        ],
        &["idn@xn--bcher-kva.example", "bob@example.com"],
    )
    .await;
    // The other recipients got it; the refused one is named, for good.
    let attempts = done["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "{done}");
    assert_eq!(attempts[0]["outcome"], "sent");
    assert!(
        client_lines(&attempts[0]).contains(
            &"[not sent: the server does not accept internationalised addresses (no SMTPUTF8): 用户@example.com]"
                .to_string()
        ),
        "the transcript says Herald refused it: {done}"
    );
    let why = done["last_error"].as_str().unwrap();
    assert!(
        why.contains(
            "用户@example.com: 553 5.6.7 the server does not accept internationalised addresses (no SMTPUTF8): 用户@example.com"
        ),
        "{done}"
    );
    let data = got["data"].as_str().unwrap();
    assert!(
        data.contains("<idn@xn--bcher-kva.example>"),
        "the To header names the A-label: {data}"
    );
    assert!(!data.contains("bücher"), "{data}");
    app.stop().await;
}

#[tokio::test]
async fn without_smtputf8_a_non_ascii_sender_fails_the_message_before_anything_is_sent() {
    let (peer, app, acc) = start(&["--no-smtputf8"], "发件人@herald.test").await;

    let done = send_to(&app, &acc, &["bob@example.com"]).await;

    assert_eq!(done["status"], "failed", "{done}");
    let attempt = &done["attempts"][0];
    assert_eq!(
        (
            &attempt["stage"],
            &attempt["class"],
            &attempt["code"],
            &attempt["enhanced_code"]
        ),
        (&json!("mail_from"), &json!("permanent"), &json!(553), &json!("5.6.7")),
        "{done}"
    );
    assert!(
        done["last_error"]
            .as_str()
            .unwrap()
            .contains("the server does not accept internationalised addresses (no SMTPUTF8): 发件人@herald.test"),
        "{done}"
    );
    assert!(peer.envelope_lines().is_empty(), "{:?}", peer.wire());
    assert_eq!(peer.count(), 0);
    app.stop().await;
}

#[tokio::test]
async fn with_smtputf8_a_non_ascii_local_part_goes_as_utf8_with_the_smtputf8_parameter() {
    let (peer, app, acc) = start(&[], "noreply@herald.test").await;

    let done = send_to(&app, &acc, &["用户@bücher.example"]).await;

    assert!(done["last_error"].is_null(), "{done}");
    assert_sent(
        &done,
        &peer,
        &[
            "MAIL FROM:<noreply@herald.test> SMTPUTF8",
            "RCPT TO:<用户@xn--bcher-kva.example>",
        ],
        &["用户@xn--bcher-kva.example"],
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn a_quoted_local_part_is_accepted_and_sent_quoted() {
    let (peer, app, acc) = start(&[], "noreply@herald.test").await;

    let done = send_to(&app, &acc, &["\"john doe\"@example.com"]).await;

    let got = assert_sent(
        &done,
        &peer,
        &["MAIL FROM:<noreply@herald.test>", "RCPT TO:<\"john doe\"@example.com>"],
        &["\"john doe\"@example.com"],
    )
    .await;
    let data = got["data"].as_str().unwrap();
    assert!(data.contains("To: <\"john doe\"@example.com>\r\n"), "{data}");
    app.stop().await;
}

#[tokio::test]
async fn a_quoted_local_part_that_could_break_a_command_is_refused_with_the_reason() {
    let app = spawn_app().await;
    for (to, why) in [
        ("\"a\r\nRCPT TO:<x@evil.test>\"@example.com", "line break"),
        ("\"a>b\"@example.com", "'<' or '>'"),
        ("\"a\\\"@example.com", "quote"),
        ("\"a\tb\"@example.com", "control character"),
    ] {
        let r = app
            .post("/api/v1/messages", &json!({"to": [to], "subject": "Hi", "text": "x"}))
            .await;
        assert_eq!(r.status(), 422, "{to:?}");
        let problem: Value = r.json().await.unwrap();
        assert!(problem.to_string().contains(why), "{to:?}: {problem}");
    }
    app.stop().await;
}
