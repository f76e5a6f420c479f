//! The SMTP client session, one file per phase: `dial` opens the stream,
//! `proxy` dials through an HTTP CONNECT or SOCKS5 proxy, `tls` secures it
//! (`certificate` reads what the server presented), `ehlo` greets, `starttls` upgrades, `auth` signs in,
//! `envelope` and `data` send a message, and `session` ties them together.
//! Each step that can fail names its `Stage` in a `Failure` (`error`), and
//! everything that crosses the wire is recorded, masked where it must be,
//! in the `transcript`. The wire protocol is mail-send's `SmtpClient` (reply
//! parsing with enhanced status codes); this module adds the stages, the
//! transcript, TLS policy and XOAUTH2 the way Google and Microsoft speak it.
//! It depends on nothing above it: `diagnosis` reads its failures, never the
//! other way round.

mod auth;
pub mod certificate;
mod client;
mod data;
mod dial;
mod ehlo;
mod envelope;
mod error;
mod proxy;
mod session;
mod starttls;
pub mod tls;
mod transcript;

#[cfg(test)]
mod testing;

pub use auth::Credentials;
// The transport seam: `Session::open_with` takes any `Dialer` (direct TCP
// today, a proxy next); re-exported for the dialers outside this module.
pub use certificate::PeerCertificate;
#[allow(unused_imports)]
pub use dial::{AsyncReadWrite, BoxStream, DialFuture, Dialer, Direct};
pub use envelope::Envelope;
pub use error::{Condition, Failure, Reply, Stage};
pub use proxy::{ProxyDialer, ProxyKind};
pub use session::Session;
pub use transcript::{Dir, Line, Transcript};

use crate::catalog::Security;
use std::time::Duration;

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// The server's host name (also the name its certificate must carry).
    pub host: String,
    pub port: u16,
    /// In clear, implicit TLS, or STARTTLS.
    pub security: Security,
    /// Extra CA certificates to trust, as PEM.
    pub ca_pem: Option<String>,
    /// Accept any certificate: only when the account says so.
    pub skip_verify: bool,
    /// Accept exactly the certificate with this SHA-256 (of its DER), and no other.
    pub pin_sha256: Option<[u8; 32]>,
    /// The bound on each step: resolving, connecting, each reply.
    pub timeout: Duration,
    /// The name Herald gives in EHLO.
    pub helo_name: String,
    /// Which addresses the host may resolve to (a tenant's: public ones).
    pub net: crate::netguard::NetPolicy,
}
