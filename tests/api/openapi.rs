//! The OpenAPI document: served without a token, and it cannot drift from the
//! router silently: every `.route(…)` of src/api/mod.rs, with each method it
//! serves, must be documented, nothing else may be, and every field of every
//! schema says what it means.

use crate::helpers::{repo, spawn_app};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// Paths and methods the router serves, read from the source of the router:
/// each `.route("PATH", get(h).post(h) …)` of src/api/mod.rs.
fn router_routes() -> BTreeMap<String, BTreeSet<String>> {
    let src = std::fs::read_to_string(repo().join("src/api/mod.rs")).expect("read src/api/mod.rs");
    let mut routes = BTreeMap::new();
    let mut rest = src.as_str();
    while let Some(at) = rest.find(".route(") {
        rest = &rest[at + ".route(".len()..];
        // The arguments run to the parenthesis that closes `.route(`.
        let mut depth = 1;
        let end = rest
            .char_indices()
            .find(|&(_, c)| {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                depth == 0
            })
            .map(|(i, _)| i)
            .expect("a .route( call is closed");
        let args = &rest[..end];
        let path = args
            .trim_start()
            .strip_prefix('"')
            .and_then(|p| p.split_once('"'))
            .map(|(p, _)| p.to_string())
            .unwrap_or_else(|| panic!("the first argument of .route({args}) is a string literal"));
        let handler = &args[args.find(',').expect("route has a handler") + 1..];
        let methods = methods_in(handler);
        assert!(
            !methods.is_empty(),
            "no get/post/put/patch/delete found for {path} in: {handler}"
        );
        routes.entry(path).or_insert_with(BTreeSet::new).extend(methods);
        rest = &rest[end..];
    }
    routes
}

/// The method routers called in a handler expression: `get(a).post(b)` → get, post.
fn methods_in(expr: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let bytes = expr.as_bytes();
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut i = 0;
    while i < bytes.len() {
        if is_ident(bytes[i]) {
            let start = i;
            while i < bytes.len() && is_ident(bytes[i]) {
                i += 1;
            }
            let word = &expr[start..i];
            let called = expr[i..].trim_start().starts_with('(');
            if called && METHODS.contains(&word) {
                found.insert(word.to_string());
            }
        } else {
            i += 1;
        }
    }
    found
}

fn document() -> Value {
    let text = std::fs::read_to_string(repo().join("docs/openapi.json")).expect("read docs/openapi.json");
    serde_json::from_str(&text).expect("docs/openapi.json is valid JSON")
}

#[tokio::test]
async fn openapi_document_is_served_and_covers_every_route() {
    let app = spawn_app().await;
    // No token: the document is public.
    let r = app
        .http
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .expect("GET /api/openapi.json");
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"),
        "{:?}",
        r.headers()["content-type"]
    );
    let doc: Value = serde_json::from_str(&r.text().await.unwrap()).expect("the served document is valid JSON");
    assert!(
        doc["openapi"].as_str().unwrap_or("").starts_with("3.1"),
        "openapi: {}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["title"], "Herald");
    assert_eq!(doc, document(), "the server serves docs/openapi.json as it is");

    let routes = router_routes();
    assert!(
        routes.len() >= 10,
        "the parser found too few routes in src/api/mod.rs: {routes:?}"
    );
    let paths = doc["paths"].as_object().expect("paths");
    let mut missing = Vec::new();
    for (path, methods) in &routes {
        for m in methods {
            if paths.get(path).and_then(|p| p.get(m)).is_none() {
                missing.push(format!("{} {path}", m.to_uppercase()));
            }
        }
    }
    assert!(missing.is_empty(), "served but not in docs/openapi.json: {missing:?}");

    // And nothing is documented that the router does not serve.
    let mut extra = Vec::new();
    for (path, item) in paths {
        for m in METHODS {
            if item.get(m).is_some() && !routes.get(path).is_some_and(|ms| ms.contains(m)) {
                extra.push(format!("{} {path}", m.to_uppercase()));
            }
        }
    }
    assert!(
        extra.is_empty(),
        "in docs/openapi.json but not served by src/api/mod.rs: {extra:?}"
    );

    // Public endpoints say so; everything else needs the bearer token.
    assert_eq!(doc["security"], serde_json::json!([{"bearer": []}]));
    for path in ["/healthz", "/metrics", "/api/openapi.json"] {
        assert_eq!(
            doc["paths"][path]["get"]["security"],
            serde_json::json!([]),
            "{path} needs no token"
        );
    }
    let unauthenticated = app.http.get(app.url("/api/v1/accounts")).send().await.unwrap();
    assert_eq!(unauthenticated.status(), 401);
    app.stop().await;
}

/// Every property of every schema in a subtree, with where it is.
fn properties<'a>(at: String, v: &'a Value, out: &mut Vec<(String, &'a Value)>) {
    match v {
        Value::Object(map) => {
            if let Some(Value::Object(props)) = map.get("properties") {
                for (name, schema) in props {
                    out.push((format!("{at}.{name}"), schema));
                }
            }
            for (k, child) in map {
                properties(format!("{at}/{k}"), child, out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                properties(format!("{at}[{i}]"), child, out);
            }
        }
        _ => {}
    }
}

/// Every `$ref` in the document, with where it is.
fn refs<'a>(at: String, v: &'a Value, out: &mut Vec<(String, &'a str)>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                match (k.as_str(), child) {
                    ("$ref", Value::String(r)) => out.push((at.clone(), r)),
                    _ => refs(format!("{at}/{k}"), child, out),
                }
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                refs(format!("{at}[{i}]"), child, out);
            }
        }
        _ => {}
    }
}

#[test]
fn openapi_every_schema_field_is_described() {
    let doc = document();
    let schemas = &doc["components"]["schemas"];
    assert!(
        schemas.as_object().is_some_and(|s| !s.is_empty()),
        "components.schemas is empty"
    );

    let mut props = Vec::new();
    properties("components/schemas".into(), schemas, &mut props);
    assert!(props.len() > 50, "too few properties found: {}", props.len());
    let undescribed: Vec<&str> = props
        .iter()
        .filter(|(_, s)| s["description"].as_str().is_none_or(|d| d.trim().is_empty()))
        .map(|(at, _)| at.as_str())
        .collect();
    assert!(
        undescribed.is_empty(),
        "schema properties without a description: {undescribed:?}"
    );

    // Parameters too, and every reference points at something that exists.
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (key, op) in item.as_object().unwrap() {
            for p in op.get("parameters").and_then(Value::as_array).into_iter().flatten() {
                let p = match p["$ref"].as_str() {
                    Some(r) => doc
                        .pointer(r.trim_start_matches('#'))
                        .expect("parameter reference resolves"),
                    None => p,
                };
                let described = p["description"].as_str().is_some_and(|d| !d.trim().is_empty());
                assert!(described, "parameter {} of {key} {path} has no description", p["name"]);
            }
        }
    }
    let mut all = Vec::new();
    refs(String::new(), &doc, &mut all);
    for (at, r) in all {
        let target = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("{at}: only local references: {r}"));
        assert!(doc.pointer(target).is_some(), "{at}: {r} points at nothing");
    }

    // The secret is write-only.
    assert_eq!(schemas["AuthInput"]["properties"]["secret"]["writeOnly"], true);
}
