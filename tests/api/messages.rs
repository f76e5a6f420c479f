//! Messages over the API: delivered through a real peer intact, captured
//! when no account exists, injection refused, idempotency.

use crate::helpers::*;
use serde_json::{Value, json};

#[tokio::test]
async fn body_with_dot_lines_arrives_intact() {
    dot_lines_scenario(spawn_app().await).await;
}

#[tokio::test]
async fn delivery_on_postgres() {
    dot_lines_scenario(spawn_app_pg().await).await;
}

async fn dot_lines_scenario(app: TestApp) {
    let peer = Peer::aiosmtpd(PyPeer {
        mode: "plain",
        certs: None,
        user: None,
        require_tls: false,
    });
    let acc = app
        .create_account(local_account("plain", peer.port, "none", None, None))
        .await;
    let text = "first\r\n.\r\nsecond\r\n\r\n.\r\nthird\r\n..two dots\r\n.";
    let r = app
        .post("/api/v1/messages", &json!({"to": ["rcpt@example.com"], "bcc": ["hidden@example.com"], "subject": "dots", "text": text, "account": acc["id"]}))
        .await;
    assert_eq!(r.status(), 202);
    let m: Value = r.json().await.unwrap();
    assert_eq!(m["status"], "queued");
    let done = app.wait_message(m["id"].as_str().unwrap(), &["sent", "failed"]).await;
    assert_eq!(done["status"], "sent", "{done}");
    assert_eq!(done["attempts"][0]["outcome"], "sent");
    assert_eq!(done["attempts"][0]["code"], 250);

    let got = peer.wait_messages(1).await;
    let data = got[0]["data"].as_str().unwrap();
    assert!(
        data.contains("first\r\n.\r\nsecond\r\n\r\n.\r\nthird\r\n..two dots\r\n."),
        "{data:?}"
    );
    assert_eq!(got[0]["rcpt_tos"], json!(["rcpt@example.com", "hidden@example.com"]));
    assert!(
        !data.to_lowercase().contains("hidden@example.com"),
        "Bcc is envelope only"
    );
    assert!(data.contains(&format!("Message-ID: <{}>", done["message_id"].as_str().unwrap())));
    app.stop().await;
}

#[tokio::test]
async fn crlf_in_headers_is_refused_and_never_reaches_the_wire() {
    let peer = Peer::aiosmtpd(PyPeer {
        mode: "plain",
        certs: None,
        user: None,
        require_tls: false,
    });
    let app = spawn_app().await;
    let acc = app
        .create_account(local_account("plain", peer.port, "none", None, None))
        .await;
    for (body, field) in [
        (
            json!({"to": ["a@example.com"], "subject": "Hi\r\nBcc: victim@example.com", "text": "x", "account": acc["id"]}),
            "subject",
        ),
        (
            json!({"to": ["a@example.com\r\nRCPT TO:<victim@example.com>"], "subject": "Hi", "text": "x", "account": acc["id"]}),
            "to[0]",
        ),
        (
            json!({"to": ["a@example.com"], "cc": ["b@example.com\nX: y"], "subject": "Hi", "text": "x", "account": acc["id"]}),
            "cc[0]",
        ),
    ] {
        let r = app.post("/api/v1/messages", &body).await;
        assert_eq!(r.status(), 422, "{body}");
        let v: Value = r.json().await.unwrap();
        assert!(
            v["errors"].as_array().unwrap().iter().any(|e| e["field"] == field),
            "{field}: {v}"
        );
    }
    let r = app
        .patch(
            &format!("/api/v1/accounts/{}", acc["id"].as_str().unwrap()),
            &json!({"from": {"name": "Evil\r\nBcc: victim@example.com"}}),
        )
        .await;
    assert_eq!(r.status(), 422);
    let list: Value = app.get("/api/v1/messages").await.json().await.unwrap();
    assert!(list.as_array().unwrap().is_empty(), "nothing was queued: {list}");
    assert!(peer.messages().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn without_an_account_messages_go_to_the_capture_mailbox() {
    let app = spawn_app().await;
    let r = app
        .post(
            "/api/v1/messages",
            &json!({"to": ["a@example.com"], "subject": "Activate your account", "text": "Click here"}),
        )
        .await;
    assert_eq!(r.status(), 202);
    let m: Value = r.json().await.unwrap();
    let done = app.wait_message(m["id"].as_str().unwrap(), &["sent", "failed"]).await;
    assert_eq!(done["captured"], true, "{done}");
    assert!(done["last_error"].as_str().unwrap().contains("capture"), "{done}");
    let cap: Value = app.get("/api/v1/capture").await.json().await.unwrap();
    assert_eq!(cap[0]["subject"], "Activate your account");
    assert!(cap[0]["raw"].as_str().unwrap().contains("Click here"));
    app.stop().await;
}

#[tokio::test]
async fn idempotency_key_returns_the_same_message() {
    idempotency_scenario(spawn_app().await).await;
}

#[tokio::test]
async fn idempotency_on_postgres() {
    idempotency_scenario(spawn_app_pg().await).await;
}

async fn idempotency_scenario(app: TestApp) {
    let body = json!({"to": ["a@example.com"], "subject": "Reset your password", "text": "code 1234"});
    let send = || {
        app.http
            .post(app.url("/api/v1/messages"))
            .bearer_auth(ADMIN_TOKEN)
            .header("Idempotency-Key", "reset-42")
            .json(&body)
            .send()
    };
    let first = send().await.unwrap();
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    let second = send().await.unwrap();
    assert_eq!(second.status(), 200);
    let second: Value = second.json().await.unwrap();
    assert_eq!(first["id"], second["id"]);
    let list: Value = app.get("/api/v1/messages").await.json().await.unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn batch_idempotency_key_returns_the_same_batch() {
    batch_scenario(spawn_app().await).await;
}

#[tokio::test]
async fn batch_idempotency_on_postgres() {
    batch_scenario(spawn_app_pg().await).await;
}

/// A batch is all or nothing, and its Idempotency-Key makes a repeat answer
/// the batch accepted the first time.
async fn batch_scenario(app: TestApp) {
    let message = |i: usize| json!({"to": [format!("u{i}@example.com")], "subject": format!("n{i}"), "text": "x"});
    let batch = json!({"messages": (0..3).map(message).collect::<Vec<_>>()});
    let send = |body: Value, key: &'static str| {
        app.http
            .post(app.url("/api/v1/messages/batch"))
            .bearer_auth(ADMIN_TOKEN)
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
    };
    let count = || async {
        let list: Value = app.get("/api/v1/messages?limit=100").await.json().await.unwrap();
        list.as_array().unwrap().len()
    };

    // One bad message refuses the batch, naming it; nothing is accepted.
    let mut bad = batch.clone();
    bad["messages"][1]["to"][0] = json!("not an address");
    let r = send(bad, "batch-7").await.unwrap();
    assert_eq!(r.status(), 422);
    let problem: Value = r.json().await.unwrap();
    assert_eq!(problem["errors"][0]["field"], "messages[1].to[0]", "{problem}");
    assert_eq!(count().await, 0);

    let first = send(batch.clone(), "batch-7").await.unwrap();
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["messages"].as_array().unwrap().len(), 3);
    let again = send(batch.clone(), "batch-7").await.unwrap();
    assert_eq!(again.status(), 200, "a repeat is answered, not queued again");
    let again: Value = again.json().await.unwrap();
    let ids = |v: &Value| {
        v["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&first), ids(&again), "the same messages, in order");
    assert_eq!(count().await, 3);

    // A new key is a new batch.
    assert_eq!(send(batch, "batch-8").await.unwrap().status(), 202);
    assert_eq!(count().await, 6);
    app.stop().await;
}

#[tokio::test]
async fn permanent_failure_is_visible_with_reason() {
    let peer = Peer::scripted(json!({"rcptTo": {"gone@example.com": "550 5.1.1 No such user here"}}));
    let app = spawn_app().await;
    let acc = app
        .create_account(local_account("p", peer.port, "none", None, None))
        .await;
    let r = app
        .post(
            "/api/v1/messages",
            &json!({"to": ["gone@example.com"], "subject": "Hi", "text": "x", "account": acc["name"]}),
        )
        .await;
    let m: Value = r.json().await.unwrap();
    let done = app.wait_message(m["id"].as_str().unwrap(), &["failed", "sent"]).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert!(done["last_error"].as_str().unwrap().contains("550"), "{done}");
    assert_eq!(done["attempts"][0]["class"], "permanent");
    assert_eq!(done["attempts"][0]["stage"], "rcpt_to");
    // A manual retry queues it again.
    let r = app
        .post(
            &format!("/api/v1/messages/{}/retry", m["id"].as_str().unwrap()),
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn health_and_metrics() {
    let app = spawn_app().await;
    let r = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let m = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(m.contains("herald_messages{status=\"queued\"}"), "{m}");
    assert!(m.contains("herald_send_seconds_bucket"), "{m}");
    app.stop().await;
}

#[tokio::test]
async fn a_message_can_name_a_template_and_a_broken_one_is_refused_at_once() {
    let peer = Peer::aiosmtpd(PyPeer {
        mode: "plain",
        certs: None,
        user: None,
        require_tls: false,
    });
    let app = spawn_app().await;
    let acc = app
        .create_account(local_account("plain", peer.port, "none", None, None))
        .await;
    let r = app
        .post(
            "/api/v1/messages",
            &json!({"to": ["new@example.com"], "template": "activation", "locale": "zh-CN", "account": acc["id"],
                    "vars": {"name": "<b>小王</b>", "product": "Acme", "link": "https://acme.test/activate?t=1"}}),
        )
        .await;
    assert_eq!(r.status(), 202);
    let m: Value = r.json().await.unwrap();
    assert!(!m["subject"].as_str().unwrap().is_empty());
    app.wait_message(m["id"].as_str().unwrap(), &["sent"]).await;
    let got = peer.wait_messages(1).await;
    let data = got[0]["data"].as_str().unwrap();
    assert!(data.contains("multipart/alternative"), "text and HTML: {data}");

    // A tenant override that only fails at runtime is refused when a message uses it.
    let r = app
        .http
        .put(app.url("/api/v1/templates/password_reset/en"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"subject": "Reset", "text": "{{ code | nosuchfilter }}"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422, "a filter that does not exist is refused when saved");
    let r = app
        .post(
            "/api/v1/messages",
            &json!({"to": ["a@example.com"], "template": "password_reset", "subject": "x", "vars": {}}),
        )
        .await;
    assert_eq!(r.status(), 422, "template and subject are exclusive");
    let r = app
        .post(
            "/api/v1/messages",
            &json!({"to": ["a@example.com"], "template": "nope"}),
        )
        .await;
    assert_eq!(r.status(), 422);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["errors"][0]["field"], "template", "{v}");
    app.stop().await;
}
