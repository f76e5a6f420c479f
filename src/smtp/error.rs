//! What a failed session saw: the stage it stopped at, and either the
//! server's parsed reply or a condition Herald detected itself. Callers ask
//! the predicates (`is_transient`, `stage`, `reply`) rather than reading
//! reply text; `diagnosis` turns the same structure into a class and a hint.

use serde::{Deserialize, Serialize};

/// Where in the session something failed (or `done`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Dns,
    /// Reaching the server through the account's proxy.
    Proxy,
    Connect,
    Tls,
    Greeting,
    Ehlo,
    Starttls,
    OauthToken,
    Auth,
    MailFrom,
    RcptTo,
    Data,
    Done,
}

impl Stage {
    /// The stage's name in reports, logs and the provider catalog.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Dns => "dns",
            Stage::Proxy => "proxy",
            Stage::Connect => "connect",
            Stage::Tls => "tls",
            Stage::Greeting => "greeting",
            Stage::Ehlo => "ehlo",
            Stage::Starttls => "starttls",
            Stage::OauthToken => "oauth_token",
            Stage::Auth => "auth",
            Stage::MailFrom => "mail_from",
            Stage::RcptTo => "rcpt_to",
            Stage::Data => "data",
            Stage::Done => "done",
        }
    }
}

/// A failure Herald detected itself, with no reply to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    DnsFailed,
    ConnectRefused,
    ConnectTimeout,
    /// The host resolves only to addresses a tenant may not reach (`netguard`).
    AddressNotAllowed,
    /// The certificate is issued by an authority that is not trusted.
    TlsUntrusted,
    /// The certificate has expired.
    TlsExpired,
    /// The certificate is not valid yet.
    TlsNotYetValid,
    /// The certificate is for other host names.
    TlsWrongHost,
    /// The certificate is signed by itself (the server's own, not a CA's).
    TlsSelfSigned,
    /// A CA certificate is presented as the server's own (the one-step
    /// `openssl req -x509` certificate, pasted as `tls.ca_pem`).
    TlsCaAsServer,
    /// The certificate is not the one pinned by `tls.pin_sha256`.
    TlsPinMismatch,
    TlsNotTls,
    TlsFailed,
    StarttlsMissing,
    AuthUnsupported,
    AuthNotOffered,
    Timeout,
    Closed,
    /// The OAuth2 grant was revoked or expired (invalid_grant and friends).
    OauthExpired,
    /// The token endpoint refused the client or scope.
    OauthConfiguration,
    /// The token endpoint is down, slow or unreachable.
    OauthUnavailable,
    /// The proxy cannot be resolved or connected to.
    ProxyUnreachable,
    /// The proxy refused the username and password (or wants some).
    ProxyAuthFailed,
    /// The proxy could not or would not reach the server.
    ProxyTargetRefused,
    /// The proxy does not speak the protocol of its kind.
    ProxyProtocol,
}

impl Condition {
    /// The condition's name in the provider catalog's hints.
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::DnsFailed => "dns_failed",
            Condition::ConnectRefused => "connect_refused",
            Condition::ConnectTimeout => "connect_timeout",
            Condition::AddressNotAllowed => "address_not_allowed",
            Condition::TlsUntrusted => "tls_untrusted",
            Condition::TlsExpired => "tls_expired",
            Condition::TlsNotYetValid => "tls_not_yet_valid",
            Condition::TlsWrongHost => "tls_wrong_host",
            Condition::TlsSelfSigned => "tls_self_signed",
            Condition::TlsCaAsServer => "tls_ca_as_server",
            Condition::TlsPinMismatch => "tls_pin_mismatch",
            Condition::TlsNotTls => "tls_not_tls",
            Condition::TlsFailed => "tls_failed",
            Condition::StarttlsMissing => "starttls_missing",
            Condition::AuthUnsupported => "auth_unsupported",
            Condition::AuthNotOffered => "auth_not_offered",
            Condition::Timeout => "timeout",
            Condition::Closed => "closed",
            Condition::OauthExpired => "oauth_expired",
            Condition::OauthConfiguration => "oauth_configuration",
            Condition::OauthUnavailable => "oauth_unavailable",
            Condition::ProxyUnreachable => "proxy_unreachable",
            Condition::ProxyAuthFailed => "proxy_auth_failed",
            Condition::ProxyTargetRefused => "proxy_target_refused",
            Condition::ProxyProtocol => "proxy_protocol",
        }
    }

    /// True when the same attempt may work later unchanged: the network or
    /// the server was busy, not the account's settings wrong.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            Condition::ConnectRefused
                | Condition::ConnectTimeout
                | Condition::Timeout
                | Condition::Closed
                | Condition::OauthUnavailable
                | Condition::ProxyUnreachable
                | Condition::ProxyTargetRefused
        )
    }
}

/// A parsed server reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// The three-digit reply code.
    pub code: u16,
    /// Enhanced status code (RFC 3463) such as `5.7.8`, when the server sent one.
    pub enhanced: Option<String>,
    /// The reply text, continuation lines joined with newlines.
    pub text: String,
}

impl Reply {
    pub(crate) fn from_response(r: &smtp_proto::Response<String>) -> Reply {
        let enhanced = (r.esc[0] != 0).then(|| format!("{}.{}.{}", r.esc[0], r.esc[1], r.esc[2]));
        Reply {
            code: r.code,
            enhanced,
            text: r.message.clone(),
        }
    }

    /// A 4xx reply: the server asks to try again later.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// The reply as one line, as people quote it: `535 5.7.8 Bad credentials`.
    pub fn one_line(&self) -> String {
        let text = self.text.replace('\n', " ");
        match &self.enhanced {
            Some(e) => format!("{} {} {}", self.code, e, text),
            None => format!("{} {}", self.code, text),
        }
    }
}

/// Why a session failed.
#[derive(Debug, Clone)]
pub struct Failure {
    /// Where the session stopped.
    pub stage: Stage,
    /// The server's refusal, when there was one.
    pub reply: Option<Reply>,
    /// Herald's own reason, when there was no reply to read.
    pub condition: Option<Condition>,
    /// What Herald saw, in English, for logs and the report when there is no reply.
    pub detail: String,
    /// The certificate the server presented, when TLS refused it.
    pub certificate: Option<Box<super::certificate::PeerCertificate>>,
}

impl Failure {
    /// The server refused at `stage` with `reply`.
    pub fn from_reply(stage: Stage, reply: Reply) -> Failure {
        Failure {
            stage,
            detail: reply.one_line(),
            reply: Some(reply),
            condition: None,
            certificate: None,
        }
    }

    /// The server answered `r` at `stage` where Herald expected another code.
    pub(crate) fn refused(stage: Stage, r: &smtp_proto::Response<String>) -> Failure {
        Failure::from_reply(stage, Reply::from_response(r))
    }

    /// Herald stopped at `stage` for a reason of its own.
    pub fn condition(stage: Stage, condition: Condition, detail: impl Into<String>) -> Failure {
        Failure {
            stage,
            reply: None,
            condition: Some(condition),
            detail: detail.into(),
            certificate: None,
        }
    }

    /// The failure with the certificate the server presented.
    pub fn with_certificate(mut self, certificate: super::certificate::PeerCertificate) -> Failure {
        self.certificate = Some(Box::new(certificate));
        self
    }

    /// Where the session stopped.
    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// The server's reply, when the failure is a refusal rather than a condition.
    pub fn reply(&self) -> Option<&Reply> {
        self.reply.as_ref()
    }

    /// True when retrying the same attempt later may succeed: a 4xx reply, or
    /// a lost, refused or slow connection.
    pub fn is_transient(&self) -> bool {
        match (&self.reply, self.condition) {
            (Some(r), _) => r.is_transient(),
            (None, Some(c)) => c.is_transient(),
            (None, None) => false,
        }
    }

    /// True when retrying unchanged will not help: a refusal that is not 4xx,
    /// or a condition that only a change of settings fixes.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn is_permanent(&self) -> bool {
        !self.is_transient()
    }

    /// A failure from mail-send's client at `stage`; `closed` tells an
    /// unreadable reply from a server that hung up (EOF seen on the stream).
    pub(crate) fn from_client(stage: Stage, closed: bool, e: mail_send::Error) -> Failure {
        match e {
            mail_send::Error::UnexpectedReply(r) | mail_send::Error::AuthenticationFailed(r) => {
                Failure::refused(stage, &r)
            }
            mail_send::Error::Timeout => {
                Failure::condition(stage, Condition::Timeout, "the server did not answer in time")
            }
            mail_send::Error::UnparseableReply if closed => {
                Failure::condition(stage, Condition::Closed, "the server closed the connection")
            }
            mail_send::Error::Io(io) => Failure::condition(stage, Condition::Closed, format!("connection lost: {io}")),
            other => Failure::condition(stage, Condition::Closed, format!("protocol error: {other}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(code: u16) -> Failure {
        Failure::from_reply(
            Stage::RcptTo,
            Reply {
                code,
                enhanced: None,
                text: "x".into(),
            },
        )
    }

    #[test]
    fn transient_and_permanent_by_reply_code_and_condition() {
        assert!(refused(451).is_transient() && !refused(451).is_permanent());
        assert!(refused(550).is_permanent() && !refused(550).is_transient());
        let lost = Failure::condition(Stage::Data, Condition::Closed, "x");
        assert!(lost.is_transient());
        let untrusted = Failure::condition(Stage::Tls, Condition::TlsUntrusted, "x");
        assert!(untrusted.is_permanent());
        assert_eq!(untrusted.stage(), Stage::Tls);
        assert!(untrusted.reply().is_none());
        assert_eq!(refused(550).reply().map(|r| r.code), Some(550));
    }
}
