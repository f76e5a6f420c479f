//! Webhook and chat-robot channels against real receivers on loopback
//! (tests/peers/robot_receiver.js): a Standard Webhooks receiver verifying
//! with the maintained `standardwebhooks` library, and one receiver per robot
//! preset checking the provider's signature as documented and answering with
//! its own error bodies.

use crate::helpers::*;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A receiver of one kind (tests/peers/robot_receiver.js).
struct Receiver {
    port: u16,
    child: Child,
    http: reqwest::Client,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Receiver {
    fn start(kind: &str, opts: &[(&str, &str)]) -> Receiver {
        // reqwest needs a rustls provider even for plain HTTP; spawn_app installs it too.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut cmd = Command::new("node");
        cmd.arg(repo().join("tests/peers/robot_receiver.js"))
            .args(["--kind", kind]);
        for (k, v) in opts {
            cmd.arg(format!("--{k}")).arg(v);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node runs tests/peers/robot_receiver.js (scripts/install-test-peers.sh)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("READY ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the receiver said {line:?}, not READY <port>"));
        Receiver {
            port,
            child,
            http: reqwest::Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Every request it saw: {at, path, headers, body, accepted, answer}.
    async fn received(&self) -> Vec<Value> {
        self.http
            .get(self.url("/_received"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Waits until `n` requests were accepted (verified), 60 s.
    async fn wait_accepted(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let all = self.received().await;
            let ok: Vec<Value> = all.iter().filter(|r| r["accepted"] == true).cloned().collect();
            if ok.len() >= n {
                return ok;
            }
            assert!(
                Instant::now() < deadline,
                "the receiver accepted {} of {n}: {all:#?}",
                ok.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn create_channel(app: &TestApp, body: Value) -> Value {
    let r = app.post("/api/v1/channels", &body).await;
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, 201, "create channel: {v}");
    v
}

async fn test_channel(app: &TestApp, id: &str, locale: &str) -> Value {
    let r = app
        .post(&format!("/api/v1/channels/{id}/test"), &json!({"locale": locale}))
        .await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

const DINGTALK_SECRET: &str = "SEC0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd";

#[tokio::test]
async fn one_event_goes_out_by_email_to_a_signed_webhook_and_to_dingtalk() {
    let smtp = Peer::aiosmtpd(PyPeer {
        mode: "plain",
        certs: None,
        user: None,
        require_tls: false,
    });
    let app = spawn_app().await;
    app.create_account(local_account("mail", smtp.port, "none", None, None))
        .await;

    // A webhook created without a secret gets one, shown once.
    let hook = create_channel(
        &app,
        json!({"name": "ops-hook", "kind": "webhook", "url": "http://127.0.0.1:9/placeholder"}),
    )
    .await;
    let whsec = hook["secret"]
        .as_str()
        .expect("the generated secret, shown once")
        .to_string();
    assert!(whsec.starts_with("whsec_"), "{hook}");
    let shown: Value = app
        .get(&format!("/api/v1/channels/{}", hook["id"].as_str().unwrap()))
        .await
        .json()
        .await
        .unwrap();
    assert!(shown.get("secret").is_none(), "never shown again: {shown}");
    assert_eq!(shown["secret_set"], true);
    let webhook = Receiver::start("webhook", &[("secret", &whsec)]);
    let r = app
        .patch(
            &format!("/api/v1/channels/{}", hook["id"].as_str().unwrap()),
            &json!({"url": webhook.url("/hooks/herald")}),
        )
        .await;
    assert_eq!(r.status(), 200);

    let token = "d1f8c0ffee0123456789abcdef";
    let dingtalk = Receiver::start(
        "dingtalk",
        &[("secret", DINGTALK_SECRET), ("token", token), ("keyword", "Backup")],
    );
    let ding = create_channel(
        &app,
        json!({
            "name": "ops-dingtalk",
            "kind": "dingtalk",
            "url": dingtalk.url(&format!("/robot/send?access_token={token}")),
            "secret": DINGTALK_SECRET,
        }),
    )
    .await;
    assert!(
        !ding["url"].as_str().unwrap().contains(token),
        "the token is masked: {ding}"
    );
    assert_eq!(ding["limits"]["per_minute"], 20, "DingTalk's published limit: {ding}");

    let rule = app
        .post(
            "/api/v1/rules",
            &json!({
                "name": "backups",
                "match": {"types": ["backup.*"]},
                "methods": [
                    {"channel": "email", "account": "mail", "to": ["ops@example.com"]},
                    {"channel": "ops-hook"},
                    {"channel": ding["id"]},
                ]
            }),
        )
        .await;
    assert_eq!(rule.status(), 201, "{}", rule.text().await.unwrap());

    let r = app
        .post(
            "/api/v1/events",
            &json!({"type": "backup.failed", "severity": "error", "title": "Backup failed on nas-01",
                    "message": "Disk quota exceeded", "data": {"volume": 2}}),
        )
        .await;
    assert_eq!(r.status(), 202);
    let outcome: Value = r.json().await.unwrap();
    let ids: Vec<String> = outcome["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 3, "{outcome}");
    for id in &ids {
        let m = app.wait_message(id, &["sent", "failed"]).await;
        assert_eq!(m["status"], "sent", "{m}");
    }

    // Email: at the SMTP peer.
    let mails = smtp.wait_messages(1).await;
    assert!(mails[0].to_string().contains("Backup failed on nas-01"), "{}", mails[0]);
    // Webhook: verified by standardwebhooks, the event inside, the message id as webhook-id.
    let got = webhook.wait_accepted(1).await;
    let body: Value = serde_json::from_str(got[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["type"], "backup.failed", "{body}");
    assert_eq!(body["data"]["event"]["event"]["data"]["volume"], 2, "{body}");
    assert!(ids.contains(&got[0]["headers"]["webhook-id"].as_str().unwrap().to_string()));
    // DingTalk: signed, with the keyword, as markdown.
    let got = dingtalk.wait_accepted(1).await;
    let body: Value = serde_json::from_str(got[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["msgtype"], "markdown");
    assert!(
        body["markdown"]["text"]
            .as_str()
            .unwrap()
            .contains("Backup failed on nas-01")
    );

    // Each has its own log: a channel message names its channel, its attempt the HTTP status.
    let mut channels = Vec::new();
    for id in &ids {
        let m: Value = app.get(&format!("/api/v1/messages/{id}")).await.json().await.unwrap();
        if m["channel"] == ding["id"] {
            assert_eq!(m["attempts"][0]["code"], 200, "{m}");
            assert_eq!(m["attempts"][0]["stage"], "done", "{m}");
        }
        channels.push(m["channel"].clone());
    }
    assert!(channels.contains(&ding["id"]) && channels.contains(&hook["id"]) && channels.contains(&Value::Null));
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("herald_channel_attempts_total{kind=\"dingtalk\",outcome=\"sent\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("herald_channel_attempts_total{kind=\"webhook\",outcome=\"sent\"} 1"));
    // No secret in the database in clear.
    let db = app.database_bytes();
    for secret in [token, DINGTALK_SECRET, whsec.as_str()] {
        assert!(
            !db.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{secret} is stored in clear"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_bad_signing_secret_is_diagnosed_by_the_channel_test() {
    let app = spawn_app().await;
    let token = "0123456789abcdef";
    let dingtalk = Receiver::start("dingtalk", &[("secret", DINGTALK_SECRET), ("token", token)]);
    let ding = create_channel(
        &app,
        json!({"name": "ding", "kind": "dingtalk",
               "url": dingtalk.url(&format!("/robot/send?access_token={token}")),
               "secret": "SECwrongwrongwrong"}),
    )
    .await;
    let id = ding["id"].as_str().unwrap();
    let report = test_channel(&app, id, "en").await;
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(report["stage"], "response");
    assert_eq!(report["status"], 200);
    assert_eq!(report["code"], "310000");
    assert_eq!(report["class"], "configuration");
    assert!(report["hint"].as_str().unwrap().contains("signature"), "{report}");
    assert!(report["body"].as_str().unwrap().contains("sign not match"), "{report}");
    let zh = test_channel(&app, id, "zh-CN").await;
    assert!(zh["hint"].as_str().unwrap().contains("加签"), "{zh}");
    let shown: Value = app.get(&format!("/api/v1/channels/{id}")).await.json().await.unwrap();
    assert_eq!(shown["status"], "failing", "{shown}");

    // The right secret: the same test goes through.
    let r = app
        .patch(&format!("/api/v1/channels/{id}"), &json!({"secret": DINGTALK_SECRET}))
        .await;
    assert_eq!(r.status(), 200);
    let report = test_channel(&app, id, "en").await;
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["stage"], "done");
    let shown: Value = app.get(&format!("/api/v1/channels/{id}")).await.json().await.unwrap();
    assert_eq!(shown["status"], "ready", "{shown}");

    // Feishu's signature failure and WeCom's invalid key, with their own hints.
    let feishu = Receiver::start("feishu", &[("secret", "feishu-secret")]);
    let fs = create_channel(
        &app,
        json!({"name": "fs", "kind": "feishu", "url": feishu.url("/open-apis/bot/v2/hook/hook-id-1"),
               "secret": "not-the-secret"}),
    )
    .await;
    let report = test_channel(&app, fs["id"].as_str().unwrap(), "zh-CN").await;
    assert_eq!(report["code"], "19021", "{report}");
    assert!(report["hint"].as_str().unwrap().contains("签名"), "{report}");
    let wecom = Receiver::start("wecom", &[("token", "right-key-0001")]);
    let wc = create_channel(
        &app,
        json!({"name": "wc", "kind": "wecom", "url": wecom.url("/cgi-bin/webhook/send?key=wrong-key-0002")}),
    )
    .await;
    assert!(!wc["url"].as_str().unwrap().contains("wrong-key-0002"), "{wc}");
    let report = test_channel(&app, wc["id"].as_str().unwrap(), "en").await;
    assert_eq!(report["code"], "93000", "{report}");
    assert!(report["hint"].as_str().unwrap().contains("key"), "{report}");
    assert!(
        !report.to_string().contains("wrong-key-0002"),
        "the key is masked in the report: {report}"
    );
    // A Standard Webhooks receiver that holds another secret: 401, diagnosed.
    let other = Receiver::start("webhook", &[("secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]);
    let hook = create_channel(
        &app,
        json!({"name": "hook", "kind": "webhook", "url": other.url("/in")}),
    )
    .await;
    let report = test_channel(&app, hook["id"].as_str().unwrap(), "en").await;
    assert_eq!(report["status"], 401, "{report}");
    assert_eq!(report["class"], "configuration");
    assert!(report["hint"].as_str().unwrap().contains("whsec_"), "{report}");
    app.stop().await;
}

async fn event_to(app: &TestApp, channel: &str, title: &str) -> String {
    let rule = format!("to-{channel}-{title}");
    let r = app
        .post(
            "/api/v1/rules",
            &json!({"name": rule, "match": {"keywords": [title]}, "methods": [{"channel": channel}]}),
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let r = app
        .post("/api/v1/events", &json!({"type": "t.x", "title": title}))
        .await;
    assert_eq!(r.status(), 202);
    let v: Value = r.json().await.unwrap();
    v["messages"][0].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_503_twice_then_200_is_delivered_once_with_the_same_webhook_id() {
    let app = spawn_app().await;
    let hook = create_channel(
        &app,
        json!({"name": "flaky", "kind": "webhook", "url": "http://127.0.0.1:9/x",
               "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}),
    )
    .await;
    let rx = Receiver::start(
        "webhook",
        &[
            ("secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            ("script", "503,503,200"),
        ],
    );
    let r = app
        .patch(
            &format!("/api/v1/channels/{}", hook["id"].as_str().unwrap()),
            &json!({"url": rx.url("/in")}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let id = event_to(&app, "flaky", "flaky").await;
    let m = app.wait_message(&id, &["sent", "failed"]).await;
    assert_eq!(m["status"], "sent", "{m}");
    let all = rx.received().await;
    assert_eq!(all.len(), 3, "{all:#?}");
    assert_eq!(all.iter().filter(|r| r["accepted"] == true).count(), 1);
    for r in &all {
        assert_eq!(
            r["headers"]["webhook-id"],
            id.as_str(),
            "the same delivery id every time"
        );
    }
    let attempts = m["attempts"].as_array().unwrap();
    let codes: Vec<i64> = attempts.iter().map(|a| a["code"].as_i64().unwrap()).collect();
    assert_eq!(codes, [503, 503, 200], "{m}");
    assert_eq!(attempts[0]["class"], "transient");
    assert!(
        attempts[0]["reply"].as_str().unwrap().contains("service unavailable"),
        "{m}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_429_with_retry_after_is_honoured() {
    let app = spawn_app().await;
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let rx = Receiver::start("webhook", &[("secret", secret), ("script", "429:4,200")]);
    create_channel(
        &app,
        json!({"name": "busy", "kind": "webhook", "url": rx.url("/in"), "secret": secret}),
    )
    .await;
    let id = event_to(&app, "busy", "busy").await;
    let m = app.wait_message(&id, &["sent", "failed"]).await;
    assert_eq!(m["status"], "sent", "{m}");
    let all = rx.received().await;
    assert_eq!(all.len(), 2, "{all:#?}");
    // Backoff alone would retry after about a second (HERALD_RETRY_MIN_SECS=1).
    let waited = all[1]["at"].as_i64().unwrap() - all[0]["at"].as_i64().unwrap();
    assert!(waited >= 3_500, "retried after {waited} ms, Retry-After said 4 s");
    assert_eq!(m["attempts"][0]["code"], 429);
    app.stop().await;
}

#[tokio::test]
async fn other_4xx_fail_at_once_and_a_tenants_loopback_url_is_refused() {
    // The platform allows tenants no internal network (its own channels are unrestricted).
    let app = spawn_app_with(&[("HERALD_ALLOW_NETWORKS", "")]).await;
    // Slack does not know the token (403 invalid_token): failed at once, with the hint.
    let token = "XXXXXXXXXXXXXXXXXXXXXXXX";
    let slack = Receiver::start("slack", &[("token", token)]);
    let ch = create_channel(
        &app,
        json!({"name": "slack", "kind": "slack", "url": slack.url(&format!("/services/T000/B000/{token}-old"))}),
    )
    .await;
    assert!(!ch["url"].as_str().unwrap().contains(token), "{ch}");
    let id = event_to(&app, "slack", "revoked").await;
    let m = app.wait_message(&id, &["sent", "failed"]).await;
    assert_eq!(m["status"], "failed", "{m}");
    assert_eq!(m["attempts"].as_array().unwrap().len(), 1, "no retry: {m}");
    assert_eq!(m["attempts"][0]["code"], 403, "{m}");
    assert_eq!(m["attempts"][0]["enhanced_code"], "invalid_token", "{m}");
    assert!(m["last_error"].as_str().unwrap().contains("revoked"), "the hint: {m}");
    assert!(!m.to_string().contains(token), "the token is masked in the log: {m}");
    let shown: Value = app.get("/api/v1/channels/slack").await.json().await.unwrap();
    assert_eq!(shown["status"], "failing", "{shown}");
    // An archived channel (410): the test says so, in Chinese too.
    let archived = Receiver::start("slack", &[("archived", "1")]);
    let ch = create_channel(
        &app,
        json!({"name": "archived", "kind": "slack", "url": archived.url("/services/T000/B000/ZZZZZZZZ")}),
    )
    .await;
    let report = test_channel(&app, ch["id"].as_str().unwrap(), "zh-CN").await;
    assert_eq!(report["status"], 410, "{report}");
    assert_eq!(report["code"], "channel_is_archived");
    assert!(report["hint"].as_str().unwrap().contains("归档"), "{report}");

    // A tenant may not point a channel at loopback: refused at resolution.
    let r = app.post("/api/v1/tenants", &json!({"name": "acme"})).await;
    assert_eq!(r.status(), 201);
    let tenant_token = r.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_string();
    let rx = Receiver::start("webhook", &[("secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]);
    for (i, url) in [rx.url("/in"), format!("http://localhost:{}/in", rx.port)]
        .into_iter()
        .enumerate()
    {
        let created: Value = app
            .http
            .post(app.url("/api/v1/channels"))
            .bearer_auth(&tenant_token)
            .json(&json!({"name": format!("inside-{i}"), "kind": "webhook", "url": url,
                          "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let report: Value = app
            .http
            .post(app.url(&format!(
                "/api/v1/channels/{}/test",
                created["id"].as_str().unwrap_or_else(|| panic!("{created}"))
            )))
            .bearer_auth(&tenant_token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(report["ok"], false, "{report}");
        assert_eq!(report["stage"], "dns", "{report}");
        assert!(
            report["error"].as_str().unwrap().contains("HERALD_ALLOW_NETWORKS"),
            "{report}"
        );
    }
    assert!(rx.received().await.is_empty(), "nothing reached the receiver");
    app.stop().await;
}

#[tokio::test]
async fn bad_channels_are_refused_naming_the_field() {
    let app = spawn_app().await;
    let r = app
        .post(
            "/api/v1/channels",
            &json!({"name": "x", "kind": "dingtalk", "url": "https://oapi.dingtalk.com/robot/send"}),
        )
        .await;
    assert_eq!(r.status(), 422);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let v: Value = r.json().await.unwrap();
    assert!(v.to_string().contains("access_token"), "{v}");
    let r = app
        .post(
            "/api/v1/channels",
            &json!({"name": "y", "kind": "pager", "url": "https://example.com/", "secret": "whsec_nope"}),
        )
        .await;
    assert_eq!(r.status(), 422);
    let v: Value = r.json().await.unwrap();
    assert!(
        v.to_string().contains("webhook, slack, teams, dingtalk, feishu, wecom"),
        "{v}"
    );
    let r = app
        .post(
            "/api/v1/channels",
            &json!({"name": "z", "kind": "slack", "url": "https://hooks.slack.com/services/T/B/x", "secret": "s"}),
        )
        .await;
    assert_eq!(r.status(), 422);
    let r = app
        .post(
            "/api/v1/rules",
            &json!({"name": "r", "methods": [{"channel": "nowhere"}]}),
        )
        .await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("methods[0].channel"));
    app.stop().await;
}

/// `herald serve` as a real process, to be killed.
struct Server {
    child: Child,
    base: String,
    http: reqwest::Client,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(data_dir: &std::path::Path) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
            .arg("--data-dir")
            .arg(data_dir)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("HERALD_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("HERALD_RETRY_MIN_SECS", "1")
            .env("HERALD_RETRY_MAX_SECS", "2")
            .env("NO_COLOR", "1")
            .env("HERALD_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start herald serve");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let base = loop {
            let line = lines.next().expect("serve logs its address").unwrap();
            if let Some(i) = line.find("listening on http://") {
                break line[i + "listening on ".len()..]
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .to_string();
            }
        };
        std::thread::spawn(move || for _ in lines.by_ref().map_while(Result::ok) {});
        let _ = rustls::crypto::ring::default_provider().install_default();
        Server {
            child,
            base,
            http: reqwest::Client::new(),
        }
    }

    async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .bearer_auth(ADMIN_TOKEN)
            .json(body)
            .send()
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn kill_9_during_a_stream_of_events_loses_no_accepted_delivery() {
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let rx = Receiver::start("webhook", &[("secret", secret)]);
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let r = server
        .post(
            "/api/v1/channels",
            &json!({"name": "stream", "kind": "webhook", "url": rx.url("/in"), "secret": secret,
                    "limits": {"per_minute": 0}}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let r = server
        .post(
            "/api/v1/rules",
            &json!({"name": "all", "match": {"types": ["stream.*"]}, "methods": [{"channel": "stream"}]}),
        )
        .await;
    assert_eq!(r.status(), 201);

    let base = server.base.clone();
    let poster = tokio::spawn({
        let http = server.http.clone();
        async move {
            let mut accepted = Vec::new();
            for i in 0.. {
                let r = http
                    .post(format!("{base}/api/v1/events"))
                    .bearer_auth(ADMIN_TOKEN)
                    .json(&json!({"type": "stream.tick", "title": format!("tick {i}")}))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 202 => {
                        let v: Value = r.json().await.unwrap();
                        accepted.push(v["messages"][0].as_str().unwrap().to_string());
                    }
                    Ok(r) => panic!("unexpected {}", r.status()),
                    Err(_) => break,
                }
            }
            accepted
        }
    });
    rx.wait_accepted(10).await;
    drop(server); // kill -9
    let accepted = poster.await.unwrap();
    assert!(accepted.len() >= 10, "accepted {}", accepted.len());

    // Restarted on the same data: every accepted event reaches the receiver,
    // by its webhook-id (one cut short by the kill may arrive twice, same id).
    let _server = Server::start(data.path());
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let got: std::collections::HashSet<String> = rx
            .received()
            .await
            .iter()
            .filter(|r| r["accepted"] == true)
            .filter_map(|r| r["headers"]["webhook-id"].as_str().map(str::to_string))
            .collect();
        let missing: Vec<&String> = accepted.iter().filter(|id| !got.contains(*id)).collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} accepted deliveries never arrived: {:?}",
            missing.len(),
            accepted.len(),
            &missing[..missing.len().min(5)]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_tenants_loopback_url_works_when_the_platform_allows_the_network() {
    let app = spawn_app_with(&[("HERALD_ALLOW_NETWORKS", "127.0.0.0/8")]).await;
    let r = app.post("/api/v1/tenants", &json!({"name": "lab"})).await;
    assert_eq!(r.status(), 201);
    let tenant_token = r.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_string();
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let rx = Receiver::start("webhook", &[("secret", secret)]);
    let created: Value = app
        .http
        .post(app.url("/api/v1/channels"))
        .bearer_auth(&tenant_token)
        .json(&json!({"name": "lab-hook", "kind": "webhook", "url": rx.url("/in"), "secret": secret}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let report: Value = app
        .http
        .post(app.url(&format!("/api/v1/channels/{}/test", created["id"].as_str().unwrap())))
        .bearer_auth(&tenant_token)
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(report["ok"], true, "{report}");
    let got = rx.wait_accepted(1).await;
    assert!(got[0]["headers"]["webhook-id"].as_str().unwrap().starts_with("test_"));
    app.stop().await;
}

#[tokio::test]
async fn a_deferred_channel_message_can_be_cancelled_and_retried() {
    // Backoff of 30 s: the message waits, deferred, until a person acts.
    let app = spawn_app_with(&[("HERALD_RETRY_MIN_SECS", "30"), ("HERALD_RETRY_MAX_SECS", "60")]).await;
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let rx = Receiver::start("webhook", &[("secret", secret), ("script", "503,200")]);
    create_channel(
        &app,
        json!({"name": "later", "kind": "webhook", "url": rx.url("/in"), "secret": secret}),
    )
    .await;
    let id = event_to(&app, "later", "later").await;
    let m = app.wait_message(&id, &["deferred"]).await;
    assert!(m["last_error"].as_str().unwrap().contains("503"), "{m}");
    let r = app.post(&format!("/api/v1/messages/{id}/cancel"), &json!({})).await;
    assert_eq!(r.status(), 200);
    app.wait_message(&id, &["cancelled"]).await;
    let r = app.post(&format!("/api/v1/messages/{id}/retry"), &json!({})).await;
    assert_eq!(r.status(), 200);
    let m = app.wait_message(&id, &["sent"]).await;
    assert_eq!(m["attempts"].as_array().unwrap().len(), 2, "{m}");
    let all = rx.received().await;
    assert_eq!(all.len(), 2);
    assert_eq!(all[0]["headers"]["webhook-id"], all[1]["headers"]["webhook-id"]);
    app.stop().await;
}

/// `herald channel` on a data directory: the URL from stdin, the generated
/// secret printed once, the URL masked in the list, a test that says ok.
#[tokio::test]
async fn the_cli_adds_lists_and_tests_a_channel_without_secrets_on_the_command_line() {
    use std::io::Write;
    let data = tempfile::tempdir().unwrap();
    let herald = |args: &[&str], stdin: Option<&str>| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
            .arg("--data-dir")
            .arg(data.path())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            input.write_all(s.as_bytes()).unwrap();
        }
        drop(input);
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let token = "cli-token-0123456789";
    let wecom = Receiver::start("wecom", &[("token", token)]);
    let url = wecom.url(&format!("/cgi-bin/webhook/send?key={token}"));
    let (ok, out, err) = herald(
        &["channel", "add", "--name", "team", "--kind", "wecom", "--url-stdin"],
        Some(&url),
    );
    assert!(ok, "{out}{err}");
    assert!(!out.contains(token), "{out}");
    let (ok, out, err) = herald(
        &["channel", "add", "--name", "hook", "--kind", "webhook", "--url-stdin"],
        Some("https://example.com/in"),
    );
    assert!(ok, "{out}{err}");
    assert!(out.contains("whsec_"), "the generated secret is printed once: {out}");
    let (ok, out, _) = herald(&["channel", "list"], None);
    assert!(
        ok && out.contains("team") && out.contains("key=••••") && !out.contains(token),
        "{out}"
    );
    assert!(!out.contains("whsec_"), "{out}");
    let (ok, out, err) = herald(&["channel", "test", "team"], None);
    assert!(ok, "{out}{err}");
    assert!(out.starts_with("ok at stage done"), "{out}");
    assert_eq!(wecom.wait_accepted(1).await.len(), 1);
    let (ok, _, err) = herald(
        &["channel", "add", "--name", "bad", "--kind", "wecom", "--url-stdin"],
        Some("https://qyapi.weixin.qq.com/cgi-bin/webhook/send"),
    );
    assert!(!ok);
    assert!(err.contains("url: has no key"), "{err}");
}

#[tokio::test]
async fn a_channels_per_minute_limit_holds_the_rest_until_the_minute_frees() {
    let app = spawn_app().await;
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let rx = Receiver::start("webhook", &[("secret", secret)]);
    let ch = create_channel(
        &app,
        json!({"name": "slow", "kind": "webhook", "url": rx.url("/in"), "secret": secret,
               "limits": {"per_minute": 2}}),
    )
    .await;
    assert_eq!(ch["limits"]["per_minute"], 2);
    let r = app
        .post(
            "/api/v1/rules",
            &json!({"name": "slow", "match": {"types": ["burst.*"]}, "methods": [{"channel": "slow"}]}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let mut ids = Vec::new();
    for i in 0..3 {
        let v: Value = app
            .post(
                "/api/v1/events",
                &json!({"type": "burst.x", "title": format!("burst {i}")}),
            )
            .await
            .json()
            .await
            .unwrap();
        ids.push(v["messages"][0].as_str().unwrap().to_string());
    }
    let mut states = Vec::new();
    for id in &ids {
        states.push(app.wait_message(id, &["sent", "held"]).await);
    }
    let sent = states.iter().filter(|m| m["status"] == "sent").count();
    let held: Vec<&Value> = states.iter().filter(|m| m["status"] == "held").collect();
    assert_eq!((sent, held.len()), (2, 1), "{states:#?}");
    assert!(
        held[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("per-minute limit of 2"),
        "{}",
        held[0]
    );
    assert_eq!(rx.received().await.len(), 2);
    app.stop().await;
}

#[tokio::test]
async fn channels_work_on_postgresql() {
    let app = spawn_app_pg().await;
    let token = "pg-key-0123456789";
    let wecom = Receiver::start("wecom", &[("token", token)]);
    let ch = create_channel(
        &app,
        json!({"name": "pg-wecom", "kind": "wecom", "url": wecom.url(&format!("/cgi-bin/webhook/send?key={token}")),
               "headers": {"X-Team": "ops"}}),
    )
    .await;
    assert_eq!(ch["headers"]["x-team"], "••••", "{ch}");
    let id = event_to(&app, "pg-wecom", "pg").await;
    let m = app.wait_message(&id, &["sent", "failed"]).await;
    assert_eq!(m["status"], "sent", "{m}");
    let got = wecom.wait_accepted(1).await;
    assert_eq!(got[0]["headers"]["x-team"], "ops", "the header went along");
    let r = app.delete("/api/v1/channels/pg-wecom").await;
    assert_eq!(r.status(), 409, "a rule names it");
    app.stop().await;
}
