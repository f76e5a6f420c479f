//! Opening an authenticated SMTP session for an account: the password from
//! the sealed secret, or an OAuth2 access token from the token manager, with
//! one forced refresh and retry when the server rejects a token that was not
//! fresh. Shared by the test email and the delivery worker.

use crate::accounts::{self, status};
use crate::app::App;
use crate::diagnosis::{Condition, Failure, Stage};
use crate::oauth::tokens::TokenProblem;
use crate::smtp::{Credentials, Session, Transcript};
use crate::store::accounts::AccountRow;

fn token_failure(p: &TokenProblem) -> Failure {
    let condition = match p {
        TokenProblem::Expired(_) => Condition::OauthExpired,
        TokenProblem::Configuration(_) => Condition::OauthConfiguration,
        TokenProblem::Unavailable(_) => Condition::OauthUnavailable,
    };
    Failure::condition(Stage::OauthToken, condition, p.message().to_string())
}

impl App {
    pub async fn open_session(&self, row: &AccountRow, transcript: &Transcript) -> Result<Session, Failure> {
        let settings = accounts::server_settings(row);
        if row.auth_method != "oauth2" {
            let credentials = accounts::credentials(row, &self.keys)
                .map_err(|e| Failure::condition(Stage::Auth, Condition::AuthUnsupported, e.to_string()))?;
            return Session::open(&settings, &credentials, transcript.clone()).await;
        }
        let username = row.username.clone().unwrap_or_else(|| row.from_address.clone());
        let mut token = self.access_token(row, false).await.map_err(|p| token_failure(&p))?;
        loop {
            transcript.note(if token.fresh {
                "using a new OAuth2 access token"
            } else {
                "using the cached OAuth2 access token"
            });
            let credentials = Credentials::XOAuth2 {
                username: username.clone(),
                token: token.token.clone(),
            };
            match Session::open(&settings, &credentials, transcript.clone()).await {
                // The server refused a token we had not just obtained: it may
                // have been revoked early. Get a new one and try once more.
                Err(f) if f.stage == Stage::Auth && f.reply.is_some() && !token.fresh => {
                    transcript.note("the server refused the access token: requesting a new one");
                    token = self.access_token(row, true).await.map_err(|p| token_failure(&p))?;
                }
                // Refused with a token that is fresh: the grant no longer lets us send.
                Err(f) if f.stage == Stage::Auth && f.reply.is_some() => {
                    let _ = self
                        .mark_account(row, status::AUTHORIZATION_EXPIRED, accounts::EXPIRED_MESSAGE, None)
                        .await;
                    return Err(f);
                }
                other => return other,
            }
        }
    }
}
