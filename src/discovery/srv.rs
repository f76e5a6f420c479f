//! The third source: SRV records for message submission (RFC 6186, with
//! RFC 8314's `_submissions` for implicit TLS).

use super::Proposal;
use super::catalog::username_for;
use super::dns::{self, Resolver};
use crate::catalog::{Catalog, Security};
use crate::domain::{EmailAddress, Hostname};
use hickory_resolver::proto::rr::{RData, RecordType};
use std::time::Duration;

/// One SRV record, as the resolver returned it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SrvRecord {
    priority: u16,
    weight: u16,
    port: u16,
    /// Target host; `.` means the service is decidedly not offered (RFC 2782).
    target: String,
}

/// Proposals from the SRV records of one name (`_submissions._tcp.example.com`
/// → implicit TLS, `_submission._tcp.example.com` → STARTTLS), lowest
/// priority first, then highest weight.
fn proposals_from_srv(
    name: &str,
    security: Security,
    records: &[SrvRecord],
    address: &EmailAddress,
    notes: &mut Vec<String>,
) -> Vec<Proposal> {
    let mut records: Vec<&SrvRecord> = records.iter().collect();
    records.sort_by(|a, b| a.priority.cmp(&b.priority).then(b.weight.cmp(&a.weight)));
    let mut proposals = Vec::new();
    for r in records {
        let target = r.target.trim_end_matches('.').to_ascii_lowercase();
        if target.is_empty() {
            notes.push(format!(
                "SRV {name}: target \".\": the domain says this service is not offered"
            ));
            continue;
        }
        if r.port == 0 {
            notes.push(format!("SRV {name}: {target} has port 0; ignored"));
            continue;
        }
        let host = match Hostname::parse(&target) {
            Ok(h) => h.as_str().to_string(),
            Err(e) => {
                notes.push(format!("SRV {name}: target {e}; ignored"));
                continue;
            }
        };
        if proposals.iter().any(|p: &Proposal| p.host == host && p.port == r.port) {
            continue;
        }
        let provider = Catalog::get().by_host(&host);
        proposals.push(Proposal {
            provider: provider.map(|p| p.id.clone()),
            username: match provider {
                Some(p) => username_for(p, address),
                None => Some(address.as_str().to_string()),
            },
            host: host.clone(),
            port: r.port,
            security,
            source: "srv".into(),
            detail: format!("{name} SRV {} {} {} {host}", r.priority, r.weight, r.port),
            authentication: Vec::new(),
        });
    }
    proposals
}

async fn lookup_srv(resolver: &Resolver, name: &str, timeout: Duration) -> Result<Vec<SrvRecord>, String> {
    let answers = dns::lookup(resolver, name, RecordType::SRV, timeout).await?;
    Ok(answers
        .iter()
        .filter_map(|data| match data {
            RData::SRV(srv) => Some(SrvRecord {
                priority: srv.priority,
                weight: srv.weight,
                port: srv.port,
                target: srv.target.to_ascii(),
            }),
            _ => None, // the CNAME records of an alias
        })
        .collect())
}

/// Proposals from the `_submissions` (implicit TLS) and `_submission`
/// (STARTTLS) records of `domain`, asked at once.
pub(super) async fn from_srv(
    resolver: &Resolver,
    domain: &str,
    address: &EmailAddress,
    timeout: Duration,
    notes: &mut Vec<String>,
) -> Vec<Proposal> {
    let implicit = format!("_submissions._tcp.{domain}");
    let starttls = format!("_submission._tcp.{domain}");
    let (a, b) = tokio::join!(
        lookup_srv(resolver, &implicit, timeout),
        lookup_srv(resolver, &starttls, timeout)
    );
    let mut proposals = Vec::new();
    for (name, security, answer) in [(implicit, Security::Tls, a), (starttls, Security::Starttls, b)] {
        match answer {
            Ok(records) => proposals.extend(proposals_from_srv(&name, security, &records, address, notes)),
            Err(e) => notes.push(format!("SRV {name}: {e}")),
        }
    }
    proposals
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::tests::addr;

    #[test]
    fn srv_target_dot_means_not_offered() {
        let mut notes = Vec::new();
        let dot = SrvRecord {
            priority: 0,
            weight: 0,
            port: 0,
            target: ".".into(),
        };
        let found = proposals_from_srv(
            "_submission._tcp.example.com",
            Security::Starttls,
            &[dot],
            &addr("max@example.com"),
            &mut notes,
        );
        assert!(found.is_empty(), "{found:?}");
        assert!(notes[0].contains("not offered"), "{notes:?}");
    }

    #[test]
    fn srv_records_become_proposals_by_priority_then_weight() {
        let rec = |priority, weight, target: &str| SrvRecord {
            priority,
            weight,
            port: 465,
            target: target.into(),
        };
        let records = [
            rec(10, 0, "backup.example.com."),
            rec(0, 5, "light.example.com."),
            rec(0, 50, "smtp.gmail.com."),
        ];
        let found = proposals_from_srv(
            "_submissions._tcp.example.com",
            Security::Tls,
            &records,
            &addr("ned@example.com"),
            &mut Vec::new(),
        );
        let hosts: Vec<_> = found.iter().map(|p| p.host.as_str()).collect();
        assert_eq!(hosts, ["smtp.gmail.com", "light.example.com", "backup.example.com"]);
        assert_eq!(found[0].provider.as_deref(), Some("gmail"));
        assert!(found.iter().all(|p| p.security == Security::Tls && p.source == "srv"));
        assert_eq!(
            found[0].detail,
            "_submissions._tcp.example.com SRV 0 50 465 smtp.gmail.com"
        );
    }

    #[tokio::test]
    async fn lookup_srv_reads_the_records() {
        use hickory_resolver::proto::rr::rdata::SRV;
        use hickory_resolver::proto::rr::{Name, Record};
        let name = Name::from_ascii("_submissions._tcp.example.com.").unwrap();
        let target = Name::from_ascii("smtp.example.com.").unwrap();
        let record = Record::from_rdata(name, 60, RData::SRV(SRV::new(0, 1, 465, target)));
        let resolver = super::dns::loopback_resolver(vec![record]).await;
        let found = lookup_srv(&resolver, "_submissions._tcp.example.com", Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(
            found,
            [SrvRecord {
                priority: 0,
                weight: 1,
                port: 465,
                target: "smtp.example.com.".into()
            }]
        );
    }
}
