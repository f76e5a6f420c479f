//! Signing in: AUTH PLAIN or LOGIN with a password, AUTH XOAUTH2 with an
//! OAuth2 access token. Every client line is masked in the transcript while
//! this phase runs.

use super::client::{Client, command, transcript_of};
use super::ehlo::Capabilities;
use super::error::{Condition, Failure, Stage};
use crate::secrets::Secret;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use smtp_proto::Response;
use tokio::io::{AsyncRead, AsyncWrite};

/// How to sign in.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// No AUTH: a relay that trusts the connection.
    None,
    /// Password, app password, authorization code or API key: AUTH PLAIN or LOGIN.
    Password { username: String, secret: Secret },
    /// An OAuth2 access token: AUTH XOAUTH2.
    XOAuth2 { username: String, token: Secret },
}

/// Signs in with `credentials` using a mechanism the server offered.
pub(crate) async fn authenticate<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut Client<S>,
    caps: &Capabilities,
    credentials: &Credentials,
) -> Result<(), Failure> {
    let reply = match credentials {
        Credentials::None => return Ok(()),
        Credentials::Password { username, secret } => {
            if !caps.auth_offered {
                return Err(unable(Condition::AuthNotOffered, "the server offers no AUTH command"));
            }
            if !caps.auth_plain && !caps.auth_login {
                return Err(unable(
                    Condition::AuthUnsupported,
                    "the server offers neither AUTH PLAIN nor AUTH LOGIN",
                ));
            }
            masked(client, async |client| {
                if caps.auth_plain {
                    let token = B64.encode(format!("\0{}\0{}", username, secret.expose()));
                    command(client, Stage::Auth, format!("AUTH PLAIN {token}\r\n")).await
                } else {
                    login(client, username, secret).await
                }
            })
            .await?
        }
        Credentials::XOAuth2 { username, token } => {
            if !caps.auth_xoauth2 {
                return Err(unable(
                    Condition::AuthUnsupported,
                    "the server does not offer AUTH XOAUTH2",
                ));
            }
            masked(client, async |client| {
                let payload = B64.encode(format!("user={}\x01auth=Bearer {}\x01\x01", username, token.expose()));
                let r = command(client, Stage::Auth, format!("AUTH XOAUTH2 {payload}\r\n")).await?;
                // Google answers a bad token with 334 and a base64 JSON error; the
                // client must answer with an empty line to get the final 535.
                if r.code == 334 {
                    return command(client, Stage::Auth, b"\r\n").await;
                }
                Ok(r)
            })
            .await?
        }
    };
    if reply.code != 235 {
        return Err(Failure::refused(Stage::Auth, &reply));
    }
    Ok(())
}

/// Signing in cannot even start: nothing the server offers fits.
fn unable(condition: Condition, detail: &str) -> Failure {
    Failure::condition(Stage::Auth, condition, detail)
}

/// Runs `exchange` with the transcript masking client lines, unmasked again
/// however it ends.
async fn masked<S: AsyncRead + AsyncWrite + Unpin, T>(
    client: &mut Client<S>,
    exchange: impl AsyncFnOnce(&mut Client<S>) -> Result<T, Failure>,
) -> Result<T, Failure> {
    let transcript = transcript_of(client).clone();
    transcript.begin_auth();
    let result = exchange(client).await;
    transcript.end_auth();
    result
}

/// AUTH LOGIN: user name and password each answer a 334 prompt; any other
/// reply ends the exchange and is returned as it is.
async fn login<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut Client<S>,
    username: &str,
    secret: &Secret,
) -> Result<Response<String>, Failure> {
    let r = command(client, Stage::Auth, b"AUTH LOGIN\r\n").await?;
    if r.code != 334 {
        return Ok(r);
    }
    let r = command(client, Stage::Auth, format!("{}\r\n", B64.encode(username))).await?;
    if r.code != 334 {
        return Ok(r);
    }
    command(client, Stage::Auth, format!("{}\r\n", B64.encode(secret.expose()))).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Security;
    use crate::smtp::testing::{open_and_quit, open_fails, password, settings};

    const EHLO_AUTH: [&str; 4] = [
        "S: 220 mx.test",
        "C: EHLO herald.test",
        "S: 250-mx.test",
        "S: 250 AUTH PLAIN LOGIN",
    ];

    #[tokio::test]
    async fn auth_plain_refused_carries_the_enhanced_code_and_is_masked() {
        let script = [
            &EHLO_AUTH[..],
            &[
                "C: AUTH PLAIN AHVzZXIAcGFzcw==",
                "S: 535 5.7.8 Username and Password not accepted",
            ],
        ]
        .concat();
        let (f, transcript, _) = open_fails(&script, &settings(Security::None), &password()).await;
        assert_eq!(f.stage(), Stage::Auth);
        let reply = f.reply().expect("the server's reply");
        assert_eq!((reply.code, reply.enhanced.as_deref()), (535, Some("5.7.8")));
        let lines: Vec<String> = transcript.lines().into_iter().map(|l| l.line).collect();
        assert!(lines.contains(&"AUTH PLAIN ********".to_string()), "{lines:?}");
        assert!(!lines.iter().any(|l| l.contains("AHVzZXIAcGFzcw")), "{lines:?}");
    }

    #[tokio::test]
    async fn auth_login_answers_each_prompt() {
        open_and_quit(
            &[
                "S: 220 mx.test",
                "C: EHLO herald.test",
                "S: 250-mx.test",
                "S: 250 AUTH LOGIN",
                "C: AUTH LOGIN",
                "S: 334 VXNlcm5hbWU6",
                "C: dXNlcg==",
                "S: 334 UGFzc3dvcmQ6",
                "C: cGFzcw==",
                "S: 235 2.7.0 Authentication successful",
            ],
            &settings(Security::None),
            &password(),
            None,
        )
        .await;
    }

    #[tokio::test]
    async fn xoauth2_refusal_is_read_after_the_challenge_is_answered_with_an_empty_line() {
        let script = [
            "S: 220 mx.test",
            "C: EHLO herald.test",
            "S: 250-mx.test",
            "S: 250 AUTH LOGIN PLAIN XOAUTH2",
            "C: AUTH XOAUTH2 dXNlcj11c2VyAWF1dGg9QmVhcmVyIHRvawEB",
            "S: 334 eyJzdGF0dXMiOiI0MDAiLCJzY2hlbWVzIjoiQmVhcmVyIiwic2NvcGUiOiJodHRwczovL21haWwuZ29vZ2xlLmNvbS8ifQ==",
            "C: ",
            "S: 535-5.7.8 Username and Password not accepted. For more information, go to",
            "S: 535 5.7.8  https://support.google.com/mail/?p=BadCredentials",
        ];
        let credentials = Credentials::XOAuth2 {
            username: "user".into(),
            token: Secret::new("tok"),
        };
        let (f, transcript, _) = open_fails(&script, &settings(Security::None), &credentials).await;
        assert_eq!(f.stage(), Stage::Auth);
        let reply = f.reply().expect("the final reply, not the challenge");
        assert_eq!((reply.code, reply.enhanced.as_deref()), (535, Some("5.7.8")));
        let lines: Vec<String> = transcript.lines().into_iter().map(|l| l.line).collect();
        assert!(
            !lines.iter().any(|l| l.contains("dXNlcj11c2Vy")),
            "the token is masked: {lines:?}"
        );
    }

    #[tokio::test]
    async fn a_password_with_no_auth_offered_is_not_sent() {
        let (f, _, heard) = open_fails(
            &["S: 220 mx.test", "C: EHLO herald.test", "S: 250 mx.test"],
            &settings(Security::None),
            &password(),
        )
        .await;
        assert_eq!((f.stage(), f.condition), (Stage::Auth, Some(Condition::AuthNotOffered)));
        assert_eq!(heard.bytes, b"EHLO herald.test\r\n");
    }
}
