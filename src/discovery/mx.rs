//! The last source: the domain's MX hosts matched against the catalog's MX
//! patterns (a domain hosted at Office 365 or Tencent Exmail, say).

use super::Proposal;
use super::catalog::preset;
use super::dns::{self, Resolver};
use crate::catalog::{Catalog, host_matches};
use crate::domain::EmailAddress;
use hickory_resolver::proto::rr::{RData, RecordType};
use std::time::Duration;

/// Catalog presets for the providers whose MX patterns match these hosts
/// (best preference first), one proposal per provider.
fn proposals_from_mx(hosts: &[String], address: &EmailAddress, notes: &mut Vec<String>) -> Vec<Proposal> {
    let catalog = Catalog::get();
    let mut proposals: Vec<Proposal> = Vec::new();
    for raw in hosts {
        let host = raw.trim().trim_end_matches('.').to_ascii_lowercase();
        if host.is_empty() {
            notes.push("MX: a null MX (\".\"): the domain receives no mail".into());
            continue;
        }
        let Some(p) = catalog.by_mx(&host) else {
            notes.push(format!("MX {host} matches no catalog provider"));
            continue;
        };
        if proposals.iter().any(|q| q.provider.as_deref() == Some(p.id.as_str())) {
            continue;
        }
        let pattern = p
            .mx_patterns
            .iter()
            .find(|pat| host_matches(pat, &host))
            .cloned()
            .unwrap_or_default();
        match preset(p, address, "mx", format!("MX {host} matches {pattern}")) {
            Some(proposal) => proposals.push(proposal),
            None => notes.push(format!(
                "MX {host} matches {}, whose preset has no single host; choose it by hand",
                p.name.en
            )),
        }
    }
    proposals
}

async fn lookup_mx(resolver: &Resolver, domain: &str, timeout: Duration) -> Result<Vec<String>, String> {
    let answers = dns::lookup(resolver, domain, RecordType::MX, timeout).await?;
    let mut records: Vec<(u16, String)> = answers
        .iter()
        .filter_map(|data| match data {
            RData::MX(mx) => Some((mx.preference, mx.exchange.to_ascii())),
            _ => None, // the CNAME records of an alias
        })
        .collect();
    records.sort();
    Ok(records.into_iter().map(|(_, host)| host).collect())
}

/// Proposals from the MX records of `domain`.
pub(super) async fn from_mx(
    resolver: &Resolver,
    domain: &str,
    address: &EmailAddress,
    timeout: Duration,
    notes: &mut Vec<String>,
) -> Vec<Proposal> {
    match lookup_mx(resolver, domain, timeout).await {
        Ok(hosts) => proposals_from_mx(&hosts, address, notes),
        Err(e) => {
            notes.push(format!("MX {domain}: {e}"));
            Vec::new()
        }
    }
}

/// The catalog provider whose MX patterns match `domain`'s best MX host:
/// who hosts the domain's mail, for hints on an account typed in by hand.
pub(super) async fn provider_of_domain(resolver: &Resolver, domain: &str, timeout: Duration) -> Option<String> {
    let hosts = lookup_mx(resolver, domain, timeout).await.ok()?;
    let catalog = Catalog::get();
    hosts.iter().find_map(|h| catalog.by_mx(h).map(|p| p.id.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::tests::addr;

    #[test]
    fn mx_of_office365_tenant_proposes_office365() {
        let mut notes = Vec::new();
        let found = proposals_from_mx(
            &["example-com.mail.protection.outlook.com.".into()],
            &addr("jo@example.com"),
            &mut notes,
        );
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].provider.as_deref(), Some("office365"));
        assert_eq!(found[0].host, "smtp.office365.com");
        assert_eq!(found[0].source, "mx");
        assert_eq!(
            found[0].detail,
            "MX example-com.mail.protection.outlook.com matches *.mail.protection.outlook.com"
        );
    }

    #[test]
    fn mx_of_exmail_is_exmail_not_personal_qq() {
        let hosts = ["mxbiz1.qq.com".to_string(), "mxbiz2.qq.com".to_string()];
        let found = proposals_from_mx(&hosts, &addr("kim@corp.example"), &mut Vec::new());
        assert_eq!(found.len(), 1, "one proposal per provider: {found:?}");
        assert_eq!(found[0].provider.as_deref(), Some("exmail"));
        assert_eq!(found[0].host, "smtp.exmail.qq.com");
        assert_eq!(found[0].username.as_deref(), Some("kim@corp.example"));
    }

    #[test]
    fn mx_of_unknown_host_proposes_nothing() {
        let mut notes = Vec::new();
        let found = proposals_from_mx(&["mx.example.com".into()], &addr("lee@example.com"), &mut notes);
        assert!(found.is_empty(), "{found:?}");
        assert_eq!(notes, ["MX mx.example.com matches no catalog provider"]);
    }

    #[tokio::test]
    async fn lookup_mx_orders_hosts_by_preference() {
        use hickory_resolver::proto::rr::rdata::MX;
        use hickory_resolver::proto::rr::{Name, Record};
        let mx = |preference, host: &str| {
            let name = Name::from_ascii("example.com.").unwrap();
            Record::from_rdata(
                name,
                60,
                RData::MX(MX::new(preference, Name::from_ascii(host).unwrap())),
            )
        };
        let resolver =
            super::dns::loopback_resolver(vec![mx(20, "backup.example.net."), mx(10, "mx.example.net.")]).await;
        let hosts = lookup_mx(&resolver, "example.com", Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(hosts, ["mx.example.net.", "backup.example.net."]);
    }

    #[tokio::test]
    async fn lookup_mx_without_records_says_so() {
        let resolver = super::dns::loopback_resolver(Vec::new()).await;
        let err = lookup_mx(&resolver, "example.com", Duration::from_secs(5))
            .await
            .unwrap_err();
        assert_eq!(err, "no record");
    }

    #[tokio::test]
    async fn the_mx_names_the_provider_hosting_a_domain() {
        use hickory_resolver::proto::rr::rdata::MX;
        use hickory_resolver::proto::rr::{Name, RData, Record};
        let mx = |pref, host: &str| {
            Record::from_rdata(
                Name::from_ascii("contoso.example.").unwrap(),
                300,
                RData::MX(MX::new(pref, Name::from_ascii(host).unwrap())),
            )
        };
        let resolver = crate::discovery::dns::loopback_resolver(vec![
            mx(5, "mail.contoso.example."),
            mx(10, "contoso-example.mail.protection.outlook.com."),
        ])
        .await;
        let found = provider_of_domain(&resolver, "contoso.example", Duration::from_secs(5)).await;
        assert_eq!(found.as_deref(), Some("office365"));
        let nothing = crate::discovery::dns::loopback_resolver(vec![mx(5, "mail.contoso.example.")]).await;
        assert_eq!(
            provider_of_domain(&nothing, "contoso.example", Duration::from_secs(5)).await,
            None
        );
    }
}
