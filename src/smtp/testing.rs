//! A scripted SMTP server over `tokio::io::duplex`, for protocol tests that
//! need no network. A script reads like an RFC example: `S: ` lines are
//! what the server says (consecutive ones in one write), `C: ` lines what the
//! client must write, byte for byte with its CRLF; `C: <content>` takes a
//! message's content up to its final dot, and `TLS` turns TLS on (the
//! script ends there if the client refuses the handshake).

use super::session::SendOutcome;
use super::{Credentials, Envelope, Failure, ServerSettings, Session, Transcript};
use crate::catalog::Security;
use crate::domain::EmailAddress;
use crate::secrets::Secret;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// Settings for a session against the scripted server at `localhost`.
pub(crate) fn settings(security: Security) -> ServerSettings {
    ServerSettings {
        host: "localhost".into(),
        port: 25,
        security,
        ca_pem: None,
        skip_verify: false,
        pin_sha256: None,
        timeout: Duration::from_secs(5),
        helo_name: "herald.test".into(),
        net: crate::netguard::NetPolicy::unrestricted(),
    }
}

/// `user` / `pass` (AUTH PLAIN `AHVzZXIAcGFzcw==`).
pub(crate) fn password() -> Credentials {
    Credentials::Password {
        username: "user".into(),
        secret: Secret::new("pass"),
    }
}

/// What the client wrote, as the server read it (in clear, TLS removed).
pub(crate) struct Heard {
    /// Everything, in order.
    pub bytes: Vec<u8>,
    /// Each message content taken by a `C: <content>` step, final dot included.
    pub contents: Vec<Vec<u8>>,
}

/// The server's end of a running script.
pub(crate) struct Server(JoinHandle<Heard>);

impl Server {
    /// Waits for the script to end (the client must have hung up or the
    /// script run out) and returns what the client wrote; a script the
    /// client did not follow fails the test here.
    pub async fn heard(self) -> Heard {
        match self.0.await {
            Ok(h) => h,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
}

trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Stream for T {}

/// Starts `script` on one end of a duplex and returns the other end, for
/// the client; `tls` serves the `TLS` steps.
pub(crate) fn serve(script: &[impl AsRef<str>], tls: Option<TlsAcceptor>) -> (DuplexStream, Server) {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let script: Vec<String> = script.iter().map(|s| s.as_ref().to_string()).collect();
    let task = tokio::spawn(async move {
        let mut stream: Box<dyn Stream> = Box::new(server);
        let mut heard = Heard {
            bytes: Vec::new(),
            contents: Vec::new(),
        };
        let mut say = String::new();
        for step in &script {
            if let Some(line) = step.strip_prefix("S: ") {
                say.push_str(line);
                say.push_str("\r\n");
                continue;
            }
            if !say.is_empty() {
                stream.write_all(say.as_bytes()).await.expect("the client reads");
                say.clear();
            }
            if step == "TLS" {
                let acceptor = tls.as_ref().expect("a TLS acceptor for the TLS step");
                match acceptor.accept(stream).await {
                    Ok(tls) => stream = Box::new(tls),
                    // The client refused the certificate: nothing more to hear.
                    Err(_) => return heard,
                }
            } else if step == "C: <content>" {
                let start = heard.bytes.len();
                while !heard.bytes[start..].ends_with(b"\r\n.\r\n") {
                    let n = read_byte(&mut stream, &mut heard.bytes).await;
                    assert!(n, "the client hung up in the middle of the content");
                }
                heard.contents.push(heard.bytes[start..].to_vec());
            } else if let Some(expected) = step.strip_prefix("C: ") {
                let start = heard.bytes.len();
                while !heard.bytes[start..].ends_with(b"\n") {
                    let n = read_byte(&mut stream, &mut heard.bytes).await;
                    assert!(n, "the client hung up where the script expects {expected:?}");
                }
                assert_eq!(
                    String::from_utf8_lossy(&heard.bytes[start..]),
                    format!("{expected}\r\n"),
                    "what the client wrote"
                );
            } else {
                panic!("a script step starts with 'S: ', 'C: ' or is 'TLS': {step:?}");
            }
        }
        if !say.is_empty() {
            stream.write_all(say.as_bytes()).await.expect("the client reads");
        }
        // The client must not write more than the script expects.
        let start = heard.bytes.len();
        while read_byte(&mut stream, &mut heard.bytes).await {}
        assert_eq!(
            String::from_utf8_lossy(&heard.bytes[start..]),
            "",
            "the client wrote past the end of the script"
        );
        heard
    });
    (client, Server(task))
}

/// Reads one byte into `into`; false at end of stream. One at a time, so a
/// `TLS` step never finds clear bytes already taken into a buffer.
async fn read_byte(stream: &mut Box<dyn Stream>, into: &mut Vec<u8>) -> bool {
    let mut b = [0u8; 1];
    match stream.read(&mut b).await {
        Ok(1) => {
            into.push(b[0]);
            true
        }
        _ => false,
    }
}

/// Opens a session over `script` up to authentication and expects it to
/// fail; returns the failure and what the client wrote.
pub(crate) async fn open_fails(
    script: &[&str],
    settings: &ServerSettings,
    credentials: &Credentials,
) -> (Failure, Transcript, Heard) {
    let (io, server) = serve(script, None);
    let transcript = Transcript::default();
    let failure = match Session::handshake(io, settings, credentials, transcript.clone()).await {
        Ok(_) => panic!("the session should have failed"),
        Err(f) => f,
    };
    (failure, transcript, server.heard().await)
}

/// After the greeting: EHLO, then signing in as `password()` with AUTH PLAIN.
pub(crate) const SIGN_IN: [&str; 5] = [
    "C: EHLO herald.test",
    "S: 250-mx.test",
    "S: 250 AUTH PLAIN",
    "C: AUTH PLAIN AHVzZXIAcGFzcw==",
    "S: 235 2.7.0 Accepted",
];

/// Opens a session over `script`, which must take it through
/// authentication, then quits; returns the transcript.
pub(crate) async fn open_and_quit(
    script: &[&str],
    settings: &ServerSettings,
    credentials: &Credentials,
    tls: Option<TlsAcceptor>,
) -> Transcript {
    let script = [script, &["C: QUIT", "S: 221 2.0.0 Bye"]].concat();
    let (io, server) = serve(&script, tls);
    let transcript = Transcript::default();
    match Session::handshake(io, settings, credentials, transcript.clone()).await {
        Ok(session) => session.quit().await,
        Err(f) => panic!("the session failed at {}: {}", f.stage.as_str(), f.detail),
    }
    server.heard().await;
    transcript
}

/// Sends `content` from a@example.com to `to` over `script` (greeting and
/// EHLO included), in clear and without AUTH, then hangs up.
pub(crate) async fn send(
    script: &[impl AsRef<str>],
    to: &[&str],
    content: &[u8],
) -> (Result<SendOutcome, Failure>, Heard) {
    send_from(script, "a@example.com", to, content).await
}

/// `send`, from `from`.
pub(crate) async fn send_from(
    script: &[impl AsRef<str>],
    from: &str,
    to: &[&str],
    content: &[u8],
) -> (Result<SendOutcome, Failure>, Heard) {
    let (io, server) = serve(script, None);
    let mut session =
        match Session::handshake(io, &settings(Security::None), &Credentials::None, Transcript::default()).await {
            Ok(s) => s,
            Err(f) => panic!("the session failed at {}: {}", f.stage.as_str(), f.detail),
        };
    let envelope = Envelope {
        from: EmailAddress::parse(from).expect("an address"),
        to: to.iter().map(|t| EmailAddress::parse(t).expect("an address")).collect(),
    };
    let sent = session.send(&envelope, content).await;
    drop(session);
    (sent, server.heard().await)
}

/// A private CA (its PEM, as an account's `tls.ca_pem`) and an acceptor
/// serving a certificate it signed for `localhost`.
pub(crate) fn tls_acceptor() -> (TlsAcceptor, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let ca_key = KeyPair::generate().expect("a CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("the CA certificate");
    let leaf_key = KeyPair::generate().expect("a server key");
    let leaf = CertificateParams::new(vec!["localhost".to_string()])
        .expect("server params")
        .signed_by(&leaf_key, &Issuer::new(ca_params, ca_key))
        .expect("the server certificate");
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key)
        .expect("the server's TLS config");
    (TlsAcceptor::from(Arc::new(config)), ca.pem())
}
