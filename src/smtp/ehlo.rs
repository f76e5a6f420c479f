//! Opening the conversation: the server's 220 greeting, then EHLO (HELO when
//! the server does not know EHLO), and what the server says it supports.

use super::client::{Client, command, read_reply};
use super::error::{Failure, Stage};
use tokio::io::{AsyncRead, AsyncWrite};

/// What the server said it supports after EHLO.
#[derive(Debug, Clone, Default)]
pub(crate) struct Capabilities {
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

/// Waits for the server's 220 greeting.
pub(crate) async fn greeting<S: AsyncRead + AsyncWrite + Unpin>(client: &mut Client<S>) -> Result<(), Failure> {
    let r = read_reply(client, Stage::Greeting, "the server sent no greeting in time").await?;
    if r.code != 220 {
        return Err(Failure::refused(Stage::Greeting, &r));
    }
    Ok(())
}

/// Says EHLO and reads the capabilities. A server that does not recognise
/// EHLO (500, 502) gets HELO instead (RFC 5321 3.2) and is taken to offer no
/// extension, so STARTTLS or AUTH, if required, then fail as not offered.
pub(crate) async fn ehlo<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut Client<S>,
    helo_name: &str,
) -> Result<Capabilities, Failure> {
    let r = command(client, Stage::Ehlo, format!("EHLO {helo_name}\r\n")).await?;
    if r.code == 250 {
        return Ok(Capabilities::parse(&r.message));
    }
    if !matches!(r.code, 500 | 502) {
        return Err(Failure::refused(Stage::Ehlo, &r));
    }
    let r = command(client, Stage::Ehlo, format!("HELO {helo_name}\r\n")).await?;
    if r.code != 250 {
        return Err(Failure::refused(Stage::Ehlo, &r));
    }
    Ok(Capabilities::default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Security;
    use crate::smtp::testing::{open_and_quit, open_fails, settings};
    use crate::smtp::{Condition, Credentials};

    #[tokio::test]
    async fn a_refused_greeting_ends_the_session_before_the_client_speaks() {
        let (f, _, heard) = open_fails(
            &["S: 554 5.7.1 mx.test no SMTP service here"],
            &settings(Security::None),
            &Credentials::None,
        )
        .await;
        assert_eq!(f.stage(), Stage::Greeting);
        let reply = f.reply().expect("the server's reply");
        assert_eq!((reply.code, reply.enhanced.as_deref()), (554, Some("5.7.1")));
        assert!(f.is_permanent());
        assert!(heard.bytes.is_empty(), "the client said nothing");
    }

    /// A server from before ESMTP: EHLO unknown, HELO accepted.
    const HELO_ONLY: [&str; 5] = [
        "S: 220 old.test",
        "C: EHLO herald.test",
        "S: 500 5.5.1 Command unrecognized",
        "C: HELO herald.test",
        "S: 250 old.test",
    ];

    #[tokio::test]
    async fn a_server_that_does_not_know_ehlo_gets_helo() {
        open_and_quit(&HELO_ONLY, &settings(Security::None), &Credentials::None, None).await;
    }

    #[tokio::test]
    async fn after_helo_a_required_starttls_is_missing() {
        let (f, _, _) = open_fails(&HELO_ONLY, &settings(Security::Starttls), &Credentials::None).await;
        assert_eq!(
            (f.stage(), f.condition),
            (Stage::Starttls, Some(Condition::StarttlsMissing))
        );
    }

    #[tokio::test]
    async fn ehlo_refused_otherwise_is_not_retried_as_helo() {
        let (f, _, heard) = open_fails(
            &[
                "S: 220 mx.test",
                "C: EHLO herald.test",
                "S: 421 4.3.2 mx.test shutting down",
            ],
            &settings(Security::None),
            &Credentials::None,
        )
        .await;
        assert_eq!((f.stage(), f.reply().map(|r| r.code)), (Stage::Ehlo, Some(421)));
        assert!(f.is_transient());
        assert_eq!(heard.bytes, b"EHLO herald.test\r\n");
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
