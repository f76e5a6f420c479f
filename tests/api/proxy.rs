//! SMTP (and OAuth2 token requests) through a real proxy: pproxy in HTTP
//! CONNECT and SOCKS5 modes, with and without a password, in front of real
//! SMTP peers; and the `proxy` stage of the report when the proxy is down,
//! refuses the password, or cannot reach the server.

use crate::helpers::*;
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) const USER: &str = "proxyuser";
pub(crate) const PASSWORD: &str = "proxy-pass-7";

/// pproxy on loopback, stopped when dropped.
pub(crate) struct Pproxy {
    pub(crate) port: u16,
    child: Child,
}

impl Drop for Pproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on (just released by the OS).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

impl Pproxy {
    /// `kind` is `http` or `socks5`; with `auth`, only USER / PASSWORD get in.
    /// `--auth 0`: every connection authenticates, not only an address's first.
    pub(crate) async fn start(kind: &str, auth: bool) -> Pproxy {
        let port = free_port();
        let mut listen = format!("{kind}://127.0.0.1:{port}");
        if auth {
            listen.push_str(&format!("#{USER}:{PASSWORD}"));
        }
        let child = Command::new("pproxy")
            .args(["--auth", "0", "-l", &listen])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pproxy (run scripts/install-test-peers.sh)");
        let p = Pproxy { port, child };
        let deadline = Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(Instant::now() < deadline, "pproxy did not listen on {port}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        p
    }
}

fn proxy_doc(kind: &str, port: u16, auth: Option<(&str, &str)>) -> Value {
    let mut p = json!({"kind": kind, "host": "127.0.0.1", "port": port});
    if let Some((u, s)) = auth {
        p["username"] = json!(u);
        p["secret"] = json!(s);
    }
    p
}

fn plain_peer() -> Peer {
    Peer::aiosmtpd(PyPeer {
        mode: "plain",
        certs: None,
        user: None,
        require_tls: false,
    })
}

fn notes(report: &Value) -> String {
    client_lines(report).join("\n")
}

#[tokio::test]
async fn test_emails_reach_the_server_through_http_and_socks5_proxies_with_and_without_a_password() {
    let app = spawn_app().await;
    let smtp = plain_peer();
    let mut sent = 0;
    for (kind, auth) in [("http", false), ("http", true), ("socks5", false), ("socks5", true)] {
        let proxy = Pproxy::start(kind, auth).await;
        let mut body = local_account(&format!("via-{kind}-{auth}"), smtp.port, "none", None, None);
        body["proxy"] = proxy_doc(kind, proxy.port, auth.then_some((USER, PASSWORD)));
        let acc = app.create_account(body).await;
        assert_eq!(acc["proxy"]["kind"], kind, "{acc}");
        assert!(
            acc["proxy"].get("secret").is_none(),
            "the proxy password is write-only: {acc}"
        );
        assert_eq!(acc["proxy"]["secret_set"], auth, "{acc}");
        let report = app
            .test_email(acc["id"].as_str().unwrap(), "to@example.com", "en")
            .await;
        assert_eq!(report["ok"], true, "{kind} auth={auth}: {report}");
        sent += 1;
        let got = smtp.wait_messages(sent).await;
        assert!(got[sent - 1]["rcpt_tos"].to_string().contains("to@example.com"));
        let t = notes(&report);
        assert!(
            t.contains(&format!("through {kind} proxy 127.0.0.1:{}", proxy.port)),
            "the transcript names the proxy: {t}"
        );
        if auth {
            assert!(t.contains(&format!("as {USER} (password ********)")), "{t}");
        }
        assert!(
            !report.to_string().contains(PASSWORD),
            "the password never shows: {report}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn starttls_runs_end_to_end_through_a_socks5_tunnel() {
    let app = spawn_app().await;
    let certs = Certs::new();
    let smtp = Peer::aiosmtpd(PyPeer {
        mode: "starttls",
        certs: Some(&certs),
        user: Some(("mailer", "mail-secret")),
        require_tls: true,
    });
    let proxy = Pproxy::start("socks5", true).await;
    let mut body = local_account(
        "tls-via-socks",
        smtp.port,
        "starttls",
        Some(("mailer", "mail-secret")),
        Some(&certs.ca_pem),
    );
    body["proxy"] = proxy_doc("socks5", proxy.port, Some((USER, PASSWORD)));
    let acc = app.create_account(body).await;
    let report = app
        .test_email(acc["id"].as_str().unwrap(), "to@example.com", "en")
        .await;
    assert_eq!(report["ok"], true, "{report}");
    assert!(notes(&report).contains("TLS established"), "{report}");
    smtp.wait_messages(1).await;
    app.stop().await;
}

#[tokio::test]
async fn a_wrong_proxy_password_is_the_proxy_stage_with_its_hint() {
    let app = spawn_app().await;
    let smtp = plain_peer();
    for kind in ["http", "socks5"] {
        let proxy = Pproxy::start(kind, true).await;
        let mut body = local_account(&format!("wrong-{kind}"), smtp.port, "none", None, None);
        body["proxy"] = proxy_doc(kind, proxy.port, Some((USER, "not-the-password")));
        let acc = app.create_account(body).await;
        let id = acc["id"].as_str().unwrap();
        let report = app.test_email(id, "to@example.com", "en").await;
        assert_eq!(report["ok"], false, "{report}");
        assert_eq!(report["stage"], "proxy", "{kind}: {report}");
        assert_eq!(report["class"], "configuration", "{report}");
        let hint = report["hint"].as_str().unwrap();
        assert!(
            hint.contains("proxy.username") && hint.contains("proxy.secret"),
            "{hint}"
        );
        let zh = app.test_email(id, "to@example.com", "zh-CN").await;
        assert!(zh["hint"].as_str().unwrap().contains("代理"), "{zh}");
        // Fixing the password alone (the username stays) makes it work.
        let r = app
            .patch(
                &format!("/api/v1/accounts/{id}"),
                &json!({"proxy": {"secret": PASSWORD}}),
            )
            .await;
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        let report = app.test_email(id, "to@example.com", "en").await;
        assert_eq!(report["ok"], true, "{kind}: {report}");
    }
    assert_eq!(smtp.wait_messages(2).await.len(), 2);
    app.stop().await;
}

#[tokio::test]
async fn a_proxy_that_is_down_is_the_proxy_stage_with_its_hint() {
    let app = spawn_app().await;
    let smtp = plain_peer();
    let mut body = local_account("proxy-down", smtp.port, "none", None, None);
    body["proxy"] = proxy_doc("http", free_port(), None);
    let acc = app.create_account(body).await;
    let report = app
        .test_email(acc["id"].as_str().unwrap(), "to@example.com", "en")
        .await;
    assert_eq!(
        (report["ok"].clone(), report["stage"].clone()),
        (json!(false), json!("proxy")),
        "{report}"
    );
    assert_eq!(report["class"], "transient", "{report}");
    assert!(
        report["hint"].as_str().unwrap().contains("could not reach the proxy"),
        "{report}"
    );
    assert!(
        report["reply"]
            .as_str()
            .unwrap()
            .contains("cannot connect to the proxy"),
        "{report}"
    );
    assert_eq!(smtp.count(), 0);
    app.stop().await;
}

#[tokio::test]
async fn a_server_the_proxy_cannot_reach_is_the_proxy_stage() {
    let app = spawn_app().await;
    let closed = free_port();
    for kind in ["http", "socks5"] {
        let proxy = Pproxy::start(kind, true).await;
        let mut body = local_account(&format!("unreachable-{kind}"), closed, "none", None, None);
        body["proxy"] = proxy_doc(kind, proxy.port, Some((USER, PASSWORD)));
        let acc = app.create_account(body).await;
        let report = app
            .test_email(acc["id"].as_str().unwrap(), "to@example.com", "en")
            .await;
        assert_eq!(report["stage"], "proxy", "{kind}: {report}");
        let hint = report["hint"].as_str().unwrap();
        assert!(
            hint.contains("could not or would not connect to the mail server"),
            "{hint}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn the_platform_default_proxy_carries_accounts_without_their_own() {
    let app = spawn_app().await;
    let smtp = plain_peer();
    let proxy = Pproxy::start("socks5", true).await;
    let r = app
        .http
        .put(app.url("/api/v1/settings"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"proxy": proxy_doc("socks5", proxy.port, Some((USER, "wrong")))}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let settings: Value = app.get("/api/v1/settings").await.json().await.unwrap();
    assert_eq!(settings["proxy"]["secret_set"], true, "{settings}");
    assert!(!settings.to_string().contains("wrong"), "write-only: {settings}");

    let acc = app
        .create_account(local_account("uses-default", smtp.port, "none", None, None))
        .await;
    let id = acc["id"].as_str().unwrap();
    let report = app.test_email(id, "to@example.com", "en").await;
    assert_eq!(report["stage"], "proxy", "the default proxy was used: {report}");

    // The settings as read, sent back with the right password, work.
    let mut fixed = settings.clone();
    fixed["proxy"]["secret"] = json!(PASSWORD);
    let r = app
        .http
        .put(app.url("/api/v1/settings"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&fixed)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let report = app.test_email(id, "to@example.com", "en").await;
    assert_eq!(report["ok"], true, "{report}");
    assert!(notes(&report).contains("through socks5 proxy"), "{report}");

    // An account that says "none" connects directly despite the default.
    let mut body = local_account("direct", smtp.port, "none", None, None);
    body["proxy"] = json!({"kind": "none"});
    let acc = app.create_account(body).await;
    let report = app
        .test_email(acc["id"].as_str().unwrap(), "to@example.com", "en")
        .await;
    assert_eq!(report["ok"], true, "{report}");
    assert!(!notes(&report).contains("proxy"), "{report}");
    smtp.wait_messages(2).await;
    app.stop().await;
}

#[tokio::test]
async fn bad_proxy_settings_name_the_field() {
    let app = spawn_app().await;
    let mut body = local_account("bad-proxy", 2525, "none", None, None);
    body["proxy"] = json!({"kind": "ftp", "host": "proxy.example.com", "port": 21});
    let r = app.post("/api/v1/accounts", &body).await;
    assert_eq!(r.status(), 422);
    let p: Value = r.json().await.unwrap();
    assert!(p.to_string().contains("proxy.kind"), "{p}");
    body["proxy"] = json!({"kind": "http", "host": "proxy.example.com", "port": 3128, "username": "u"});
    let r = app.post("/api/v1/accounts", &body).await;
    assert_eq!(r.status(), 422);
    let p: Value = r.json().await.unwrap();
    assert!(
        p.to_string().contains("proxy.secret"),
        "a username needs its password: {p}"
    );
    app.stop().await;
}

#[tokio::test]
async fn oauth2_token_requests_go_through_the_accounts_proxy() {
    let oauth = OAuthPeer::start();
    let smtp = oauth.smtp();
    let app = spawn_app().await;
    let account = |name: &str, proxy: Value| {
        json!({
            "name": name, "provider": "custom", "host": "127.0.0.1", "port": smtp.port,
            "security": "none", "from": {"address": "mailer@herald.test"}, "timeout_secs": 10,
            "auth": {"method": "oauth2", "oauth": {
                "provider": "custom", "flow": "client_credentials", "client_id": "herald-test",
                "client_secret": "test-secret", "authorize_url": oauth.url("/authorize"),
                "token_url": oauth.url("/token"), "scope": "https://outlook.office.com/.default"
            }},
            "proxy": proxy
        })
    };
    // The proxy is down: the token endpoint is up, yet the request fails,
    // because it goes through the proxy.
    let acc = app
        .create_account(account("token-via-dead-proxy", proxy_doc("http", free_port(), None)))
        .await;
    let report = app
        .test_email(acc["id"].as_str().unwrap(), "someone@example.com", "en")
        .await;
    assert_eq!(report["stage"], "oauth_token", "{report}");
    let stats = oauth.stats().await;
    assert_eq!(
        stats["by_grant"]["client_credentials"].as_u64().unwrap_or(0),
        0,
        "{stats}"
    );

    // Through each kind of proxy, with its password, the token comes (a new
    // account each time: nothing cached).
    for (n, kind) in [(1, "http"), (2, "socks5")] {
        let proxy = Pproxy::start(kind, true).await;
        let acc = app
            .create_account(account(
                &format!("token-via-{kind}"),
                proxy_doc(kind, proxy.port, Some((USER, PASSWORD))),
            ))
            .await;
        let report = app
            .test_email(acc["id"].as_str().unwrap(), "someone@example.com", "en")
            .await;
        assert_eq!(report["ok"], true, "{kind}: {report}");
        assert_eq!(oauth.stats().await["by_grant"]["client_credentials"], n, "{kind}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_tenant_cannot_use_a_proxy_or_a_server_on_an_internal_address() {
    let app = spawn_app_with(&[("HERALD_ALLOW_NETWORKS", "")]).await;
    let smtp = plain_peer();
    let proxy = Pproxy::start("socks5", false).await;
    let r = app.post("/api/v1/tenants", &json!({"name": "Acme"})).await;
    assert_eq!(r.status(), 201);
    let token = r.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_string();
    let as_tenant = |method: reqwest::Method, path: &str, body: Value| {
        app.http
            .request(method, app.url(path))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let test = |id: String| {
        as_tenant(
            reqwest::Method::POST,
            &format!("/api/v1/accounts/{id}/test"),
            json!({"to": "ops@acme.test"}),
        )
    };

    // The tenant's own proxy on loopback: not dialed.
    let mut body = local_account("own-proxy", 25, "none", None, None);
    body["host"] = json!("smtp.example.com");
    body["proxy"] = proxy_doc("socks5", proxy.port, None);
    let r = as_tenant(reqwest::Method::POST, "/api/v1/accounts", body)
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let report: Value = test(id).await.unwrap().json().await.unwrap();
    assert_eq!(report["stage"], "proxy", "{report}");
    assert!(
        report["reply"].as_str().unwrap().contains("loopback address"),
        "{report}"
    );
    assert!(
        report["hint"].as_str().unwrap().contains("HERALD_ALLOW_NETWORKS"),
        "{report}"
    );

    // The platform's default proxy may be internal, but an internal server
    // behind it is still out of a tenant's reach.
    let r = app
        .http
        .put(app.url("/api/v1/settings"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"proxy": proxy_doc("socks5", proxy.port, None)}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = local_account("internal-server", smtp.port, "none", None, None);
    let r = as_tenant(reqwest::Method::POST, "/api/v1/accounts", body)
        .await
        .unwrap();
    let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let report: Value = test(id).await.unwrap().json().await.unwrap();
    assert_eq!(report["stage"], "connect", "{report}");
    assert!(
        report["reply"].as_str().unwrap().contains("loopback address"),
        "{report}"
    );
    assert_eq!(smtp.count(), 0);

    // A tenant cannot set the platform's default proxy.
    let r = as_tenant(
        reqwest::Method::PUT,
        "/api/v1/settings",
        json!({"proxy": proxy_doc("http", 3128, None)}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("platform setting"));
    app.stop().await;
}

#[tokio::test]
async fn queued_messages_are_delivered_through_the_proxy_and_a_proxy_failure_defers_them() {
    let app = spawn_app().await;
    let smtp = plain_peer();
    let proxy = Pproxy::start("http", true).await;
    let mut body = local_account("worker-via-proxy", smtp.port, "none", None, None);
    body["proxy"] = proxy_doc("http", proxy.port, Some((USER, PASSWORD)));
    app.create_account(body).await;
    let r = app
        .post(
            "/api/v1/messages",
            &json!({"to": ["ops@example.com"], "subject": "Through the proxy", "text": "x", "account": "worker-via-proxy"}),
        )
        .await;
    assert_eq!(r.status(), 202);
    let m: Value = r.json().await.unwrap();
    let done = app
        .wait_message(m["id"].as_str().unwrap(), &["sent", "failed", "deferred"])
        .await;
    assert_eq!(done["status"], "sent", "{done}");
    assert!(
        smtp.wait_messages(1).await[0]["data"]
            .as_str()
            .unwrap()
            .contains("Through the proxy")
    );

    // The proxy goes away: the next message waits and retries, it does not fail.
    drop(proxy);
    let r = app
        .post(
            "/api/v1/messages",
            &json!({"to": ["ops@example.com"], "subject": "Proxy down", "text": "x", "account": "worker-via-proxy"}),
        )
        .await;
    let m: Value = r.json().await.unwrap();
    let later = app
        .wait_message(m["id"].as_str().unwrap(), &["sent", "failed", "deferred"])
        .await;
    assert_eq!(later["status"], "deferred", "{later}");
    let attempts = later["attempts"].as_array().unwrap();
    assert_eq!(attempts.last().unwrap()["stage"], "proxy", "{later}");
    app.stop().await;
}
