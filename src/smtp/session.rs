//! One SMTP session, phase by phase: dial, TLS, greeting, EHLO, STARTTLS,
//! AUTH, then any number of messages. Nothing continues in clear when
//! STARTTLS was asked for, and no credential is sent before TLS is up when
//! TLS was asked for.

use super::ServerSettings;
use super::auth::{Credentials, authenticate};
use super::client::{self, Client};
use super::data::send_data;
use super::dial::{BoxStream, Dialer, Direct};
use super::ehlo::{Capabilities, ehlo, greeting};
use super::envelope::{Envelope, send_envelope};
use super::error::{Failure, Reply};
use super::starttls::starttls;
use super::tls;
use super::transcript::Transcript;
use crate::catalog::Security;
use crate::domain::EmailAddress;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

/// The result of a send: the final reply, and recipients refused on the way.
#[derive(Debug, Clone)]
pub struct SendOutcome {
    /// The server's acceptance of the content.
    pub reply: Reply,
    /// Recipients the server took.
    #[cfg_attr(not(test), allow(dead_code))]
    pub accepted: Vec<EmailAddress>,
    /// Recipients it refused, each with its reply.
    pub rejected: Vec<(EmailAddress, Reply)>,
}

/// An open, authenticated session, ready to send messages.
pub struct Session {
    client: Client<BoxStream>,
    caps: Capabilities,
}

impl Session {
    /// Opens a session over direct TCP, up to and including authentication.
    #[cfg_attr(not(test), allow(dead_code))]
    pub async fn open(
        settings: &ServerSettings,
        credentials: &Credentials,
        transcript: Transcript,
    ) -> Result<Session, Failure> {
        Session::open_with(&Direct, settings, credentials, transcript).await
    }

    /// Opens a session over the stream `dialer` opens, up to and including
    /// authentication.
    pub async fn open_with(
        dialer: &dyn Dialer,
        settings: &ServerSettings,
        credentials: &Credentials,
        transcript: Transcript,
    ) -> Result<Session, Failure> {
        // A bad CA certificate is reported before anything is dialed.
        let connector = tls::session_connector(settings)?;
        let stream = dialer.dial(settings, &transcript).await?;
        Session::start(stream, connector, settings, credentials, transcript).await
    }

    /// Runs a session over an already open `stream` (implicit TLS, when the
    /// settings ask for it, is still Herald's to do), up to and including
    /// authentication. The seam for in-memory tests and for dialers that
    /// hand over a stream they opened (a proxy's tunnel).
    #[cfg_attr(not(test), allow(dead_code))]
    pub async fn handshake<S>(
        stream: S,
        settings: &ServerSettings,
        credentials: &Credentials,
        transcript: Transcript,
    ) -> Result<Session, Failure>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let connector = tls::session_connector(settings)?;
        Session::start(Box::new(stream), connector, settings, credentials, transcript).await
    }

    async fn start(
        stream: BoxStream,
        connector: Option<tls::SessionTls>,
        settings: &ServerSettings,
        credentials: &Credentials,
        transcript: Transcript,
    ) -> Result<Session, Failure> {
        let stream = match (&connector, settings.security) {
            (Some(c), Security::Tls) => {
                Box::new(tls::handshake(c, &settings.host, stream, settings.timeout, &transcript).await?) as BoxStream
            }
            _ => stream,
        };
        let mut client = client::client(stream, transcript, settings.timeout);
        greeting(&mut client).await?;
        let mut caps = ehlo(&mut client, &settings.helo_name).await?;
        if settings.security == Security::Starttls {
            let connector = connector.as_ref().expect("a connector exists for starttls");
            client = starttls(client, &caps, connector, &settings.host).await?;
            caps = ehlo(&mut client, &settings.helo_name).await?;
        }
        authenticate(&mut client, &caps, credentials).await?;
        Ok(Session { client, caps })
    }

    /// Sends one message. Recipients refused with a permanent reply are
    /// reported and the others still get it; the send fails only when no
    /// recipient is left or a transient refusal makes the whole send retry.
    pub async fn send(&mut self, envelope: &Envelope, content: &[u8]) -> Result<SendOutcome, Failure> {
        let envelope = send_envelope(&mut self.client, &self.caps, envelope).await?;
        let reply = send_data(&mut self.client, envelope.data_reply, content).await?;
        Ok(SendOutcome {
            reply,
            accepted: envelope.accepted,
            rejected: envelope.rejected,
        })
    }

    /// Whether an idle session still answers (before reusing it).
    pub async fn noop(&mut self) -> bool {
        matches!(self.client.cmd(b"NOOP\r\n").await, Ok(r) if r.code / 100 == 2)
    }

    /// Ends the session politely; errors here change nothing.
    pub async fn quit(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.client.cmd(b"QUIT\r\n")).await;
    }

    /// What crossed the wire so far, masked and summarised.
    pub fn transcript(&self) -> &Transcript {
        client::transcript_of(&self.client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::dial::DialFuture;
    use crate::smtp::testing::{SIGN_IN, password, serve, settings};
    use crate::smtp::{Condition, Stage};
    use std::sync::Mutex;

    /// Hands out one in-memory stream, as a proxy dialer would hand out a tunnel.
    struct InMemory(Mutex<Option<tokio::io::DuplexStream>>);

    impl Dialer for InMemory {
        fn dial<'a>(&'a self, _: &'a ServerSettings, transcript: &'a Transcript) -> DialFuture<'a> {
            Box::pin(async move {
                transcript.note("in memory");
                let stream = self.0.lock().unwrap().take().expect("dialed once");
                Ok(Box::new(stream) as BoxStream)
            })
        }
    }

    #[tokio::test]
    async fn open_with_runs_the_session_over_what_the_dialer_returns() {
        let script = [
            &["S: 220 mx.test"][..],
            &SIGN_IN,
            &["C: NOOP", "S: 250 2.0.0 OK", "C: QUIT", "S: 221 Bye"],
        ]
        .concat();
        let (io, server) = serve(&script, None);
        let dialer = InMemory(Mutex::new(Some(io)));
        let transcript = Transcript::default();
        let mut session = Session::open_with(&dialer, &settings(Security::None), &password(), transcript.clone())
            .await
            .expect("opened");
        assert!(session.noop().await);
        session.quit().await;
        server.heard().await;
        assert_eq!(transcript.lines()[0].line, "[in memory]");
    }

    #[tokio::test]
    async fn a_bad_ca_certificate_fails_before_anything_is_dialed() {
        let dialer = InMemory(Mutex::new(None));
        let mut settings = settings(Security::Starttls);
        settings.ca_pem = Some("not a certificate".into());
        let f = match Session::open_with(&dialer, &settings, &Credentials::None, Transcript::default()).await {
            Ok(_) => panic!("a bad CA must not open"),
            Err(f) => f,
        };
        assert_eq!((f.stage(), f.condition), (Stage::Tls, Some(Condition::TlsFailed)));
    }

    #[tokio::test]
    async fn the_direct_dialer_reports_a_refused_connection() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let mut settings = settings(Security::None);
        settings.host = "127.0.0.1".into();
        settings.port = port;
        let f = match Session::open(&settings, &Credentials::None, Transcript::default()).await {
            Ok(_) => panic!("nothing listens there"),
            Err(f) => f,
        };
        assert_eq!(
            (f.stage(), f.condition),
            (Stage::Connect, Some(Condition::ConnectRefused))
        );
        assert!(f.is_transient());
    }
}
