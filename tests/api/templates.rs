//! System email templates: the built-ins in both languages, a tenant's
//! override through the API (checked before it is saved, previewed, deleted
//! back to the built-in), and overrides that stay inside their tenant.

use crate::helpers::*;
use serde_json::{Value, json};

/// One API call with a given token; answers the status and the JSON body.
async fn call(app: &TestApp, token: &str, method: reqwest::Method, path: &str, body: Option<&Value>) -> (u16, Value) {
    let mut r = app.http.request(method, app.url(path)).bearer_auth(token);
    if let Some(b) = body {
        r = r.json(b);
    }
    let r = r.send().await.expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn get(app: &TestApp, token: &str, path: &str) -> (u16, Value) {
    call(app, token, reqwest::Method::GET, path, None).await
}

async fn put(app: &TestApp, token: &str, path: &str, body: &Value) -> (u16, Value) {
    call(app, token, reqwest::Method::PUT, path, Some(body)).await
}

async fn post(app: &TestApp, token: &str, path: &str, body: &Value) -> (u16, Value) {
    call(app, token, reqwest::Method::POST, path, Some(body)).await
}

async fn delete(app: &TestApp, token: &str, path: &str) -> (u16, Value) {
    call(app, token, reqwest::Method::DELETE, path, None).await
}

const OVERRIDE: &str = "/api/v1/templates/password_reset/en";

fn acme_reset() -> Value {
    json!({
        "subject": "Acme: reset your password, {{ name }}",
        "text": "Hi {{ name }},\n{% if code %}Code: {{ code }}\n{% endif %}Link: {{ link }}\n",
        "html": "<p>Hi {{ name }}</p><p><a href=\"{{ link }}\">Reset</a></p>",
    })
}

/// Override, preview, refuse a broken one without saving it, delete back to
/// the built-in; on whichever database `app` runs.
async fn override_lifecycle(app: &TestApp) {
    // The list holds every built-in in both languages, none overridden.
    let (status, list) = get(app, ADMIN_TOKEN, "/api/v1/templates").await;
    assert_eq!(status, 200, "{list}");
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 10, "5 templates × 2 locales: {list:?}");
    assert!(list.iter().all(|t| t["overridden"] == false));
    let expired_zh = list
        .iter()
        .find(|t| t["name"] == "authorization_expired" && t["locale"] == "zh-CN")
        .unwrap();
    assert!(
        expired_zh["text"]
            .as_str()
            .unwrap()
            .contains("授权已过期。请为帐户重新授权。")
    );
    assert!(
        expired_zh["variables"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["name"] == "account_name")
    );

    // The built-in preview, with the caller's variables.
    let vars = json!({"vars": {"name": "Alice <admin>", "product": "Acme", "link": "https://acme.test/r?t=1", "code": "123456"}});
    let (status, built_in) = post(app, ADMIN_TOKEN, &format!("{OVERRIDE}/preview"), &vars).await;
    assert_eq!(status, 200, "{built_in}");
    assert_eq!(built_in["subject"], "Reset your Acme password");
    assert!(built_in["text"].as_str().unwrap().contains("Hello Alice <admin>,"));
    assert!(built_in["html"].as_str().unwrap().contains("Alice &lt;admin&gt;"));

    // Override it: saved, shown as overridden, and the preview uses it.
    let (status, saved) = put(app, ADMIN_TOKEN, OVERRIDE, &acme_reset()).await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved["overridden"], true);
    assert_eq!(saved["subject"], acme_reset()["subject"]);
    assert!(saved["updated_at"].is_string());
    let (_, shown) = get(app, ADMIN_TOKEN, OVERRIDE).await;
    assert_eq!(shown, saved);
    let (status, preview) = post(app, ADMIN_TOKEN, &format!("{OVERRIDE}/preview"), &vars).await;
    assert_eq!(status, 200, "{preview}");
    assert_eq!(preview["subject"], "Acme: reset your password, Alice <admin>");
    assert_eq!(
        preview["text"],
        "Hi Alice <admin>,\nCode: 123456\nLink: https://acme.test/r?t=1\n"
    );
    assert_eq!(
        preview["html"],
        "<p>Hi Alice &lt;admin&gt;</p><p><a href=\"https://acme.test/r?t=1\">Reset</a></p>"
    );
    // Without variables the preview uses the template's samples.
    let (status, sample) = post(app, ADMIN_TOKEN, &format!("{OVERRIDE}/preview"), &json!({})).await;
    assert_eq!(status, 200, "{sample}");
    assert_eq!(sample["subject"], "Acme: reset your password, Alice Chen");
    // The other locale is still the built-in.
    let (_, zh) = get(app, ADMIN_TOKEN, "/api/v1/templates/password_reset/zh-CN").await;
    assert_eq!(zh["overridden"], false);
    assert!(zh["subject"].as_str().unwrap().contains("重置"));

    // A broken template is refused with the part and the line, and nothing is saved.
    let broken = json!({
        "subject": "Fine {{ name }}",
        "text": "Hi {{ name }},\n\n{% if code %}\nCode: {{ code }}\n",
        "html": "<p>{{ name }</p>",
    });
    let (status, problem) = put(app, ADMIN_TOKEN, OVERRIDE, &broken).await;
    assert_eq!(status, 422, "{problem}");
    let errors = problem["errors"].as_array().unwrap();
    let text = errors.iter().find(|e| e["field"] == "text").expect("text error");
    assert!(
        text["message"].as_str().unwrap().starts_with("line 4: "),
        "the unclosed block runs to the end of line 4: {text}"
    );
    assert!(text["message"].as_str().unwrap().contains("end of block"), "{text}");
    let html = errors.iter().find(|e| e["field"] == "html").expect("html error");
    assert!(html["message"].as_str().unwrap().starts_with("line 1: "), "{html}");
    let (_, still) = get(app, ADMIN_TOKEN, OVERRIDE).await;
    assert_eq!(still, saved, "the refused template replaced nothing");

    // A subject that renders to two lines is refused too.
    let two_lines = json!({"subject": "Hello\n{{ name }}", "text": "x"});
    let (status, problem) = put(app, ADMIN_TOKEN, OVERRIDE, &two_lines).await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "subject");

    // Unknown templates and locales are not there.
    let (status, _) = get(app, ADMIN_TOKEN, "/api/v1/templates/welcome/en").await;
    assert_eq!(status, 404);
    let (status, _) = put(app, ADMIN_TOKEN, "/api/v1/templates/activation/fr", &acme_reset()).await;
    assert_eq!(status, 404);

    // DELETE goes back to the built-in.
    let (status, restored) = delete(app, ADMIN_TOKEN, OVERRIDE).await;
    assert_eq!(status, 200, "{restored}");
    assert_eq!(restored["overridden"], false);
    let (_, preview) = post(app, ADMIN_TOKEN, &format!("{OVERRIDE}/preview"), &vars).await;
    assert_eq!(preview, built_in);
}

#[tokio::test]
async fn templates_override_preview_refuse_and_restore() {
    let app = spawn_app().await;
    override_lifecycle(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn templates_override_lifecycle_on_postgres() {
    let app = spawn_app_pg().await;
    override_lifecycle(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn templates_overrides_stay_in_their_tenant() {
    let app = spawn_app().await;
    let (status, created) = post(&app, ADMIN_TOKEN, "/api/v1/tenants", &json!({"name": "Acme"})).await;
    assert_eq!(status, 201, "{created}");
    let acme = created["token"].as_str().unwrap().to_string();

    // Acme overrides its activation email; the platform still has the built-in.
    let body = json!({"subject": "Welcome to Acme", "text": "Activate: {{ link }}"});
    let (status, saved) = put(&app, &acme, "/api/v1/templates/activation/zh-CN", &body).await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved["overridden"], true);
    assert_eq!(saved["html"], Value::Null, "an override without html sends text only");

    let (_, platform) = get(&app, ADMIN_TOKEN, "/api/v1/templates/activation/zh-CN").await;
    assert_eq!(platform["overridden"], false);
    assert!(platform["subject"].as_str().unwrap().contains("激活"));
    let (_, list) = get(&app, ADMIN_TOKEN, "/api/v1/templates").await;
    assert!(
        list.as_array().unwrap().iter().all(|t| t["overridden"] == false),
        "{list}"
    );
    let (_, preview) = post(
        &app,
        ADMIN_TOKEN,
        "/api/v1/templates/activation/zh-CN/preview",
        &json!({"vars": {"product": "P", "link": "L"}}),
    )
    .await;
    assert_eq!(preview["subject"], "激活您的 P 帐户");

    // Acme sees its own, in the list and in the preview.
    let (_, list) = get(&app, &acme, "/api/v1/templates").await;
    let overridden: Vec<_> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["overridden"] == true)
        .map(|t| format!("{}/{}", t["name"].as_str().unwrap(), t["locale"].as_str().unwrap()))
        .collect();
    assert_eq!(overridden, ["activation/zh-CN"]);
    let (_, preview) = post(
        &app,
        &acme,
        "/api/v1/templates/activation/zh-CN/preview",
        &json!({"vars": {"link": "https://acme.test/a"}}),
    )
    .await;
    assert_eq!(preview["subject"], "Welcome to Acme");
    assert_eq!(preview["text"], "Activate: https://acme.test/a");

    // The platform deleting "its" override touches nothing of Acme's.
    let (status, _) = delete(&app, ADMIN_TOKEN, "/api/v1/templates/activation/zh-CN").await;
    assert_eq!(status, 200);
    let (_, still) = get(&app, &acme, "/api/v1/templates/activation/zh-CN").await;
    assert_eq!(still["overridden"], true);
    app.stop().await;
}
