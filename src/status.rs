//! The states and kinds the store writes as text, as types: parsed once when
//! a row is read, compared as enums everywhere after, written back as their
//! `as_str`.

use serde::{Deserialize, Serialize};

macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $text)] $variant),+
        }

        // Not every enum needs every helper.
        #[allow(dead_code)]
        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored and serialized form.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// The value a stored text names, if any.
            pub fn parse(s: &str) -> Option<$name> {
                match s {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum! {
    /// Where an account stands; `health` alone moves it from one to another.
    AccountStatus {
        /// Saved, not yet proven by a test email or a delivery.
        Unverified = "unverified",
        /// The last test or delivery went through.
        Ready = "ready",
        /// The last test or delivery failed; `status_message` and `last_report` say why.
        Failing = "failing",
        /// OAuth2: no tokens yet, a person must sign in.
        AuthorizationRequired = "authorization_required",
        /// OAuth2: the provider revoked the grant.
        AuthorizationExpired = "authorization_expired",
    }
}

impl AccountStatus {
    /// Stored text that names no status (a row written by a newer version)
    /// reads as unverified: the next test or delivery settles it.
    pub fn from_stored(s: &str) -> AccountStatus {
        AccountStatus::parse(s).unwrap_or(AccountStatus::Unverified)
    }

    /// A person must sign in before the account can send: its messages are held.
    pub fn awaits_authorization(self) -> bool {
        matches!(
            self,
            AccountStatus::AuthorizationRequired | AccountStatus::AuthorizationExpired
        )
    }
}

text_enum! {
    /// How an account signs in to its SMTP server.
    AuthMethod {
        /// No AUTH (a relay that trusts the network).
        None = "none",
        /// Password, app password, authorization code or API key.
        Password = "password",
        /// XOAUTH2 with an OAuth2 access token.
        OAuth2 = "oauth2",
        /// XOAUTH2 as the sender, with a token a Google service account's
        /// key obtains through domain-wide delegation (JWT bearer grant).
        GoogleServiceAccount = "google_service_account",
    }
}

impl AuthMethod {
    /// Signs in with an OAuth2 access token (XOAUTH2).
    pub fn uses_tokens(self) -> bool {
        matches!(self, AuthMethod::OAuth2 | AuthMethod::GoogleServiceAccount)
    }
}

text_enum! {
    /// Where a message is in its life.
    MessageStatus {
        Queued = "queued",
        Sending = "sending",
        Sent = "sent",
        Deferred = "deferred",
        Held = "held",
        Failed = "failed",
        Cancelled = "cancelled",
    }
}

text_enum! {
    /// How a message goes out: the worker hands it to this channel's sender.
    Channel {
        /// SMTP through the message's account.
        Email = "email",
    }
}

// The enum comes from `text_enum!`, which derives no Default.
#[allow(clippy::derivable_impls)]
impl Default for Channel {
    fn default() -> Channel {
        Channel::Email
    }
}

text_enum! {
    /// Which account a message's route chose, stored as `kind: reason`.
    RouteKind {
        /// The account the request named.
        Account = "account",
        /// The tenant's default account.
        TenantDefault = "tenant_default",
        /// The platform's default account, under the tenant's name.
        PlatformDefault = "platform_default",
        /// No account: the capture mailbox.
        Capture = "capture",
    }
}

impl RouteKind {
    /// The kind of a stored route text (`platform_default: …`).
    pub fn of(route: &str) -> Option<RouteKind> {
        RouteKind::parse(route.split(':').next().unwrap_or("").trim())
    }
}
