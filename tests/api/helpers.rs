//! `spawn_app()` and the peers: everything a test needs to read as a story.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// The repository root, where tests/peers lives.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub struct TestApp {
    pub base: String,
    pub data_dir: tempfile::TempDir,
    pub http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<()>>,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("GET")
    }

    pub async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .json(body)
            .send()
            .await
            .expect("POST")
    }

    pub async fn patch(&self, path: &str, body: &Value) -> reqwest::Response {
        self.http
            .patch(self.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .json(body)
            .send()
            .await
            .expect("PATCH")
    }

    pub async fn delete(&self, path: &str) -> reqwest::Response {
        self.http
            .delete(self.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("DELETE")
    }

    /// Creates an account and answers its JSON; panics with the problem otherwise.
    pub async fn create_account(&self, body: Value) -> Value {
        let r = self.post("/api/v1/accounts", &body).await;
        let status = r.status();
        let v: Value = r.json().await.expect("json");
        assert_eq!(status, 201, "create account: {v}");
        v
    }

    pub async fn test_email(&self, account_id: &str, to: &str, locale: &str) -> Value {
        let r = self
            .post(
                &format!("/api/v1/accounts/{account_id}/test"),
                &json!({"to": to, "locale": locale}),
            )
            .await;
        assert_eq!(r.status(), 200);
        r.json().await.expect("report json")
    }

    /// Polls a message until its status is one of `want`.
    pub async fn wait_message(&self, id: &str, want: &[&str]) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let v: Value = self
                .get(&format!("/api/v1/messages/{id}"))
                .await
                .json()
                .await
                .expect("json");
            if want.contains(&v["status"].as_str().unwrap_or("")) {
                return v;
            }
            assert!(Instant::now() < deadline, "message {id} never reached {want:?}: {v}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The database files, for checking that no secret is stored in clear.
    pub fn database_bytes(&self) -> Vec<u8> {
        let mut all = Vec::new();
        for name in ["herald.db", "herald.db-wal", "herald.db-shm"] {
            if let Ok(b) = std::fs::read(self.data_dir.path().join(name)) {
                all.extend(b);
            }
        }
        all
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            let _ = h.await;
        }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Starts Herald with extra environment settings.
pub async fn spawn_app_with(extra: &[(&str, &str)]) -> TestApp {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let data_dir = tempfile::tempdir().expect("tempdir");
    let dir = data_dir.path().to_path_buf();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut vars: std::collections::HashMap<String, String> = [
        ("HERALD_DATA_DIR", dir.display().to_string()),
        ("HERALD_ADMIN_TOKEN", ADMIN_TOKEN.to_string()),
        ("HERALD_LISTEN", listener.local_addr().unwrap().to_string()),
        ("HERALD_PUBLIC_URL", base.clone()),
        ("HERALD_RETRY_MIN_SECS", "1".to_string()),
        ("HERALD_RETRY_MAX_SECS", "2".to_string()),
        // Every peer is on loopback: tenants' accounts may use it here
        // (tests/api/tenants.rs checks the guard with this unset).
        ("HERALD_ALLOW_NETWORKS", "127.0.0.0/8, ::1".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    for (k, v) in extra {
        vars.insert(k.to_string(), v.to_string());
    }
    let env = move |k: &str| vars.get(k).cloned();
    let config = herald::config::Config::load(herald::config::Sources {
        config_file: None,
        env: &env,
    })
    .expect("config");
    let app = herald::services::Services::open(config).await.expect("open app");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        herald::startup::serve_on(app, listener, async move {
            let _ = rx.await;
        })
        .await
        .expect("serve");
    });
    TestApp {
        base,
        data_dir,
        http: reqwest::Client::new(),
        stop: Some(tx),
        handle: Some(handle),
    }
}

/// Herald on a fresh PostgreSQL database (HERALD_TEST_POSTGRES_URL, default
/// the local server's `test` database; scripts/test.sh makes sure it runs).
pub async fn spawn_app_pg() -> TestApp {
    use sqlx::Connection;
    let admin =
        std::env::var("HERALD_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let name = format!("herald_test_{}", uuid::Uuid::now_v7().simple());
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .expect("PostgreSQL is reachable (scripts/test.sh starts it)");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create database");
    let url = match admin.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => panic!("HERALD_TEST_POSTGRES_URL must end in /<database>"),
    };
    spawn_app_with(&[("HERALD_DATABASE_URL", &url)]).await
}

/// A fresh PostgreSQL database's URL (see `spawn_app_pg`).
pub async fn new_pg_database() -> String {
    use sqlx::Connection;
    let admin =
        std::env::var("HERALD_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let name = format!("herald_test_{}", uuid::Uuid::now_v7().simple());
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .expect("PostgreSQL is reachable (scripts/test.sh starts it)");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create database");
    format!("{}/{name}", admin.rsplit_once('/').expect("URL ends in /<database>").0)
}

/// A second node: the same database and the same secret key as `first`.
pub async fn spawn_node(first: &TestApp, database_url: &str) -> TestApp {
    let key = std::fs::read_to_string(first.data_dir.path().join("secret.key")).expect("the first node's key");
    spawn_app_with(&[("HERALD_DATABASE_URL", database_url), ("HERALD_SECRET_KEY", key.trim())]).await
}

/// A CA and a certificate for `localhost` / 127.0.0.1 signed by it.
pub struct Certs {
    pub dir: tempfile::TempDir,
    pub ca_pem: String,
}

impl Certs {
    pub fn new() -> Certs {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Herald test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf_params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
        std::fs::write(dir.path().join("cert.pem"), leaf.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), leaf_key.serialize_pem()).unwrap();
        Certs { ca_pem: ca.pem(), dir }
    }

    pub fn cert(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    pub fn key(&self) -> PathBuf {
        self.dir.path().join("key.pem")
    }
}

/// A real SMTP server on loopback, stopped when dropped.
pub struct Peer {
    pub port: u16,
    pub maildir: tempfile::TempDir,
    child: Child,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start_peer(mut cmd: Command, maildir: tempfile::TempDir) -> Peer {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("starting peer {cmd:?}: {e} (run scripts/install-test-peers.sh)"));
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("peer stdout");
    let port = line
        .trim()
        .strip_prefix("READY ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("peer {cmd:?} did not say READY <port>, said {line:?}"));
    Peer { port, maildir, child }
}

/// Where `aiosmtpd_wire` records the client's lines: a dot file in the
/// peer's maildir, which is not a message.
const WIRE: &str = ".wire";

/// Options for the aiosmtpd peer.
pub struct PyPeer<'a> {
    pub mode: &'a str,
    pub certs: Option<&'a Certs>,
    pub user: Option<(&'a str, &'a str)>,
    pub require_tls: bool,
}

impl Peer {
    /// aiosmtpd without TLS or AUTH, on a given port (a server that comes back).
    pub fn aiosmtpd_on(port: u16) -> Peer {
        let maildir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("python3");
        cmd.arg(repo().join("tests/peers/smtp_auth_server.py"))
            .arg("--port")
            .arg(port.to_string())
            .arg("--maildir")
            .arg(maildir.path());
        start_peer(cmd, maildir)
    }
}

impl Peer {
    /// aiosmtpd (tests/peers/smtp_auth_server.py).
    pub fn aiosmtpd(o: PyPeer<'_>) -> Peer {
        Peer::aiosmtpd_with(o, tempfile::tempdir().unwrap(), &[])
    }

    /// aiosmtpd that records every line the client sends (`wire()`), with
    /// more of its options (`--no-smtputf8`).
    pub fn aiosmtpd_wire(o: PyPeer<'_>, extra: &[&str]) -> Peer {
        let maildir = tempfile::tempdir().unwrap();
        let wire = maildir.path().join(WIRE);
        let mut args = vec!["--wire", wire.to_str().expect("a UTF-8 temp path")];
        args.extend_from_slice(extra);
        Peer::aiosmtpd_with(o, maildir, &args)
    }

    fn aiosmtpd_with(o: PyPeer<'_>, maildir: tempfile::TempDir, extra: &[&str]) -> Peer {
        let mut cmd = Command::new("python3");
        cmd.arg(repo().join("tests/peers/smtp_auth_server.py"))
            .arg("--mode")
            .arg(o.mode)
            .arg("--maildir")
            .arg(maildir.path());
        if let Some(c) = o.certs {
            cmd.arg("--cert").arg(c.cert()).arg("--key").arg(c.key());
        }
        if let Some((u, p)) = o.user {
            cmd.arg("--user").arg(u).arg("--password").arg(p);
        }
        if o.require_tls {
            cmd.arg("--require-tls");
        }
        cmd.args(extra);
        start_peer(cmd, maildir)
    }

    /// The lines the client sent so far, as they reached the peer (CRLF
    /// removed); only for a peer started with `aiosmtpd_wire`.
    pub fn wire(&self) -> Vec<String> {
        let raw = std::fs::read(self.maildir.path().join(WIRE)).unwrap_or_default();
        String::from_utf8(raw)
            .expect("the client wrote UTF-8")
            .split_terminator("\r\n")
            .map(str::to_string)
            .collect()
    }

    /// The envelope commands the client sent (MAIL, RCPT), in order.
    pub fn envelope_lines(&self) -> Vec<String> {
        self.wire()
            .into_iter()
            .filter(|l| l.starts_with("MAIL FROM:") || l.starts_with("RCPT TO:"))
            .collect()
    }

    /// The npm smtp-server with scripted replies (tests/peers/scripted_smtp.js).
    pub fn scripted(spec: Value) -> Peer {
        let maildir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("node");
        cmd.arg(repo().join("tests/peers/scripted_smtp.js"))
            .arg("--spec")
            .arg(spec.to_string())
            .arg("--maildir")
            .arg(maildir.path());
        start_peer(cmd, maildir)
    }

    /// Messages the peer accepted so far.
    pub fn messages(&self) -> Vec<Value> {
        read_maildir(self.maildir.path())
    }

    /// Waits until the peer holds `n` messages.
    pub async fn wait_messages(&self, n: usize) -> Vec<Value> {
        self.wait_messages_within(n, Duration::from_secs(30)).await
    }

    pub async fn wait_messages_within(&self, n: usize, limit: Duration) -> Vec<Value> {
        let deadline = Instant::now() + limit;
        loop {
            // Counting files is cheap; reading 10,000 JSON files every 50 ms is not.
            if self.count() >= n {
                return self.messages();
            }
            assert!(
                Instant::now() < deadline,
                "peer holds {} messages, expected {n}",
                self.count()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// How many messages the peer holds, without reading them.
    pub fn count(&self) -> usize {
        std::fs::read_dir(self.maildir.path())
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                    .count()
            })
            .unwrap_or(0)
    }
}

pub fn read_maildir(dir: &Path) -> Vec<Value> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "json") && !p.file_name().unwrap().to_string_lossy().starts_with('.')
        })
        .collect();
    files.sort_by_key(|p| {
        p.file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0)
    });
    files
        .iter()
        .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
        .collect()
}

/// Postfix's smtp-sink on a free loopback port.
pub struct Sink {
    pub port: u16,
    child: Child,
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sink {
    pub async fn start() -> Sink {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let exe = ["/usr/sbin/smtp-sink", "/usr/bin/smtp-sink"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("smtp-sink is installed (scripts/install-test-peers.sh)");
        let child = Command::new(exe)
            .args(["-u", "postfix", &format!("127.0.0.1:{port}"), "100"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start smtp-sink");
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(Instant::now() < deadline, "smtp-sink did not start listening");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Sink { port, child }
    }
}

/// An account body for a local peer.
pub fn local_account(name: &str, port: u16, security: &str, user: Option<(&str, &str)>, ca_pem: Option<&str>) -> Value {
    let mut v = json!({
        "name": name,
        "provider": "custom",
        "host": if security == "none" { "127.0.0.1" } else { "localhost" },
        "port": port,
        "security": security,
        "from": {"address": "noreply@herald.test", "name": "Herald Test"},
        "timeout_secs": 10,
    });
    match user {
        Some((u, p)) => v["auth"] = json!({"method": "password", "username": u, "secret": p}),
        None => v["auth"] = json!({"method": "none"}),
    }
    if let Some(ca) = ca_pem {
        v["tls"] = json!({"ca_pem": ca});
    }
    v
}

/// Client lines of a report's transcript.
pub fn client_lines(report: &Value) -> Vec<String> {
    report["transcript"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["dir"] == "C")
        .map(|l| l["line"].as_str().unwrap().to_string())
        .collect()
}

/// The OAuth2 authorization server (oauth2-mock-server, tests/peers/oauth_server.js).
pub struct OAuthPeer {
    pub port: u16,
    pub control: u16,
    child: Child,
    http: reqwest::Client,
}

impl Drop for OAuthPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl OAuthPeer {
    pub fn start() -> OAuthPeer {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut child = Command::new("node")
            .arg(repo().join("tests/peers/oauth_server.js"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start oauth_server.js (run scripts/install-test-peers.sh)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("oauth peer stdout");
        let mut parts = line.trim().strip_prefix("READY ").expect("READY line").split(' ');
        let port = parts.next().unwrap().parse().unwrap();
        let control = parts.next().unwrap().parse().unwrap();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        OAuthPeer {
            port,
            control,
            child,
            http,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub async fn config(&self, body: Value) {
        let r = self
            .http
            .post(format!("http://127.0.0.1:{}/config", self.control))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "oauth peer config: {}", r.status());
    }

    pub async fn revoke_all(&self) {
        let r = self
            .http
            .post(format!("http://127.0.0.1:{}/revoke-all", self.control))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }

    pub async fn stats(&self) -> Value {
        self.http
            .get(format!("http://127.0.0.1:{}/stats", self.control))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Plays the person in the browser: opens the authorize URL (the mock
    /// signs in at once) and answers the redirect's Location, not followed.
    pub async fn sign_in(&self, authorize_url: &str) -> String {
        let r = self.http.get(authorize_url).send().await.unwrap();
        assert_eq!(r.status(), 302, "authorize: {}", r.text().await.unwrap_or_default());
        r.headers()["location"].to_str().unwrap().to_string()
    }

    /// An SMTP peer that accepts XOAUTH2 only with a valid token from this server.
    pub fn smtp(&self) -> Peer {
        Peer::scripted(json!({"authMethods": ["XOAUTH2"], "xoauth2Jwks": self.url("/jwks")}))
    }
}
