//! The CLI, run as the real binary on a fresh data directory: what an
//! operator types, what they read back, and what ends up on disk. Every run
//! has the HERALD_* environment removed, so only `--data-dir` decides where
//! the data lives, and secrets go in through stdin or a file only.

use crate::helpers::{Certs, OAuthPeer, Peer, PyPeer};
use serde_json::{Value, json};
use std::cell::RefCell;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const SECRET: &str = "S3cret-Pa55-for-cli";
const WRONG: &str = "Wr0ng-Pa55-for-cli";

/// What one run of the binary produced.
struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Out {
    fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.all()))
    }

    #[track_caller]
    fn ok(self) -> Out {
        assert_eq!(self.code, Some(0), "expected exit 0:\n{}", self.all());
        self
    }
}

/// A data directory and the binary that works on it.
struct Herald {
    root: tempfile::TempDir,
    /// Everything every run printed, to prove a secret never shows up.
    printed: RefCell<String>,
}

impl Herald {
    fn new() -> Herald {
        Herald {
            root: tempfile::tempdir().unwrap(),
            printed: RefCell::new(String::new()),
        }
    }

    /// Not created beforehand: the first command must create it.
    fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald"));
        cmd.arg("--data-dir").arg(self.data_dir()).args(args);
        // The working directory holds no herald.toml, and no HERALD_* variable
        // (admin token, data dir, database URL) leaks in from the test runner.
        cmd.current_dir(self.root.path());
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("HERALD_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("NO_COLOR", "1");
        cmd
    }

    fn run(&self, args: &[&str]) -> Out {
        self.run_with(args, None)
    }

    /// Runs with `input` on stdin (then closed), as a person piping a secret.
    fn run_stdin(&self, args: &[&str], input: &str) -> Out {
        self.run_with(args, Some(input))
    }

    fn run_with(&self, args: &[&str], input: Option<&str>) -> Out {
        let mut cmd = self.command(args);
        cmd.stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("run herald");
        if let Some(s) = input {
            // Small enough for the pipe buffer; dropping the handle sends EOF.
            child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
        }
        let pid = child.id();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        let output = match rx.recv_timeout(Duration::from_secs(90)) {
            Ok(o) => o.expect("wait for herald"),
            Err(_) => {
                let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
                panic!("herald {args:?} did not finish within 90 s");
            }
        };
        let out = Out {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        };
        self.printed
            .borrow_mut()
            .push_str(&format!("$ herald {}\n{}\n", args.join(" "), out.all()));
        out
    }

    #[track_caller]
    fn assert_never_printed(&self, secret: &str) {
        let printed = self.printed.borrow();
        assert!(!printed.contains(secret), "a secret was printed:\n{printed}");
    }

    /// Every file of the data directory, as bytes, by name.
    fn files(&self) -> Vec<(String, Vec<u8>)> {
        std::fs::read_dir(self.data_dir())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .map(|p| {
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    std::fs::read(&p).unwrap(),
                )
            })
            .collect()
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.root.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

#[track_caller]
fn assert_not_at_rest(h: &Herald, secret: &str) {
    let files = h.files();
    let names: Vec<_> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert!(
        names.contains(&"herald.db") && names.contains(&"secret.key"),
        "data dir holds {names:?}"
    );
    for (name, bytes) in &files {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{name} holds the secret in clear"
        );
    }
}

/// The text of a MIME message: each text part decoded from its
/// Content-Transfer-Encoding (mail-builder picks 7bit, QP or base64 itself).
fn mime_text(raw: &str) -> String {
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw, ""));
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.split("\r\n") {
        match headers.last_mut() {
            Some(last) if line.starts_with([' ', '\t']) => last.1.push_str(line),
            _ => {
                if let Some((k, v)) = line.split_once(':') {
                    headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
                }
            }
        }
    }
    let header = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let ctype = header("content-type").unwrap_or_else(|| "text/plain".into());
    if ctype.to_ascii_lowercase().starts_with("multipart/") {
        let at = ctype
            .to_ascii_lowercase()
            .find("boundary=")
            .expect("multipart has a boundary");
        let boundary = ctype[at + 9..]
            .split(';')
            .next()
            .unwrap()
            .trim()
            .trim_matches('"')
            .to_string();
        return body
            .split(&format!("--{boundary}"))
            .skip(1)
            .take_while(|p| !p.starts_with("--"))
            .map(|p| mime_text(p.trim_start_matches("\r\n")))
            .collect::<Vec<_>>()
            .join("\n");
    }
    let bytes = match header("content-transfer-encoding")
        .unwrap_or_default()
        .to_ascii_lowercase()
        .as_str()
    {
        "base64" => {
            use base64::Engine;
            let clean: String = body.chars().filter(|c| !c.is_whitespace()).collect();
            base64::engine::general_purpose::STANDARD
                .decode(clean)
                .expect("base64 body")
        }
        "quoted-printable" => qp_decode(body),
        _ => body.as_bytes().to_vec(),
    };
    String::from_utf8(bytes).expect("text part is UTF-8")
}

fn qp_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' {
            if b[i + 1..].starts_with(b"\r\n") {
                i += 3;
                continue;
            }
            if let Some(v) = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

#[test]
fn providers_lists_the_catalog_as_text_and_json() {
    let h = Herald::new();
    let out = h.run(&["providers"]).ok();
    for id in ["qq", "gmail", "office365", "custom"] {
        assert!(
            out.stdout.lines().any(|l| l.split_whitespace().next() == Some(id)),
            "no line for {id}:\n{}",
            out.stdout
        );
    }
    let qq = out.stdout.lines().find(|l| l.starts_with("qq ")).unwrap();
    assert!(qq.contains("smtp.qq.com") && qq.contains("tls 465"), "{qq}");

    let v = h.run(&["--json", "providers"]).ok().json();
    let list = v.as_array().expect("an array");
    let ids: Vec<&str> = list
        .iter()
        .map(|p| p["id"].as_str().expect("every provider has an id"))
        .collect();
    for id in ["qq", "gmail", "office365", "custom"] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
    let qq = list.iter().find(|p| p["id"] == "qq").unwrap();
    assert_eq!(qq["host"], "smtp.qq.com");
    assert_eq!(qq["ports"]["tls"], 465);
}

#[test]
fn discover_offline_proposes_the_catalog_settings() {
    let h = Herald::new();
    let out = h.run(&["discover", "someone@qq.com", "--offline"]).ok();
    let first = out.stdout.lines().next().unwrap_or("");
    assert!(first.starts_with("smtp.qq.com:465 tls"), "{}", out.stdout);
    assert!(first.contains("provider=qq"), "{first}");

    let v = h
        .run(&["discover", "someone@qq.com", "--offline", "--json"])
        .ok()
        .json();
    let p = &v["proposals"][0];
    assert_eq!(p["host"], "smtp.qq.com", "{v}");
    assert_eq!(p["port"], 465);
    assert_eq!(p["security"], "tls");
    assert_eq!(p["provider"], "qq");
    assert_eq!(p["source"], "catalog");

    // Not an address: refused, and the message names what was wrong.
    let out = h.run(&["discover", "not-an-address", "--offline"]);
    assert_ne!(out.code, Some(0), "{}", out.all());
    assert!(out.stderr.contains("address"), "{}", out.stderr);
}

#[tokio::test]
async fn account_lifecycle_against_a_starttls_server() {
    let certs = Certs::new();
    // AUTH is offered only after STARTTLS, so a session that skipped TLS fails.
    let peer = Peer::aiosmtpd(PyPeer {
        mode: "starttls",
        certs: Some(&certs),
        user: Some(("alice", SECRET)),
        require_tls: true,
    });
    let h = Herald::new();
    let ca = h.write("ca.pem", &certs.ca_pem);
    let port = peer.port.to_string();
    let ca = ca.to_str().unwrap();

    // Add, the secret from stdin with the newline `echo` would add.
    let out = h
        .run_stdin(
            &[
                "account",
                "add",
                "--name",
                "ops",
                "--provider",
                "custom",
                "--host",
                "localhost",
                "--port",
                &port,
                "--security",
                "starttls",
                "--username",
                "alice",
                "--from",
                "noreply@herald.test",
                "--ca-file",
                ca,
                "--timeout-secs",
                "10",
                "--secret-stdin",
            ],
            &format!("{SECRET}\n"),
        )
        .ok();
    assert!(
        out.stdout.contains("added") && out.stdout.contains("ops"),
        "{}",
        out.stdout
    );

    let list = h.run(&["account", "list", "--json"]).ok().json();
    let list = list.as_array().expect("an array");
    assert_eq!(list.len(), 1, "{list:?}");
    let a = &list[0];
    assert_eq!(a["name"], "ops");
    assert_eq!(a["security"], "starttls");
    assert_eq!(a["port"], peer.port);
    assert_eq!(a["auth"]["method"], "password");
    assert_eq!(a["auth"]["username"], "alice");
    assert_eq!(a["auth"]["secret_set"], true);
    assert!(a["auth"].get("secret").is_none(), "write-only: {a}");
    assert_eq!(a["status"], "unverified");
    h.assert_never_printed(SECRET);

    // A test email goes through, and the transcript masks the credentials.
    let out = h.run(&["account", "test", "ops", "--to", "someone@example.com"]).ok();
    assert!(out.stdout.contains("OK"), "{}", out.stdout);
    assert!(out.stdout.lines().any(|l| l == "C: STARTTLS"), "{}", out.stdout);
    assert!(
        out.stdout.lines().any(|l| l == "C: AUTH PLAIN ********"),
        "{}",
        out.stdout
    );
    let plain = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(format!("\0alice\0{SECRET}"))
    };
    assert!(
        !out.all().contains(&plain),
        "AUTH PLAIN payload in clear:\n{}",
        out.all()
    );
    let got = peer.wait_messages(1).await;
    assert_eq!(got[0]["auth_login"], "alice");
    assert_eq!(got[0]["mail_from"], "noreply@herald.test");
    assert_eq!(got[0]["rcpt_tos"], json!(["someone@example.com"]));
    let text = mime_text(got[0]["data"].as_str().unwrap());
    assert!(text.contains("configured successfully"), "{text}");
    assert_eq!(
        h.run(&["account", "show", "ops", "--json"]).ok().json()["status"],
        "ready"
    );

    // In Chinese.
    h.run(&["account", "test", "ops", "--to", "x@example.com", "--locale", "zh-CN"])
        .ok();
    let got = peer.wait_messages(2).await;
    assert_eq!(got[1]["rcpt_tos"], json!(["x@example.com"]));
    let text = mime_text(got[1]["data"].as_str().unwrap());
    assert!(text.contains("邮件服务已经配置成功"), "{text}");

    // A wrong password: exit 1, the stage, codes and a hint.
    let out = h.run_stdin(&["account", "edit", "ops", "--secret-stdin"], WRONG).ok();
    assert!(out.stdout.contains("updated"), "{}", out.stdout);
    let out = h.run(&["account", "test", "ops", "--to", "someone@example.com"]);
    assert_eq!(out.code, Some(1), "{}", out.all());
    assert!(out.stdout.contains("FAILED at auth"), "{}", out.stdout);
    assert!(
        out.stdout.contains("535") && out.stdout.contains("5.7.8"),
        "{}",
        out.stdout
    );
    let hint = out.stdout.lines().find_map(|l| l.strip_prefix("hint: ")).unwrap_or("");
    assert!(hint.trim().len() > 10, "no hint line:\n{}", out.stdout);
    let shown = h.run(&["account", "show", "ops", "--json"]).ok().json();
    assert_eq!(shown["status"], "failing", "{shown}");
    let message = shown["status_message"].as_str().unwrap_or("");
    assert!(message.contains("535"), "status_message: {shown}");

    // The JSON report says the same.
    let out = h.run(&["account", "test", "ops", "--to", "someone@example.com", "--json"]);
    assert_eq!(out.code, Some(1), "{}", out.all());
    let r = out.json();
    assert_eq!(r["ok"], false);
    assert_eq!(r["stage"], "auth");
    assert_eq!(r["code"], 535);
    assert_eq!(r["enhanced_code"], "5.7.8");

    // An edit without a secret flag keeps the stored (wrong) secret.
    let shown = h
        .run(&["account", "edit", "ops", "--from-name", "Ops Team", "--json"])
        .ok()
        .json();
    assert_eq!(shown["from"]["name"], "Ops Team");
    assert_eq!(shown["auth"]["secret_set"], true, "{shown}");
    let out = h.run(&["account", "test", "ops", "--to", "someone@example.com"]);
    assert_eq!(out.code, Some(1), "{}", out.all());
    assert!(out.stdout.contains("535"), "{}", out.stdout);

    // The right secret again, from a file this time: delivered, and the
    // display name reaches the From header.
    let file = h.write("secret.txt", &format!("{SECRET}\n"));
    h.run(&["account", "edit", "ops", "--secret-file", file.to_str().unwrap()])
        .ok();
    h.run(&["account", "test", "ops", "--to", "someone@example.com"]).ok();
    let got = peer.wait_messages(3).await;
    assert_eq!(got.len(), 3, "failed tests delivered nothing");
    assert!(
        got[2]["data"].as_str().unwrap().contains("Ops Team"),
        "{}",
        got[2]["data"]
    );
    std::fs::remove_file(&file).unwrap();

    h.assert_never_printed(SECRET);
    h.assert_never_printed(WRONG);
    assert_not_at_rest(&h, SECRET);
    assert_not_at_rest(&h, WRONG);

    // Remove: gone for show and list.
    let out = h.run(&["account", "remove", "ops"]).ok();
    assert!(out.stdout.contains("removed"), "{}", out.stdout);
    let out = h.run(&["account", "show", "ops"]);
    assert_ne!(out.code, Some(0), "{}", out.all());
    assert!(out.stderr.contains("not found"), "{}", out.stderr);
    assert_eq!(h.run(&["account", "list", "--json"]).ok().json(), json!([]));
}

#[test]
fn invalid_account_input_names_each_field() {
    let h = Herald::new();
    let out = h.run(&[
        "account",
        "add",
        "--name",
        "x",
        "--provider",
        "custom",
        "--from",
        "not-an-address",
    ]);
    assert_ne!(out.code, Some(0), "{}", out.all());
    for field in ["from.address", "host", "security"] {
        assert!(out.stderr.contains(field), "{field} not named:\n{}", out.stderr);
    }
    assert_eq!(
        h.run(&["account", "list", "--json"]).ok().json(),
        json!([]),
        "nothing saved"
    );

    // There is no way to put a secret on the command line.
    let out = h.run(&[
        "account",
        "add",
        "--name",
        "x",
        "--provider",
        "custom",
        "--secret",
        "hunter2-hunter2",
    ]);
    assert_eq!(out.code, Some(2), "clap refuses it:\n{}", out.all());
    assert!(out.stderr.contains("--secret"), "{}", out.stderr);
}

#[test]
fn send_without_an_account_goes_to_the_capture_mailbox() {
    let h = Herald::new();
    let v = h
        .run(&[
            "send",
            "--to",
            "a@example.com",
            "--subject",
            "Hi",
            "--text",
            "Body",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(v["status"], "sent", "{v}");
    assert_eq!(v["captured"], true, "{v}");
    assert_eq!(v["account"], Value::Null, "{v}");
    let id = v["id"].as_str().expect("an id").to_string();

    let out = h.run(&["capture"]).ok();
    assert!(
        out.stdout.contains("Hi") && out.stdout.contains("a@example.com"),
        "{}",
        out.stdout
    );
    let list = h.run(&["capture", "--json"]).ok().json();
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list[0]["subject"], "Hi");
    assert_eq!(list[0]["message"], id.as_str());

    let shown = h.run(&["messages", "show", &id, "--json"]).ok().json();
    assert_eq!(shown["status"], "sent");
    assert_eq!(shown["attempts"][0]["outcome"], "captured", "{shown}");
    let listed = h.run(&["messages", "list", "--json"]).ok().json();
    assert!(
        listed.as_array().unwrap().iter().any(|m| m["id"] == id.as_str()),
        "{listed}"
    );
}

#[tokio::test]
async fn send_through_an_account_delivers_once_per_idempotency_key() {
    let peer = Peer::aiosmtpd(PyPeer {
        mode: "plain",
        certs: None,
        user: None,
        require_tls: false,
    });
    let h = Herald::new();
    let port = peer.port.to_string();
    h.run(&[
        "account",
        "add",
        "--name",
        "relay",
        "--provider",
        "custom",
        "--host",
        "127.0.0.1",
        "--port",
        &port,
        "--security",
        "none",
        "--from",
        "noreply@herald.test",
    ])
    .ok();

    let send = [
        "send",
        "--account",
        "relay",
        "--to",
        "a@example.com",
        "--subject",
        "Weekly report",
        "--text",
        "All good",
        "--idempotency-key",
        "weekly-1",
        "--json",
    ];
    let v = h.run(&send).ok().json();
    assert_eq!(v["status"], "sent", "{v}");
    assert_eq!(v["captured"], false, "{v}");
    let got = peer.wait_messages(1).await;
    assert_eq!(got[0]["rcpt_tos"], json!(["a@example.com"]));
    assert!(
        got[0]["data"].as_str().unwrap().contains("Subject: Weekly report"),
        "{}",
        got[0]["data"]
    );

    // The same key again answers the same message and sends nothing more.
    let again = h.run(&send).ok().json();
    assert_eq!(again["id"], v["id"]);
    assert_eq!(
        h.run(&["messages", "list", "--json"])
            .ok()
            .json()
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert_eq!(h.run(&["capture", "--json"]).ok().json(), json!([]));
    assert_eq!(peer.messages().len(), 1, "sent twice");
}

#[test]
fn secrets_are_never_stored_in_clear() {
    let h = Herald::new();
    h.run_stdin(
        &[
            "account",
            "add",
            "--name",
            "ops",
            "--provider",
            "custom",
            "--host",
            "smtp.example.com",
            "--port",
            "587",
            "--security",
            "starttls",
            "--username",
            "alice",
            "--from",
            "noreply@herald.test",
            "--secret-stdin",
        ],
        SECRET,
    )
    .ok();
    let shown = h.run(&["account", "show", "ops", "--json"]).ok().json();
    assert_eq!(shown["auth"]["secret_set"], true, "{shown}");
    h.assert_never_printed(SECRET);
    assert_not_at_rest(&h, SECRET);

    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(h.data_dir().join("secret.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "secret.key mode {:o}", mode & 0o777);
}

/// `herald serve` on port 0, stopped (SIGKILL) if the test fails early.
struct Server {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Waits for a log line containing `needle`; answers it.
    fn wait_line(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.contains(needle) => return l,
                Ok(_) => {}
                Err(e) => panic!("herald serve never logged {needle:?}: {e}"),
            }
        }
    }
}

#[tokio::test]
async fn tokens_and_the_cli_beside_a_running_server() {
    let h = Herald::new();
    let mut cmd = h.command(&["serve", "--listen", "127.0.0.1:0"]);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("herald serve");
    let stderr = child.stderr.take().unwrap();
    let (tx, lines) = mpsc::channel();
    // Keeps draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let server = Server { child, lines };

    // First start without HERALD_ADMIN_TOKEN: a one-time token on stderr.
    let first = server.wait_line("hrd_").trim().to_string();
    assert!(first.starts_with("hrd_") && first.len() > 30, "{first:?}");
    let line = server.wait_line("listening on http://");
    let at = line.find("http://").unwrap() + 7;
    let addr: String = line[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
        .collect();
    let base = format!("http://{addr}");

    // Another token, made by the CLI while the server runs.
    let token = h.run(&["token", "create"]).ok().stdout.trim().to_string();
    assert!(token.starts_with("hrd_") && token.len() > 30, "{token:?}");
    assert_ne!(token, first);

    // The CLI adds an account; the server sees it with the CLI's token.
    h.run(&[
        "account",
        "add",
        "--name",
        "cli-made",
        "--provider",
        "custom",
        "--host",
        "127.0.0.1",
        "--port",
        "2525",
        "--security",
        "none",
        "--from",
        "a@herald.test",
    ])
    .ok();
    // reqwest is built without a default crypto provider (as in spawn_app).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let r = http
        .get(format!("{base}/api/v1/accounts"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let list: Value = r.json().await.unwrap();
    assert!(
        list.as_array().unwrap().iter().any(|a| a["name"] == "cli-made"),
        "{list}"
    );
    let r = http
        .get(format!("{base}/api/v1/accounts"))
        .bearer_auth(&first)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the first-start token works too");
    let r = http
        .get(format!("{base}/api/v1/accounts"))
        .bearer_auth("hrd_not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "tokens are checked");

    // The server adds one; the CLI sees it.
    let body = json!({"name": "api-made", "provider": "custom", "host": "127.0.0.1", "port": 2525, "security": "none", "from": {"address": "b@herald.test"}});
    let r = http
        .post(format!("{base}/api/v1/accounts"))
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let names: Vec<Value> = h
        .run(&["account", "list", "--json"])
        .ok()
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].clone())
        .collect();
    assert!(
        names.contains(&json!("api-made")) && names.contains(&json!("cli-made")),
        "{names:?}"
    );

    // SIGTERM: a clean exit; the CLI keeps working without the server.
    let mut server = server;
    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = server.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "herald serve did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "serve exited with {status}");
    assert_eq!(
        h.run(&["account", "list", "--json"])
            .ok()
            .json()
            .as_array()
            .map(Vec::len),
        Some(2)
    );
}

/// `account authorize` finishes the OAuth2 flow through its own loopback
/// listener, as the command-line tools of cloud providers do.
#[tokio::test]
async fn authorize_through_a_loopback_listener() {
    let oauth = OAuthPeer::start();
    let smtp = oauth.smtp();
    let h = Herald::new();
    let port = smtp.port.to_string();
    let (authorize_url, token_url) = (oauth.url("/authorize"), oauth.url("/token"));
    h.run_stdin(
        &[
            "account",
            "add",
            "--name",
            "xo",
            "--provider",
            "custom",
            "--host",
            "127.0.0.1",
            "--port",
            &port,
            "--security",
            "none",
            "--from",
            "mailer@herald.test",
            "--auth",
            "oauth2",
            "--oauth-provider",
            "custom",
            "--client-id",
            "herald-test",
            "--authorize-url",
            &authorize_url,
            "--token-url",
            &token_url,
            "--scope",
            "openid email",
            "--client-secret-stdin",
        ],
        "test-secret\n",
    )
    .ok();
    let mut child = h
        .command(&["account", "authorize", "xo", "--wait-secs", "60"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().expect("authorize prints the URL").unwrap();
        if let Some(u) = line.trim().strip_prefix("http") {
            break format!("http{u}");
        }
    };
    assert!(url.contains("redirect_uri=http%3A%2F%2F127.0.0.1%3A"), "{url}");
    let location = oauth.sign_in(&url).await;
    let page = reqwest::get(&location).await.unwrap();
    assert_eq!(page.status(), 200);
    let status = child.wait().unwrap();
    assert!(status.success());
    let acc = h.run(&["--json", "account", "show", "xo"]).ok().json();
    assert_eq!(acc["status"], "ready");
    let out = h.run(&["account", "test", "xo", "--to", "someone@example.com"]).ok();
    assert!(out.stdout.contains("AUTH XOAUTH2 ********"), "{}", out.all());
    h.assert_never_printed("test-secret");
}

#[tokio::test]
async fn an_account_through_a_proxy_and_with_a_pinned_certificate_from_the_command_line() {
    use crate::proxy::{PASSWORD, Pproxy, USER};
    let peer = Peer::aiosmtpd(PyPeer {
        mode: "plain",
        certs: None,
        user: None,
        require_tls: false,
    });
    let proxy = Pproxy::start("socks5", true).await;
    let h = Herald::new();
    let port = peer.port.to_string();
    let proxy_port = proxy.port.to_string();
    h.run_stdin(
        &[
            "account",
            "add",
            "--name",
            "via-proxy",
            "--provider",
            "custom",
            "--host",
            "127.0.0.1",
            "--port",
            &port,
            "--security",
            "none",
            "--auth",
            "none",
            "--from",
            "noreply@herald.test",
            "--timeout-secs",
            "10",
            "--proxy",
            "socks5",
            "--proxy-host",
            "127.0.0.1",
            "--proxy-port",
            &proxy_port,
            "--proxy-username",
            USER,
            "--proxy-secret-stdin",
        ],
        &format!("{PASSWORD}\n"),
    )
    .ok();
    let out = h
        .run(&["account", "test", "via-proxy", "--to", "someone@example.com"])
        .ok();
    assert!(out.stdout.contains("socks5 proxy"), "{}", out.stdout);
    peer.wait_messages(1).await;
    let shown = h.run(&["--json", "account", "show", "via-proxy"]).ok().json();
    assert_eq!(shown["proxy"]["username"], USER, "{shown}");
    assert_eq!(shown["proxy"]["secret_set"], true, "{shown}");
    h.assert_never_printed(PASSWORD);
    assert_not_at_rest(&h, PASSWORD);

    let pin = "AB:".repeat(31) + "AB";
    h.run(&[
        "account",
        "edit",
        "via-proxy",
        "--pin-sha256",
        &pin,
        "--proxy",
        "default",
    ])
    .ok();
    let shown = h.run(&["--json", "account", "show", "via-proxy"]).ok().json();
    assert_eq!(shown["tls"]["pin_sha256"], "ab".repeat(32), "{shown}");
    assert!(shown.get("proxy").is_none(), "back to the platform default: {shown}");
    let out = h.run(&["account", "edit", "via-proxy", "--pin-sha256", "nope"]);
    assert_ne!(out.code, Some(0));
    assert!(out.all().contains("tls.pin_sha256"), "{}", out.all());
}

#[test]
fn dkim_keys_from_the_command_line() {
    // The check asks the DNS server of herald.toml's dns_server: a loopback
    // dnslib server with no record yet.
    let records = tempfile::tempdir().unwrap();
    let file = records.path().join("records.json");
    std::fs::write(&file, "{}").unwrap();
    let mut cmd = Command::new("python3");
    cmd.arg(crate::helpers::repo().join("tests/peers/dkim_peers.py"))
        .args(["dns", "--records"])
        .arg(&file);
    let dns = crate::helpers::start_peer(cmd, tempfile::tempdir().unwrap());
    let h = Herald::new();
    std::fs::write(
        h.root.path().join("herald.toml"),
        format!("dns_server = \"127.0.0.1:{}\"\n", dns.port),
    )
    .unwrap();

    let out = h.run(&["dkim", "add", "example.com", "--selector", "mail2026"]).ok();
    assert!(
        out.stdout.contains("publish TXT mail2026._domainkey.example.com") && out.stdout.contains("v=DKIM1; k=rsa; p="),
        "{}",
        out.all()
    );
    let ed = h
        .run(&["--json", "dkim", "add", "example.com", "--algorithm", "ed25519-sha256"])
        .ok()
        .json();
    assert_eq!(ed["algorithm"], "ed25519-sha256");
    assert_eq!(ed["signing"], true);
    let list = h.run(&["--json", "dkim", "list"]).ok().json();
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    let id = ed["id"].as_str().unwrap();

    // Not published yet: exit 1, and what to do.
    let out = h.run(&["dkim", "check", id]);
    assert_eq!(out.code, Some(1), "{}", out.all());
    assert!(
        out.stdout.contains("status     missing") && out.stdout.contains("No TXT record"),
        "{}",
        out.all()
    );
    std::fs::write(
        &file,
        json!({ed["dns_name"].as_str().unwrap(): [ed["dns_value"]]}).to_string(),
    )
    .unwrap();
    let out = h.run(&["--json", "dkim", "check", id]).ok().json();
    assert_eq!(out["status"], "published", "{out}");
    assert_eq!(
        h.run(&["--json", "dkim", "show", id]).ok().json()["status"],
        "published"
    );

    let out = h.run(&["dkim", "add", "example.com", "--selector", "mail2026"]);
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("selector:"), "{}", out.all());
    h.run(&["dkim", "remove", id]).ok();
    assert_eq!(
        h.run(&["--json", "dkim", "list"]).ok().json().as_array().unwrap().len(),
        1
    );
}
