//! The provider catalog: presets for well-known mail services, compiled in from
//! `catalog/providers.toml` so that reviewers change data, not code.
//!
//! Each provider carries connection defaults (host, port per security mode),
//! the form of its login name and the kind of secret it wants, OAuth2
//! endpoints where offered, published limits, and hints keyed by the replies
//! the provider is known to give. Generic hints (no provider) apply to every
//! account after the provider's own.

use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

const CATALOG_TOML: &str = include_str!("../catalog/providers.toml");

/// How a connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// Plain SMTP, no TLS at all (local relays only).
    None,
    /// Implicit TLS from the first byte (SMTPS, usually port 465).
    Tls,
    /// Plain connection upgraded with STARTTLS, which is then required.
    Starttls,
}

impl Security {
    pub fn as_str(self) -> &'static str {
        match self {
            Security::None => "none",
            Security::Tls => "tls",
            Security::Starttls => "starttls",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "none" => Some(Security::None),
            "tls" => Some(Security::Tls),
            "starttls" => Some(Security::Starttls),
            _ => None,
        }
    }
}

/// Port per security mode; a mode the provider does not offer is absent.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ports {
    pub tls: Option<u16>,
    pub starttls: Option<u16>,
    /// Plain port (25 and the like): offered by some providers, never the default.
    pub none: Option<u16>,
    /// Further ports known to work (2525, 2587, 994 …), informational.
    #[serde(default)]
    pub other: Vec<u16>,
}

impl Ports {
    pub fn for_security(&self, security: Security) -> Option<u16> {
        match security {
            Security::Tls => self.tls,
            Security::Starttls => self.starttls,
            Security::None => self.none,
        }
    }
}

/// What the login name looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UsernameForm {
    /// The full sender address.
    Address,
    /// A fixed literal, given in `username_literal` (SendGrid's `apikey`).
    Literal,
    /// A separate login issued by the provider (SES SMTP user, Mailgun login …).
    Custom,
}

/// What the secret is called at the provider, so forms and hints use its words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretKind {
    Password,
    AppPassword,
    /// 授权码: a code generated in the mailbox settings (QQ, 163, Sina …).
    AuthorizationCode,
    /// 客户端专用密码: Tencent Exmail with secure login, Aliyun's 三方客户端安全密码 …
    ClientPassword,
    ApiKey,
    SmtpCredential,
    /// OAuth2 only: no password sign-in is accepted.
    OauthOnly,
}

/// Text in the two languages Herald speaks.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Localized {
    pub en: String,
    pub zh: String,
}

/// OAuth2 endpoints of a provider; `{tenant}` in a URL is the directory tenant.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthPreset {
    /// `google` or `microsoft`.
    pub provider: String,
    pub authorize_url: String,
    pub token_url: String,
    pub scope: String,
    /// Scope for the client-credentials (app-only) flow, where offered.
    pub client_credentials_scope: Option<String>,
    /// Extra query parameters for the authorize URL (`access_type=offline` …).
    #[serde(default)]
    pub authorize_params: Vec<(String, String)>,
}

/// Published sending limits; absent when the provider publishes none.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub per_minute: Option<u32>,
    pub per_day: Option<u32>,
    pub recipients_per_message: Option<u32>,
    pub connections: Option<u32>,
}

/// Failure classes, as the test report and the delivery log show them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    /// Will not succeed by retrying (5xx for a recipient or the content).
    Permanent,
    /// May succeed later (4xx, network trouble, timeouts).
    Transient,
    /// The OAuth2 grant is gone: a person must sign in again.
    Reauthorize,
    /// A setting is wrong (host, port, security, credentials, provider switch).
    Configuration,
}

/// One hint: matches a failure by stage, reply code, enhanced code, words of
/// the reply or a condition Herald itself detected, most specific first.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hint {
    /// Stage of the SMTP session (see `diagnosis::Stage`); any when absent.
    pub stage: Option<String>,
    /// Basic reply code (535); any when absent.
    pub code: Option<u16>,
    /// Enhanced status code or a prefix of it ("5.7.139", "5.7"); any when absent.
    pub enhanced: Option<String>,
    /// Words that must appear in the reply text (case-insensitive): refines a
    /// code match, never replaces it.
    pub contains: Option<String>,
    /// A condition detected without a reply: `dns_failed`, `connect_refused`,
    /// `connect_timeout`, `tls_untrusted`, `tls_self_signed`, `tls_ca_as_server`,
    /// `tls_expired`, `tls_not_yet_valid`, `tls_wrong_host`, `tls_pin_mismatch`,
    /// `tls_not_tls`, `tls_failed`, `starttls_missing`, `auth_unsupported`,
    /// `auth_not_offered`, `timeout`, `closed`, `proxy_unreachable`,
    /// `proxy_auth_failed`, `proxy_target_refused`, `proxy_protocol`. Hints may
    /// say `{sha256}`: the presented certificate's fingerprint.
    pub condition: Option<String>,
    /// Overrides the class derived from the code.
    pub class: Option<Class>,
    pub en: String,
    pub zh: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    /// Stable identifier used in the API (`gmail`, `qq`, `custom` …).
    pub id: String,
    pub name: Localized,
    /// Address domains served by this provider (catalog discovery).
    #[serde(default)]
    pub domains: Vec<String>,
    /// MX host patterns (`*.mail.protection.outlook.com`) that identify it.
    #[serde(default)]
    pub mx_patterns: Vec<String>,
    /// Submission host; empty for `custom` and for region-templated hosts.
    pub host: String,
    /// Other hosts (regions, legacy names), informational.
    #[serde(default)]
    pub alternate_hosts: Vec<String>,
    #[serde(default)]
    pub ports: Ports,
    /// Security used when a preset fills in an account.
    pub default_security: Option<Security>,
    pub username: UsernameForm,
    pub username_literal: Option<String>,
    pub secret_kind: SecretKind,
    /// Shown next to the secret field: where to get it.
    pub secret_help: Option<Localized>,
    pub oauth: Option<OAuthPreset>,
    #[serde(default)]
    pub limits: Limits,
    /// True when the facts come only from third-party sources (marked "(3p)").
    #[serde(default)]
    pub third_party: bool,
    #[serde(default)]
    pub hints: Vec<Hint>,
}

impl Provider {
    /// Port for a security mode, or the provider's default mode and port.
    pub fn default_endpoint(&self) -> Option<(Security, u16)> {
        let security = self.default_security?;
        Some((security, self.ports.for_security(security)?))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    #[serde(rename = "provider")]
    pub providers: Vec<Provider>,
    /// Hints that apply to every provider, after the provider's own.
    #[serde(rename = "generic_hint")]
    pub generic_hints: Vec<Hint>,
}

impl Catalog {
    /// The compiled-in catalog; parsed once, and a broken file fails the tests.
    pub fn get() -> &'static Catalog {
        static CATALOG: OnceLock<Catalog> = OnceLock::new();
        CATALOG
            .get_or_init(|| toml::from_str(CATALOG_TOML).expect("catalog/providers.toml is valid (checked by tests)"))
    }

    pub fn provider(&self, id: &str) -> Option<&Provider> {
        self.providers.iter().find(|p| p.id == id)
    }

    /// The provider an account uses: its preset, or for `custom` the preset
    /// whose SMTP host it typed by hand (`smtp.office365.com`), so that the
    /// hints know the server whichever the user picked.
    pub fn provider_of(&self, id: &str, host: &str) -> Option<&Provider> {
        if id != "custom" {
            return self.provider(id);
        }
        let host = host.trim_end_matches('.');
        self.providers
            .iter()
            .find(|p| p.id != "custom" && !p.host.is_empty() && p.host.eq_ignore_ascii_case(host))
            .or_else(|| self.provider(id))
    }

    /// The provider whose `domains` list this address domain.
    pub fn by_domain(&self, domain: &str) -> Option<&Provider> {
        let domain = domain.to_ascii_lowercase();
        self.providers.iter().find(|p| p.domains.contains(&domain))
    }

    /// The provider whose MX patterns match this MX host.
    pub fn by_mx(&self, mx_host: &str) -> Option<&Provider> {
        let host = mx_host.trim_end_matches('.').to_ascii_lowercase();
        self.providers
            .iter()
            .find(|p| p.mx_patterns.iter().any(|pat| host_matches(pat, &host)))
    }

    /// The provider whose submission host is this one (accounts typed in by hand).
    pub fn by_host(&self, host: &str) -> Option<&Provider> {
        let host = host.to_ascii_lowercase();
        self.providers
            .iter()
            .find(|p| p.host == host || p.alternate_hosts.contains(&host))
    }
}

/// `*.example.com` matches any subdomain of example.com; otherwise exact.
pub fn host_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(base) => host.len() > base.len() && host.ends_with(base) && host[..host.len() - base.len()].ends_with('.'),
        None => pattern == host,
    }
}
