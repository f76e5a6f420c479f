//! `herald tenant` and `herald token`: tenants and platform admin API tokens
//! (platform admin).

use super::print;
use crate::services::Services;
use clap::Subcommand;
use std::process::ExitCode;

/// Subcommands of `herald tenant`.
#[derive(Subcommand)]
pub(super) enum TenantCommand {
    /// Create a tenant; prints its admin API token once.
    Add {
        name: String,
    },
    List,
    /// Remove a tenant and everything it owns.
    Remove {
        id: String,
    },
}

/// Subcommands of `herald token`.
#[derive(Subcommand)]
pub(super) enum TokenCommand {
    /// Create another platform admin token (printed once).
    Create {
        #[arg(long, default_value = "cli")]
        label: String,
    },
}

/// Runs one `herald tenant` subcommand as `tenant`.
pub(super) async fn run(app: &Services, tenant: &str, cmd: TenantCommand, json: bool) -> anyhow::Result<ExitCode> {
    match cmd {
        TenantCommand::Add { name } => {
            let t = app
                .tenants
                .create_tenant(tenant, crate::tenants::TenantInput { name: Some(name) })
                .await?;
            print(json, &t, |t| {
                format!(
                    "created tenant {} ({})\nits admin API token (shown once): {}",
                    t.name, t.id, t.token
                )
            });
        }
        TenantCommand::List => {
            let l = app.tenants.list_tenants(tenant).await?;
            print(json, &l, |l| {
                l.iter()
                    .map(|t| format!("{}  {}", t.id, t.name))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        TenantCommand::Remove { id } => {
            app.tenants.delete_tenant(tenant, &id).await?;
            if !json {
                println!("removed tenant {id}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `herald token create`: prints the new token alone, with or without
/// `--json`.
pub(super) async fn token(app: &Services, cmd: TokenCommand) -> anyhow::Result<ExitCode> {
    let TokenCommand::Create { label } = cmd;
    let token = app.tenants.create_admin_token(&label).await?;
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}
