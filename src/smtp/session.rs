//! One SMTP session, stage by stage. Every step that can fail returns a
//! `Failure` naming its stage; nothing continues in clear when STARTTLS was
//! asked for, and no credential is sent before TLS is up when TLS was asked for.

use super::conn::Conn;
use super::tls::{self, TlsProblem};
use super::transcript::{Recorder, Transcript};
use crate::catalog::Security;
use crate::diagnosis::{Condition, Failure, Reply, Stage};
use crate::domain::EmailAddress;
use crate::secrets::Secret;
use base64::Engine;
use mail_send::SmtpClient;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub ca_pem: Option<String>,
    pub skip_verify: bool,
    pub timeout: Duration,
    /// The name Herald gives in EHLO.
    pub helo_name: String,
}

/// How to sign in.
#[derive(Debug, Clone)]
pub enum Credentials {
    None,
    /// Password, app password, authorization code or API key: AUTH PLAIN or LOGIN.
    Password {
        username: String,
        secret: Secret,
    },
    /// An OAuth2 access token: AUTH XOAUTH2.
    XOAuth2 {
        username: String,
        token: Secret,
    },
}

/// What the server said it supports after EHLO.
#[derive(Debug, Clone, Default)]
pub struct Capabilities {
    pub starttls: bool,
    pub auth_offered: bool,
    pub auth_plain: bool,
    pub auth_login: bool,
    pub auth_xoauth2: bool,
    pub pipelining: bool,
    pub smtputf8: bool,
    pub size: Option<u64>,
}

impl Capabilities {
    fn parse(reply: &str) -> Capabilities {
        let mut caps = Capabilities::default();
        // The first line is the server's greeting name; the rest are keywords.
        for line in reply.lines().skip(1) {
            let upper = line.trim().to_ascii_uppercase();
            let mut words = upper.split([' ', '=']);
            match words.next().unwrap_or("") {
                "STARTTLS" => caps.starttls = true,
                "PIPELINING" => caps.pipelining = true,
                "SMTPUTF8" => caps.smtputf8 = true,
                "SIZE" => caps.size = words.next().and_then(|n| n.parse().ok()).filter(|n| *n > 0),
                "AUTH" => {
                    caps.auth_offered = true;
                    for m in words {
                        match m {
                            "PLAIN" => caps.auth_plain = true,
                            "LOGIN" => caps.auth_login = true,
                            "XOAUTH2" => caps.auth_xoauth2 = true,
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        caps
    }
}

/// The envelope of one message.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub from: EmailAddress,
    pub to: Vec<EmailAddress>,
}

/// The result of a send: the final reply, and recipients refused on the way.
#[derive(Debug, Clone)]
pub struct SendOutcome {
    pub reply: Reply,
    pub accepted: Vec<EmailAddress>,
    pub rejected: Vec<(EmailAddress, Reply)>,
}

type Client = SmtpClient<Recorder<Conn>>;

pub struct Session {
    client: Client,
    pub caps: Capabilities,
    transcript: Transcript,
}

fn map_err(stage: Stage, transcript: &Transcript, e: mail_send::Error) -> Failure {
    match e {
        mail_send::Error::UnexpectedReply(r) | mail_send::Error::AuthenticationFailed(r) => {
            Failure::reply(stage, Reply::from_response(&r))
        }
        mail_send::Error::Timeout => Failure::condition(stage, Condition::Timeout, "the server did not answer in time"),
        mail_send::Error::UnparseableReply if transcript.saw_eof() => {
            Failure::condition(stage, Condition::Closed, "the server closed the connection")
        }
        mail_send::Error::Io(io) => Failure::condition(stage, Condition::Closed, format!("connection lost: {io}")),
        other => Failure::condition(stage, Condition::Closed, format!("protocol error: {other}")),
    }
}

impl Session {
    /// Opens a session up to and including authentication.
    pub async fn open(
        settings: &ServerSettings,
        credentials: &Credentials,
        transcript: Transcript,
    ) -> Result<Session, Failure> {
        let connector = if settings.security == Security::None {
            None
        } else {
            Some(
                tls::connector(settings.ca_pem.as_deref(), settings.skip_verify)
                    .map_err(|m| Failure::condition(Stage::Tls, Condition::TlsFailed, format!("tls.ca_pem {m}")))?,
            )
        };

        // DNS, then TCP, each bounded by the account's timeout.
        let target = format!("{}:{}", settings.host, settings.port);
        let addrs: Vec<_> = match tokio::time::timeout(settings.timeout, tokio::net::lookup_host(&target)).await {
            Ok(Ok(a)) => a.collect(),
            Ok(Err(e)) => {
                return Err(Failure::condition(
                    Stage::Dns,
                    Condition::DnsFailed,
                    format!("cannot resolve {}: {e}", settings.host),
                ));
            }
            Err(_) => {
                return Err(Failure::condition(
                    Stage::Dns,
                    Condition::DnsFailed,
                    format!("resolving {} timed out", settings.host),
                ));
            }
        };
        if addrs.is_empty() {
            return Err(Failure::condition(
                Stage::Dns,
                Condition::DnsFailed,
                format!("{} has no address", settings.host),
            ));
        }
        transcript.note(format!("connecting to {target} ({})", settings.security.as_str()));
        let mut last_err = None;
        let mut tcp = None;
        for addr in &addrs {
            match tokio::time::timeout(settings.timeout, TcpStream::connect(addr)).await {
                Ok(Ok(s)) => {
                    tcp = Some(s);
                    break;
                }
                Ok(Err(e)) => {
                    last_err = Some(Failure::condition(
                        Stage::Connect,
                        if e.kind() == std::io::ErrorKind::ConnectionRefused {
                            Condition::ConnectRefused
                        } else {
                            Condition::ConnectTimeout
                        },
                        format!("connecting to {addr}: {e}"),
                    ))
                }
                Err(_) => {
                    last_err = Some(Failure::condition(
                        Stage::Connect,
                        Condition::ConnectTimeout,
                        format!("connecting to {addr} timed out after {}s", settings.timeout.as_secs()),
                    ))
                }
            }
        }
        let Some(tcp) = tcp else {
            return Err(last_err.expect("at least one address was tried"));
        };
        // Commands and the body go out at once, not after a delayed ACK.
        let _ = tcp.set_nodelay(true);

        let conn = match (&connector, settings.security) {
            (Some(c), Security::Tls) => Conn::Tls(Box::new(
                handshake(c, &settings.host, tcp, settings.timeout, &transcript).await?,
            )),
            _ => Conn::Plain(tcp),
        };
        let mut client: Client = SmtpClient {
            stream: Recorder {
                inner: conn,
                transcript: transcript.clone(),
            },
            timeout: settings.timeout,
        };

        // Greeting.
        let greeting = tokio::time::timeout(settings.timeout, client.read())
            .await
            .map_err(|_| {
                Failure::condition(
                    Stage::Greeting,
                    Condition::Timeout,
                    "the server sent no greeting in time",
                )
            })?
            .map_err(|e| map_err(Stage::Greeting, &transcript, e))?;
        if greeting.code != 220 {
            return Err(Failure::reply(Stage::Greeting, Reply::from_response(&greeting)));
        }

        let mut caps = ehlo(&mut client, &settings.helo_name, &transcript).await?;

        if settings.security == Security::Starttls {
            if !caps.starttls {
                return Err(Failure::condition(
                    Stage::Starttls,
                    Condition::StarttlsMissing,
                    "the server does not offer STARTTLS; Herald will not continue in clear",
                ));
            }
            let r = client
                .cmd(b"STARTTLS\r\n")
                .await
                .map_err(|e| map_err(Stage::Starttls, &transcript, e))?;
            if r.code != 220 {
                return Err(Failure::reply(Stage::Starttls, Reply::from_response(&r)));
            }
            let Conn::Plain(tcp) = std::mem::replace(&mut client.stream.inner, Conn::Upgrading) else {
                unreachable!("STARTTLS is only sent on a plain connection")
            };
            let connector = connector.as_ref().expect("a connector exists for starttls");
            client.stream.inner = Conn::Tls(Box::new(
                handshake(connector, &settings.host, tcp, settings.timeout, &transcript).await?,
            ));
            caps = ehlo(&mut client, &settings.helo_name, &transcript).await?;
        }

        let mut session = Session {
            client,
            caps,
            transcript,
        };
        session.authenticate(credentials).await?;
        Ok(session)
    }

    async fn authenticate(&mut self, credentials: &Credentials) -> Result<(), Failure> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let t = self.transcript.clone();
        let fail_cmd = |e| map_err(Stage::Auth, &t, e);
        match credentials {
            Credentials::None => Ok(()),
            Credentials::Password { username, secret } => {
                if !self.caps.auth_offered {
                    return Err(Failure::condition(
                        Stage::Auth,
                        Condition::AuthNotOffered,
                        "the server offers no AUTH command",
                    ));
                }
                self.transcript.begin_auth();
                let result = if self.caps.auth_plain {
                    let token = b64.encode(format!("\0{}\0{}", username, secret.expose()));
                    self.client
                        .cmd(format!("AUTH PLAIN {token}\r\n").as_bytes())
                        .await
                        .map_err(fail_cmd)
                } else if self.caps.auth_login {
                    self.login(username, secret).await
                } else {
                    self.transcript.end_auth();
                    return Err(Failure::condition(
                        Stage::Auth,
                        Condition::AuthUnsupported,
                        "the server offers neither AUTH PLAIN nor AUTH LOGIN",
                    ));
                };
                self.transcript.end_auth();
                let r = result?;
                if r.code == 235 {
                    Ok(())
                } else {
                    Err(Failure::reply(Stage::Auth, Reply::from_response(&r)))
                }
            }
            Credentials::XOAuth2 { username, token } => {
                if !self.caps.auth_xoauth2 {
                    return Err(Failure::condition(
                        Stage::Auth,
                        Condition::AuthUnsupported,
                        "the server does not offer AUTH XOAUTH2",
                    ));
                }
                self.transcript.begin_auth();
                let payload = b64.encode(format!("user={}\x01auth=Bearer {}\x01\x01", username, token.expose()));
                let mut result = self
                    .client
                    .cmd(format!("AUTH XOAUTH2 {payload}\r\n").as_bytes())
                    .await
                    .map_err(fail_cmd);
                // Google answers a bad token with 334 and a base64 JSON error; the
                // client must answer with an empty line to get the final 535.
                if let Ok(r) = &result
                    && r.code == 334
                {
                    result = self
                        .client
                        .cmd(b"\r\n")
                        .await
                        .map_err(|e| map_err(Stage::Auth, &self.transcript, e));
                }
                self.transcript.end_auth();
                let r = result?;
                if r.code == 235 {
                    Ok(())
                } else {
                    Err(Failure::reply(Stage::Auth, Reply::from_response(&r)))
                }
            }
        }
    }

    async fn login(&mut self, username: &str, secret: &Secret) -> Result<smtp_proto::Response<String>, Failure> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let t = self.transcript.clone();
        let r = self
            .client
            .cmd(b"AUTH LOGIN\r\n")
            .await
            .map_err(|e| map_err(Stage::Auth, &t, e))?;
        if r.code != 334 {
            return Ok(r);
        }
        let r = self
            .client
            .cmd(format!("{}\r\n", b64.encode(username)).as_bytes())
            .await
            .map_err(|e| map_err(Stage::Auth, &t, e))?;
        if r.code != 334 {
            return Ok(r);
        }
        self.client
            .cmd(format!("{}\r\n", b64.encode(secret.expose())).as_bytes())
            .await
            .map_err(|e| map_err(Stage::Auth, &t, e))
    }

    /// Sends one message. Recipients refused with a permanent reply are
    /// reported and the others still get it; the send fails only when no
    /// recipient is left or a transient refusal makes the whole send retry.
    pub async fn send(&mut self, envelope: &Envelope, content: &[u8]) -> Result<SendOutcome, Failure> {
        let t = self.transcript.clone();
        let smtputf8 = self.caps.smtputf8
            && (!envelope.from.as_str().is_ascii() || envelope.to.iter().any(|a| !a.as_str().is_ascii()));
        let params = if smtputf8 { " SMTPUTF8" } else { "" };
        let mail = format!("MAIL FROM:<{}>{params}\r\n", envelope.from);
        let rcpts: Vec<String> = envelope.to.iter().map(|r| format!("RCPT TO:<{r}>\r\n")).collect();
        // With PIPELINING the envelope and DATA go out in one write and their
        // replies come back together (RFC 2920: DATA may end a group): one
        // round trip instead of one per command.
        let (replies, data) = if self.caps.pipelining {
            let mut group = Vec::with_capacity(mail.len() + rcpts.len() * 40 + 6);
            group.extend_from_slice(mail.as_bytes());
            for r in &rcpts {
                group.extend_from_slice(r.as_bytes());
            }
            group.extend_from_slice(b"DATA\r\n");
            let mut replies = self.exchange(&group, rcpts.len() + 2).await?;
            let data = replies.pop().expect("a reply per command");
            (replies, Some(data))
        } else {
            let r = self
                .client
                .cmd(mail.as_bytes())
                .await
                .map_err(|e| map_err(Stage::MailFrom, &t, e))?;
            let mut replies = vec![r];
            if replies[0].code / 100 == 2 {
                for rcpt in &rcpts {
                    replies.push(
                        self.client
                            .cmd(rcpt.as_bytes())
                            .await
                            .map_err(|e| map_err(Stage::RcptTo, &t, e))?,
                    );
                }
            }
            (replies, None)
        };
        if replies[0].code / 100 != 2 {
            if self.caps.pipelining {
                let _ = self.client.cmd(b"RSET\r\n").await;
            }
            return Err(Failure::reply(Stage::MailFrom, Reply::from_response(&replies[0])));
        }
        let mut accepted = Vec::new();
        let mut rejected = Vec::new();
        for (rcpt, r) in envelope.to.iter().zip(replies.iter().skip(1)) {
            if r.code / 100 == 2 {
                accepted.push(rcpt.clone());
            } else {
                rejected.push((rcpt.clone(), Reply::from_response(r)));
            }
        }
        if accepted.is_empty() {
            let (_, reply) = rejected
                .into_iter()
                .next()
                .expect("a message has at least one recipient");
            let _ = self.client.cmd(b"RSET\r\n").await;
            return Err(Failure::reply(Stage::RcptTo, reply));
        }
        let r = match data {
            Some(r) => r,
            None => self
                .client
                .cmd(b"DATA\r\n")
                .await
                .map_err(|e| map_err(Stage::Data, &t, e))?,
        };
        if r.code != 354 {
            let _ = self.client.cmd(b"RSET\r\n").await;
            return Err(Failure::reply(Stage::Data, Reply::from_response(&r)));
        }
        // The content and its terminating dot in one write: written apart,
        // they would be two packets, the second waiting on the first's ACK.
        let payload = data_payload(content);
        self.transcript.begin_body();
        let written = tokio::time::timeout(self.client.timeout, async {
            self.client.stream.write_all(&payload).await?;
            self.client.stream.flush().await
        })
        .await;
        self.transcript.end_body();
        match written {
            Err(_) => {
                return Err(Failure::condition(
                    Stage::Data,
                    Condition::Timeout,
                    "sending the message content timed out",
                ));
            }
            Ok(Err(e)) => return Err(map_err(Stage::Data, &t, mail_send::Error::Io(e))),
            Ok(Ok(())) => {}
        }
        let r = tokio::time::timeout(self.client.timeout, self.client.read())
            .await
            .map_err(|_| {
                Failure::condition(
                    Stage::Data,
                    Condition::Timeout,
                    "the server did not confirm the message in time",
                )
            })?
            .map_err(|e| map_err(Stage::Data, &t, e))?;
        if r.code / 100 != 2 {
            return Err(Failure::reply(Stage::Data, Reply::from_response(&r)));
        }
        Ok(SendOutcome {
            reply: Reply::from_response(&r),
            accepted,
            rejected,
        })
    }

    /// Writes a pipelined group of commands at once and reads `replies` replies.
    async fn exchange(&mut self, group: &[u8], replies: usize) -> Result<Vec<smtp_proto::Response<String>>, Failure> {
        let t = self.transcript.clone();
        let timeout = self.client.timeout;
        let r = tokio::time::timeout(timeout, async {
            self.client.stream.write_all(group).await?;
            self.client.stream.flush().await?;
            self.client.read_many(replies).await
        })
        .await
        .map_err(|_| Failure::condition(Stage::MailFrom, Condition::Timeout, "the server did not answer in time"))?;
        r.map_err(|e| map_err(Stage::MailFrom, &t, e))
    }

    /// Whether an idle session still answers (before reusing it).
    pub async fn noop(&mut self) -> bool {
        matches!(self.client.cmd(b"NOOP\r\n").await, Ok(r) if r.code / 100 == 2)
    }

    /// Ends the session politely; errors here change nothing.
    pub async fn quit(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.client.cmd(b"QUIT\r\n")).await;
    }

    pub fn transcript(&self) -> &Transcript {
        &self.transcript
    }
}

async fn ehlo(client: &mut Client, helo_name: &str, transcript: &Transcript) -> Result<Capabilities, Failure> {
    let r = client
        .cmd(format!("EHLO {helo_name}\r\n").as_bytes())
        .await
        .map_err(|e| map_err(Stage::Ehlo, transcript, e))?;
    if r.code != 250 {
        return Err(Failure::reply(Stage::Ehlo, Reply::from_response(&r)));
    }
    Ok(Capabilities::parse(&r.message))
}

async fn handshake(
    connector: &tokio_rustls::TlsConnector,
    host: &str,
    tcp: TcpStream,
    timeout: Duration,
    transcript: &Transcript,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, Failure> {
    let name = tls::server_name(host).map_err(|m| Failure::condition(Stage::Tls, Condition::TlsFailed, m))?;
    match tokio::time::timeout(timeout, connector.connect(name, tcp)).await {
        Err(_) => Err(Failure::condition(
            Stage::Tls,
            Condition::Timeout,
            "the TLS handshake timed out",
        )),
        Ok(Err(e)) => Err(match tls::classify_handshake_error(&e) {
            TlsProblem::Untrusted(m) => Failure::condition(Stage::Tls, Condition::TlsUntrusted, m),
            TlsProblem::NotTls => Failure::condition(
                Stage::Tls,
                Condition::TlsNotTls,
                "the server answered in plain text: this port does not speak implicit TLS",
            ),
            TlsProblem::Other(m) => {
                Failure::condition(Stage::Tls, Condition::TlsFailed, format!("TLS handshake failed: {m}"))
            }
        }),
        Ok(Ok(s)) => {
            let (_, conn) = s.get_ref();
            let version = conn.protocol_version().map(|v| format!("{v:?}")).unwrap_or_default();
            transcript.note(format!("TLS established ({version})"));
            Ok(s)
        }
    }
}

/// The DATA payload: the content with every line that starts with a dot
/// given a second one (RFC 5321 4.5.2), then the terminating `.` line.
fn data_payload(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + content.len() / 64 + 5);
    let mut line_start = true;
    for &b in content {
        if line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        line_start = b == b'\n';
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_payload_stuffs_dots_and_ends_with_one_dot_line() {
        assert_eq!(data_payload(b"a\r\n.b\r\n..\r\n"), b"a\r\n..b\r\n...\r\n.\r\n");
        assert_eq!(data_payload(b".first\r\nlast"), b"..first\r\nlast\r\n.\r\n");
        assert_eq!(
            data_payload(b"x.\r\n"),
            b"x.\r\n.\r\n",
            "a dot inside a line stays single"
        );
    }

    #[test]
    fn capabilities_from_ehlo() {
        let c = Capabilities::parse(
            "smtp.example.com Hello\nPIPELINING\nSIZE 35882577\nAUTH LOGIN PLAIN XOAUTH2\nSTARTTLS\nSMTPUTF8",
        );
        assert!(
            c.starttls
                && c.pipelining
                && c.smtputf8
                && c.auth_offered
                && c.auth_plain
                && c.auth_login
                && c.auth_xoauth2
        );
        assert_eq!(c.size, Some(35882577));
        let c = Capabilities::parse("localhost\nAUTH=LOGIN\n8BITMIME");
        assert!(c.auth_login && !c.auth_plain && !c.starttls);
    }
}
