//! Turning a failed SMTP session into something a person can act on: the
//! stage it failed at, the parsed reply (code, enhanced code, text), a class
//! (permanent, transient, reauthorize, configuration) and a hint chosen from
//! the provider catalog by that structure, in the user's language.

use crate::catalog::{Catalog, Class, Hint, Provider};
use crate::i18n::Locale;
use crate::smtp::{Line, PeerCertificate};
use serde::{Deserialize, Serialize};

/// The session's failure types, re-exported where callers have always found them.
pub use crate::smtp::{Condition, Failure, Reply, Stage};

/// The class of a condition Herald detected itself.
fn condition_class(c: Condition) -> Class {
    match c {
        Condition::OauthExpired => Class::Reauthorize,
        c if c.is_transient() => Class::Transient,
        _ => Class::Configuration,
    }
}

/// The class from the reply code or the condition; a catalog hint may refine it.
fn base_class(f: &Failure, oauth: bool) -> Class {
    if let Some(c) = f.condition {
        return condition_class(c);
    }
    match &f.reply {
        Some(r) if r.is_transient() => Class::Transient,
        Some(_) if f.stage == Stage::Auth && oauth => Class::Reauthorize,
        Some(_) if matches!(f.stage, Stage::Auth | Stage::Greeting | Stage::Ehlo | Stage::Starttls) => {
            Class::Configuration
        }
        Some(r)
            if r.enhanced.as_deref().is_some_and(|e| {
                e.starts_with("5.7.0") || e.starts_with("5.7.57") || e.starts_with("5.7.30") || e.starts_with("5.7.139")
            }) =>
        {
            Class::Configuration
        }
        _ => Class::Permanent,
    }
}

/// The answer to a test email (and the record of a failed delivery attempt).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub ok: bool,
    pub stage: Stage,
    pub code: Option<u16>,
    pub enhanced_code: Option<String>,
    pub reply: Option<String>,
    pub class: Option<Class>,
    pub hint: Option<String>,
    pub transcript: Vec<Line>,
    pub elapsed_ms: u64,
    /// The certificate the server presented, when TLS refused it: check it,
    /// and pin it (`tls.pin_sha256` = its `sha256`) if it is the right one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<PeerCertificate>,
}

impl Report {
    pub fn success(reply: Option<&Reply>, transcript: Vec<Line>, elapsed_ms: u64) -> Report {
        Report {
            ok: true,
            stage: Stage::Done,
            code: reply.map(|r| r.code),
            enhanced_code: reply.and_then(|r| r.enhanced.clone()),
            reply: reply.map(|r| r.text.clone()),
            class: None,
            hint: None,
            transcript,
            elapsed_ms,
            certificate: None,
        }
    }

    pub fn failure(
        failure: &Failure,
        provider: Option<&Provider>,
        oauth: bool,
        locale: Locale,
        transcript: Vec<Line>,
        elapsed_ms: u64,
    ) -> Report {
        let mut diagnosis = diagnose(failure, provider, oauth, locale);
        let certificate = failure.certificate.as_deref().cloned();
        // Hints about a certificate name its fingerprint, to pin it by.
        let fingerprint = match (&certificate, locale) {
            (Some(c), _) => c.sha256.clone(),
            (None, Locale::En) => "the certificate's SHA-256 fingerprint".into(),
            (None, Locale::ZhCn) => "证书的 SHA-256 指纹".into(),
        };
        diagnosis.hint = diagnosis.hint.replace("{sha256}", &fingerprint);
        Report {
            ok: false,
            stage: failure.stage,
            code: failure.reply.as_ref().map(|r| r.code),
            enhanced_code: failure.reply.as_ref().and_then(|r| r.enhanced.clone()),
            reply: Some(
                failure
                    .reply
                    .as_ref()
                    .map(|r| r.text.clone())
                    .unwrap_or_else(|| failure.detail.clone()),
            ),
            class: Some(diagnosis.class),
            hint: Some(diagnosis.hint),
            transcript,
            elapsed_ms,
            certificate,
        }
    }

    /// A one-line summary for an account's status message and logs.
    pub fn summary(&self) -> String {
        if self.ok {
            return "test email accepted".into();
        }
        let mut s = format!("{} failed", self.stage.as_str());
        if let Some(code) = self.code {
            s.push_str(&format!(": {code}"));
            if let Some(e) = &self.enhanced_code {
                s.push_str(&format!(" {e}"));
            }
        }
        if let Some(r) = &self.reply {
            let r = r.replace('\n', " ");
            let r: String = r.chars().take(160).collect();
            s.push_str(&format!(" {r}"));
        }
        s
    }
}

pub struct Diagnosis {
    pub class: Class,
    pub hint: String,
}

/// Picks the hint: the provider's own hints first; for a server the catalog
/// does not know, any provider's hint whose reply is distinctive (enhanced
/// code and text: Office 365's `5.7.139 … SmtpClientAuthentication is
/// disabled` is Office 365 whatever the preset); then the generic ones; a
/// sentence built from the stage and class when nothing matches.
pub fn diagnose(failure: &Failure, provider: Option<&Provider>, oauth: bool, locale: Locale) -> Diagnosis {
    let catalog = Catalog::get();
    let own = provider.map(|p| p.hints.as_slice()).unwrap_or(&[]);
    let base = base_class(failure, oauth);
    let unknown_server = provider.is_none_or(|p| p.id == "custom");
    let distinctive = || {
        let hints: Vec<&Hint> = catalog
            .providers
            .iter()
            .flat_map(|p| &p.hints)
            .filter(|h| h.enhanced.is_some() && h.contains.is_some())
            .collect();
        best_hint_of(&hints, failure)
    };
    let hit = best_hint(own, failure)
        .or_else(|| unknown_server.then(distinctive).flatten())
        .or_else(|| best_hint(&catalog.generic_hints, failure));
    match hit {
        Some(h) => Diagnosis {
            // A reauthorization need outranks the catalog: it is about this account's grant.
            class: if base == Class::Reauthorize {
                base
            } else {
                h.class.unwrap_or(base)
            },
            hint: locale.pick(&h.en, &h.zh).to_string(),
        },
        None => Diagnosis {
            class: base,
            hint: fallback_hint(failure, base, locale),
        },
    }
}

/// Among the hints that match, the most specific one (most criteria given).
fn best_hint<'a>(hints: &'a [Hint], f: &Failure) -> Option<&'a Hint> {
    best_hint_of(&hints.iter().collect::<Vec<_>>(), f)
}

/// The most specific of `hints` that matches the failure.
fn best_hint_of<'a>(hints: &[&'a Hint], f: &Failure) -> Option<&'a Hint> {
    hints
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, h)| hint_matches(h, f))
        .max_by_key(|(i, h)| {
            let mut score = 0;
            if h.stage.is_some() {
                score += 1;
            }
            if h.code.is_some() {
                score += 2;
            }
            if let Some(e) = &h.enhanced {
                score += 2 + e.len();
            }
            if h.contains.is_some() {
                score += 4;
            }
            if h.condition.is_some() {
                score += 8;
            }
            // Earlier entries win ties (max_by_key keeps the last maximum).
            (score, std::cmp::Reverse(*i))
        })
        .map(|(_, h)| h)
}

fn hint_matches(h: &Hint, f: &Failure) -> bool {
    if let Some(stage) = &h.stage
        && stage != f.stage.as_str()
    {
        return false;
    }
    if let Some(cond) = &h.condition {
        // `contains` refines a condition by words of what Herald noted
        // (a token endpoint's error code, `unauthorized_client`).
        return f.condition.map(|c| c.as_str()) == Some(cond.as_str())
            && h.contains
                .as_ref()
                .is_none_or(|w| f.detail.to_lowercase().contains(&w.to_lowercase()));
    }
    // Hints about replies need a reply; a condition failure never matches them.
    let Some(reply) = &f.reply else { return false };
    if h.code.is_none() && h.enhanced.is_none() && h.contains.is_none() {
        return false;
    }
    if let Some(code) = h.code
        && code != reply.code
    {
        return false;
    }
    if let Some(e) = &h.enhanced {
        match &reply.enhanced {
            Some(re) if re == e || re.starts_with(&format!("{e}.")) => {}
            // Some servers put the enhanced code only in the text (Office 365's "5.7.139" after 535 5.7.3 …).
            _ if text_has_code(&reply.text, e) => {}
            _ => return false,
        }
    }
    if let Some(words) = &h.contains
        && !reply.text.to_lowercase().contains(&words.to_lowercase())
    {
        return false;
    }
    true
}

/// True when `code` stands in the text as a whole status code ("5.7.1" is
/// not found inside "5.7.139").
fn text_has_code(text: &str, code: &str) -> bool {
    text.match_indices(code).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + code.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_digit() || c == '.') && !after.is_some_and(|c| c.is_ascii_digit())
    })
}

fn fallback_hint(f: &Failure, class: Class, locale: Locale) -> String {
    let (en, zh) = match class {
        Class::Transient => (
            "The server could not take the message right now; Herald retries transient failures by itself.",
            "服务器暂时无法接收邮件;对于临时性故障,Herald 会自动重试。",
        ),
        Class::Reauthorize => (
            "Authorization has expired. Reauthorize the account.",
            "授权已过期。请为帐户重新授权。",
        ),
        Class::Configuration => (
            "A setting of this account does not match what the server expects: check host, port, security, username and secret.",
            "该帐户的某项设置与服务器要求不符:请检查服务器地址、端口、加密方式、用户名和密码。",
        ),
        Class::Permanent => (
            "The server refused this for good: read its reply above; retrying will not help.",
            "服务器永久拒绝了此操作:请查看上面的服务器回复,重试不会成功。",
        ),
    };
    let stage = f.stage.as_str();
    match locale {
        Locale::En => format!("{en} (failed at: {stage})"),
        Locale::ZhCn => format!("{zh}(失败阶段:{stage})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(stage: Stage, code: u16, enhanced: Option<&str>, text: &str) -> Failure {
        Failure::from_reply(
            stage,
            Reply {
                code,
                enhanced: enhanced.map(str::to_string),
                text: text.to_string(),
            },
        )
    }

    fn hint_for(provider: &str, f: &Failure, locale: Locale) -> Diagnosis {
        diagnose(f, Catalog::get().provider(provider), false, locale)
    }

    #[test]
    fn catalog_parses_and_ids_are_unique() {
        let c = Catalog::get();
        assert!(c.providers.len() >= 20);
        let mut ids: Vec<_> = c.providers.iter().map(|p| p.id.as_str()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), c.providers.len());
        for id in [
            "gmail",
            "outlook",
            "office365",
            "yahoo",
            "icloud",
            "zoho",
            "sendgrid",
            "mailgun",
            "ses",
            "qq",
            "exmail",
            "netease163",
            "netease126",
            "yeah",
            "netease_enterprise",
            "aliyun",
            "aliyun_enterprise",
            "mail189",
            "mail139",
            "sina",
            "sohu",
            "custom",
        ] {
            assert!(c.provider(id).is_some(), "catalog lacks {id}");
        }
        for p in &c.providers {
            assert!(
                !p.name.en.is_empty() && !p.name.zh.is_empty(),
                "{} needs names in both languages",
                p.id
            );
            for h in &p.hints {
                assert!(
                    !h.en.is_empty() && !h.zh.is_empty(),
                    "{}: every hint speaks both languages",
                    p.id
                );
            }
        }
        assert_eq!(c.by_domain("QQ.com").unwrap().id, "qq");
        assert_eq!(c.by_mx("mxbiz1.qq.com").unwrap().id, "exmail");
        assert_eq!(
            c.by_mx("contoso-com.mail.protection.outlook.com").unwrap().id,
            "office365"
        );
    }

    #[test]
    fn qq_535_asks_for_the_authorization_code() {
        let f = reply(
            Stage::Auth,
            535,
            None,
            "Login Fail. Please enter your authorization code to login. More information in http://service.mail.qq.com/cgi-bin/help?subtype=1&&id=28&&no=1001256",
        );
        let d = hint_for("qq", &f, Locale::ZhCn);
        assert!(d.hint.contains("授权码"), "{}", d.hint);
        assert_eq!(d.class, Class::Configuration);
        let d = hint_for("qq", &f, Locale::En);
        assert!(d.hint.to_lowercase().contains("authorization code"), "{}", d.hint);
    }

    #[test]
    fn gmail_534_asks_for_an_app_password() {
        let f = reply(
            Stage::Auth,
            534,
            Some("5.7.9"),
            "Application-specific password required. Learn more at\nhttps://support.google.com/mail/?p=InvalidSecondFactor",
        );
        let d = hint_for("gmail", &f, Locale::En);
        assert!(d.hint.to_lowercase().contains("app password"), "{}", d.hint);
    }

    #[test]
    fn office365_5_7_139_variants_are_told_apart() {
        let tenant = reply(
            Stage::Auth,
            535,
            Some("5.7.139"),
            "Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information.",
        );
        let mailbox = reply(
            Stage::Auth,
            535,
            Some("5.7.139"),
            "Authentication unsuccessful, SmtpClientAuthentication is disabled for the Mailbox. Visit https://aka.ms/smtp_auth_disabled for more information.",
        );
        let t = hint_for("office365", &tenant, Locale::En).hint;
        let m = hint_for("office365", &mailbox, Locale::En).hint;
        assert_ne!(t, m);
        assert!(
            m.to_lowercase().contains("mailbox") || m.contains("Authenticated SMTP"),
            "{m}"
        );
    }

    #[test]
    fn enhanced_codes_match_whole_parts() {
        assert!(text_has_code("535 5.7.139 Authentication unsuccessful", "5.7.139"));
        assert!(!text_has_code("535 5.7.139 Authentication unsuccessful", "5.7.1"));
        assert!(!text_has_code("see 15.7.1", "5.7.1"));
    }

    #[test]
    fn conditions_have_hints_in_both_languages() {
        for (stage, c) in [
            (Stage::Tls, Condition::TlsUntrusted),
            (Stage::Tls, Condition::TlsSelfSigned),
            (Stage::Tls, Condition::TlsCaAsServer),
            (Stage::Tls, Condition::TlsExpired),
            (Stage::Tls, Condition::TlsNotYetValid),
            (Stage::Tls, Condition::TlsWrongHost),
            (Stage::Tls, Condition::TlsPinMismatch),
            (Stage::Proxy, Condition::ProxyUnreachable),
            (Stage::Proxy, Condition::ProxyAuthFailed),
            (Stage::Proxy, Condition::ProxyTargetRefused),
            (Stage::Proxy, Condition::ProxyProtocol),
            (Stage::Tls, Condition::TlsNotTls),
            (Stage::Starttls, Condition::StarttlsMissing),
            (Stage::Connect, Condition::ConnectRefused),
            (Stage::Dns, Condition::DnsFailed),
        ] {
            let f = Failure::condition(stage, c, "x");
            let en = diagnose(&f, None, false, Locale::En);
            let zh = diagnose(&f, None, false, Locale::ZhCn);
            assert!(
                !en.hint.contains("failed at"),
                "catalog has a hint for {}: {}",
                c.as_str(),
                en.hint
            );
            assert_ne!(en.hint, zh.hint);
        }
        let f = Failure::condition(Stage::Starttls, Condition::StarttlsMissing, "x");
        assert_eq!(diagnose(&f, None, false, Locale::En).class, Class::Configuration);
    }

    #[test]
    fn a_certificate_hint_names_the_fingerprint_to_pin() {
        let cert = PeerCertificate {
            sha256: "ab".repeat(32),
            subject: "CN=localhost".into(),
            issuer: "CN=localhost".into(),
            names: vec!["localhost".into()],
            not_before: "2026-01-01T00:00:00Z".into(),
            not_after: "2026-01-03T00:00:00Z".into(),
            self_signed: true,
            ca: true,
        };
        let f = Failure::condition(Stage::Tls, Condition::TlsSelfSigned, "self-signed").with_certificate(cert);
        for locale in [Locale::En, Locale::ZhCn] {
            let r = Report::failure(&f, None, false, locale, Vec::new(), 1);
            let hint = r.hint.unwrap();
            assert!(
                hint.contains(&"ab".repeat(32)) && hint.contains("tls.pin_sha256"),
                "{hint}"
            );
            assert!(!hint.contains("{sha256}"), "{hint}");
            assert_eq!(r.certificate.as_ref().map(|c| c.subject.as_str()), Some("CN=localhost"));
        }
        let f = Failure::condition(Stage::Tls, Condition::TlsExpired, "expired");
        let hint = Report::failure(&f, None, false, Locale::En, Vec::new(), 1)
            .hint
            .unwrap();
        assert!(hint.contains("the certificate's SHA-256 fingerprint"), "{hint}");
    }

    #[test]
    fn transient_and_permanent_by_code() {
        let f = reply(Stage::RcptTo, 451, Some("4.3.0"), "Try again later");
        assert_eq!(diagnose(&f, None, false, Locale::En).class, Class::Transient);
        let f = reply(Stage::RcptTo, 550, Some("5.1.1"), "No such user");
        assert_eq!(diagnose(&f, None, false, Locale::En).class, Class::Permanent);
        let f = reply(Stage::Auth, 535, Some("5.7.8"), "Bad credentials");
        assert_eq!(diagnose(&f, None, true, Locale::En).class, Class::Reauthorize);
    }

    #[test]
    fn a_custom_account_is_known_by_its_host() {
        let c = Catalog::get();
        let id = |provider: &str, host: &str| c.provider_of(provider, host).map(|p| p.id.as_str());
        assert_eq!(id("custom", "smtp.office365.com"), Some("office365"));
        assert_eq!(id("custom", "SMTP.Office365.com."), Some("office365"));
        assert_eq!(id("custom", "mail.example.com"), Some("custom"));
        assert_eq!(id("qq", "smtp.office365.com"), Some("qq"), "a chosen preset stays");
    }
}
