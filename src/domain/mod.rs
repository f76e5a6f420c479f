//! Values that are checked once, at the edge, and trusted everywhere after.
//!
//! Header injection and SMTP command injection are impossible by
//! construction: an address or header text holding CR, LF or NUL cannot be
//! built, so it can never reach the wire.

mod account;

pub use account::Account;

use serde::{Deserialize, Serialize};
use std::fmt;

fn has_line_break_or_nul(s: &str) -> bool {
    s.chars().any(|c| c == '\r' || c == '\n' || c == '\0')
}

/// An email address as used in an SMTP envelope and a header (`local@domain`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EmailAddress(String);

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
        if s.chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>()[],;:\"\\".contains(c))
        {
            return Err(format!(
                "'{s}' holds a space, a control character or one of <>()[],;:\"\\: give the bare address, e.g. name@example.com"
            ));
        }
        let Some((local, domain)) = s.rsplit_once('@') else {
            return Err(format!("'{s}' has no '@': give an address such as name@example.com"));
        };
        if local.is_empty() || local.contains('@') || local.len() > 64 {
            return Err(format!("'{s}' has an empty, over-long or doubled local part"));
        }
        Hostname::parse(domain).map_err(|m| format!("'{s}': the domain {m}"))?;
        Ok(EmailAddress(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
    }

    pub fn local_part(&self) -> &str {
        self.0.rsplit_once('@').map(|(l, _)| l).unwrap_or("")
    }
}

impl TryFrom<String> for EmailAddress {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        EmailAddress::parse(&s)
    }
}

impl From<EmailAddress> for String {
    fn from(a: EmailAddress) -> String {
        a.0
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
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
