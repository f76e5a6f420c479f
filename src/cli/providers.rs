//! `herald providers` and `herald discover`: the provider catalog and the
//! settings it, DNS and HTTP propose for an address. Neither opens the data
//! directory.

use super::print;
use crate::error::Error;
use clap::Args;
use std::process::ExitCode;

/// Arguments of `herald discover`.
#[derive(Args)]
pub(super) struct DiscoverArgs {
    address: String,
    /// Only the built-in catalog, no DNS or HTTP.
    #[arg(long)]
    offline: bool,
}

/// Lists the catalog: id, name, host and ports of each provider.
pub(super) fn list(json: bool) -> ExitCode {
    let providers = &crate::catalog::Catalog::get().providers;
    print(json, providers, |ps| {
        ps.iter()
            .map(|p| {
                let ports = [
                    ("tls", p.ports.tls),
                    ("starttls", p.ports.starttls),
                    ("none", p.ports.none),
                ]
                .iter()
                .filter_map(|(k, v)| v.map(|v| format!("{k} {v}")))
                .collect::<Vec<_>>()
                .join(", ");
                format!(
                    "{:<20} {:<34} {:<26} {}",
                    p.id,
                    p.name.en,
                    if p.host.is_empty() { "-" } else { &p.host },
                    ports
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    ExitCode::SUCCESS
}

/// Proposes SMTP settings for an address, one line each, or says where to
/// ask when there are none.
pub(super) async fn discover(args: DiscoverArgs, json: bool) -> anyhow::Result<ExitCode> {
    let address = crate::domain::EmailAddress::parse(&args.address).map_err(|m| Error::field("address", m))?;
    let d = crate::discovery::discover(
        &address,
        &crate::discovery::Options {
            offline: args.offline,
            timeout: std::time::Duration::from_secs(5),
        },
    )
    .await;
    print(json, &d, |d| {
        if d.proposals.is_empty() {
            let mut s = format!(
                "No settings found for {}. Use provider custom and ask your mail administrator for host, port and security.",
                d.domain
            );
            for n in &d.notes {
                s.push_str(&format!("\n  ({n})"));
            }
            return s;
        }
        d.proposals
            .iter()
            .map(|p| {
                format!(
                    "{}:{} {} provider={} (from {}: {})",
                    p.host,
                    p.port,
                    p.security.as_str(),
                    p.provider.as_deref().unwrap_or("custom"),
                    p.source,
                    p.detail
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(ExitCode::SUCCESS)
}
