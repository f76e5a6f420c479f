//! `herald dkim add|list|show|check|remove`: DKIM keys per sending domain.

use super::{pretty, print};
use crate::dkim::{DkimInput, DkimView};
use crate::services::Services;
use clap::{Args, Subcommand};
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum DkimCommand {
    /// Generate a key for a sending domain and show the TXT record to publish.
    Add(AddArgs),
    /// The keys and whether their records are published.
    List,
    /// One key with its TXT record.
    Show { id: String },
    /// Look the key's TXT record up in DNS now (exit 1 unless published).
    Check { id: String },
    /// Delete a key (the domain's next newest key signs; none: unsigned).
    Remove { id: String },
}

#[derive(Args)]
pub struct AddArgs {
    /// The sending domain, e.g. example.com.
    domain: String,
    /// The selector; default herald<date>, e.g. herald20261129.
    #[arg(long)]
    selector: Option<String>,
    /// rsa-sha256 (default, 2048 bits) or ed25519-sha256.
    #[arg(long)]
    algorithm: Option<String>,
}

fn record(v: &DkimView) -> String {
    let mut s = format!(
        "{}  {} selector {} ({}){}\n  publish TXT {}\n  value      {}\n  status     {}",
        v.id,
        v.domain,
        v.selector,
        v.algorithm.as_str(),
        if v.signing { ", signing" } else { "" },
        v.dns_name,
        v.dns_value,
        v.status.as_str()
    );
    if let Some(h) = &v.hint {
        s.push_str(&format!("\n  {}\n  {}", h.en, h.zh_cn));
    }
    s
}

pub async fn run(app: &Services, tenant: &str, cmd: DkimCommand, json: bool) -> anyhow::Result<ExitCode> {
    match cmd {
        DkimCommand::Add(a) => {
            let v = app
                .dkim
                .add(
                    tenant,
                    DkimInput {
                        domain: Some(a.domain),
                        selector: a.selector,
                        algorithm: a.algorithm,
                    },
                )
                .await?;
            print(json, &v, record);
        }
        DkimCommand::List => {
            let list = app.dkim.list(tenant).await?;
            print(json, &list, |l| {
                if l.is_empty() {
                    "no DKIM keys: add one with `herald dkim add <domain>`".to_string()
                } else {
                    l.iter().map(record).collect::<Vec<_>>().join("\n")
                }
            });
        }
        DkimCommand::Show { id } => {
            let v = app.dkim.show(tenant, &id).await?;
            print(json, &v, pretty);
        }
        DkimCommand::Check { id } => {
            let v = app.dkim.check(tenant, &id).await?;
            print(json, &v, record);
            if v.status != crate::dkim::Status::Published {
                return Ok(ExitCode::FAILURE);
            }
        }
        DkimCommand::Remove { id } => {
            app.dkim.remove(tenant, &id).await?;
            if !json {
                println!("deleted DKIM key {id}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
