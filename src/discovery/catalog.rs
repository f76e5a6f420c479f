//! The first source: the compiled-in catalog, matched by the address's
//! domain; also turns a catalog provider into a proposal for the other sources.

use super::Proposal;
use crate::catalog::{Catalog, Provider, UsernameForm};
use crate::domain::EmailAddress;

/// The catalog preset for a provider that lists this domain.
pub(super) fn proposals_from_catalog(domain: &str, address: &EmailAddress, notes: &mut Vec<String>) -> Vec<Proposal> {
    let Some(p) = Catalog::get().by_domain(domain) else {
        notes.push(format!("catalog: no preset lists {domain}"));
        return Vec::new();
    };
    match preset(p, address, "catalog", format!("{domain} is served by {}", p.name.en)) {
        Some(proposal) => vec![proposal],
        None => {
            notes.push(format!(
                "catalog: {domain} is served by {}, whose preset has no single host; choose it by hand",
                p.name.en
            ));
            Vec::new()
        }
    }
}

/// A provider's default endpoint as a proposal; `None` for region-templated
/// presets, which have no one host to propose.
pub(super) fn preset(p: &Provider, address: &EmailAddress, source: &str, detail: String) -> Option<Proposal> {
    let (security, port) = p.default_endpoint()?;
    if p.host.is_empty() {
        return None;
    }
    Some(Proposal {
        provider: Some(p.id.clone()),
        host: p.host.clone(),
        port,
        security,
        username: username_for(p, address),
        source: source.into(),
        detail,
        authentication: Vec::new(),
    })
}

/// The user name a provider expects: the address, a fixed name, or unknown.
pub(super) fn username_for(p: &Provider, address: &EmailAddress) -> Option<String> {
    match p.username {
        UsernameForm::Address => Some(address.as_str().to_string()),
        UsernameForm::Literal => p.username_literal.clone(),
        UsernameForm::Custom => None,
    }
}
