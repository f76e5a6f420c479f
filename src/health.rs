//! An account's health. Every outcome that says something about an account
//! (a test email, a delivery, a token request, an OAuth2 sign-in, an edit)
//! comes here as an `Observation`; `decide` alone chooses the next status,
//! and `Health::observe` alone writes it, together with the account event it
//! raises, in one commit. The rules read those events later (their event
//! feed): nothing here sends a notification.

use crate::domain::Account;
use crate::error::Result;
use crate::status::{AccountStatus, AuthMethod};
use crate::store::Store;
use crate::store::rules::EventRow;
use std::sync::Arc;
use tokio::sync::Notify;

/// What an account whose grant was revoked says, in the words users know.
pub const EXPIRED_MESSAGE: &str = "Authorization has expired. Reauthorize the account.";
/// The same in Chinese.
pub const EXPIRED_MESSAGE_ZH: &str = "授权已过期。请为帐户重新授权。";

/// Something that happened to an account.
#[derive(Debug, Clone)]
pub enum Observation {
    /// A test email went through; `report` is the report as JSON.
    TestPassed { report: String },
    /// A test email failed. `reauthorize` when the provider refused the
    /// grant; `message` is what the account shows, in the tester's language.
    TestFailed {
        reauthorize: bool,
        message: String,
        report: String,
    },
    /// A message went out through the account.
    Delivered,
    /// A delivery failed for a reason in the account's configuration.
    DeliveryRefused { message: String },
    /// The SMTP server refused an access token that was just issued.
    FreshTokenRefused,
    /// The token endpoint said the grant is gone (`invalid_grant` …).
    GrantRevoked,
    /// The token endpoint refused the client's configuration.
    TokenRequestRefused { message: String },
    /// A person completed the OAuth2 sign-in.
    Authorized,
    /// The account's settings were saved. `oauth_start` is where an OAuth2
    /// account whose OAuth settings changed starts again.
    Reconfigured {
        connection_changed: bool,
        oauth_changed: bool,
        auth_method: AuthMethod,
        oauth_start: AccountStatus,
    },
}

/// The kinds of account event the built-in rules listen for.
pub mod event {
    /// The account's OAuth2 grant was revoked.
    pub const AUTHORIZATION_EXPIRED: &str = "account.authorization_expired";
    /// The account fails for a reason a person must fix.
    pub const FAILING: &str = "account.failing";
}

/// An account's next state, as `decide` chose it.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub status: AccountStatus,
    pub message: Option<String>,
    /// The report to keep as the last one; None keeps the previous.
    pub report: Option<String>,
    /// The event to raise, if the account enters this status.
    pub event: Option<EventKind>,
}

/// An account event: its type and severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    AuthorizationExpired,
    Failing,
}

impl EventKind {
    fn kind(self) -> &'static str {
        match self {
            EventKind::AuthorizationExpired => event::AUTHORIZATION_EXPIRED,
            EventKind::Failing => event::FAILING,
        }
    }

    fn severity(self) -> &'static str {
        match self {
            EventKind::AuthorizationExpired => "error",
            EventKind::Failing => "warning",
        }
    }

    fn title(self, account: &str) -> String {
        match self {
            EventKind::AuthorizationExpired => format!("Mail account \"{account}\": authorization has expired"),
            EventKind::Failing => format!("Mail account \"{account}\" is failing"),
        }
    }
}

/// The next state of an account in `current` after `observation`; None when
/// nothing changes. A failed test email is shown on the account but raises
/// no event: the person who ran it is looking at the report.
pub fn decide(current: AccountStatus, observation: Observation) -> Option<Transition> {
    use AccountStatus as S;
    let to = |status, message: Option<String>, report, event| {
        Some(Transition {
            status,
            message,
            report,
            event,
        })
    };
    match observation {
        Observation::TestPassed { report } => to(S::Ready, None, Some(report), None),
        Observation::TestFailed {
            reauthorize: true,
            message,
            report,
        } => to(
            S::AuthorizationExpired,
            Some(message),
            Some(report),
            Some(EventKind::AuthorizationExpired),
        ),
        Observation::TestFailed { message, report, .. } => to(S::Failing, Some(message), Some(report), None),
        Observation::Delivered if current == S::Ready => None,
        Observation::Delivered | Observation::Authorized => to(S::Ready, None, None, None),
        Observation::DeliveryRefused { message } => to(S::Failing, Some(message), None, Some(EventKind::Failing)),
        Observation::FreshTokenRefused | Observation::GrantRevoked => to(
            S::AuthorizationExpired,
            Some(EXPIRED_MESSAGE.into()),
            None,
            Some(EventKind::AuthorizationExpired),
        ),
        Observation::TokenRequestRefused { message } => to(
            S::Failing,
            Some(format!("OAuth2 token request refused: {message}")),
            None,
            Some(EventKind::Failing),
        ),
        Observation::Reconfigured {
            connection_changed,
            oauth_changed,
            auth_method,
            oauth_start,
        } => {
            // A change to how Herald connects or signs in has not been proven yet.
            if !connection_changed && !oauth_changed {
                return None;
            }
            let status = if auth_method == AuthMethod::OAuth2 && oauth_changed {
                oauth_start
            } else if auth_method == AuthMethod::OAuth2 && current == S::AuthorizationRequired {
                S::AuthorizationRequired
            } else {
                S::Unverified
            };
            to(status, None, None, None)
        }
    }
}

/// Writes accounts' states: the one place that does.
#[derive(Clone)]
pub struct Health {
    store: Store,
    /// Wakes the rules' event feed when an event was written.
    events: Arc<Notify>,
    /// Wakes the delivery worker when held messages are released.
    wake: Arc<Notify>,
}

/// What an observation left: the account's status, and how many of its held
/// messages it released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observed {
    pub status: AccountStatus,
    pub released: u64,
}

/// Whether an account in `status` sends again, so that the messages held for
/// it (a person had to act) go back to the queue.
fn releases_held(status: AccountStatus) -> bool {
    matches!(status, AccountStatus::Ready | AccountStatus::Unverified)
}

impl Health {
    /// `events` is notified after each account event is committed, `wake`
    /// after held messages were released.
    pub fn new(store: Store, events: Arc<Notify>, wake: Arc<Notify>) -> Health {
        Health { store, events, wake }
    }

    /// Records what happened to `account` (as the caller last read it) and
    /// answers its status now. An event is raised only on entering a status:
    /// an account already failing does not warn its admins again. An account
    /// that sends again (a test passed, an edit, a delivery, a sign-in)
    /// releases the messages held while it needed a person.
    pub async fn observe(&self, account: &Account, observation: Observation) -> Result<Observed> {
        let known = account.status;
        let Some(t) = decide(known, observation) else {
            return Ok(Observed {
                status: known,
                released: 0,
            });
        };
        let event = match t.event {
            Some(kind) => {
                // The caller's copy may be old: compare with the stored status.
                let current = self.store.account_by_id(&account.id).await?.map(|r| r.status);
                (current != Some(t.status)).then(|| EventRow {
                    id: crate::store::new_id(),
                    tenant_id: account.tenant_id.clone(),
                    kind: kind.kind().into(),
                    severity: kind.severity().into(),
                    source: Some("herald".into()),
                    title: kind.title(&account.name),
                    message: t.message.clone(),
                    data: Some(
                        serde_json::json!({
                            "account_id": account.id,
                            "account_name": account.name,
                            "provider": account.provider,
                        })
                        .to_string(),
                    ),
                    created_at: crate::now_ms(),
                })
            }
            None => None,
        };
        self.store
            .set_account_status(
                &account.id,
                t.status.as_str(),
                t.message.as_deref(),
                t.report.as_deref(),
                event.as_ref(),
            )
            .await?;
        if event.is_some() {
            self.events.notify_one();
        }
        let released = if releases_held(t.status) {
            self.store.release_held(&account.id).await?
        } else {
            0
        };
        if released > 0 {
            tracing::info!(account = %account.id, released, "held messages released");
            self.wake.notify_one();
        }
        Ok(Observed {
            status: t.status,
            released,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AccountStatus as S;

    #[test]
    fn deliveries_and_sign_ins_make_an_account_ready() {
        assert_eq!(
            decide(S::Ready, Observation::Delivered),
            None,
            "no write when nothing changes"
        );
        let t = decide(S::Failing, Observation::Delivered).expect("a change");
        assert_eq!((t.status, t.event), (S::Ready, None));
        let t = decide(S::AuthorizationExpired, Observation::Authorized).expect("a change");
        assert_eq!(t.status, S::Ready);
    }

    #[test]
    fn revoked_grants_expire_the_account_and_raise_an_event() {
        for o in [Observation::FreshTokenRefused, Observation::GrantRevoked] {
            let t = decide(S::Ready, o).expect("a change");
            assert_eq!(t.status, S::AuthorizationExpired);
            assert_eq!(t.message.as_deref(), Some(EXPIRED_MESSAGE));
            assert_eq!(t.event, Some(EventKind::AuthorizationExpired));
        }
    }

    #[test]
    fn a_failed_test_shows_on_the_account_without_an_event() {
        let t = decide(
            S::Ready,
            Observation::TestFailed {
                reauthorize: false,
                message: "535 — check the password".into(),
                report: "{}".into(),
            },
        )
        .expect("a change");
        assert_eq!((t.status, t.event), (S::Failing, None));
        assert_eq!(t.report.as_deref(), Some("{}"));
    }

    #[test]
    fn edits_reset_what_they_touch() {
        let edit = |c, o, m, start| Observation::Reconfigured {
            connection_changed: c,
            oauth_changed: o,
            auth_method: m,
            oauth_start: start,
        };
        assert_eq!(
            decide(S::Ready, edit(false, false, AuthMethod::Password, S::Unverified)),
            None
        );
        let t = decide(S::Ready, edit(true, false, AuthMethod::Password, S::Unverified)).expect("a change");
        assert_eq!(t.status, S::Unverified);
        let t = decide(
            S::Ready,
            edit(false, true, AuthMethod::OAuth2, S::AuthorizationRequired),
        )
        .expect("a change");
        assert_eq!(t.status, S::AuthorizationRequired);
        let t = decide(
            S::AuthorizationRequired,
            edit(true, false, AuthMethod::OAuth2, S::Unverified),
        )
        .expect("a change");
        assert_eq!(t.status, S::AuthorizationRequired, "still nobody signed in");
    }
}
