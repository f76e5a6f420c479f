//! Opening the conversation: the server's 220 greeting, then EHLO, and what
//! the server says it supports.

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

/// Says EHLO and reads the capabilities.
pub(crate) async fn ehlo<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut Client<S>,
    helo_name: &str,
) -> Result<Capabilities, Failure> {
    let r = command(client, Stage::Ehlo, format!("EHLO {helo_name}\r\n")).await?;
    if r.code != 250 {
        return Err(Failure::refused(Stage::Ehlo, &r));
    }
    Ok(Capabilities::parse(&r.message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Security;
    use crate::smtp::Credentials;
    use crate::smtp::testing::{open_fails, settings};

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
