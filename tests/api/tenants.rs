//! Tenants: isolation on every route, the fallback chain to the platform
//! sender, events and rules, and the built-in warning about broken accounts.

use crate::helpers::*;
use serde_json::{Value, json};

/// A tenant's view of the API: the same server, the tenant's own token.
struct Tenant<'a> {
    app: &'a TestApp,
    id: String,
    token: String,
}

impl Tenant<'_> {
    async fn req(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> reqwest::Response {
        let mut r = self
            .app
            .http
            .request(method, self.app.url(path))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            r = r.json(b);
        }
        r.send().await.unwrap()
    }
    async fn get(&self, path: &str) -> reqwest::Response {
        self.req(reqwest::Method::GET, path, None).await
    }
    async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.req(reqwest::Method::POST, path, Some(body)).await
    }
    async fn put(&self, path: &str, body: &Value) -> reqwest::Response {
        self.req(reqwest::Method::PUT, path, Some(body)).await
    }
    async fn patch_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.req(reqwest::Method::PATCH, path, Some(body)).await
    }
    /// Adds an account as this tenant (201 expected).
    async fn add_account(&self, body: &Value) -> Value {
        self.json(self.post("/api/v1/accounts", body).await, 201).await
    }
    /// This tenant's test email of account `id`.
    async fn test_email(&self, id: &str, body: Value) -> Value {
        self.json(self.post(&format!("/api/v1/accounts/{id}/test"), &body).await, 200)
            .await
    }
    async fn json(&self, r: reqwest::Response, want: u16) -> Value {
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        assert_eq!(status, want, "{v}");
        v
    }
}

async fn tenant<'a>(app: &'a TestApp, name: &str) -> Tenant<'a> {
    let r = app.post("/api/v1/tenants", &json!({"name": name})).await;
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    assert!(v["token"].as_str().unwrap().starts_with("hrd_"));
    Tenant {
        app,
        id: v["id"].as_str().unwrap().to_string(),
        token: v["token"].as_str().unwrap().to_string(),
    }
}

#[tokio::test]
async fn tenants_never_see_each_other() {
    let peer = Peer::aiosmtpd(PyPeer {
        mode: "plain",
        certs: None,
        user: None,
        require_tls: false,
    });
    let app = spawn_app().await;
    let a = tenant(&app, "Acme").await;
    let b = tenant(&app, "Globex").await;

    let acc = a
        .json(
            a.post(
                "/api/v1/accounts",
                &local_account("acme-mail", peer.port, "none", None, None),
            )
            .await,
            201,
        )
        .await;
    let acc_id = acc["id"].as_str().unwrap();
    let rule = a
        .json(
            a.post(
                "/api/v1/rules",
                &json!({"name": "r", "methods": [{"channel": "email", "to": ["ops@acme.test"]}]}),
            )
            .await,
            201,
        )
        .await;
    let rule_id = rule["id"].as_str().unwrap();
    let msg = a
        .json(
            a.post(
                "/api/v1/messages",
                &json!({"to": ["x@example.com"], "subject": "s", "text": "t", "account": acc_id}),
            )
            .await,
            202,
        )
        .await;
    let msg_id = msg["id"].as_str().unwrap();

    // Every route with A's ids answers B with 404, never the object.
    for (method, path, body) in [
        (reqwest::Method::GET, format!("/api/v1/accounts/{acc_id}"), None),
        (reqwest::Method::GET, "/api/v1/accounts/acme-mail".to_string(), None),
        (
            reqwest::Method::PATCH,
            format!("/api/v1/accounts/{acc_id}"),
            Some(json!({"name": "stolen"})),
        ),
        (reqwest::Method::DELETE, format!("/api/v1/accounts/{acc_id}"), None),
        (
            reqwest::Method::POST,
            format!("/api/v1/accounts/{acc_id}/test"),
            Some(json!({"to": "x@example.com"})),
        ),
        (
            reqwest::Method::POST,
            format!("/api/v1/accounts/{acc_id}/authorize"),
            Some(json!({})),
        ),
        (reqwest::Method::GET, format!("/api/v1/messages/{msg_id}"), None),
        (
            reqwest::Method::POST,
            format!("/api/v1/messages/{msg_id}/retry"),
            Some(json!({})),
        ),
        (reqwest::Method::GET, format!("/api/v1/rules/{rule_id}"), None),
        (
            reqwest::Method::PATCH,
            format!("/api/v1/rules/{rule_id}"),
            Some(json!({"enabled": false})),
        ),
        (reqwest::Method::DELETE, format!("/api/v1/rules/{rule_id}"), None),
    ] {
        let r = b.req(method.clone(), &path, body.as_ref()).await;
        assert_eq!(r.status(), 404, "{method} {path}");
        // The problem echoes only what the caller sent, never the object.
        let body = r.text().await.unwrap();
        assert!(
            !body.contains("noreply@herald.test") && !body.contains("127.0.0.1"),
            "{body}"
        );
    }
    // Naming A's account in B's message or settings is an unknown account.
    let r = b
        .post(
            "/api/v1/messages",
            &json!({"to": ["x@example.com"], "subject": "s", "text": "t", "account": acc_id}),
        )
        .await;
    assert_eq!(r.status(), 422);
    let r = b.put("/api/v1/settings", &json!({"default_account": acc_id})).await;
    assert_eq!(r.status(), 422);
    // Lists hold only one's own.
    let accounts = b.json(b.get("/api/v1/accounts").await, 200).await;
    assert!(accounts.as_array().unwrap().is_empty());
    let messages = b.json(b.get("/api/v1/messages").await, 200).await;
    assert!(messages.as_array().unwrap().is_empty());
    let rules = b.json(b.get("/api/v1/rules").await, 200).await;
    assert!(rules.as_array().unwrap().iter().all(|r| r["id"] != rule_id));
    let tenants = b.json(b.get("/api/v1/tenants").await, 200).await;
    assert_eq!(tenants.as_array().unwrap().len(), 1);
    assert_eq!(tenants[0]["id"], b.id.as_str());
    assert_eq!(b.post("/api/v1/tenants", &json!({"name": "x"})).await.status(), 403);
    // A still has everything.
    assert_eq!(a.get(&format!("/api/v1/accounts/{acc_id}")).await.status(), 200);
    assert_eq!(a.get(&format!("/api/v1/rules/{rule_id}")).await.status(), 200);
    let done = a.json(a.get(&format!("/api/v1/messages/{msg_id}")).await, 200).await;
    assert_eq!(done["id"], msg_id);
    // The platform admin does not see a tenant's accounts in its own list either.
    let platform: Value = app.get("/api/v1/accounts").await.json().await.unwrap();
    assert!(platform.as_array().unwrap().is_empty());
    app.stop().await;
}

async fn wait_sent(t: &Tenant<'_>, id: &str) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let v = t.json(t.get(&format!("/api/v1/messages/{id}")).await, 200).await;
        if ["sent", "failed", "held"].contains(&v["status"].as_str().unwrap()) {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "{v}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn fallback_chain_with_each_link_missing_in_turn() {
    let platform_peer = Peer::aiosmtpd(PyPeer {
        mode: "plain",
        certs: None,
        user: None,
        require_tls: false,
    });
    let tenant_peer = Peer::aiosmtpd(PyPeer {
        mode: "plain",
        certs: None,
        user: None,
        require_tls: false,
    });
    let app = spawn_app().await;
    let a = tenant(&app, "Acme").await;
    let send = |subject: &'static str| {
        let a = &a;
        async move {
            let m = a
                .json(
                    a.post(
                        "/api/v1/messages",
                        &json!({"to": ["user@example.com"], "subject": subject, "text": "hello"}),
                    )
                    .await,
                    202,
                )
                .await;
            wait_sent(a, m["id"].as_str().unwrap()).await
        }
    };

    // 1. Nobody has an account: the capture mailbox, with the reason.
    let m = send("one").await;
    assert_eq!(m["captured"], true, "{m}");
    assert!(m["route"].as_str().unwrap().starts_with("capture: neither"), "{m}");

    // 2. The platform has a default: sent by the platform under the tenant's display name.
    let mut body = local_account("platform-mail", platform_peer.port, "none", None, None);
    body["from"] = json!({"address": "noreply@platform.test", "name": "Platform"});
    let p = app.create_account(body).await;
    assert_eq!(
        app.http
            .put(app.url("/api/v1/settings"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({"default_account": p["id"]}))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    a.json(a.put("/api/v1/settings", &json!({"from_name": "Acme Ops"})).await, 200)
        .await;
    let m = send("two").await;
    assert_eq!(m["status"], "sent", "{m}");
    assert!(m["route"].as_str().unwrap().starts_with("platform_default"), "{m}");
    let got = platform_peer.wait_messages(1).await;
    let data = got[0]["data"].as_str().unwrap();
    assert!(data.contains("From: \"Acme Ops\" <noreply@platform.test>"), "{data}");
    assert_eq!(got[0]["mail_from"], "noreply@platform.test");

    // 3. The tenant may not fall back: captured again.
    a.json(
        a.put(
            "/api/v1/settings",
            &json!({"from_name": "Acme Ops", "fallback_to_platform": false}),
        )
        .await,
        200,
    )
    .await;
    let m = send("three").await;
    assert_eq!(m["captured"], true);
    assert!(m["route"].as_str().unwrap().contains("may not fall back"), "{m}");

    // 4. The platform's cap per tenant and day.
    a.json(a.put("/api/v1/settings", &json!({"from_name": "Acme Ops"})).await, 200)
        .await;
    let r = app
        .http
        .put(app.url("/api/v1/settings"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"default_account": p["id"], "tenant_daily_cap": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let m = send("four").await;
    assert_eq!(m["captured"], true, "{m}");
    assert!(m["route"].as_str().unwrap().contains("cap is 1"), "{m}");
    // A tenant cannot set the platform's cap.
    assert_eq!(
        a.put("/api/v1/settings", &json!({"tenant_daily_cap": 100}))
            .await
            .status(),
        422
    );

    // 5. The tenant's own default account wins.
    let own = a
        .json(
            a.post(
                "/api/v1/accounts",
                &local_account("acme-mail", tenant_peer.port, "none", None, None),
            )
            .await,
            201,
        )
        .await;
    a.json(
        a.put("/api/v1/settings", &json!({"default_account": own["id"]})).await,
        200,
    )
    .await;
    let m = send("five").await;
    assert_eq!(m["status"], "sent");
    assert!(m["route"].as_str().unwrap().starts_with("tenant_default"), "{m}");
    tenant_peer.wait_messages(1).await;
    assert_eq!(
        platform_peer.messages().len(),
        1,
        "nothing more went through the platform"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_event_arrives_through_a_rule_and_floods_are_throttled() {
    let peer = Peer::aiosmtpd(PyPeer {
        mode: "plain",
        certs: None,
        user: None,
        require_tls: false,
    });
    let app = spawn_app().await;
    let a = tenant(&app, "Acme").await;
    let acc = a
        .json(
            a.post(
                "/api/v1/accounts",
                &local_account("acme-mail", peer.port, "none", None, None),
            )
            .await,
            201,
        )
        .await;
    let rule = a
        .json(
            a.post(
                "/api/v1/rules",
                &json!({"name": "Backups", "match": {"types": ["backup.*"], "min_severity": "warning", "keywords": ["volume"]},
                        "methods": [{"channel": "email", "account": acc["id"], "to": ["ops@acme.test"], "from_name": "Acme Alerts"}],
                        "throttle_secs": 1}),
            )
            .await,
            201,
        )
        .await;
    let event = json!({"type": "backup.failed", "severity": "error", "source": "nas-01", "title": "Backup failed", "message": "Volume 2 is full", "data": {"volume": 2}});
    let first = a.json(a.post("/api/v1/events", &event).await, 202).await;
    assert_eq!(first["rules"][0]["id"], rule["id"]);
    assert_eq!(first["rules"][0]["sent"], true);
    assert_eq!(first["messages"].as_array().unwrap().len(), 1);
    let got = peer.wait_messages(1).await;
    let data = got[0]["data"].as_str().unwrap();
    assert!(data.contains("Backup failed"), "{data}");
    assert!(data.contains("From: \"Acme Alerts\""), "{data}");
    assert_eq!(got[0]["rcpt_tos"], json!(["ops@acme.test"]));

    // Not matching: below the severity, another type, no keyword, a disabled rule.
    for e in [
        json!({"type": "backup.failed", "severity": "info", "title": "Backup failed", "message": "Volume 2"}),
        json!({"type": "disk.full", "severity": "error", "title": "Volume 2 full"}),
        json!({"type": "backup.failed", "severity": "error", "title": "Backup failed", "message": "network down"}),
    ] {
        let r = a.json(a.post("/api/v1/events", &e).await, 202).await;
        assert!(
            r["rules"].as_array().unwrap().iter().all(|m| m["id"] != rule["id"]),
            "{e} → {r}"
        );
    }

    // A flood: inside the window events are counted, and the next message says how many.
    let mut suppressed = 0;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let sent = loop {
        let r = a.json(a.post("/api/v1/events", &event).await, 202).await;
        if r["rules"][0]["sent"] == true {
            break r;
        }
        suppressed += 1;
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(suppressed >= 1, "the window held at least one event back");
    assert_eq!(sent["messages"].as_array().unwrap().len(), 1);
    let got = peer.wait_messages(2).await;
    let data = got[1]["data"].as_str().unwrap();
    assert!(
        data.contains(&suppressed.to_string()),
        "the summary counts {suppressed} suppressed events: {data}"
    );

    // Disabled: matches nothing.
    a.json(
        a.req(
            reqwest::Method::PATCH,
            &format!("/api/v1/rules/{}", rule["id"].as_str().unwrap()),
            Some(&json!({"enabled": false})),
        )
        .await,
        200,
    )
    .await;
    let r = a.json(a.post("/api/v1/events", &event).await, 202).await;
    assert!(r["rules"].as_array().unwrap().iter().all(|m| m["id"] != rule["id"]));
    // Bad events name the field.
    let r = a
        .post("/api/v1/events", &json!({"type": "x", "severity": "fatal"}))
        .await;
    assert_eq!(r.status(), 422);
    app.stop().await;
}

#[tokio::test]
async fn an_expired_authorization_is_reported_to_the_admins_through_another_route() {
    let oauth = OAuthPeer::start();
    let smtp = oauth.smtp();
    let platform_peer = Peer::aiosmtpd(PyPeer {
        mode: "plain",
        certs: None,
        user: None,
        require_tls: false,
    });
    // Tokens that expire as issued: the first send refreshes and meets the revoked grant.
    oauth.config(json!({"expires_in": 0})).await;
    let app = spawn_app().await;
    let mut body = local_account("platform-mail", platform_peer.port, "none", None, None);
    body["from"] = json!({"address": "noreply@platform.test"});
    let p = app.create_account(body).await;
    let r = app
        .http
        .put(app.url("/api/v1/settings"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"default_account": p["id"], "admin_emails": ["ops@platform.test"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let a = tenant(&app, "Acme").await;
    let rules = a.json(a.get("/api/v1/rules").await, 200).await;
    assert!(
        rules
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["system"] == "account_authorization_expired"),
        "built-in rule exists: {rules}"
    );
    let acc = a
        .json(
            a.post(
                "/api/v1/accounts",
                &json!({"name": "acme-gmail", "provider": "custom", "host": "127.0.0.1", "port": smtp.port, "security": "none",
                        "from": {"address": "mailer@acme.test"},
                        "auth": {"method": "oauth2", "oauth": {"provider": "custom", "client_id": "herald-test", "client_secret": "test-secret",
                                 "authorize_url": oauth.url("/authorize"), "token_url": oauth.url("/token"), "scope": "openid"}}}),
            )
            .await,
            201,
        )
        .await;
    let id = acc["id"].as_str().unwrap();
    a.json(
        a.put(
            "/api/v1/settings",
            &json!({"default_account": id, "admin_emails": ["admin@acme.test"]}),
        )
        .await,
        200,
    )
    .await;
    let start = a
        .json(
            a.post(&format!("/api/v1/accounts/{id}/authorize"), &json!({})).await,
            200,
        )
        .await;
    let location = oauth.sign_in(start["authorize_url"].as_str().unwrap()).await;
    assert_eq!(app.http.get(location).send().await.unwrap().status(), 200);

    oauth.revoke_all().await;
    let m = a
        .json(
            a.post(
                "/api/v1/messages",
                &json!({"to": ["customer@example.com"], "subject": "Invoice", "text": "x"}),
            )
            .await,
            202,
        )
        .await;
    let held = wait_sent(&a, m["id"].as_str().unwrap()).await;
    assert_eq!(held["status"], "held", "{held}");

    // The warning went out through the platform's account, to both admins.
    let got = platform_peer.wait_messages(1).await;
    assert_eq!(got[0]["rcpt_tos"], json!(["admin@acme.test", "ops@platform.test"]));
    let data = got[0]["data"].as_str().unwrap().to_lowercase();
    assert!(data.contains("authorization has expired"), "{data}");
    assert!(data.contains("acme-gmail"), "{data}");
    assert!(smtp.messages().is_empty(), "nothing went through the broken account");
    app.stop().await;
}

/// The issue's story: a tenant with no mail service of its own posts an
/// event; the message arrives from the platform sender under the tenant's
/// display name; another tenant sees none of it.
#[tokio::test]
async fn a_tenant_without_mail_service_is_served_by_the_platform_sender() {
    let platform_peer = Peer::aiosmtpd(PyPeer {
        mode: "plain",
        certs: None,
        user: None,
        require_tls: false,
    });
    let app = spawn_app().await;
    let mut body = local_account("platform-mail", platform_peer.port, "none", None, None);
    body["from"] = json!({"address": "noreply@platform.test", "name": "Platform"});
    let p = app.create_account(body).await;
    let r = app
        .http
        .put(app.url("/api/v1/settings"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"default_account": p["id"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let a = tenant(&app, "Acme").await;
    let b = tenant(&app, "Globex").await;
    a.json(
        a.put(
            "/api/v1/settings",
            &json!({"from_name": "Acme Monitoring", "locale": "zh-CN"}),
        )
        .await,
        200,
    )
    .await;
    a.json(a.post("/api/v1/rules", &json!({"name": "Disks", "match": {"types": ["disk.*"]}, "methods": [{"channel": "email", "to": ["oncall@acme.test"]}]})).await, 201).await;
    let out = a.json(a.post("/api/v1/events", &json!({"type": "disk.full", "severity": "critical", "source": "db-1", "title": "磁盘已满", "message": "/var 使用率 100%"})).await, 202).await;
    assert_eq!(out["messages"].as_array().unwrap().len(), 1);
    let m = wait_sent(&a, out["messages"][0].as_str().unwrap()).await;
    assert_eq!(m["status"], "sent", "{m}");
    let got = platform_peer.wait_messages(1).await;
    let data = got[0]["data"].as_str().unwrap();
    assert_eq!(got[0]["mail_from"], "noreply@platform.test");
    assert!(
        data.contains("From: =?utf-8?") || data.contains("From: \"Acme Monitoring\""),
        "{data}"
    );
    assert!(
        data.contains("Acme Monitoring") || data.contains("QWNtZSBNb25pdG9yaW5n"),
        "the tenant's display name: {data}"
    );
    // The other tenant sees none of it.
    let bm = b.json(b.get("/api/v1/messages").await, 200).await;
    assert!(bm.as_array().unwrap().is_empty());
    assert_eq!(
        b.get(&format!("/api/v1/messages/{}", m["id"].as_str().unwrap()))
            .await
            .status(),
        404
    );
    let brules = b.json(b.get("/api/v1/rules").await, 200).await;
    assert!(brules.as_array().unwrap().iter().all(|r| r["name"] != "Disks"));
    app.stop().await;
}

/// A tenant cannot make Herald connect inside the platform's network (its
/// test email would show an internal service's banner), while the platform's
/// own accounts may use internal relays; the platform can allow networks.
#[tokio::test]
async fn a_tenant_cannot_reach_internal_addresses() {
    let peer = Peer::aiosmtpd(PyPeer {
        mode: "plain",
        certs: None,
        user: None,
        require_tls: false,
    });
    let app = spawn_app_with(&[("HERALD_ALLOW_NETWORKS", "")]).await;
    let acme = tenant(&app, "Acme").await;

    // By address and by a name that resolves to loopback: refused before a
    // connection is made, with the reason and the fix, in either language.
    for (name, host) in [("by-ip", "127.0.0.1"), ("by-name", "localhost")] {
        let mut body = local_account(name, peer.port, "none", None, None);
        body["host"] = json!(host);
        let acc = acme.add_account(&body).await;
        let id = acc["id"].as_str().unwrap();
        let report = acme
            .test_email(id, json!({"to": "ops@acme.test", "locale": "en"}))
            .await;
        assert_eq!(report["ok"], false, "{report}");
        assert_eq!(report["stage"], "connect", "{report}");
        assert_eq!(report["class"], "configuration", "{report}");
        let hint = report["hint"].as_str().unwrap();
        assert!(
            hint.contains("internal address") && hint.contains("HERALD_ALLOW_NETWORKS"),
            "{hint}"
        );
        let transcript = report["transcript"].as_array().unwrap();
        assert!(
            transcript.iter().all(|l| l["dir"] != "S"),
            "nothing may be read from the internal server: {report}"
        );
        assert!(report.to_string().contains("loopback address"), "{report}");
        let zh = acme
            .test_email(id, json!({"to": "ops@acme.test", "locale": "zh-CN"}))
            .await;
        assert!(zh["hint"].as_str().unwrap().contains("内部地址"), "{zh}");
    }
    // Nothing reached the server.
    assert_eq!(peer.count(), 0);

    // A tenant's OAuth2 token endpoint on an internal address is not called either.
    let oauth = acme
        .add_account(&json!({
            "name": "oauth-internal", "provider": "custom", "host": "smtp.example.com", "port": 587,
            "security": "starttls", "from": {"address": "noreply@acme.test"},
            "auth": {"method": "oauth2", "oauth": {
                "provider": "custom", "flow": "client_credentials", "client_id": "c",
                "client_secret": "s", "token_url": "https://169.254.169.254/token", "scope": "smtp"}}
        }))
        .await;
    let id = oauth["id"].as_str().unwrap();
    let report = acme.test_email(id, json!({"to": "ops@acme.test"})).await;
    assert_eq!(report["stage"], "oauth_token", "{report}");
    assert!(
        report.to_string().contains("was not called") && report.to_string().contains("169.254.169.254"),
        "{report}"
    );
    // By name: the resolver hands the HTTP client no address to connect to.
    let by_name = acme
        .json(
            acme.patch_json(
                &format!("/api/v1/accounts/{id}"),
                &json!({"auth": {"oauth": {"token_url": "http://localhost:9/token"}}}),
            )
            .await,
            200,
        )
        .await;
    assert_eq!(by_name["auth"]["oauth"]["token_url"], "http://localhost:9/token");
    let report = acme.test_email(id, json!({"to": "ops@acme.test"})).await;
    assert_eq!(report["stage"], "oauth_token", "{report}");
    assert_eq!(report["class"], "configuration", "{report}");
    assert!(report.to_string().contains("loopback address"), "{report}");

    // The platform admin keeps internal relays.
    let platform = app
        .create_account(local_account("relay", peer.port, "none", None, None))
        .await;
    let report = app
        .test_email(platform["id"].as_str().unwrap(), "ops@platform.test", "en")
        .await;
    assert_eq!(report["ok"], true, "{report}");
    peer.wait_messages(1).await;
    app.stop().await;

    // Allowed by the platform: the tenant's relay on loopback works.
    let app = spawn_app_with(&[("HERALD_ALLOW_NETWORKS", "127.0.0.1/32")]).await;
    let acme = tenant(&app, "Acme").await;
    let acc = acme
        .add_account(&local_account("relay", peer.port, "none", None, None))
        .await;
    let report = acme
        .test_email(acc["id"].as_str().unwrap(), json!({"to": "ops@acme.test"}))
        .await;
    assert_eq!(report["ok"], true, "{report}");
    peer.wait_messages(2).await;
    app.stop().await;
}
