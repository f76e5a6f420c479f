//! Opening the byte stream a session runs over. The session never dials by
//! itself: it asks a `Dialer`, so that a proxy can stand in between and a
//! test can hand it an in-memory stream. TLS is not the dialer's business;
//! the session wraps whatever stream comes back.

use super::ServerSettings;
use super::error::{Condition, Failure, Stage};
use super::transcript::Transcript;
use std::future::Future;
use std::pin::Pin;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// Any byte stream a session can run over.
pub trait AsyncReadWrite: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> AsyncReadWrite for T {}

/// A dialed stream, whatever its kind (TCP, through a proxy, in memory).
pub type BoxStream = Box<dyn AsyncReadWrite>;

/// What `Dialer::dial` returns: boxed, so that dialers can be trait objects.
pub type DialFuture<'a> = Pin<Box<dyn Future<Output = Result<BoxStream, Failure>> + Send + 'a>>;

/// Opens the stream to `settings.host:settings.port` within `settings.timeout`.
pub trait Dialer: Send + Sync {
    /// Dials, noting in the transcript what it connects to; a failure names
    /// the `dns` or `connect` stage (`proxy` for a proxy's own failures).
    fn dial<'a>(&'a self, settings: &'a ServerSettings, transcript: &'a Transcript) -> DialFuture<'a>;
}

/// Plain TCP to the server itself: resolve, then try each address in turn.
#[derive(Debug, Clone, Copy, Default)]
pub struct Direct;

impl Dialer for Direct {
    fn dial<'a>(&'a self, settings: &'a ServerSettings, transcript: &'a Transcript) -> DialFuture<'a> {
        Box::pin(async move {
            let tcp = connect_tcp(settings, transcript).await?;
            // Commands and the body go out at once, not after a delayed ACK.
            let _ = tcp.set_nodelay(true);
            Ok(Box::new(tcp) as BoxStream)
        })
    }
}

/// DNS, then TCP, each bounded by the account's timeout.
async fn connect_tcp(settings: &ServerSettings, transcript: &Transcript) -> Result<TcpStream, Failure> {
    let target = format!("{}:{}", settings.host, settings.port);
    let dns_failed = |detail: String| Failure::condition(Stage::Dns, Condition::DnsFailed, detail);
    let addrs: Vec<_> = match tokio::time::timeout(settings.timeout, tokio::net::lookup_host(&target)).await {
        Ok(Ok(a)) => a.collect(),
        Ok(Err(e)) => return Err(dns_failed(format!("cannot resolve {}: {e}", settings.host))),
        Err(_) => return Err(dns_failed(format!("resolving {} timed out", settings.host))),
    };
    if addrs.is_empty() {
        return Err(dns_failed(format!("{} has no address", settings.host)));
    }
    // Checked on the addresses about to be connected to, not on an earlier
    // lookup, so that a name rebinding to an internal address gains nothing.
    let addrs = settings.net.filter(&settings.host, addrs).map_err(|refused| {
        transcript.note(format!("not connecting to {target}: {refused}"));
        Failure::condition(Stage::Connect, Condition::AddressNotAllowed, refused.to_string())
    })?;
    transcript.note(format!("connecting to {target} ({})", settings.security.as_str()));
    let mut last_err = None;
    for addr in &addrs {
        let (condition, detail) = match tokio::time::timeout(settings.timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => return Ok(s),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                (Condition::ConnectRefused, format!("connecting to {addr}: {e}"))
            }
            Ok(Err(e)) => (Condition::ConnectTimeout, format!("connecting to {addr}: {e}")),
            Err(_) => (
                Condition::ConnectTimeout,
                format!("connecting to {addr} timed out after {}s", settings.timeout.as_secs()),
            ),
        };
        last_err = Some(Failure::condition(Stage::Connect, condition, detail));
    }
    Err(last_err.expect("at least one address was tried"))
}
