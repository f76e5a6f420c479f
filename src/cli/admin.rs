//! `herald admin`: the web console's users (a new setup link for a lost password).

use crate::services::Services;
use clap::Subcommand;
use std::process::ExitCode;

/// Subcommands of `herald admin`.
#[derive(Subcommand)]
pub(super) enum AdminCommand {
    /// Print a new one-time setup link (24 hours) to set a console password;
    /// the old password works until the link is used.
    ResetPassword {
        /// The console user; default the platform admin ("admin").
        #[arg(long)]
        user: Option<String>,
    },
}

/// Runs one `herald admin` subcommand.
pub(super) async fn run(app: &Services, cmd: AdminCommand, json: bool) -> anyhow::Result<ExitCode> {
    match cmd {
        AdminCommand::ResetPassword { user } => {
            let link = app.console_users.reset_link(user.as_deref()).await?;
            let who = user.unwrap_or_else(|| crate::console_users::PLATFORM_ADMIN.to_string());
            super::print(json, &serde_json::json!({"user": who, "setup_link": link}), |_| {
                format!(
                    "Open this link to set the console password of \"{who}\" (it works once, for 24 hours):\n\n    {link}\n"
                )
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}
