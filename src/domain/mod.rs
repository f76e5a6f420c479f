//! Values that are checked once, at the edge, and trusted everywhere after.
//!
//! Header injection and SMTP command injection are impossible by
//! construction: an address or header text holding CR, LF or NUL cannot be
//! built, so it can never reach the wire.

mod account;

pub use account::Account;

use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fmt;

fn has_line_break_or_nul(s: &str) -> bool {
    s.chars().any(|c| c == '\r' || c == '\n' || c == '\0')
}

/// An email address as used in an SMTP envelope and a header (`local@domain`).
///
/// The local part is a dot-string (`john.doe`) or an RFC 5321 quoted string
/// (`"john doe"`), kept exactly as given; either may hold UTF-8 (RFC 6531),
/// which only a server offering SMTPUTF8 takes. The domain may be
/// internationalised: its A-label form (punycode), what goes on the wire,
/// is worked out once here, so an address that has none cannot exist.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EmailAddress {
    /// As given (trimmed): what is stored and shown.
    text: String,
    /// The domain in A-labels, when the domain as given is not ASCII.
    a_label_domain: Option<String>,
}

/// What a dot-string local part or a domain may not hold.
const UNQUOTED_FORBIDDEN: &str = "<>()[],;:\"\\";

impl EmailAddress {
    pub fn parse(input: &str) -> Result<Self, String> {
        let s = input.trim();
        if s.is_empty() {
            return Err("is empty: give an address such as name@example.com".into());
        }
        if has_line_break_or_nul(s) {
            return Err("contains a line break or NUL, which an address can never hold".into());
        }
        if s.len() > 254 {
            return Err("is longer than 254 characters".into());
        }
        // The domain holds no '@' and no quote, so the last '@' ends the local part.
        let Some((local, domain)) = s.rsplit_once('@') else {
            return Err(format!("'{s}' has no '@': give an address such as name@example.com"));
        };
        let quoted = local.starts_with('"');
        let unquoted = if quoted { domain } else { s };
        if unquoted
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || UNQUOTED_FORBIDDEN.contains(c))
        {
            return Err(format!(
                "'{s}' holds a space, a control character or one of <>()[],;:\"\\ outside quotes: give the bare address, e.g. name@example.com, or quote a local part with spaces, e.g. \"john doe\"@example.com"
            ));
        }
        if local.is_empty() || local.len() > 64 || (!quoted && local.contains('@')) {
            return Err(format!("'{s}' has an empty, over-long or doubled local part"));
        }
        if quoted {
            check_quoted_local_part(local).map_err(|m| format!("'{s}': the quoted local part {m}"))?;
        }
        let a_label_domain = a_label_domain(domain).map_err(|m| format!("'{s}': the domain {m}"))?;
        Ok(EmailAddress {
            text: s.to_string(),
            a_label_domain,
        })
    }

    /// The address as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The domain as given (U-labels when it is internationalised).
    pub fn domain(&self) -> &str {
        self.text.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
    }

    /// The local part as given, quotes included when it is quoted.
    pub fn local_part(&self) -> &str {
        self.text.rsplit_once('@').map(|(l, _)| l).unwrap_or("")
    }

    /// The domain as it goes on the wire: in A-labels (`xn--bcher-kva.example`)
    /// when it is internationalised, else as given.
    pub fn ascii_domain(&self) -> &str {
        self.a_label_domain.as_deref().unwrap_or_else(|| self.domain())
    }

    /// The address as it goes in an envelope or a header: the local part as
    /// given, the domain in A-labels. ASCII unless the local part is not.
    pub fn a_label_form(&self) -> Cow<'_, str> {
        match &self.a_label_domain {
            Some(d) => Cow::Owned(format!("{}@{d}", self.local_part())),
            None => Cow::Borrowed(&self.text),
        }
    }

    /// Whether only a server offering SMTPUTF8 (RFC 6531) can take it: its
    /// local part is not ASCII, and has no ASCII form.
    pub fn needs_smtputf8(&self) -> bool {
        !self.local_part().is_ascii()
    }
}

/// Checks an RFC 5321 quoted-string local part (`"john doe"`, `"a\"b"`):
/// qtext and quoted pairs between two quotes, nothing after. Stricter than
/// the RFC where it cannot be proved harmless: no control character and no
/// space other than U+0020, escaped or not; and no `<` or `>`, which a server
/// or mail reader that reads up to the first `>` would take for the end of
/// the address.
fn check_quoted_local_part(local: &str) -> Result<(), String> {
    let mut escaped = false;
    let mut closed = false;
    for c in local.chars().skip(1) {
        if closed {
            return Err(
                "has text after its closing quote: quote the whole local part, e.g. \"john doe\"@example.com".into(),
            );
        }
        if c.is_control() || (c.is_whitespace() && c != ' ') {
            return Err("holds a control character or a space other than ' ', which Herald never sends".into());
        }
        if c == '<' || c == '>' {
            return Err(
                "holds '<' or '>', which a server could take for the end of the address: Herald does not send it"
                    .into(),
            );
        }
        if escaped {
            if !c.is_ascii() {
                return Err("escapes a non-ASCII character with '\\', which RFC 5321 does not allow".into());
            }
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '"' {
            closed = true;
        }
    }
    if !closed {
        return Err("has no closing quote (a quote inside it is written \\\")".into());
    }
    if local == "\"\"" {
        return Err("is empty".into());
    }
    Ok(())
}

/// The domain's A-labels (punycode) when it is not ASCII; `None` when it is
/// ASCII and goes on the wire as given.
fn a_label_domain(domain: &str) -> Result<Option<String>, String> {
    Hostname::parse(domain)?;
    if domain.is_ascii() {
        return Ok(None);
    }
    let ascii = idna::domain_to_ascii_cow(domain.trim_end_matches('.').as_bytes(), idna::AsciiDenyList::STD3)
        .map_err(|_| format!("'{domain}' is not a valid internationalised domain name (IDNA)"))?;
    if ascii.len() > 253 || ascii.split('.').any(|l| l.is_empty() || l.len() > 63) {
        return Err(format!("'{domain}' is too long once written in A-labels ({ascii})"));
    }
    Ok(Some(ascii.into_owned()))
}

impl TryFrom<String> for EmailAddress {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        EmailAddress::parse(&s)
    }
}

impl From<EmailAddress> for String {
    fn from(a: EmailAddress) -> String {
        a.text
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Text that may stand in a header (subject, display name): one line, no NUL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HeaderText(String);

impl HeaderText {
    pub fn parse(input: &str) -> Result<Self, String> {
        if has_line_break_or_nul(input) {
            return Err("contains a line break (CR or LF) or NUL: header values must be a single line".into());
        }
        if input.chars().count() > 900 {
            return Err("is longer than 900 characters".into());
        }
        Ok(HeaderText(input.trim().to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for HeaderText {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        HeaderText::parse(&s)
    }
}

impl From<HeaderText> for String {
    fn from(a: HeaderText) -> String {
        a.0
    }
}

/// A DNS host name or an IP literal for the SMTP server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Hostname(String);

impl Hostname {
    pub fn parse(input: &str) -> Result<Self, String> {
        let s = input.trim().trim_end_matches('.');
        if s.is_empty() {
            return Err("is empty: give a host name such as smtp.example.com".into());
        }
        if s.parse::<std::net::IpAddr>().is_ok() {
            return Ok(Hostname(s.to_string()));
        }
        if s.len() > 253 {
            return Err("is longer than 253 characters".into());
        }
        for label in s.split('.') {
            let ok = !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '_');
            if !ok {
                return Err(format!(
                    "'{s}' is not a valid host name (letters, digits and hyphens between dots, e.g. smtp.example.com)"
                ));
            }
        }
        Ok(Hostname(s.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Hostname {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Hostname::parse(&s)
    }
}

impl From<Hostname> for String {
    fn from(a: Hostname) -> String {
        a.0
    }
}

impl fmt::Display for Hostname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_refuse_injection() {
        assert!(EmailAddress::parse("a@example.com").is_ok());
        assert!(EmailAddress::parse("a@example.com\r\nRCPT TO:<x@y.z>").is_err());
        assert!(EmailAddress::parse("a@exa\nmple.com").is_err());
        assert!(EmailAddress::parse("a@example.com>").is_err());
        assert!(EmailAddress::parse("a b@example.com").is_err());
        assert!(EmailAddress::parse("no-at.example.com").is_err());
        assert!(EmailAddress::parse("用户@例子.公司").is_ok());
    }

    #[test]
    fn quoted_local_parts_accepted_and_refused() {
        for ok in [
            r#""john doe"@example.com"#,
            r#""john"@example.com"#,
            r#""a\"b"@example.com"#,
            r#""a\\b"@example.com"#,
            r#""a@b"@example.com"#,
            r#""a,b;c:d(e)[f]"@example.com"#,
            r#""用户 名"@example.com"#,
        ] {
            let a = EmailAddress::parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert_eq!(a.as_str(), ok, "kept exactly as given");
            assert_eq!(a.domain(), "example.com");
        }
        for (bad, why) in [
            ("\"a\r\nRCPT TO:<x@y.z>\"@example.com", "line break"),
            ("\"a\0b\"@example.com", "NUL"),
            ("\"a\tb\"@example.com", "control character"),
            ("\"a\u{2028}b\"@example.com", "control character"),
            ("\"a\u{7f}b\"@example.com", "control character"),
            (r#""a>b"@example.com"#, "'<' or '>'"),
            (r#""a\<b"@example.com"#, "'<' or '>'"),
            (r#""a\"@example.com"#, "no closing quote"),
            (r#""ab@example.com"#, "no closing quote"),
            (r#""john".doe@example.com"#, "after its closing quote"),
            (r#""a"b"@example.com"#, "after its closing quote"),
            (r#""a\ü"@example.com"#, "non-ASCII"),
            (r#"""@example.com"#, "is empty"),
            (r#""a b"@exa mple.com"#, "outside quotes"),
            (r#"john" "doe@example.com"#, "outside quotes"),
        ] {
            let e = EmailAddress::parse(bad).expect_err(bad);
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn internationalised_domains_have_an_a_label_form() {
        let a = EmailAddress::parse("idn@bücher.example").unwrap();
        assert_eq!(
            (a.as_str(), a.domain(), a.ascii_domain()),
            ("idn@bücher.example", "bücher.example", "xn--bcher-kva.example")
        );
        assert_eq!(a.a_label_form(), "idn@xn--bcher-kva.example");
        assert!(!a.needs_smtputf8(), "an A-label domain is ASCII");
        let a = EmailAddress::parse("用户@例子.公司").unwrap();
        assert_eq!(a.a_label_form(), "用户@xn--fsqu00a.xn--55qx5d");
        assert!(a.needs_smtputf8());
        let a = EmailAddress::parse("Plain@Example.com").unwrap();
        assert!(matches!(a.a_label_form(), Cow::Borrowed("Plain@Example.com")));
        assert!(!a.needs_smtputf8());
        assert!(EmailAddress::parse("a@xn--bcher-kva.example").is_ok());
        let e = EmailAddress::parse("a@bü\u{200f}cher.example").expect_err("bidi mark");
        assert!(e.contains("the domain"), "{e}");
        let stored: EmailAddress = serde_json::from_str("\"idn@bücher.example\"").unwrap();
        assert_eq!(
            stored.a_label_form(),
            "idn@xn--bcher-kva.example",
            "stored addresses too"
        );
    }

    #[test]
    fn header_text_is_one_line() {
        assert!(HeaderText::parse("Welcome!").is_ok());
        assert!(HeaderText::parse("Hi\r\nBcc: x@y.z").is_err());
        assert!(HeaderText::parse("Hi\nthere").is_err());
        assert!(HeaderText::parse("nul\0").is_err());
        assert_eq!(HeaderText::parse("  欢迎 ").unwrap().as_str(), "欢迎");
    }

    #[test]
    fn hostnames() {
        assert_eq!(Hostname::parse("SMTP.QQ.com.").unwrap().as_str(), "smtp.qq.com");
        assert!(Hostname::parse("127.0.0.1").is_ok());
        assert!(Hostname::parse("bad host").is_err());
        assert!(Hostname::parse("-x.com").is_err());
    }
}
