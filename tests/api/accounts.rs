//! Accounts over the API: presets, validation, write-only secrets, auth.

use crate::helpers::*;
use serde_json::{Value, json};

#[tokio::test]
async fn no_token_is_401_problem() {
    let app = spawn_app().await;
    let r = app.http.get(app.url("/api/v1/accounts")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let r = app
        .http
        .get(app.url("/api/v1/accounts"))
        .bearer_auth("hrd_not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    app.stop().await;
}

#[tokio::test]
async fn preset_fills_host_port_security_and_username() {
    let app = spawn_app().await;
    let acc = app
        .create_account(json!({"name": "qq", "provider": "qq", "from": {"address": "me@qq.com", "name": "平台通知"}, "auth": {"secret": "abcdefghijklmnop"}}))
        .await;
    assert_eq!(acc["host"], "smtp.qq.com");
    assert_eq!(acc["port"], 465);
    assert_eq!(acc["security"], "tls");
    assert_eq!(acc["auth"]["method"], "password");
    assert_eq!(acc["auth"]["username"], "me@qq.com");
    assert_eq!(acc["auth"]["secret_set"], true);
    assert!(acc["auth"].get("secret").is_none());
    assert!(!acc.to_string().contains("abcdefghijklmnop"));

    // SendGrid's login is the literal "apikey", separate from the sender.
    let sg = app.create_account(json!({"name": "sg", "provider": "sendgrid", "from": {"address": "noreply@example.com"}, "auth": {"secret": "SG.key"}})).await;
    assert_eq!(sg["auth"]["username"], "apikey");
    // Choosing STARTTLS on a preset picks the preset's STARTTLS port.
    let g = app.create_account(json!({"name": "g", "provider": "gmail", "security": "starttls", "from": {"address": "me@gmail.com"}, "auth": {"secret": "app-password"}})).await;
    assert_eq!(g["port"], 587);
    app.stop().await;
}

#[tokio::test]
async fn bad_input_names_every_field() {
    let app = spawn_app().await;
    let r = app
        .post("/api/v1/accounts", &json!({"provider": "custom", "security": "ssl3", "from": {"address": "not-an-address", "name": "A\r\nBcc: x@evil.test"}, "auth": {"method": "password"}, "tls": {"ca_pem": "garbage"}}))
        .await;
    assert_eq!(r.status(), 422);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let v: Value = r.json().await.unwrap();
    let fields: Vec<&str> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    for f in [
        "name",
        "security",
        "host",
        "from.address",
        "from.name",
        "auth.secret",
        "tls.ca_pem",
    ] {
        assert!(fields.contains(&f), "{f} missing in {v}");
    }
    for e in v["errors"].as_array().unwrap() {
        assert!(
            e["message"].as_str().unwrap().len() > 10,
            "a message says what to do: {e}"
        );
    }
    let r = app
        .post(
            "/api/v1/accounts",
            &json!({"name": "x", "provider": "nope", "from": {"address": "a@b.co"}}),
        )
        .await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["errors"][0]["field"], "provider", "{v}");
    // A wrongly typed field is named by its path.
    let r = app
        .post("/api/v1/accounts", &json!({"name": "x", "port": "twenty-five"}))
        .await;
    assert_eq!(r.status(), 422);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["errors"][0]["field"], "port", "{v}");
    assert!(
        app.get("/api/v1/accounts")
            .await
            .json::<Value>()
            .await
            .unwrap()
            .as_array()
            .unwrap()
            .is_empty(),
        "nothing was saved"
    );
    app.stop().await;
}

/// aiosmtpd with STARTTLS and AUTH for alice, and an account named `name`
/// that signs in there with `password`.
async fn account_on_auth_peer(app: &TestApp, certs: &Certs, name: &str, password: &str) -> (Peer, Value) {
    let peer = Peer::aiosmtpd(PyPeer {
        mode: "starttls",
        certs: Some(certs),
        user: Some(("alice", password)),
        require_tls: true,
    });
    let acc = app
        .create_account(local_account(
            name,
            peer.port,
            "starttls",
            Some(("alice", password)),
            Some(&certs.ca_pem),
        ))
        .await;
    (peer, acc)
}

#[tokio::test]
async fn edit_without_secret_keeps_it_and_delete_removes() {
    let certs = Certs::new();
    let app = spawn_app().await;
    let (peer, acc) = account_on_auth_peer(&app, &certs, "ops", "pw-kept-123").await;
    let id = acc["id"].as_str().unwrap();
    let r = app
        .patch(
            &format!("/api/v1/accounts/{id}"),
            &json!({"from": {"name": "Renamed"}, "timeout_secs": 15}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let edited: Value = r.json().await.unwrap();
    assert_eq!(edited["from"]["name"], "Renamed");
    assert_eq!(edited["auth"]["secret_set"], true);
    assert_eq!(edited["id"], acc["id"]);
    let report = app.test_email(id, "someone@example.com", "en").await;
    assert_eq!(report["ok"], true, "the kept secret still signs in: {report}");

    // By name works too; another name's conflict is a 422 on name.
    app.create_account(local_account("other", peer.port, "starttls", None, Some(&certs.ca_pem)))
        .await;
    let r = app.patch("/api/v1/accounts/other", &json!({"name": "ops"})).await;
    assert_eq!(r.status(), 422);

    assert_eq!(app.delete(&format!("/api/v1/accounts/{id}")).await.status(), 204);
    assert_eq!(app.get(&format!("/api/v1/accounts/{id}")).await.status(), 404);
    app.stop().await;
}

#[tokio::test]
async fn secrets_are_not_in_clear_in_the_database() {
    let app = spawn_app().await;
    let secret = "Very-Distinct-Secret-4711";
    app.create_account(
        json!({"name": "qq", "provider": "qq", "from": {"address": "me@qq.com"}, "auth": {"secret": secret}}),
    )
    .await;
    let list: Value = app.get("/api/v1/accounts").await.json().await.unwrap();
    assert!(!list.to_string().contains(secret));
    let db = app.database_bytes();
    assert!(!db.is_empty());
    assert!(
        !db.windows(secret.len()).any(|w| w == secret.as_bytes()),
        "secret found in clear in the database"
    );
    app.stop().await;
}

#[tokio::test]
async fn providers_and_discovery() {
    let app = spawn_app().await;
    let providers: Value = app.get("/api/v1/providers").await.json().await.unwrap();
    let qq = providers
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "qq")
        .expect("qq in catalog");
    assert_eq!(qq["host"], "smtp.qq.com");
    assert_eq!(qq["secret_kind"], "authorization_code");
    let d: Value = app
        .get("/api/v1/providers/discover?address=someone@163.com&offline=true")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(d["proposals"][0]["host"], "smtp.163.com", "{d}");
    assert_eq!(d["proposals"][0]["source"], "catalog");
    let r = app.get("/api/v1/providers/discover?address=nope").await;
    assert_eq!(r.status(), 422);
    app.stop().await;
}

#[tokio::test]
async fn a_name_taken_twice_is_a_field_error_naming_it() {
    names_taken_twice(spawn_app().await).await;
}

#[tokio::test]
async fn a_name_taken_twice_is_a_field_error_naming_it_on_postgres() {
    names_taken_twice(spawn_app_pg().await).await;
}

/// The database's unique keys refuse a second account or rule of a name;
/// the services say so on the field, whatever the database.
async fn names_taken_twice(app: TestApp) {
    fn account(name: &str) -> Value {
        local_account(name, 2525, "none", None, None)
    }
    fn rule(name: &str) -> Value {
        json!({"name": name, "methods": [{"channel": "email", "to": ["ops@example.com"]}]})
    }
    async fn refused(r: reqwest::Response) -> Value {
        assert_eq!(r.status(), 422);
        let problem: Value = r.json().await.unwrap();
        assert_eq!(problem["errors"][0]["field"], "name", "{problem}");
        problem["errors"][0]["message"].clone()
    }
    // The collection, a body of a name, what a new one and a renamed one hear.
    type Body = fn(&str) -> Value;
    let cases: [(&str, Body, &str, &str); 2] = [
        (
            "/api/v1/accounts",
            account,
            "an account named 'a' exists already: choose another name or edit that account",
            "an account named 'a' exists already: choose another name",
        ),
        (
            "/api/v1/rules",
            rule,
            "a rule named 'a' exists already: choose another name",
            "a rule named 'a' exists already: choose another name",
        ),
    ];
    for (path, body, created, renamed) in cases {
        assert_eq!(app.post(path, &body("a")).await.status(), 201);
        let b: Value = app.post(path, &body("b")).await.json().await.unwrap();
        assert_eq!(refused(app.post(path, &body("a")).await).await, created);
        let id = b["id"].as_str().unwrap();
        let rename = app.patch(&format!("{path}/{id}"), &json!({"name": "a"})).await;
        assert_eq!(refused(rename).await, renamed);
    }
}

/// The console shows a stored secret as the transcript's mask; a form that
/// sends the mask back unchanged must not replace the secret with it.
#[tokio::test]
async fn masked_secret_keeps_the_stored_one() {
    let certs = Certs::new();
    let app = spawn_app().await;
    let (peer, acc) = account_on_auth_peer(&app, &certs, "masked", "pw-kept-456").await;
    let id = acc["id"].as_str().unwrap();
    assert_eq!(app.test_email(id, "someone@example.com", "en").await["ok"], true);

    for mask in ["********", "***"] {
        let r = app
            .patch(
                &format!("/api/v1/accounts/{id}"),
                &json!({"auth": {"method": "password", "username": "alice", "secret": mask}}),
            )
            .await;
        assert_eq!(r.status(), 200);
        let edited: Value = r.json().await.unwrap();
        assert_eq!(edited["auth"]["secret_set"], true);
        assert_eq!(
            edited["status"], "ready",
            "nothing about the connection changed: {edited}"
        );
        let report = app.test_email(id, "someone@example.com", "en").await;
        assert_eq!(
            report["ok"], true,
            "the stored secret still signs in after {mask:?}: {report}"
        );
    }

    // On create the mask means no secret was given.
    let r = app
        .post(
            "/api/v1/accounts",
            &local_account(
                "new",
                peer.port,
                "starttls",
                Some(("alice", "********")),
                Some(&certs.ca_pem),
            ),
        )
        .await;
    assert_eq!(r.status(), 422);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["errors"][0]["field"], "auth.secret", "{v}");
    app.stop().await;
}
