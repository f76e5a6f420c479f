//! The web console over plain HTTP (the browser tests in tests/console/ drive
//! it in Chromium): the one-time setup link from `herald admin
//! reset-password`, session cookies, CSRF tokens, security headers and the
//! sign-in rate limit.

use crate::helpers::{TestApp, new_pg_database, spawn_app_with};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use std::process::{Command, Stdio};

/// A setup link printed by `herald admin reset-password`, as a path on the test server.
fn reset_password(app: &TestApp, user: Option<&str>) -> String {
    reset_password_on(app, user, None)
}

/// The same, for a server on `database_url`.
fn reset_password_on(app: &TestApp, user: Option<&str>, database_url: Option<&str>) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald"));
    cmd.arg("--data-dir").arg(app.data_dir.path()).arg("--json");
    cmd.args(["admin", "reset-password"]);
    if let Some(u) = user {
        cmd.args(["--user", u]);
    }
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("HERALD_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("HERALD_PUBLIC_URL", "https://herald.example.com");
    if let Some(url) = database_url {
        cmd.env("HERALD_DATABASE_URL", url);
    }
    let out = cmd.stdin(Stdio::null()).output().expect("run herald");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let link = v["setup_link"].as_str().expect("a setup link").to_string();
    assert!(link.starts_with("https://herald.example.com/setup/hrd_"), "{link}");
    link.trim_start_matches("https://herald.example.com").to_string()
}

/// The value of a cookie the response sets, with its attributes.
fn set_cookie(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&format!("{name}=")))
        .map(String::from)
}

fn cookie_value(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .and_then(|kv| kv.split_once('='))
        .map(|(_, v)| v.to_string())
        .unwrap_or_default()
}

/// The hidden CSRF field of a page's first form.
fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a form with a CSRF token") + 19;
    html[at..].split('"').next().unwrap().to_string()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Sets the admin's password through a fresh setup link; answers the session cookie.
async fn set_password(app: &TestApp, http: &reqwest::Client, password: &str) -> String {
    set_password_on(app, http, password, None).await
}

async fn set_password_on(app: &TestApp, http: &reqwest::Client, password: &str, database_url: Option<&str>) -> String {
    let link = reset_password_on(app, None, database_url);
    let page = http.get(app.url(&link)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let form_cookie = set_cookie(&page, "herald_csrf").expect("the form's token cookie");
    let token = cookie_value(&form_cookie);
    let html = page.text().await.unwrap();
    assert_eq!(csrf_of(&html), token);
    let r = http
        .post(app.url(&link))
        .header(COOKIE, format!("herald_csrf={token}"))
        .form(&[("csrf", token.as_str()), ("password", password), ("confirm", password)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    cookie_value(&set_cookie(&r, "herald_session").expect("a session"))
}

#[tokio::test]
async fn setup_link_sets_the_password_once_and_forms_need_their_csrf_token() {
    let app = spawn_app_with(&[("HERALD_PUBLIC_URL", "https://herald.example.com")]).await;
    let http = client();
    let link = reset_password(&app, None);

    // Without the page's token the form is refused, and nothing is set.
    let r = http
        .post(app.url(&link))
        .form(&[
            ("password", "a long enough password"),
            ("confirm", "a long enough password"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    let page = http.get(app.url(&link)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let h = page.headers();
    assert!(
        h["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["x-content-type-options"], "nosniff");
    let token = cookie_value(&set_cookie(&page, "herald_csrf").unwrap());
    let post = |password: &'static str, confirm: &'static str| {
        http.post(app.url(&link))
            .header(COOKIE, format!("herald_csrf={token}"))
            .form(&[("csrf", token.as_str()), ("password", password), ("confirm", confirm)])
            .send()
    };
    let short = post("short", "short").await.unwrap();
    assert_eq!(short.status(), 422);
    assert!(short.text().await.unwrap().contains("at least 10 characters"));
    let mismatch = post("a long enough password", "another one").await.unwrap();
    assert_eq!(mismatch.status(), 422);
    assert!(mismatch.text().await.unwrap().contains("does not match"));

    let ok = post("a long enough password", "a long enough password").await.unwrap();
    assert_eq!(ok.status(), 303);
    assert_eq!(ok.headers()[LOCATION], "/?done=password_set");
    let session = set_cookie(&ok, "herald_session").expect("a session cookie");
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/", "Secure"] {
        assert!(session.contains(attr), "{session} lacks {attr}");
    }
    let session = cookie_value(&session);

    // Used: the link works no more.
    let again = http.get(app.url(&link)).send().await.unwrap();
    assert_eq!(again.status(), 404);

    // Signed in: the overview; a form without the session's token is refused.
    let overview = http
        .get(app.url("/"))
        .header(COOKIE, format!("herald_session={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(overview.status(), 200);
    let html = overview.text().await.unwrap();
    assert!(html.contains("Overview"));
    let csrf = csrf_of(&html);
    let forged = http
        .post(app.url("/settings"))
        .header(COOKIE, format!("herald_session={session}"))
        .form(&[("from_name", "Mallory")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    let saved = http
        .post(app.url("/settings"))
        .header(COOKIE, format!("herald_session={session}"))
        .form(&[("csrf", csrf.as_str()), ("from_name", "Ops"), ("locale", "en")])
        .send()
        .await
        .unwrap();
    assert_eq!(saved.status(), 303, "{}", saved.text().await.unwrap());
    let settings: serde_json::Value = app.get("/api/v1/settings").await.json().await.unwrap();
    assert_eq!(settings["from_name"], "Ops");

    // Signed out: the session is gone on the server.
    let out = http
        .post(app.url("/signout"))
        .header(COOKIE, format!("herald_session={session}"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    let after = http
        .get(app.url("/"))
        .header(COOKIE, format!("herald_session={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 303);
    assert_eq!(after.headers()[LOCATION], "/signin");
    app.stop().await;
}

#[tokio::test]
async fn sign_in_attempts_are_limited_per_user_name() {
    let app = spawn_app_with(&[]).await;
    let http = client();
    set_password(&app, &http, "the right password").await;
    let page = http.get(app.url("/signin")).send().await.unwrap();
    let token = cookie_value(&set_cookie(&page, "herald_csrf").unwrap());
    let sign_in = |password: &'static str| {
        http.post(app.url("/signin"))
            .header(COOKIE, format!("herald_csrf={token}"))
            .form(&[("csrf", token.as_str()), ("username", "admin"), ("password", password)])
            .send()
    };
    for _ in 0..5 {
        let r = sign_in("a wrong password").await.unwrap();
        assert_eq!(r.status(), 401);
        assert!(r.text().await.unwrap().contains("Wrong user name or password"));
    }
    // The right password too, now: try again later.
    let r = sign_in("the right password").await.unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.text().await.unwrap().contains("Try again in 15 minutes"));
    app.stop().await;
}

#[tokio::test]
async fn sign_in_opens_a_session() {
    let app = spawn_app_with(&[]).await;
    let http = client();
    set_password(&app, &http, "the right password").await;
    let page = http.get(app.url("/signin?next=/messages")).send().await.unwrap();
    let token = cookie_value(&set_cookie(&page, "herald_csrf").unwrap());
    let r = http
        .post(app.url("/signin"))
        .header(COOKIE, format!("herald_csrf={token}"))
        .form(&[
            ("csrf", token.as_str()),
            ("username", "admin"),
            ("password", "the right password"),
            ("next", "/messages"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()[LOCATION], "/messages");
    let session = set_cookie(&r, "herald_session").unwrap();
    assert!(!session.contains("Secure"), "plain http: {session}");
    // Elsewhere than this site: never.
    let r = http
        .post(app.url("/signin"))
        .header(COOKIE, format!("herald_csrf={token}"))
        .form(&[
            ("csrf", token.as_str()),
            ("username", "admin"),
            ("password", "the right password"),
            ("next", "//evil.example/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()[LOCATION], "/");
    app.stop().await;
}

/// The console's own queries (sessions, counts, the hourly chart, the log's
/// window) on PostgreSQL.
#[tokio::test]
async fn console_pages_on_postgres() {
    let url = new_pg_database().await;
    let app = spawn_app_with(&[("HERALD_DATABASE_URL", &url)]).await;
    let http = client();
    let session = set_password_on(&app, &http, "the right password", Some(&url)).await;
    let acc = app
        .create_account(serde_json::json!({
            "name": "nowhere", "provider": "custom", "host": "127.0.0.1", "port": 9, "security": "none",
            "from": {"address": "a@herald.test"}, "timeout_secs": 5
        }))
        .await;
    let m: serde_json::Value = app
        .post(
            "/api/v1/messages",
            &serde_json::json!({"to": ["b@example.com"], "subject": "Hello PG", "text": "x", "account": acc["id"]}),
        )
        .await
        .json()
        .await
        .unwrap();
    let id = m["id"].as_str().unwrap().to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let v: serde_json::Value = app.get(&format!("/api/v1/messages/{id}")).await.json().await.unwrap();
        if v["attempts"].as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no attempt yet: {v}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let get = |path: String| {
        http.get(app.url(&path))
            .header(COOKIE, format!("herald_session={session}"))
            .send()
    };
    let overview = get("/".into()).await.unwrap();
    assert_eq!(overview.status(), 200);
    assert!(overview.text().await.unwrap().contains("nowhere"));
    let log = get(format!("/messages?window=24h&account={}", acc["id"].as_str().unwrap()))
        .await
        .unwrap();
    assert_eq!(log.status(), 200);
    assert!(log.text().await.unwrap().contains("Hello PG"));
    let page = get(format!("/messages/{id}")).await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("connect"));
    app.stop().await;
}
