//! OAuth2 (XOAUTH2) accounts against a real authorization server
//! (oauth2-mock-server) and an SMTP server that accepts only its tokens.

use crate::helpers::*;
use serde_json::{Value, json};

const CLIENT_ID: &str = "herald-test";
const CLIENT_SECRET: &str = "test-secret";

/// Tokens that expire as they are issued: the next send must refresh.
fn stale_at_once() -> Value {
    json!({"expires_in": 0})
}

fn oauth_account(name: &str, oauth: &OAuthPeer, smtp: &Peer, flow: &str) -> Value {
    json!({
        "name": name, "provider": "custom", "host": "127.0.0.1", "port": smtp.port, "security": "none",
        "from": {"address": "mailer@herald.test"}, "timeout_secs": 10,
        "auth": {"method": "oauth2", "oauth": {
            "provider": "custom", "flow": flow, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
            "authorize_url": oauth.url("/authorize"), "token_url": oauth.url("/token"), "scope": "openid email"
        }}
    })
}

/// Starts an authorization over the API and completes it as a browser would.
async fn authorize(app: &TestApp, oauth: &OAuthPeer, id: &str) -> reqwest::Response {
    let r = app.post(&format!("/api/v1/accounts/{id}/authorize"), &json!({})).await;
    assert_eq!(r.status(), 200);
    let a: Value = r.json().await.unwrap();
    let url = a["authorize_url"].as_str().unwrap();
    assert!(
        url.contains("code_challenge_method=S256") && url.contains("state="),
        "{url}"
    );
    assert_eq!(a["redirect_uri"], format!("{}/oauth2/callback", app.base));
    let location = oauth.sign_in(url).await;
    assert!(location.starts_with(&app.url("/oauth2/callback?")), "{location}");
    app.http.get(location).send().await.unwrap()
}

/// A new authorization-code account on `smtp`, not authorized yet.
async fn new_account(app: &TestApp, oauth: &OAuthPeer, smtp: &Peer, name: &str) -> Value {
    app.create_account(oauth_account(name, oauth, smtp, "authorization_code"))
        .await
}

/// An authorization-code account on `smtp`, authorized; answers its id.
async fn authorized_account(app: &TestApp, oauth: &OAuthPeer, smtp: &Peer, name: &str) -> String {
    let acc = new_account(app, oauth, smtp, name).await;
    let id = acc["id"].as_str().unwrap().to_string();
    assert_eq!(authorize(app, oauth, &id).await.status(), 200);
    id
}

async fn account(app: &TestApp, id: &str) -> Value {
    app.get(&format!("/api/v1/accounts/{id}")).await.json().await.unwrap()
}

#[tokio::test]
async fn authorize_then_test_email_arrives() {
    let oauth = OAuthPeer::start();
    let smtp = oauth.smtp();
    let app = spawn_app().await;
    let acc = app
        .create_account(oauth_account("google-like", &oauth, &smtp, "authorization_code"))
        .await;
    let id = acc["id"].as_str().unwrap();
    assert_eq!(acc["status"], "authorization_required");
    assert_eq!(acc["redirect_uri"], format!("{}/oauth2/callback", app.base));
    assert_eq!(acc["auth"]["oauth"]["client_secret_set"], true);
    assert!(!acc.to_string().contains(CLIENT_SECRET));

    let page = authorize(&app, &oauth, id).await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Authorization complete"));
    let acc = account(&app, id).await;
    assert_eq!(acc["status"], "ready");
    assert_eq!(acc["auth"]["oauth"]["authorized"], true);

    let report = app.test_email(id, "someone@example.com", "en").await;
    assert_eq!(report["ok"], true, "{report}");
    assert!(
        client_lines(&report).iter().any(|l| l == "AUTH XOAUTH2 ********"),
        "{report}"
    );
    let got = smtp.wait_messages(1).await;
    assert_eq!(got[0]["auth_login"], "mailer@herald.test");
    app.stop().await;
}

#[tokio::test]
async fn expiring_token_is_refreshed_once_for_ten_concurrent_sends() {
    single_flight_scenario(spawn_app().await, 3600).await;
}

/// Tokens that live less than a minute (Herald's usual refresh margin): the
/// margin shrinks with the lifetime, and those who waited for the refresh use
/// its token instead of refreshing again.
#[tokio::test]
async fn short_lived_tokens_are_refreshed_once_for_ten_concurrent_sends() {
    single_flight_scenario(spawn_app().await, 30).await;
}

#[tokio::test]
async fn single_flight_refresh_on_postgres() {
    single_flight_scenario(spawn_app_pg().await, 30).await;
}

async fn single_flight_scenario(app: TestApp, refreshed_expires_in: u64) {
    let oauth = OAuthPeer::start();
    let smtp = oauth.smtp();
    oauth.config(stale_at_once()).await;
    let acc = app
        .create_account(oauth_account("ms-like", &oauth, &smtp, "authorization_code"))
        .await;
    let id = acc["id"].as_str().unwrap().to_string();
    assert_eq!(authorize(&app, &oauth, &id).await.status(), 200);
    let before = oauth.stats().await;
    assert_eq!(before["by_grant"]["authorization_code"], 1);
    assert_eq!(before["by_grant"]["refresh_token"], 0);

    oauth.config(json!({"expires_in": refreshed_expires_in})).await;
    let sends = (0..10).map(|i| {
        let app = &app;
        let id = id.clone();
        async move { app.test_email(&id, &format!("r{i}@example.com"), "en").await }
    });
    let reports = futures_join_all(sends).await;
    for r in &reports {
        assert_eq!(r["ok"], true, "{r}");
    }
    let after = oauth.stats().await;
    assert_eq!(
        after["by_grant"]["refresh_token"], 1,
        "exactly one refresh for ten sends: {after}"
    );
    smtp.wait_messages(10).await;
    app.stop().await;
}

async fn futures_join_all<F: std::future::Future<Output = Value>>(fs: impl Iterator<Item = F>) -> Vec<Value> {
    let handles: Vec<_> = fs.collect();
    let mut out = Vec::new();
    // Polled together: each test email runs concurrently on the runtime.
    let joined = futures_util_join(handles).await;
    out.extend(joined);
    out
}

async fn futures_util_join<F: std::future::Future<Output = Value>>(fs: Vec<F>) -> Vec<Value> {
    use std::pin::Pin;
    use std::task::Poll;
    let mut fs: Vec<Option<Pin<Box<F>>>> = fs.into_iter().map(|f| Some(Box::pin(f))).collect();
    let mut out: Vec<Option<Value>> = vec![None; fs.len()];
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, slot) in fs.iter_mut().enumerate() {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => {
                        out[i] = Some(v);
                        *slot = None;
                    }
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending { Poll::Pending } else { Poll::Ready(()) }
    })
    .await;
    out.into_iter().map(|v| v.unwrap()).collect()
}

#[tokio::test]
async fn revoked_grant_expires_holds_messages_and_reauthorization_releases_them() {
    revoked_grant_scenario(spawn_app().await).await;
}

#[tokio::test]
async fn revoked_grant_scenario_on_postgres() {
    revoked_grant_scenario(spawn_app_pg().await).await;
}

async fn revoked_grant_scenario(app: TestApp) {
    let oauth = OAuthPeer::start();
    let smtp = oauth.smtp();
    oauth.config(stale_at_once()).await;
    let acc = app
        .create_account(oauth_account("revoked", &oauth, &smtp, "authorization_code"))
        .await;
    let id = acc["id"].as_str().unwrap().to_string();
    assert_eq!(authorize(&app, &oauth, &id).await.status(), 200);

    oauth.revoke_all().await;
    let report = app.test_email(&id, "someone@example.com", "en").await;
    assert_eq!(report["ok"], false);
    assert_eq!(report["stage"], "oauth_token", "{report}");
    assert_eq!(report["class"], "reauthorize");
    assert!(
        report["hint"].as_str().unwrap().contains("Reauthorize the account"),
        "{report}"
    );
    let acc = account(&app, &id).await;
    assert_eq!(acc["status"], "authorization_expired");
    assert_eq!(
        acc["status_message"],
        "Authorization has expired. Reauthorize the account."
    );

    // A message for it is held, not failed.
    let m: Value = app
        .post(
            "/api/v1/messages",
            &json!({"to": ["a@example.com"], "subject": "Alert", "text": "disk full", "account": id}),
        )
        .await
        .json()
        .await
        .unwrap();
    let held = app
        .wait_message(m["id"].as_str().unwrap(), &["held", "failed", "sent"])
        .await;
    assert_eq!(held["status"], "held", "{held}");
    assert!(held["last_error"].as_str().unwrap().contains("Reauthorize"), "{held}");

    // Re-authorize in place: same id, and the held message goes out.
    oauth.config(json!({"expires_in": 3600})).await;
    assert_eq!(authorize(&app, &oauth, &id).await.status(), 200);
    let acc = account(&app, &id).await;
    assert_eq!(acc["id"], id.as_str());
    assert_eq!(acc["status"], "ready");
    let sent = app.wait_message(m["id"].as_str().unwrap(), &["sent", "failed"]).await;
    assert_eq!(sent["status"], "sent", "{sent}");
    let got = smtp.wait_messages(1).await;
    assert!(got[0]["data"].as_str().unwrap().contains("disk full"));
    app.stop().await;
}

#[tokio::test]
async fn token_endpoint_outage_is_transient_and_keeps_the_status() {
    let oauth = OAuthPeer::start();
    let smtp = oauth.smtp();
    oauth.config(stale_at_once()).await;
    let app = spawn_app().await;
    let acc = app
        .create_account(oauth_account("outage", &oauth, &smtp, "authorization_code"))
        .await;
    let id = acc["id"].as_str().unwrap().to_string();
    assert_eq!(authorize(&app, &oauth, &id).await.status(), 200);
    oauth.config(json!({"refresh": "unavailable"})).await;
    let report = app.test_email(&id, "someone@example.com", "en").await;
    assert_eq!(report["stage"], "oauth_token", "{report}");
    assert_eq!(report["class"], "transient");
    assert_ne!(account(&app, &id).await["status"], "authorization_expired");

    oauth.config(json!({"refresh": "invalid_client"})).await;
    let report = app.test_email(&id, "someone@example.com", "en").await;
    assert_eq!(report["class"], "configuration", "{report}");
    assert!(report["reply"].as_str().unwrap().contains("client_secret"), "{report}");
    app.stop().await;
}

#[tokio::test]
async fn state_tampering_reuse_and_mix_up_are_refused() {
    let oauth = OAuthPeer::start();
    let smtp = oauth.smtp();
    let app = spawn_app().await;
    let a = app
        .create_account(oauth_account("a", &oauth, &smtp, "authorization_code"))
        .await;
    let b = app
        .create_account(oauth_account("b", &oauth, &smtp, "authorization_code"))
        .await;
    let (a_id, b_id) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());

    // An unknown state.
    let r = app
        .http
        .get(app.url("/oauth2/callback?code=abc&state=forged"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("unknown or was already used"));

    // Mix-up: A's code presented with B's state.
    let start = |id: &str| {
        let path = format!("/api/v1/accounts/{id}/authorize");
        let app = &app;
        async move { app.post(&path, &json!({})).await.json::<Value>().await.unwrap() }
    };
    let sa = start(a_id).await;
    let sb = start(b_id).await;
    let la = reqwest::Url::parse(&oauth.sign_in(sa["authorize_url"].as_str().unwrap()).await).unwrap();
    let lb = reqwest::Url::parse(&oauth.sign_in(sb["authorize_url"].as_str().unwrap()).await).unwrap();
    let q = |u: &reqwest::Url, k: &str| u.query_pairs().find(|(n, _)| n == k).unwrap().1.to_string();
    let mixed = app.url(&format!(
        "/oauth2/callback?code={}&state={}",
        q(&la, "code"),
        q(&lb, "state")
    ));
    let r = app.http.get(&mixed).send().await.unwrap();
    assert_eq!(r.status(), 400, "a code for A cannot complete B");
    assert_eq!(account(&app, b_id).await["status"], "authorization_required");
    assert_eq!(account(&app, b_id).await["auth"]["oauth"]["authorized"], false);

    // A's own redirect works once; the same redirect again is refused.
    let a_redirect = la.to_string();
    assert_eq!(app.http.get(&a_redirect).send().await.unwrap().status(), 200);
    assert_eq!(account(&app, a_id).await["status"], "ready");
    assert_eq!(app.http.get(&a_redirect).send().await.unwrap().status(), 400);

    // A state issued before the settings changed cannot complete.
    let sa2 = start(a_id).await;
    let r = app
        .patch(
            &format!("/api/v1/accounts/{a_id}"),
            &json!({"auth": {"oauth": {"scope": "openid"}}}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let edited: Value = r.json().await.unwrap();
    assert_eq!(
        edited["status"], "authorization_required",
        "changing the scope discards the tokens"
    );
    assert_eq!(edited["auth"]["oauth"]["authorized"], false);
    let stale = oauth.sign_in(sa2["authorize_url"].as_str().unwrap()).await;
    assert_eq!(app.http.get(&stale).send().await.unwrap().status(), 400);
    app.stop().await;
}

#[tokio::test]
async fn masked_client_secret_keeps_the_tokens() {
    let oauth = OAuthPeer::start();
    let smtp = oauth.smtp();
    let app = spawn_app().await;
    let id = authorized_account(&app, &oauth, &smtp, "masked").await;

    // The form sends back what it was shown: the mask, not a new secret.
    let r = app
        .patch(
            &format!("/api/v1/accounts/{id}"),
            &json!({"auth": {"method": "oauth2", "oauth": {"client_id": CLIENT_ID, "client_secret": "********"}}}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let edited: Value = r.json().await.unwrap();
    assert_eq!(edited["status"], "ready", "the tokens are kept: {edited}");
    assert_eq!(edited["auth"]["oauth"]["authorized"], true);
    assert_eq!(edited["auth"]["oauth"]["client_secret_set"], true);
    let report = app.test_email(&id, "someone@example.com", "en").await;
    assert_eq!(report["ok"], true, "{report}");
    // Any run of '*' is a mask too.
    let r = app
        .patch(
            &format!("/api/v1/accounts/{id}"),
            &json!({"auth": {"oauth": {"client_secret": "*"}}}),
        )
        .await;
    assert_eq!(r.json::<Value>().await.unwrap()["auth"]["oauth"]["authorized"], true);
    assert_eq!(
        oauth.stats().await["by_grant"]["authorization_code"],
        1,
        "no new sign-in"
    );
    app.stop().await;
}

/// The redirect with `iss` (RFC 9207) set to another authorization server
/// is a mix-up attack: refused, nothing stored, the state spent.
#[tokio::test]
async fn callback_from_another_issuer_is_refused() {
    let oauth = OAuthPeer::start();
    let smtp = oauth.smtp();
    let app = spawn_app().await;
    let acc = new_account(&app, &oauth, &smtp, "mix-up").await;
    let id = acc["id"].as_str().unwrap().to_string();
    let issuer = oauth.url("");
    assert_eq!(
        acc["auth"]["oauth"]["issuer"],
        issuer.as_str(),
        "the authorize URL's origin"
    );

    let redirect_with_iss = |location: &str, iss: &str| {
        let mut u = reqwest::Url::parse(location).unwrap();
        let kept: Vec<(String, String)> = u
            .query_pairs()
            .filter(|(k, _)| k != "iss")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        u.query_pairs_mut().clear().extend_pairs(kept).append_pair("iss", iss);
        u.to_string()
    };
    let begin = || async {
        let r = app.post(&format!("/api/v1/accounts/{id}/authorize"), &json!({})).await;
        let a: Value = r.json().await.unwrap();
        oauth.sign_in(a["authorize_url"].as_str().unwrap()).await
    };

    let location = begin().await;
    let r = app
        .http
        .get(redirect_with_iss(&location, "https://attacker.example"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("https://attacker.example") && page.contains("issuer"),
        "{page}"
    );
    let acc = account(&app, &id).await;
    assert_eq!(acc["status"], "authorization_required");
    assert_eq!(acc["auth"]["oauth"]["authorized"], false);
    assert_eq!(
        oauth.stats().await["by_grant"]["authorization_code"],
        0,
        "the code was not redeemed"
    );
    // The state is spent: the same redirect with the right issuer is refused too.
    let r = app
        .http
        .get(redirect_with_iss(&location, &issuer))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // A new authorization whose redirect names the right issuer completes.
    let location = begin().await;
    let r = app
        .http
        .get(redirect_with_iss(&location, &issuer))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(account(&app, &id).await["status"], "ready");
    app.stop().await;
}

#[tokio::test]
async fn client_credentials_flow_sends_without_a_person() {
    let oauth = OAuthPeer::start();
    let smtp = oauth.smtp();
    let app = spawn_app().await;
    let mut body = oauth_account("app-only", &oauth, &smtp, "client_credentials");
    body["auth"]["oauth"]["scope"] = json!("https://outlook.office.com/.default");
    let acc = app.create_account(body).await;
    assert_eq!(acc["status"], "unverified");
    let id = acc["id"].as_str().unwrap();
    let r = app.post(&format!("/api/v1/accounts/{id}/authorize"), &json!({})).await;
    assert_eq!(r.status(), 409, "no one signs in for client credentials");
    let report = app.test_email(id, "someone@example.com", "en").await;
    assert_eq!(report["ok"], true, "{report}");
    let report = app.test_email(id, "someone@example.com", "en").await;
    assert_eq!(report["ok"], true, "{report}");
    let stats = oauth.stats().await;
    assert_eq!(
        stats["by_grant"]["client_credentials"], 1,
        "the token is cached: {stats}"
    );
    app.stop().await;
}

#[tokio::test]
async fn bad_oauth_settings_name_the_field() {
    let app = spawn_app().await;
    let r = app
        .post(
            "/api/v1/accounts",
            &json!({"name": "x", "provider": "custom", "host": "smtp.example.com", "security": "starttls",
                    "from": {"address": "a@example.com"},
                    "auth": {"method": "oauth2", "oauth": {"provider": "custom", "token_url": "ftp://nope"}}}),
        )
        .await;
    assert_eq!(r.status(), 422);
    let v: Value = r.json().await.unwrap();
    let fields: Vec<&str> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    for f in [
        "auth.oauth.client_id",
        "auth.oauth.authorize_url",
        "auth.oauth.token_url",
        "auth.oauth.scope",
    ] {
        assert!(fields.contains(&f), "{f} missing: {v}");
    }
    // A Google preset fills Google's endpoints and scope.
    let g = app
        .create_account(json!({"name": "g", "provider": "gmail", "from": {"address": "me@gmail.com"},
                               "auth": {"method": "oauth2", "oauth": {"client_id": "123.apps.googleusercontent.com", "client_secret": "s"}}}))
        .await;
    assert_eq!(g["auth"]["oauth"]["provider"], "google");
    assert_eq!(g["auth"]["oauth"]["scope"], "https://mail.google.com/");
    assert_eq!(g["auth"]["oauth"]["issuer"], "https://accounts.google.com");
    assert!(
        g["auth"]["oauth"]["token_url"]
            .as_str()
            .unwrap()
            .starts_with("https://oauth2.googleapis.com/")
    );
    let r = app
        .post(
            &format!("/api/v1/accounts/{}/authorize", g["id"].as_str().unwrap()),
            &json!({}),
        )
        .await;
    let a: Value = r.json().await.unwrap();
    let url = a["authorize_url"].as_str().unwrap();
    assert!(
        url.starts_with("https://accounts.google.com/")
            && url.contains("access_type=offline")
            && url.contains("prompt=consent"),
        "{url}"
    );
    // Microsoft with a directory tenant id.
    let m = app
        .create_account(json!({"name": "m", "provider": "office365", "from": {"address": "me@contoso.com"},
                               "auth": {"method": "oauth2", "oauth": {"client_id": "abc", "tenant_id": "contoso.onmicrosoft.com", "client_secret": "s"}}}))
        .await;
    assert_eq!(
        m["auth"]["oauth"]["token_url"],
        "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
    );
    assert_eq!(
        m["auth"]["oauth"]["issuer"],
        "https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0"
    );
    app.stop().await;
}

#[tokio::test]
async fn rejected_token_is_refreshed_once_then_the_account_expires() {
    let oauth = OAuthPeer::start();
    // This SMTP server accepts no token at all, answering as Google does:
    // 334 with a base64 JSON error, then 535 after the client's empty line.
    let smtp = Peer::scripted(json!({"authMethods": ["XOAUTH2"], "xoauth2Tokens": []}));
    let app = spawn_app().await;
    let acc = app
        .create_account(oauth_account("gmail-like", &oauth, &smtp, "authorization_code"))
        .await;
    let id = acc["id"].as_str().unwrap().to_string();
    assert_eq!(authorize(&app, &oauth, &id).await.status(), 200);
    let report = app.test_email(&id, "someone@example.com", "en").await;
    assert_eq!(report["ok"], false);
    assert_eq!(report["stage"], "auth", "{report}");
    assert_eq!(report["code"], 535);
    assert_eq!(report["class"], "reauthorize");
    let lines = client_lines(&report);
    assert_eq!(
        lines.iter().filter(|l| *l == "AUTH XOAUTH2 ********").count(),
        2,
        "one retry: {lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.is_empty()),
        "the 334 challenge is answered with an empty line: {lines:?}"
    );
    assert_eq!(
        oauth.stats().await["by_grant"]["refresh_token"],
        1,
        "one forced refresh"
    );
    let acc = account(&app, &id).await;
    assert_eq!(acc["status"], "authorization_expired");
    assert_eq!(
        acc["status_message"],
        "Authorization has expired. Reauthorize the account."
    );
    app.stop().await;
}

#[tokio::test]
async fn refresh_token_lifetime_warns_and_tokens_stay_sealed() {
    let oauth = OAuthPeer::start();
    let smtp = oauth.smtp();
    oauth.config(json!({"refresh_token_expires_in": 3 * 24 * 3600})).await;
    let app = spawn_app().await;
    let acc = app
        .create_account(oauth_account("short-lived", &oauth, &smtp, "authorization_code"))
        .await;
    let id = acc["id"].as_str().unwrap().to_string();
    assert_eq!(authorize(&app, &oauth, &id).await.status(), 200);
    let acc = account(&app, &id).await;
    assert!(acc["auth"]["oauth"]["refresh_token_expires_at"].is_string(), "{acc}");
    assert!(
        acc["auth"]["oauth"]["warning"]
            .as_str()
            .unwrap()
            .contains("reauthorize"),
        "{acc}"
    );
    assert_eq!(app.test_email(&id, "someone@example.com", "en").await["ok"], true);
    // Issued access tokens are JWTs, whose header always encodes to "eyJ0eXAi".
    let db = app.database_bytes();
    assert!(
        !db.windows(8).any(|w| w == b"eyJ0eXAi"),
        "an access token is in clear in the database"
    );
    let listed = app.get("/api/v1/accounts").await.text().await.unwrap();
    assert!(!listed.contains("eyJ0eXAi"));
    app.stop().await;
}

/// Two nodes on one PostgreSQL database: ten sends split between them make
/// one token request, the lease row keeping the second node waiting.
#[tokio::test]
async fn two_nodes_refresh_once() {
    let oauth = OAuthPeer::start();
    let smtp = oauth.smtp();
    oauth.config(stale_at_once()).await;
    let url = new_pg_database().await;
    let node1 = spawn_app_with(&[("HERALD_DATABASE_URL", &url)]).await;
    let node2 = spawn_node(&node1, &url).await;
    let acc = node1
        .create_account(oauth_account("shared", &oauth, &smtp, "authorization_code"))
        .await;
    let id = acc["id"].as_str().unwrap().to_string();
    assert_eq!(authorize(&node1, &oauth, &id).await.status(), 200);
    // Short-lived like the tokens some servers issue: still one refresh.
    oauth
        .config(json!({"expires_in": 30, "refresh": "slow", "delay_ms": 300}))
        .await;
    let sends = (0..10).map(|i| {
        let node = if i % 2 == 0 { &node1 } else { &node2 };
        let id = id.clone();
        async move { node.test_email(&id, &format!("r{i}@example.com"), "en").await }
    });
    for r in futures_util_join(sends.collect()).await {
        assert_eq!(r["ok"], true, "{r}");
    }
    assert_eq!(
        oauth.stats().await["by_grant"]["refresh_token"],
        1,
        "one refresh across both nodes"
    );
    node2.stop().await;
    node1.stop().await;
}
