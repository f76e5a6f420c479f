//! Discovery: given an address, propose SMTP settings.
//!
//! Sources, in order, stopping at the first that proposes something: the
//! compiled-in catalog (domain match, `catalog`), Mozilla autoconfig over
//! HTTPS (`autoconfig`), RFC 6186 / RFC 8314 SRV records (`srv`), and MX
//! host patterns from the catalog (`mx`). Every source that does not answer
//! leaves a human-readable note, so "nothing found" can be explained. Each
//! network step is a thin wrapper around a pure function, so the logic is
//! tested without a network. This file holds the entry point and the order.

mod autoconfig;
mod catalog;
pub(crate) mod dns;
mod mx;
mod srv;

use crate::catalog::Security;
use crate::domain::EmailAddress;
use serde::Serialize;
use std::time::Duration;

/// Who hosts `domain`'s mail, by its MX records: the catalog provider's id,
/// or `None` (not a catalog provider, no answer within `timeout`, or a
/// reserved name such as `*.test` that is never looked up). Answers are
/// remembered for ten minutes, so failing deliveries do not ask again.
pub async fn provider_by_mx(domain: &str, timeout: Duration) -> Option<String> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    use std::time::Instant;
    /// A domain's provider id (or none), and when it was looked up.
    type Known = HashMap<String, (Option<String>, Instant)>;
    static KNOWN: OnceLock<Mutex<Known>> = OnceLock::new();
    const KEEP: Duration = Duration::from_secs(600);

    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let reserved = [".test", ".example", ".invalid", ".localhost", ".local"];
    if domain.is_empty() || !domain.contains('.') || reserved.iter().any(|r| domain.ends_with(r)) {
        return None;
    }
    let known = KNOWN.get_or_init(Mutex::default);
    if let Some((id, at)) = known.lock().expect("the MX cache lock").get(&domain)
        && at.elapsed() < KEEP
    {
        return id.clone();
    }
    let resolver = dns::build_resolver(timeout).ok()?;
    let id = mx::provider_of_domain(&resolver, &domain, timeout).await;
    let mut known = known.lock().expect("the MX cache lock");
    known.retain(|_, (_, at)| at.elapsed() < KEEP);
    known.insert(domain, (id.clone(), Instant::now()));
    id
}

/// How far discovery may reach.
#[derive(Debug, Clone)]
pub struct Options {
    /// Only the compiled-in catalog; no DNS or HTTP.
    pub offline: bool,
    /// Limit for each HTTP request and each DNS query.
    pub timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            offline: false,
            timeout: Duration::from_secs(10),
        }
    }
}

/// What discovery found for one address.
#[derive(Debug, Clone, Serialize)]
pub struct Discovery {
    /// The address as given.
    pub address: String,
    /// Its domain, lower-case, without a trailing dot.
    pub domain: String,
    /// Settings to offer, best first; empty when no source answered.
    pub proposals: Vec<Proposal>,
    /// What was tried and did not answer, for the curious.
    pub notes: Vec<String>,
}

/// One set of SMTP settings a source proposes.
#[derive(Debug, Clone, Serialize)]
pub struct Proposal {
    /// The catalog provider these settings belong to, when one matches.
    pub provider: Option<String>,
    /// SMTP server host name.
    pub host: String,
    /// SMTP server port.
    pub port: u16,
    /// Implicit TLS, STARTTLS or none.
    pub security: Security,
    /// The user name to sign in with; `None` when the source cannot tell.
    pub username: Option<String>,
    /// `catalog`, `autoconfig`, `srv` or `mx`.
    pub source: String,
    /// The URL, record or MX host the proposal came from.
    pub detail: String,
    /// Sign-in methods the source names (autoconfig's `password-cleartext`,
    /// `OAuth2` …); empty when it says nothing.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub authentication: Vec<String>,
}

/// Proposes SMTP settings for `address`, trying the sources in order; never
/// fails, and says in `notes` why a source gave nothing.
pub async fn discover(address: &EmailAddress, opts: &Options) -> Discovery {
    let domain = address.domain().trim_end_matches('.').to_ascii_lowercase();
    let mut notes = Vec::new();
    let proposals = propose(address, &domain, opts, &mut notes).await;
    tracing::debug!(%domain, proposals = proposals.len(), ?notes, "discovery finished");
    Discovery {
        address: address.as_str().to_string(),
        domain,
        proposals,
        notes,
    }
}

async fn propose(address: &EmailAddress, domain: &str, opts: &Options, notes: &mut Vec<String>) -> Vec<Proposal> {
    let found = catalog::proposals_from_catalog(domain, address, notes);
    if !found.is_empty() {
        return found;
    }
    if opts.offline {
        notes.push("offline: autoconfig, SRV and MX were not tried".into());
        return found;
    }
    if domain.parse::<std::net::IpAddr>().is_ok() {
        notes.push(format!(
            "{domain} is an IP address: there is no autoconfig, SRV or MX to ask"
        ));
        return found;
    }

    // Built only now: offline runs and catalog hits never read resolv.conf.
    let resolver = dns::build_resolver(opts.timeout);
    let (mut autoconfig_notes, mut srv_notes, mut mx_notes) = (Vec::new(), Vec::new(), Vec::new());
    // All sources at once, so an unreachable network costs one timeout, not
    // one per step; the answer is still the first source, in order, that
    // proposes something, with the notes of the sources before it.
    let (autoconfig, srv, mx) = tokio::join!(
        autoconfig::from_autoconfig(domain, address, opts.timeout, &mut autoconfig_notes),
        async {
            match &resolver {
                Ok(r) => srv::from_srv(r, domain, address, opts.timeout, &mut srv_notes).await,
                Err(_) => Vec::new(),
            }
        },
        async {
            match &resolver {
                Ok(r) => mx::from_mx(r, domain, address, opts.timeout, &mut mx_notes).await,
                Err(_) => Vec::new(),
            }
        },
    );
    notes.append(&mut autoconfig_notes);
    if !autoconfig.is_empty() {
        return autoconfig;
    }
    if let Err(e) = &resolver {
        notes.push(format!(
            "DNS: cannot set up the resolver ({e}); SRV and MX were not tried"
        ));
        return Vec::new();
    }
    notes.append(&mut srv_notes);
    if !srv.is_empty() {
        return srv;
    }
    notes.append(&mut mx_notes);
    mx
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An address the tests know to be valid.
    pub(super) fn addr(s: &str) -> EmailAddress {
        EmailAddress::parse(s).unwrap()
    }

    fn offline() -> Options {
        Options {
            offline: true,
            timeout: Duration::from_secs(1),
        }
    }

    #[tokio::test]
    async fn catalog_matches_qq_domain() {
        let d = discover(&addr("Alice@QQ.com"), &offline()).await;
        assert_eq!(d.domain, "qq.com");
        assert_eq!(d.proposals.len(), 1);
        let p = &d.proposals[0];
        assert_eq!(p.provider.as_deref(), Some("qq"));
        assert_eq!(
            (p.host.as_str(), p.port, p.security),
            ("smtp.qq.com", 465, Security::Tls)
        );
        assert_eq!(p.username.as_deref(), Some("Alice@QQ.com"));
        assert_eq!(p.source, "catalog");
    }

    #[tokio::test]
    async fn catalog_matches_gmail_domain() {
        let d = discover(&addr("bob@gmail.com"), &offline()).await;
        let p = &d.proposals[0];
        assert_eq!(p.provider.as_deref(), Some("gmail"));
        assert_eq!(p.host, "smtp.gmail.com");
        assert_eq!(p.source, "catalog");
    }

    #[tokio::test]
    async fn unknown_domain_offline_proposes_nothing_and_says_why() {
        let d = discover(&addr("carol@example.com"), &offline()).await;
        assert!(d.proposals.is_empty());
        assert!(
            d.notes.iter().any(|n| n.contains("no preset lists example.com")),
            "{:?}",
            d.notes
        );
        assert!(d.notes.iter().any(|n| n.starts_with("offline")), "{:?}", d.notes);
    }
}
