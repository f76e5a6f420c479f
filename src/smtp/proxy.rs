//! Reaching the SMTP server through a proxy: HTTP CONNECT (RFC 9110 §9.3.6,
//! a few lines of our own) or SOCKS5 (RFC 1928/1929, `tokio-socks`), each
//! with an optional username and password. The proxy resolves the server's
//! name itself (the network behind a corporate proxy may be the only one
//! that can). Whatever goes wrong before the tunnel is up is a `proxy`
//! stage failure: the proxy cannot be reached, it refused the credentials,
//! or it could not (or would not) reach the server.

use super::ServerSettings;
use super::dial::{BoxStream, DialFuture, Dialer};
use super::error::{Condition, Failure, Stage};
use super::transcript::Transcript;
use crate::catalog::Security;
use crate::netguard::NetPolicy;
use crate::secrets::Secret;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

/// The proxy protocols Herald speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyKind {
    /// HTTP CONNECT.
    Http,
    /// SOCKS5, the server's name resolved by the proxy.
    Socks5,
}

impl ProxyKind {
    pub fn parse(s: &str) -> Option<ProxyKind> {
        match s {
            "http" => Some(ProxyKind::Http),
            "socks5" => Some(ProxyKind::Socks5),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ProxyKind::Http => "http",
            ProxyKind::Socks5 => "socks5",
        }
    }
}

/// A proxy and the credentials to use it.
#[derive(Clone)]
pub struct ProxyDialer {
    pub kind: ProxyKind,
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// Which addresses the proxy's name may resolve to: a tenant's own
    /// proxy must be where the tenant may connect (`netguard`).
    pub net: NetPolicy,
}

impl std::fmt::Debug for ProxyDialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl ProxyDialer {
    /// The proxy as the transcript names it: kind, address, user, and the
    /// password masked.
    pub fn describe(&self) -> String {
        let mut s = format!("{} proxy {}:{}", self.kind.as_str(), self.host, self.port);
        match (&self.username, &self.password) {
            (Some(u), Some(_)) => s.push_str(&format!(" as {u} (password ********)")),
            (Some(u), None) => s.push_str(&format!(" as {u}")),
            _ => {}
        }
        s
    }

    fn failure(condition: Condition, detail: impl Into<String>) -> Failure {
        Failure::condition(Stage::Proxy, condition, detail)
    }

    /// TCP to the proxy itself: resolve, check each address against the
    /// policy, try each in turn.
    async fn connect_proxy(&self, settings: &ServerSettings) -> Result<TcpStream, Failure> {
        let name = format!("{}:{}", self.host, self.port);
        let addrs: Vec<SocketAddr> = match tokio::time::timeout(settings.timeout, tokio::net::lookup_host(&name)).await
        {
            Ok(Ok(a)) => a.collect(),
            Ok(Err(e)) => {
                return Err(Self::failure(
                    Condition::ProxyUnreachable,
                    format!("cannot resolve the proxy {}: {e}", self.host),
                ));
            }
            Err(_) => {
                return Err(Self::failure(
                    Condition::ProxyUnreachable,
                    format!("resolving the proxy {} timed out", self.host),
                ));
            }
        };
        let addrs = self.net.filter(&self.host, addrs).map_err(|refused| {
            Failure::condition(
                Stage::Proxy,
                Condition::AddressNotAllowed,
                format!("the proxy: {refused}"),
            )
        })?;
        let mut last = None;
        for addr in &addrs {
            match tokio::time::timeout(settings.timeout, TcpStream::connect(addr)).await {
                Ok(Ok(s)) => {
                    let _ = s.set_nodelay(true);
                    return Ok(s);
                }
                Ok(Err(e)) => {
                    last = Some(Self::failure(
                        Condition::ProxyUnreachable,
                        format!("cannot connect to the proxy at {addr}: {e}"),
                    ))
                }
                Err(_) => {
                    last = Some(Self::failure(
                        Condition::ProxyUnreachable,
                        format!(
                            "connecting to the proxy at {addr} timed out after {}s",
                            settings.timeout.as_secs()
                        ),
                    ))
                }
            }
        }
        Err(last.unwrap_or_else(|| {
            Self::failure(
                Condition::ProxyUnreachable,
                format!("the proxy {} has no address", self.host),
            )
        }))
    }

    async fn tunnel(&self, settings: &ServerSettings) -> Result<BoxStream, Failure> {
        check_target(settings).await?;
        let tcp = self.connect_proxy(settings).await?;
        let target = format!("{}:{}", settings.host, settings.port);
        let stream: BoxStream = match self.kind {
            ProxyKind::Http => Box::new(self.http_connect(tcp, &target).await?),
            ProxyKind::Socks5 => Box::new(self.socks5_connect(tcp, settings).await?),
        };
        if settings.security == Security::Tls {
            // The client speaks first in implicit TLS: nothing to wait for.
            return Ok(stream);
        }
        first_bytes(stream, &target, settings).await
    }

    async fn http_connect(&self, mut tcp: TcpStream, target: &str) -> Result<TcpStream, Failure> {
        let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
        if let Some(user) = &self.username {
            let pass = self.password.as_ref().map(Secret::expose).unwrap_or("");
            let token = B64.encode(format!("{user}:{pass}"));
            request.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
        }
        request.push_str("\r\n");
        let lost = |e: std::io::Error| {
            Self::failure(
                Condition::ProxyUnreachable,
                format!("the proxy closed the connection: {e}"),
            )
        };
        tcp.write_all(request.as_bytes()).await.map_err(lost)?;
        // The reply's head, read a byte at a time: what follows it is the
        // SMTP server's, and must stay in the stream.
        let mut head = Vec::with_capacity(256);
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && !head.ends_with(b"\n\n") {
            if head.len() > 16 * 1024 {
                return Err(Self::failure(
                    Condition::ProxyProtocol,
                    "the proxy's reply to CONNECT has no end: is this an HTTP proxy?",
                ));
            }
            match tcp.read(&mut byte).await.map_err(lost)? {
                0 if head.is_empty() => {
                    return Err(Self::failure(
                        Condition::ProxyTargetRefused,
                        format!(
                            "the proxy closed the connection without answering CONNECT {target}: it could not reach the server, or does not speak HTTP"
                        ),
                    ));
                }
                0 => break,
                _ => head.push(byte[0]),
            }
        }
        let text = String::from_utf8_lossy(&head);
        let status_line = text.lines().next().unwrap_or("").trim().to_string();
        let mut parts = status_line.split_whitespace();
        let code = match (parts.next(), parts.next().and_then(|c| c.parse::<u16>().ok())) {
            (Some(v), Some(code)) if v.starts_with("HTTP/") => code,
            _ => {
                return Err(Self::failure(
                    Condition::ProxyProtocol,
                    format!("the proxy did not answer in HTTP ({status_line:?}): is it a SOCKS5 proxy?"),
                ));
            }
        };
        match code {
            200..=299 => Ok(tcp),
            407 if self.username.is_some() => Err(Self::failure(
                Condition::ProxyAuthFailed,
                format!("the proxy refused the username and password: {status_line}"),
            )),
            407 => Err(Self::failure(
                Condition::ProxyAuthFailed,
                format!("the proxy requires a username and password: {status_line}"),
            )),
            _ => Err(Self::failure(
                Condition::ProxyTargetRefused,
                format!("the proxy could not or would not connect to {target}: {status_line}"),
            )),
        }
    }

    async fn socks5_connect(&self, tcp: TcpStream, settings: &ServerSettings) -> Result<TcpStream, Failure> {
        use tokio_socks::Error as E;
        use tokio_socks::tcp::Socks5Stream;
        let target = (settings.host.as_str(), settings.port);
        // How far the negotiation got when a proxy hangs up: some close the
        // connection instead of answering a wrong password.
        let received = Arc::new(AtomicUsize::new(0));
        let socket = Counted {
            inner: tcp,
            received: received.clone(),
        };
        let result = match &self.username {
            Some(user) => {
                let pass = self.password.as_ref().map(Secret::expose).unwrap_or("");
                Socks5Stream::connect_with_password_and_socket(socket, target, user, pass).await
            }
            None => Socks5Stream::connect_with_socket(socket, target).await,
        };
        let name = format!("{}:{}", settings.host, settings.port);
        // Method selection is 2 bytes; the password's verdict 2 more.
        let closed_at_password = self.username.is_some() && received.load(Ordering::Relaxed) == 2;
        result.map(Socks5Stream::into_inner).map(|c| c.inner).map_err(|e| match e {
            E::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof && closed_at_password => Self::failure(
                Condition::ProxyAuthFailed,
                "the SOCKS5 proxy closed the connection when given the username and password: it refused them",
            ),
            E::PasswordAuthFailure(_) => Self::failure(
                Condition::ProxyAuthFailed,
                format!("the SOCKS5 proxy refused the username and password ({e})"),
            ),
            E::NoAcceptableAuthMethods | E::AuthorizationRequired if self.username.is_none() => Self::failure(
                Condition::ProxyAuthFailed,
                format!("the SOCKS5 proxy requires a username and password ({e})"),
            ),
            E::NoAcceptableAuthMethods | E::AuthorizationRequired => Self::failure(
                Condition::ProxyAuthFailed,
                format!("the SOCKS5 proxy does not accept username/password authentication ({e})"),
            ),
            E::ConnectionRefused
            | E::HostUnreachable
            | E::NetworkUnreachable
            | E::TtlExpired
            | E::GeneralSocksServerFailure
            | E::ConnectionNotAllowedByRuleset => Self::failure(
                Condition::ProxyTargetRefused,
                format!("the SOCKS5 proxy could not connect to {name}: {e}"),
            ),
            E::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => Self::failure(
                Condition::ProxyTargetRefused,
                format!("the SOCKS5 proxy closed the connection while connecting to {name}: it could not reach the server, or does not speak SOCKS5"),
            ),
            E::Io(io) => Self::failure(
                Condition::ProxyUnreachable,
                format!("the connection to the SOCKS5 proxy was lost: {io}"),
            ),
            other => Self::failure(
                Condition::ProxyProtocol,
                format!("the proxy did not answer as a SOCKS5 proxy ({other}): is it an HTTP proxy?"),
            ),
        })
    }
}

/// The server, reached through a proxy, is still held to the account's
/// network policy where Herald can tell: an address, or a name that
/// resolves here only to addresses the account may not reach. A name only
/// the proxy can resolve is the proxy's to resolve.
async fn check_target(settings: &ServerSettings) -> Result<(), Failure> {
    let refused =
        |r: crate::netguard::Refused| Failure::condition(Stage::Connect, Condition::AddressNotAllowed, r.to_string());
    if let Ok(ip) = settings.host.parse::<std::net::IpAddr>() {
        return settings.net.check(&settings.host, ip).map_err(refused);
    }
    let name = format!("{}:{}", settings.host, settings.port);
    if let Ok(Ok(addrs)) = tokio::time::timeout(settings.timeout, tokio::net::lookup_host(&name)).await {
        let addrs: Vec<SocketAddr> = addrs.collect();
        if !addrs.is_empty() {
            settings.net.filter(&settings.host, addrs).map_err(refused)?;
        }
    }
    Ok(())
}

/// A stream that counts the bytes it has read.
struct Counted<S> {
    inner: S,
    received: Arc<AtomicUsize>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        this.received.fetch_add(buf.filled().len() - before, Ordering::Relaxed);
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Waits for the server's first bytes (its greeting): a proxy that
/// confirms the tunnel before it has reached the server (some SOCKS5
/// proxies do) shows here, as a tunnel closed before a word was said. The
/// bytes read stay first in the stream.
async fn first_bytes(mut stream: BoxStream, target: &str, settings: &ServerSettings) -> Result<BoxStream, Failure> {
    let mut buf = vec![0u8; 512];
    match tokio::time::timeout(settings.timeout, stream.read(&mut buf)).await {
        // Slow to greet: the greeting step reports it.
        Err(_) => Ok(stream),
        Ok(Ok(0)) => Err(ProxyDialer::failure(
            Condition::ProxyTargetRefused,
            format!(
                "the proxy opened the tunnel but it closed before {target} said a word: the proxy could not reach the server"
            ),
        )),
        Ok(Err(e)) => Err(ProxyDialer::failure(
            Condition::ProxyTargetRefused,
            format!("the tunnel to {target} broke before the server said a word: {e}"),
        )),
        Ok(Ok(n)) => {
            buf.truncate(n);
            Ok(Box::new(Rewound {
                head: buf,
                at: 0,
                inner: stream,
            }))
        }
    }
}

/// A stream with bytes already read put back in front.
struct Rewound {
    head: Vec<u8>,
    at: usize,
    inner: BoxStream,
}

impl AsyncRead for Rewound {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.at < this.head.len() {
            let n = (this.head.len() - this.at).min(buf.remaining());
            buf.put_slice(&this.head[this.at..this.at + n]);
            this.at += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Rewound {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl Dialer for ProxyDialer {
    fn dial<'a>(&'a self, settings: &'a ServerSettings, transcript: &'a Transcript) -> DialFuture<'a> {
        Box::pin(async move {
            transcript.note(format!(
                "connecting to {}:{} ({}) through {}",
                settings.host,
                settings.port,
                settings.security.as_str(),
                self.describe()
            ));
            // The whole tunnel, proxy handshake included, within the account's bound.
            let bound = settings.timeout.saturating_mul(2);
            match tokio::time::timeout(bound, self.tunnel(settings)).await {
                Ok(r) => {
                    if r.is_ok() {
                        transcript.note("proxy tunnel established");
                    }
                    r
                }
                Err(_) => Err(Self::failure(
                    Condition::ProxyUnreachable,
                    format!("the proxy did not open the tunnel within {}s", bound.as_secs()),
                )),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::testing::settings;
    use tokio::io::AsyncBufReadExt;

    fn dialer(kind: ProxyKind, port: u16, user: Option<&str>) -> ProxyDialer {
        ProxyDialer {
            kind,
            host: "127.0.0.1".into(),
            port,
            username: user.map(str::to_string),
            password: user.map(|_| Secret::new("s3cret")),
            net: NetPolicy::unrestricted(),
        }
    }

    /// A one-shot HTTP proxy that answers CONNECT with `status`, then greets as SMTP.
    async fn fake_http_proxy(status: &'static str) -> (u16, tokio::task::JoinHandle<String>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let h = tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            let mut r = tokio::io::BufReader::new(s);
            let mut head = String::new();
            loop {
                let mut line = String::new();
                r.read_line(&mut line).await.unwrap();
                head.push_str(&line);
                if line == "\r\n" {
                    break;
                }
            }
            let mut s = r.into_inner();
            s.write_all(format!("{status}\r\n\r\n220 mx.test ready\r\n").as_bytes())
                .await
                .unwrap();
            head
        });
        (port, h)
    }

    #[tokio::test]
    async fn http_connect_sends_basic_credentials_and_leaves_the_greeting_in_the_stream() {
        let (port, proxy) = fake_http_proxy("HTTP/1.1 200 Connection established").await;
        let t = Transcript::default();
        let mut s = settings(Security::None);
        s.host = "mx.example.com".into();
        s.port = 25;
        let mut stream = dialer(ProxyKind::Http, port, Some("alice")).dial(&s, &t).await.unwrap();
        let mut greeting = vec![0u8; 19];
        stream.read_exact(&mut greeting).await.unwrap();
        assert_eq!(&greeting, b"220 mx.test ready\r\n");
        let head = proxy.await.unwrap();
        assert!(head.starts_with("CONNECT mx.example.com:25 HTTP/1.1\r\n"), "{head}");
        assert!(
            head.contains(&format!("Proxy-Authorization: Basic {}", B64.encode("alice:s3cret"))),
            "{head}"
        );
        let notes: Vec<String> = t.lines().into_iter().map(|l| l.line).collect();
        assert!(notes[0].contains("http proxy 127.0.0.1"), "{notes:?}");
        assert!(
            notes[0].contains("password ********") && !notes[0].contains("s3cret"),
            "{notes:?}"
        );
    }

    #[tokio::test]
    async fn http_407_is_an_authentication_failure_and_502_a_refused_target() {
        for (status, condition) in [
            ("HTTP/1.1 407 Proxy Authentication Required", Condition::ProxyAuthFailed),
            ("HTTP/1.1 502 Bad Gateway", Condition::ProxyTargetRefused),
        ] {
            let (port, _proxy) = fake_http_proxy(status).await;
            let f = match dialer(ProxyKind::Http, port, Some("alice"))
                .dial(&settings(Security::None), &Transcript::default())
                .await
            {
                Ok(_) => panic!("{status} must fail"),
                Err(f) => f,
            };
            assert_eq!((f.stage(), f.condition), (Stage::Proxy, Some(condition)), "{status}");
            assert!(f.detail.contains(status), "{}", f.detail);
        }
    }

    #[tokio::test]
    async fn a_proxy_nobody_listens_on_is_unreachable_and_the_policy_is_applied() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let f = match dialer(ProxyKind::Socks5, port, None)
            .dial(&settings(Security::None), &Transcript::default())
            .await
        {
            Ok(_) => panic!("nothing listens"),
            Err(f) => f,
        };
        assert_eq!(
            (f.stage(), f.condition),
            (Stage::Proxy, Some(Condition::ProxyUnreachable))
        );
        assert!(f.is_transient());

        let mut d = dialer(ProxyKind::Http, port, None);
        d.net = NetPolicy::restricted(Default::default());
        let mut s = settings(Security::None);
        s.host = "mx.example.com".into();
        let f = match d.dial(&s, &Transcript::default()).await {
            Ok(_) => panic!("the policy refuses"),
            Err(f) => f,
        };
        assert_eq!(
            (f.stage(), f.condition),
            (Stage::Proxy, Some(Condition::AddressNotAllowed))
        );
        assert!(f.detail.contains("loopback"), "{}", f.detail);

        // Through an allowed proxy, the server is still held to the policy.
        let mut s = settings(Security::None);
        s.host = "127.0.0.1".into();
        s.net = NetPolicy::restricted(Default::default());
        let f = match dialer(ProxyKind::Http, port, None)
            .dial(&s, &Transcript::default())
            .await
        {
            Ok(_) => panic!("the policy refuses the target"),
            Err(f) => f,
        };
        assert_eq!(
            (f.stage(), f.condition),
            (Stage::Connect, Some(Condition::AddressNotAllowed))
        );
    }
}
