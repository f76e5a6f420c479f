//! Writing a message as MIME (mail-builder): headers encoded as RFC 2047 where
//! needed, text and HTML as multipart/alternative, a stable Message-ID.
//! Everything that reaches a header was parsed into a domain type first, so
//! no line break can get there; in the body every line ends with CRLF.

use crate::domain::{EmailAddress, HeaderText};
use crate::i18n::Locale;
use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address;
use mail_builder::headers::message_id::MessageId;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// What a message says, ready to be written out.
#[derive(Debug, Clone)]
pub struct Draft<'a> {
    pub from: &'a EmailAddress,
    pub from_name: Option<&'a HeaderText>,
    pub to: &'a [EmailAddress],
    pub cc: &'a [EmailAddress],
    pub subject: &'a HeaderText,
    pub text: Option<&'a str>,
    pub html: Option<&'a str>,
    /// Without angle brackets: `<id>@<host>`.
    pub message_id: &'a str,
}

/// An address as a header holds it. mail-builder writes an address as it is
/// given, and a header may only hold a U-label domain where SMTPUTF8 carries
/// the message: the A-labels do everywhere.
fn address<'a>(name: Option<&'a str>, a: &'a EmailAddress) -> Address<'a> {
    Address::new_address(name, a.a_label_form())
}

fn address_list(list: &[EmailAddress]) -> Address<'_> {
    Address::new_list(list.iter().map(|a| address(None, a)).collect())
}

/// The message as bytes with CRLF line endings (dot-stuffing happens on the wire).
pub fn render(d: &Draft<'_>) -> Vec<u8> {
    let mut m = MessageBuilder::new()
        .from(address(
            d.from_name.map(|n| n.as_str()).filter(|n| !n.is_empty()),
            d.from,
        ))
        .subject(d.subject.as_str())
        .message_id(MessageId::new(d.message_id));
    if !d.to.is_empty() {
        m = m.to(address_list(d.to));
    }
    if !d.cc.is_empty() {
        m = m.cc(address_list(d.cc));
    }
    let (text, html) = (d.text.map(crlf_line_ends), d.html.map(crlf_line_ends));
    match (text, html) {
        (Some(t), Some(h)) => m = m.text_body(t).html_body(h),
        (None, Some(h)) => m = m.html_body(h),
        (Some(t), None) => m = m.text_body(t),
        (None, None) => m = m.text_body(""),
    }
    m.write_to_vec().expect("writing to a Vec does not fail")
}

/// `text` with every lone CR and lone LF made a CRLF. mail-builder mends a
/// lone LF in a 7bit part but writes a lone CR as it is, and a CR alone is
/// half of what SMTP smuggling needs.
fn crlf_line_ends(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let mut out = String::new();
    // Bytes of `text` up to here are already in `out`; splitting at an ASCII
    // byte never cuts a UTF-8 sequence.
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\r' if bytes.get(i + 1) == Some(&b'\n') => i += 2,
            b'\r' | b'\n' => {
                out.push_str(&text[copied..i]);
                out.push_str("\r\n");
                i += 1;
                copied = i;
            }
            _ => i += 1,
        }
    }
    if copied == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

/// A new Message-ID for a message: random, under the sender's domain (in
/// A-labels: a Message-ID is ASCII).
pub fn new_message_id(from: &EmailAddress) -> String {
    format!("{}@{}", uuid::Uuid::now_v7().simple(), from.ascii_domain())
}

/// What is stored for a message: checked, ready to be written out.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Content {
    pub to: Vec<EmailAddress>,
    #[serde(default)]
    pub cc: Vec<EmailAddress>,
    #[serde(default)]
    pub bcc: Vec<EmailAddress>,
    pub subject: HeaderText,
    pub text: Option<String>,
    pub html: Option<String>,
    pub locale: Locale,
    /// Display name that replaces the account's (a tenant's name on the platform sender).
    #[serde(default)]
    pub from_name: Option<HeaderText>,
    /// After a partial delivery: only these recipients are tried again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_only: Option<Vec<EmailAddress>>,
    /// How it goes out; messages stored before channels existed are email.
    #[serde(default)]
    pub channel: crate::status::Channel,
    /// For a webhook or chat robot (`Channel::Http`): the channel's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_id: Option<String>,
    /// For a webhook: the event the message notifies of, sent as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<serde_json::Value>,
}

impl Content {
    /// Everyone the envelope goes to.
    pub fn recipients(&self) -> Vec<EmailAddress> {
        self.to.iter().chain(&self.cc).chain(&self.bcc).cloned().collect()
    }

    /// The message as MIME, from `from` under `from_name`, with its Message-ID.
    pub fn render(&self, from: &EmailAddress, from_name: Option<&HeaderText>, message_id: &str) -> Vec<u8> {
        render(&Draft {
            from,
            from_name,
            to: &self.to,
            cc: &self.cc,
            subject: &self.subject,
            text: self.text.as_deref(),
            html: self.html.as_deref(),
            message_id,
        })
    }
}

/// The sender address of captured messages when no account is configured.
pub const CAPTURE_FROM: &str = "capture@herald.invalid";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_headers_and_body() {
        let from = EmailAddress::parse("noreply@example.com").unwrap();
        let to = vec![EmailAddress::parse("a@example.org").unwrap()];
        let name = HeaderText::parse("Herald 通知").unwrap();
        let subject = HeaderText::parse("欢迎 Welcome").unwrap();
        let raw = render(&Draft {
            from: &from,
            from_name: Some(&name),
            to: &to,
            cc: &[],
            subject: &subject,
            text: Some("line one\r\n.\r\nline three"),
            html: None,
            message_id: "abc@example.com",
        });
        let s = String::from_utf8(raw).unwrap();
        assert!(s.contains("Message-ID: <abc@example.com>"), "{s}");
        assert!(s.contains("To: <a@example.org>"), "{s}");
        assert!(s.contains("Subject: =?utf-8?"), "non-ASCII subject is encoded: {s}");
        assert!(!s.contains("Bcc"));
    }

    #[test]
    fn headers_name_internationalised_domains_by_their_a_labels() {
        let from = EmailAddress::parse("noreply@bücher.example").unwrap();
        let to = vec![
            EmailAddress::parse("idn@bücher.example").unwrap(),
            EmailAddress::parse("\"john doe\"@example.com").unwrap(),
        ];
        let cc = vec![EmailAddress::parse("用户@例子.公司").unwrap()];
        let subject = HeaderText::parse("s").unwrap();
        let message_id = new_message_id(&from);
        assert!(message_id.ends_with("@xn--bcher-kva.example"), "{message_id}");
        let raw = render(&Draft {
            from: &from,
            from_name: None,
            to: &to,
            cc: &cc,
            subject: &subject,
            text: Some("x"),
            html: None,
            message_id: &message_id,
        });
        let s = String::from_utf8(raw).unwrap();
        assert!(s.contains("From: <noreply@xn--bcher-kva.example>\r\n"), "{s}");
        assert!(
            s.contains("To: <idn@xn--bcher-kva.example>, <\"john doe\"@example.com>\r\n"),
            "{s}"
        );
        // A non-ASCII local part has no ASCII form: it stays UTF-8 (RFC 6532).
        assert!(s.contains("Cc: <用户@xn--fsqu00a.xn--55qx5d>\r\n"), "{s}");
        assert!(!s.contains("bücher"), "{s}");
    }

    #[test]
    fn a_lone_cr_or_lf_in_a_body_becomes_crlf() {
        assert!(
            matches!(crlf_line_ends("a\r\nb"), Cow::Borrowed("a\r\nb")),
            "no copy when nothing to mend"
        );
        assert_eq!(
            crlf_line_ends("\rhi\r.\rx\n.\ny\n\r"),
            "\r\nhi\r\n.\r\nx\r\n.\r\ny\r\n\r\n"
        );
        assert_eq!(crlf_line_ends("é\rü"), "é\r\nü");
        let from = EmailAddress::parse("noreply@example.com").unwrap();
        let to = vec![EmailAddress::parse("a@example.org").unwrap()];
        let subject = HeaderText::parse("s").unwrap();
        let raw = render(&Draft {
            from: &from,
            from_name: None,
            to: &to,
            cc: &[],
            subject: &subject,
            text: Some("hi\r.\rMAIL FROM:<x@evil.test>"),
            html: Some("<p>a\r.\rb</p>"),
            message_id: "abc@example.com",
        });
        let lone = raw.iter().enumerate().any(|(i, &b)| match b {
            b'\r' => raw.get(i + 1) != Some(&b'\n'),
            b'\n' => i == 0 || raw[i - 1] != b'\r',
            _ => false,
        });
        let s = String::from_utf8_lossy(&raw);
        assert!(!lone, "{s:?}");
        assert!(s.contains("hi\r\n.\r\nMAIL FROM:<x@evil.test>"), "{s:?}");
    }
}
