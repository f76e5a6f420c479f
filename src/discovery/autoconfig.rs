//! The second source: Mozilla autoconfig (`config-v1.1.xml`) fetched over
//! HTTPS from the domain, and read into proposals.

use super::Proposal;
use crate::catalog::{Catalog, Security};
use crate::domain::{EmailAddress, Hostname};
use quick_xml::Reader;
use quick_xml::XmlVersion;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesRef, BytesStart, Event};
use std::sync::Arc;
use std::time::Duration;

/// Largest autoconfig body read; real files are a few KiB.
const AUTOCONFIG_MAX_BYTES: usize = 256 * 1024;
const MAX_REDIRECTS: usize = 5;

/// Where Thunderbird looks, in its order: the `autoconfig.` host (told the
/// address), then the domain's well-known path. HTTPS only: a plain-HTTP
/// answer could be forged to send the password elsewhere.
fn autoconfig_urls(domain: &str, address: &EmailAddress) -> Vec<String> {
    let mut urls = Vec::new();
    let first = format!("https://autoconfig.{domain}/mail/config-v1.1.xml");
    if let Ok(url) = reqwest::Url::parse_with_params(&first, &[("emailaddress", address.as_str())]) {
        urls.push(url.to_string());
    }
    if let Ok(url) = reqwest::Url::parse(&format!("https://{domain}/.well-known/autoconfig/mail/config-v1.1.xml")) {
        urls.push(url.to_string());
    }
    urls
}

fn client_builder(timeout: Duration) -> reqwest::ClientBuilder {
    // reqwest is built without a default crypto provider: hand it ring and
    // the Mozilla roots, as the SMTP side uses.
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("herald/", env!("CARGO_PKG_VERSION"), " (mail autoconfig)"))
        .redirect(reqwest::redirect::Policy::custom(|attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                attempt.error(format!("gave up after {MAX_REDIRECTS} redirects"))
            } else if attempt.url().scheme() != "https" {
                let to = attempt.url().to_string();
                attempt.error(format!(
                    "refused a redirect to {to}: autoconfig is only trusted over HTTPS"
                ))
            } else {
                attempt.follow()
            }
        }))
}

/// The HTTP client for autoconfig: timeout, at most a few redirects, never
/// to plain HTTP.
fn autoconfig_client(timeout: Duration) -> Result<reqwest::Client, String> {
    client_builder(timeout).build().map_err(|e| error_chain(&e))
}

/// Fetches one autoconfig URL; the error says why in a sentence fragment
/// (status, refused redirect, timeout, connection failure).
async fn fetch_autoconfig(url: &str, client: &reqwest::Client) -> Result<String, String> {
    let mut response = client.get(url).send().await.map_err(|e| describe_http_error(&e))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("HTTP {status}"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| describe_http_error(&e))? {
        body.extend_from_slice(&chunk);
        if body.len() > AUTOCONFIG_MAX_BYTES {
            return Err(format!(
                "the answer is larger than {} KiB: not an autoconfig file",
                AUTOCONFIG_MAX_BYTES / 1024
            ));
        }
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

fn describe_http_error(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_redirect() {
        "redirect not followed"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    format!("{what}: {}", error_chain(e))
}

/// The error's causes, innermost last, without reqwest's own "error sending
/// request for url (…)" (the note already names the URL).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        // hyper's "client error (Connect)" wrapper adds nothing for a reader.
        if !text.starts_with("client error (") && !parts.contains(&text) {
            parts.push(text);
        }
        cause = c.source();
    }
    if parts.is_empty() {
        parts.push(e.to_string());
    }
    parts.join(": ")
}

/// Proposals from the first autoconfig URL that answers with a usable file.
pub(super) async fn from_autoconfig(
    domain: &str,
    address: &EmailAddress,
    timeout: Duration,
    notes: &mut Vec<String>,
) -> Vec<Proposal> {
    let client = match autoconfig_client(timeout) {
        Ok(c) => c,
        Err(e) => {
            notes.push(format!("autoconfig: cannot set up the HTTP client ({e})"));
            return Vec::new();
        }
    };
    let urls = autoconfig_urls(domain, address);
    // Both URLs at once (one timeout, not two); the first still wins.
    let mut fetches = tokio::task::JoinSet::new();
    for (i, url) in urls.iter().enumerate() {
        let (client, url) = (client.clone(), url.clone());
        fetches.spawn(async move { (i, fetch_autoconfig(&url, &client).await) });
    }
    let mut answers: Vec<Option<Result<String, String>>> = vec![None; urls.len()];
    while let Some(joined) = fetches.join_next().await {
        if let Ok((i, answer)) = joined {
            answers[i] = Some(answer);
        }
    }
    for (url, answer) in urls.into_iter().zip(answers) {
        let body = match answer {
            Some(Ok(body)) => body,
            Some(Err(e)) => {
                notes.push(format!("autoconfig {url}: {e}"));
                continue;
            }
            None => {
                notes.push(format!("autoconfig {url}: the request task failed"));
                continue;
            }
        };
        let mut file_notes = Vec::new();
        let parsed = parse_autoconfig(&body, address, &mut file_notes);
        notes.extend(file_notes.into_iter().map(|n| format!("autoconfig {url}: {n}")));
        match parsed {
            Ok(mut found) => {
                for p in &mut found {
                    p.detail = url.clone();
                }
                return found;
            }
            Err(e) => notes.push(format!("autoconfig {url}: {e}")),
        }
    }
    Vec::new()
}

/// Reads an autoconfig file (`config-v1.1.xml`): every
/// `<outgoingServer type="smtp">` becomes a proposal, in file order, with
/// `%EMAILADDRESS%`, `%EMAILLOCALPART%` and `%EMAILDOMAIN%` substituted.
///
/// Lenient, as real files are: tag case, stray whitespace, a missing closing
/// tag or an unterminated `%EMAILADDRESS` are accepted and reported in
/// `notes`. An error means no usable SMTP server (not XML, an HTML page, not
/// an autoconfig file, or every server unusable). `detail` is left empty for
/// the caller, which knows where the file came from.
fn parse_autoconfig(xml: &str, address: &EmailAddress, notes: &mut Vec<String>) -> Result<Vec<Proposal>, String> {
    let text = xml.trim_start_matches('\u{feff}').trim_start();
    if !text.starts_with('<') {
        return Err(format!("is not XML: it begins with {:?}", snippet(text)));
    }
    let tokens = xml_tokens(text);
    let first_element = tokens.iter().find_map(|t| match t {
        Token::Open { name, .. } => Some(name.to_ascii_lowercase()),
        _ => None,
    });
    let is_html = first_element.as_deref() == Some("html")
        || text.get(..14).is_some_and(|s| s.eq_ignore_ascii_case("<!doctype html"));
    if is_html {
        let title = html_title(&tokens).map(|t| format!(" ({t:?})")).unwrap_or_default();
        return Err(format!("is an HTML page{title}, not an autoconfig file"));
    }
    let Some(first_element) = first_element else {
        return Err(format!("is not XML: no element found in {:?}", snippet(text)));
    };
    let is_autoconfig = tokens.iter().any(|t| {
        matches!(t, Token::Open { name, .. }
        if name.eq_ignore_ascii_case("clientConfig") || name.eq_ignore_ascii_case("emailProvider"))
    });
    if !is_autoconfig {
        return Err(format!(
            "is XML but not an autoconfig file: it starts with <{first_element}>, not <clientConfig>"
        ));
    }

    let servers = outgoing_servers(&tokens, notes);
    if servers.is_empty() {
        return Err("lists no outgoing (SMTP) server".into());
    }
    let mut proposals = Vec::new();
    let mut rejected = Vec::new();
    for (i, server) in servers.iter().enumerate() {
        let label = format!("outgoing server {}", i + 1);
        match server_proposal(server, address, &label, notes) {
            Ok(p) => proposals.push(p),
            Err(e) => rejected.push(format!("{label}: {e}")),
        }
    }
    if proposals.is_empty() {
        return Err(format!("no usable outgoing server ({})", rejected.join("; ")));
    }
    notes.extend(rejected.into_iter().map(|r| format!("{r}; skipped")));
    Ok(proposals)
}

fn snippet(text: &str) -> String {
    let s: String = text.chars().take(40).collect();
    if text.chars().count() > 40 {
        format!("{s}…")
    } else {
        s
    }
}

fn html_title(tokens: &[Token]) -> Option<String> {
    let at = tokens
        .iter()
        .position(|t| matches!(t, Token::Open { name, .. } if name.eq_ignore_ascii_case("title")))?;
    match tokens.get(at + 1) {
        Some(Token::Text(t)) if !t.trim().is_empty() => Some(t.trim().to_string()),
        _ => None,
    }
}

/// One `<outgoingServer>` as written, before interpretation.
#[derive(Debug, Default)]
struct ServerDraft {
    kind: Option<String>,
    hostname: Option<String>,
    port: Option<String>,
    socket_type: Option<String>,
    username: Option<String>,
    authentication: Vec<String>,
}

impl ServerDraft {
    fn set(&mut self, field: &str, value: String) {
        match field.to_ascii_lowercase().as_str() {
            "hostname" => self.hostname = Some(value),
            "port" => self.port = Some(value),
            "sockettype" => self.socket_type = Some(value),
            "username" => self.username = Some(value),
            "authentication" => self.authentication.push(value),
            _ => {} // password, addThisServer …: nothing Herald uses
        }
    }
}

/// The SMTP `<outgoingServer>` elements, tolerating a missing end tag.
fn outgoing_servers(tokens: &[Token], notes: &mut Vec<String>) -> Vec<ServerDraft> {
    let mut servers = Vec::new();
    let mut current: Option<ServerDraft> = None;
    let mut field: Option<(String, String)> = None;
    let is_server = |name: &str| name.eq_ignore_ascii_case("outgoingServer");
    for token in tokens {
        match token {
            Token::Open { name, attrs, empty } if is_server(name) => {
                if let Some(open) = current.take() {
                    notes.push("an <outgoingServer> is not closed before the next one; read up to there".into());
                    servers.push(open);
                }
                field = None;
                if !empty {
                    current = Some(ServerDraft {
                        kind: attribute(attrs, "type"),
                        ..Default::default()
                    });
                }
            }
            Token::Close(name) if is_server(name) => {
                if let (Some(server), Some((f, v))) = (current.as_mut(), field.take()) {
                    server.set(&f, v);
                }
                servers.extend(current.take());
            }
            Token::Open { name, empty, .. } if current.is_some() => {
                if let (Some(server), Some((f, v))) = (current.as_mut(), field.take()) {
                    server.set(&f, v); // a child left open: keep what it held
                }
                if !empty {
                    field = Some((name.clone(), String::new()));
                }
            }
            Token::Text(t) => {
                if let Some((_, v)) = field.as_mut() {
                    v.push_str(t);
                }
            }
            Token::Close(name) => {
                if field.as_ref().is_some_and(|(f, _)| f.eq_ignore_ascii_case(name)) {
                    let (f, v) = field.take().expect("checked above");
                    if let Some(server) = current.as_mut() {
                        server.set(&f, v);
                    }
                }
            }
            Token::Open { .. } => {}
        }
    }
    if let Some(mut open) = current.take() {
        if let Some((f, v)) = field.take() {
            open.set(&f, v);
        }
        notes.push("the file ends inside an <outgoingServer>; read what was there".into());
        servers.push(open);
    }
    servers.retain(|s| match s.kind.as_deref() {
        Some(kind) => kind.trim().eq_ignore_ascii_case("smtp"),
        None => {
            notes.push("an <outgoingServer> has no type; read as type=\"smtp\"".into());
            true
        }
    });
    servers
}

fn server_proposal(
    s: &ServerDraft,
    address: &EmailAddress,
    label: &str,
    notes: &mut Vec<String>,
) -> Result<Proposal, String> {
    let raw_host = s.hostname.as_deref().map(str::trim).unwrap_or_default();
    if raw_host.is_empty() {
        return Err("no <hostname>".into());
    }
    let host = substitute(raw_host, address, &format!("{label}: hostname"), notes);
    let host = Hostname::parse(&host)
        .map_err(|e| format!("hostname {e}"))?
        .as_str()
        .to_string();

    let security = match s.socket_type.as_deref().map(str::trim) {
        Some(t) if t.eq_ignore_ascii_case("SSL") || t.eq_ignore_ascii_case("TLS") => Security::Tls,
        Some(t) if t.eq_ignore_ascii_case("STARTTLS") => Security::Starttls,
        Some(t) if t.eq_ignore_ascii_case("plain") => Security::None,
        Some(other) => {
            return Err(format!(
                "unknown <socketType> {other:?} (expected SSL, STARTTLS or plain)"
            ));
        }
        None => {
            // Guessing STARTTLS (required) fails loudly rather than sending in clear.
            let guess = if s.port.as_deref().map(str::trim) == Some("465") {
                Security::Tls
            } else {
                Security::Starttls
            };
            notes.push(format!("{label}: no <socketType>; assumed {}", guess.as_str()));
            guess
        }
    };
    let port = match s.port.as_deref().map(str::trim) {
        Some(p) => match p.parse::<u16>() {
            Ok(port) if port > 0 => port,
            _ => return Err(format!("<port> {p:?} is not a port number")),
        },
        None => {
            let port = match security {
                Security::Tls => 465,
                Security::Starttls => 587,
                Security::None => 25,
            };
            notes.push(format!("{label}: no <port>; assumed {port}"));
            port
        }
    };
    let username = s
        .username
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| substitute(u, address, &format!("{label}: username"), notes));
    Ok(Proposal {
        provider: provider_id_for_host(&host),
        host,
        port,
        security,
        username,
        source: "autoconfig".into(),
        detail: String::new(),
        authentication: s
            .authentication
            .iter()
            .map(|a| a.trim().to_string())
            .filter(|a| !a.is_empty())
            .collect(),
    })
}

fn provider_id_for_host(host: &str) -> Option<String> {
    Catalog::get().by_host(host).map(|p| p.id.clone())
}

/// Replaces autoconfig placeholders. A known name without its closing `%`
/// (`%EMAILADDRESS`) is read as meant, and noted.
fn substitute(text: &str, address: &EmailAddress, what: &str, notes: &mut Vec<String>) -> String {
    let values = [
        ("EMAILADDRESS", address.as_str()),
        ("EMAILLOCALPART", address.local_part()),
        ("EMAILDOMAIN", address.domain()),
    ];
    let mut out = String::with_capacity(text.len());
    let mut unknown = false;
    let mut rest = text;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let known = values.iter().find(|(name, _)| {
            after.len() >= name.len() && after.as_bytes()[..name.len()].eq_ignore_ascii_case(name.as_bytes())
        });
        match known {
            Some((name, value)) => {
                out.push_str(value);
                rest = &after[name.len()..];
                match rest.strip_prefix('%') {
                    Some(r) => rest = r,
                    None => notes.push(format!("{what} has %{name} without its closing '%'; read as %{name}%")),
                }
            }
            None => {
                out.push('%');
                unknown = true;
                rest = after;
            }
        }
    }
    out.push_str(rest);
    if unknown {
        notes.push(format!(
            "{what} {out:?} holds a '%' Herald does not substitute; check it"
        ));
    }
    out
}

/// A piece of an XML document, as far as autoconfig reading needs one.
#[derive(Debug, PartialEq)]
enum Token {
    Open {
        name: String,
        /// Attribute names and values, as written.
        attrs: Vec<(String, String)>,
        empty: bool,
    },
    Close(String),
    Text(String),
}

/// The document as a flat list of tags and text (comments, declarations and
/// processing instructions dropped). Never fails: at a syntax error, a cut-off
/// file included, it returns the tokens before it. quick-xml is told to let
/// mismatched end tags and stray `&` pass, so a sloppy but readable file is
/// read rather than rejected.
fn xml_tokens(xml: &str) -> Vec<Token> {
    let mut reader = Reader::from_str(xml);
    let config = reader.config_mut();
    config.check_end_names = false;
    config.allow_unmatched_ends = true;
    config.allow_dangling_amp = true;
    let mut tokens = Vec::new();
    // Text arrives in pieces around each `&…;`; one token per run between tags.
    let mut text = String::new();
    let mut blank = true;
    loop {
        let event = reader.read_event();
        match &event {
            Ok(Event::Text(t)) => {
                blank &= t.trim().is_empty();
                text.push_str(t);
                continue;
            }
            Ok(Event::GeneralRef(r)) => {
                blank = false;
                push_reference(&mut text, r);
                continue;
            }
            _ => {}
        }
        if !blank {
            tokens.push(Token::Text(std::mem::take(&mut text)));
        }
        text.clear();
        blank = true;
        match event {
            Ok(Event::Start(tag)) => tokens.push(open(&tag, false)),
            Ok(Event::Empty(tag)) => tokens.push(open(&tag, true)),
            Ok(Event::End(tag)) => tokens.push(Token::Close(tag.name().0.to_string())),
            Ok(Event::CData(t)) => tokens.push(Token::Text(t.into_inner().into_owned())),
            Ok(Event::Eof) => break,
            Ok(_) => {} // comments, declarations, processing instructions, DOCTYPE
            // An ill-formed piece is skipped and reading goes on; a syntax
            // error (a cut-off file) ends the document.
            Err(quick_xml::Error::IllFormed(e)) => tracing::debug!(error = %e, "autoconfig: XML piece skipped"),
            Err(e) => {
                tracing::debug!(error = %e, "autoconfig: XML read stopped");
                break;
            }
        }
    }
    tokens
}

fn open(tag: &BytesStart, empty: bool) -> Token {
    let attrs = tag
        .html_attributes()
        .flatten()
        .map(|a| {
            let name = a.key.0.to_string();
            // An undecodable value (unknown entity) is kept as written.
            let value = match a.normalized_value(XmlVersion::Implicit1_0) {
                Ok(v) => v.into_owned(),
                Err(_) => a.value.into_owned(),
            };
            (name, value)
        })
        .collect();
    Token::Open {
        name: tag.name().0.to_string(),
        attrs,
        empty,
    }
}

/// `&amp;`, `&#64;` … decoded; an unknown entity (`&nbsp;`) kept as written.
fn push_reference(text: &mut String, r: &BytesRef) {
    match (r.resolve_char_ref(), resolve_predefined_entity(r)) {
        (Ok(Some(c)), _) => text.push(c),
        (Ok(None), Some(s)) => text.push_str(s),
        _ => {
            text.push('&');
            text.push_str(r);
            text.push(';');
        }
    }
}

/// The value of the attribute `wanted`, whatever its case.
fn attribute(attrs: &[(String, String)], wanted: &str) -> Option<String> {
    attrs
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(wanted))
        .map(|(_, value)| value.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::tests::addr;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    const YAHOO: &str = include_str!("../../tests/fixtures/autoconfig/yahoo.com.xml");
    const TWO_SMTP: &str = include_str!("../../tests/fixtures/autoconfig/two-smtp.xml");
    const UNTERMINATED: &str = include_str!("../../tests/fixtures/autoconfig/unterminated-placeholder.xml");
    const NOT_XML: &str = include_str!("../../tests/fixtures/autoconfig/not-xml.html");

    #[test]
    fn autoconfig_urls_follow_thunderbird_order_and_escape_the_address() {
        let urls = autoconfig_urls("example.com", &addr("a+b@example.com"));
        assert_eq!(
            urls,
            [
                "https://autoconfig.example.com/mail/config-v1.1.xml?emailaddress=a%2Bb%40example.com",
                "https://example.com/.well-known/autoconfig/mail/config-v1.1.xml",
            ]
        );
    }

    #[test]
    fn parse_autoconfig_reads_the_smtp_server_not_the_incoming_ones() {
        let mut notes = Vec::new();
        let found = parse_autoconfig(YAHOO, &addr("dave@yahoo.com"), &mut notes).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        let p = &found[0];
        assert_eq!(
            (p.host.as_str(), p.port, p.security),
            ("smtp.mail.yahoo.com", 465, Security::Tls)
        );
        assert_eq!(p.username.as_deref(), Some("dave@yahoo.com"));
        assert_eq!(p.provider.as_deref(), Some("yahoo"), "hostname maps to the catalog");
        assert_eq!(p.authentication, ["OAuth2", "password-cleartext"]);
        assert_eq!(p.source, "autoconfig");
        assert!(notes.is_empty(), "{notes:?}");
    }

    #[test]
    fn parse_autoconfig_keeps_both_outgoing_servers_in_order() {
        let mut notes = Vec::new();
        let found = parse_autoconfig(TWO_SMTP, &addr("erin@example.net"), &mut notes).unwrap();
        let got: Vec<_> = found.iter().map(|p| (p.host.as_str(), p.port, p.security)).collect();
        // The commented-out plain relay must not appear.
        assert_eq!(
            got,
            [
                ("smtp.example.net", 465, Security::Tls),
                ("smtp.example.net", 587, Security::Starttls)
            ]
        );
        assert!(found.iter().all(|p| p.username.as_deref() == Some("erin")));
        assert!(found.iter().all(|p| p.provider.is_none()));
        assert_eq!(found[1].authentication, ["password-encrypted"]);
        assert!(notes.is_empty(), "{notes:?}");
    }

    #[test]
    fn parse_autoconfig_reads_unterminated_placeholder_as_the_address_and_notes_it() {
        let mut notes = Vec::new();
        let found = parse_autoconfig(UNTERMINATED, &addr("frank@example.org"), &mut notes).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].username.as_deref(), Some("frank@example.org"));
        assert_eq!(
            found[0].host, "mail.example.org",
            "%EMAILDOMAIN% substituted in the hostname"
        );
        assert_eq!(found[0].security, Security::Starttls);
        assert!(
            notes
                .iter()
                .any(|n| n.contains("%EMAILADDRESS without its closing '%'")),
            "{notes:?}"
        );
    }

    #[test]
    fn parse_autoconfig_rejects_html_and_non_xml_clearly() {
        let who = addr("gina@example.com");
        let err = parse_autoconfig(NOT_XML, &who, &mut Vec::new()).unwrap_err();
        assert!(err.contains("HTML page") && err.contains("Page not found"), "{err}");
        let err = parse_autoconfig("{\"error\": \"not found\"}", &who, &mut Vec::new()).unwrap_err();
        assert!(err.starts_with("is not XML"), "{err}");
        let err = parse_autoconfig("<?xml version=\"1.0\"?><rss><channel/></rss>", &who, &mut Vec::new()).unwrap_err();
        assert!(err.contains("not an autoconfig file"), "{err}");
    }

    #[test]
    fn parse_autoconfig_without_usable_smtp_server_is_an_error() {
        let who = addr("hank@example.com");
        let imap_only = "<clientConfig><emailProvider id=\"x\"><incomingServer type=\"imap\">\
                         <hostname>imap.example.com</hostname></incomingServer></emailProvider></clientConfig>";
        let err = parse_autoconfig(imap_only, &who, &mut Vec::new()).unwrap_err();
        assert!(err.contains("no outgoing"), "{err}");
        let bad_port = "<clientConfig><emailProvider><outgoingServer type='smtp'><hostname>smtp.example.com</hostname>\
                        <port>smtp</port><socketType>SSL</socketType></outgoingServer></emailProvider></clientConfig>";
        let err = parse_autoconfig(bad_port, &who, &mut Vec::new()).unwrap_err();
        assert!(err.contains("\"smtp\" is not a port number"), "{err}");
    }

    #[test]
    fn parse_autoconfig_decodes_references_and_tolerates_sloppy_markup() {
        // Unquoted attribute, character references, a stray `&`, an unknown
        // entity and an end tag that closes nothing: read, not rejected.
        let sloppy = "<clientConfig><outgoingServer type=smtp><hostname>smtp&#46;example&#x2E;com</hostname>\
                      </bogus><port>465</port><socketType>SSL</socketType>\
                      <username>a & b&nbsp;&amp;c</username></outgoingServer></clientConfig>";
        let mut notes = Vec::new();
        let found = parse_autoconfig(sloppy, &addr("pat@example.com"), &mut notes).unwrap();
        assert_eq!((found[0].host.as_str(), found[0].port), ("smtp.example.com", 465));
        assert_eq!(found[0].username.as_deref(), Some("a & b&nbsp;&c"));
        assert!(notes.is_empty(), "{notes:?}");
    }

    #[test]
    fn parse_autoconfig_tolerates_a_truncated_file() {
        let cut = "<clientConfig><emailProvider><outgoingServer type=\"smtp\"><hostname>smtp.example.com</hostname>\
                   <port>587</port><socketType>STARTTLS</socketType><username>%EMAILLOCALPART%</userna";
        let mut notes = Vec::new();
        let found = parse_autoconfig(cut, &addr("ivy@example.com"), &mut notes).unwrap();
        assert_eq!((found[0].host.as_str(), found[0].port), ("smtp.example.com", 587));
        assert!(notes.iter().any(|n| n.contains("ends inside")), "{notes:?}");
    }

    /// A loopback server that answers one request with `response` and hands
    /// back the request head it received.
    async fn serve_once(
        response: impl FnOnce(&str) -> String + Send + 'static,
    ) -> (String, tokio::task::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let reply = response(&base);
        let handle = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = socket.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                head.extend_from_slice(&buf[..n]);
            }
            socket.write_all(reply.as_bytes()).await.unwrap();
            socket.shutdown().await.ok();
            String::from_utf8_lossy(&head).into_owned()
        });
        (base, handle)
    }

    fn loopback_client() -> reqwest::Client {
        // no_proxy: an HTTP_PROXY in the environment must not intercept loopback.
        client_builder(Duration::from_secs(5)).no_proxy().build().unwrap()
    }

    fn http_response(status: &str, extra_headers: &str, body: &str) -> String {
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n{extra_headers}\r\n{body}",
            body.len()
        )
    }

    #[tokio::test]
    async fn fetch_autoconfig_reads_a_loopback_server() {
        let (base, server) = serve_once(|_| http_response("200 OK", "", TWO_SMTP)).await;
        let url = format!("{base}/mail/config-v1.1.xml?emailaddress=oz%40example.net");
        let body = fetch_autoconfig(&url, &loopback_client()).await.unwrap();
        let head = server.await.unwrap();
        assert!(
            head.starts_with("GET /mail/config-v1.1.xml?emailaddress=oz%40example.net HTTP/1.1\r\n"),
            "{head}"
        );
        let found = parse_autoconfig(&body, &addr("oz@example.net"), &mut Vec::new()).unwrap();
        assert_eq!(found.len(), 2);
    }

    #[tokio::test]
    async fn fetch_autoconfig_reports_http_status() {
        let (base, server) = serve_once(|_| http_response("404 Not Found", "", "nope")).await;
        let err = fetch_autoconfig(&format!("{base}/mail/config-v1.1.xml"), &loopback_client())
            .await
            .unwrap_err();
        server.await.unwrap();
        assert_eq!(err, "HTTP 404 Not Found");
    }

    #[tokio::test]
    async fn fetch_autoconfig_refuses_redirect_to_plain_http() {
        let (base, server) =
            serve_once(|base| http_response("302 Found", &format!("Location: {base}/elsewhere.xml\r\n"), "")).await;
        let err = fetch_autoconfig(&format!("{base}/mail/config-v1.1.xml"), &loopback_client())
            .await
            .unwrap_err();
        server.await.unwrap();
        assert!(
            err.contains("refused a redirect") && err.contains("only trusted over HTTPS"),
            "{err}"
        );
    }
}
