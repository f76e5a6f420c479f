//! STARTTLS: turning a clear connection into a TLS one. A server that does
//! not offer it or refuses it ends the session; Herald never continues in
//! clear when the account asked for STARTTLS.

use super::client::{self, Client, command};
use super::dial::BoxStream;
use super::ehlo::Capabilities;
use super::error::{Condition, Failure, Stage};
use super::tls;
use std::time::Duration;

/// Sends STARTTLS and runs the handshake over the same stream; the client
/// comes back over TLS, to say EHLO again.
pub(crate) async fn starttls(
    mut client: Client<BoxStream>,
    caps: &Capabilities,
    connector: &tls::SessionTls,
    host: &str,
) -> Result<Client<BoxStream>, Failure> {
    if !caps.starttls {
        return Err(Failure::condition(
            Stage::Starttls,
            Condition::StarttlsMissing,
            "the server does not offer STARTTLS; Herald will not continue in clear",
        ));
    }
    let r = command(&mut client, Stage::Starttls, b"STARTTLS\r\n").await?;
    if r.code != 220 {
        return Err(Failure::refused(Stage::Starttls, &r));
    }
    let timeout: Duration = client.timeout;
    let transcript = client.stream.transcript;
    let tls = tls::handshake(connector, host, client.stream.inner, timeout, &transcript).await?;
    Ok(client::client(Box::new(tls), transcript, timeout))
}

#[cfg(test)]
mod tests {
    use crate::catalog::Security;
    use crate::smtp::testing::{SIGN_IN, open_and_quit, open_fails, password, settings, tls_acceptor};
    use crate::smtp::{Condition, Stage};

    #[tokio::test]
    async fn starttls_not_offered_stops_before_any_credential() {
        let (f, _, heard) = open_fails(
            &[
                "S: 220 mx.test",
                "C: EHLO herald.test",
                "S: 250-mx.test",
                "S: 250 AUTH PLAIN",
            ],
            &settings(Security::Starttls),
            &password(),
        )
        .await;
        assert_eq!(
            (f.stage(), f.condition),
            (Stage::Starttls, Some(Condition::StarttlsMissing))
        );
        assert_eq!(heard.bytes, b"EHLO herald.test\r\n", "no AUTH in clear");
    }

    #[tokio::test]
    async fn starttls_refused_is_a_starttls_failure_with_the_reply() {
        let (f, _, heard) = open_fails(
            &[
                "S: 220 mx.test",
                "C: EHLO herald.test",
                "S: 250-mx.test",
                "S: 250 STARTTLS",
                "C: STARTTLS",
                "S: 454 4.7.0 TLS not available due to temporary reason",
            ],
            &settings(Security::Starttls),
            &password(),
        )
        .await;
        assert_eq!((f.stage(), f.reply().map(|r| r.code)), (Stage::Starttls, Some(454)));
        assert!(f.is_transient());
        assert_eq!(heard.bytes, b"EHLO herald.test\r\nSTARTTLS\r\n");
    }

    #[tokio::test]
    async fn starttls_upgrades_the_dialed_stream_then_says_ehlo_again() {
        let (acceptor, ca_pem) = tls_acceptor();
        let mut settings = settings(Security::Starttls);
        settings.ca_pem = Some(ca_pem);
        let script = [
            &[
                "S: 220 mx.test",
                "C: EHLO herald.test",
                "S: 250-mx.test",
                "S: 250 STARTTLS",
                "C: STARTTLS",
                "S: 220 2.0.0 Ready to start TLS",
                "TLS",
            ][..],
            &SIGN_IN,
        ]
        .concat();
        let transcript = open_and_quit(&script, &settings, &password(), Some(acceptor)).await;
        let lines: Vec<String> = transcript.lines().into_iter().map(|l| l.line).collect();
        assert!(lines.iter().any(|l| l.starts_with("[TLS established")), "{lines:?}");
    }
}
