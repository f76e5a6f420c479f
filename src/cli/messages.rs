//! `herald send`, `herald messages` and `herald capture`: queue a message and
//! deliver it right away, read and act on the delivery log, and list what the
//! capture mailbox kept.

use super::{pretty, print, read_optional_file};
use crate::outbox::MessageInput;
use crate::services::Services;
use crate::store::messages::MessageFilter;
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `herald send`.
#[derive(Args)]
pub(super) struct SendArgs {
    #[arg(long, required = true)]
    to: Vec<String>,
    #[arg(long)]
    cc: Vec<String>,
    #[arg(long)]
    bcc: Vec<String>,
    #[arg(long)]
    subject: String,
    #[arg(long)]
    text: Option<String>,
    #[arg(long)]
    text_file: Option<PathBuf>,
    #[arg(long)]
    html_file: Option<PathBuf>,
    /// Id or name of the sending account; the default account when absent.
    #[arg(long)]
    account: Option<String>,
    #[arg(long)]
    idempotency_key: Option<String>,
    /// Only queue it; `herald serve` delivers it.
    #[arg(long)]
    queue_only: bool,
}

/// Subcommands of `herald messages`.
#[derive(Subcommand)]
pub(super) enum MessagesCommand {
    List {
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    Show {
        id: String,
    },
    Retry {
        id: String,
    },
    Cancel {
        id: String,
    },
}

/// Queues a message and, unless `--queue-only`, delivers it now; fails when
/// the delivery failed.
pub(super) async fn send(app: &Services, tenant: &str, args: SendArgs, json: bool) -> anyhow::Result<ExitCode> {
    let text = match args.text {
        Some(t) => Some(t),
        None => read_optional_file("--text-file", args.text_file.as_ref())?,
    };
    let html = read_optional_file("--html-file", args.html_file.as_ref())?;
    let input = MessageInput {
        to: args.to,
        cc: args.cc,
        bcc: args.bcc,
        subject: Some(args.subject),
        text,
        html,
        account: args.account,
        ..Default::default()
    };
    let (view, _) = app.outbox.accept_message(tenant, input, args.idempotency_key).await?;
    if !args.queue_only {
        deliver_now(app, &view.id).await?;
    }
    let view = app.outbox.get_message(tenant, &view.id).await?;
    print(json, &view, |v| {
        format!(
            "{} {}{}",
            v.id,
            v.status,
            v.last_error.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
        )
    });
    Ok(if view.status == "failed" {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Runs one `herald messages` subcommand within `tenant`.
pub(super) async fn run(app: &Services, tenant: &str, cmd: MessagesCommand, json: bool) -> anyhow::Result<ExitCode> {
    match cmd {
        MessagesCommand::List { status, limit } => {
            let list = app
                .outbox
                .list_messages(
                    tenant,
                    MessageFilter {
                        status,
                        limit,
                        ..Default::default()
                    },
                )
                .await?;
            print(json, &list, |l| {
                l.iter()
                    .map(|m| {
                        format!(
                            "{}  {:<9} {}  to {}",
                            m.id,
                            m.status,
                            m.subject,
                            m.to.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(", ")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        MessagesCommand::Show { id } => {
            let m = app.outbox.get_message(tenant, &id).await?;
            print(json, &m, pretty);
        }
        MessagesCommand::Cancel { id } => {
            let m = app.outbox.cancel_message(tenant, &id).await?;
            print(json, &m, |m| format!("{} {}", m.id, m.status));
        }
        MessagesCommand::Retry { id } => {
            let m = app.outbox.retry_message(tenant, &id).await?;
            print(json, &m, |m| format!("{} {}", m.id, m.status));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Lists the last 50 messages the capture mailbox kept for `tenant`.
pub(super) async fn capture(app: &Services, tenant: &str, json: bool) -> anyhow::Result<ExitCode> {
    let list = captured(app, tenant).await?;
    print(json, &list, |l| {
        if l.is_empty() {
            "The capture mailbox is empty.".into()
        } else {
            l.iter()
                .map(|v| {
                    format!(
                        "{}  {}  to {}",
                        v["at"].as_str().unwrap_or(""),
                        v["subject"].as_str().unwrap_or(""),
                        v["to"]
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        }
    });
    Ok(ExitCode::SUCCESS)
}

/// Delivers a queued message now, under a lease like the worker's, so a
/// running server cannot send it too.
pub(super) async fn deliver_now(app: &Services, id: &str) -> anyhow::Result<()> {
    app.worker.deliver_now(id).await?;
    Ok(())
}

/// The capture mailbox's last 50 messages: id, message, to, subject, at.
async fn captured(app: &Services, tenant: &str) -> anyhow::Result<Vec<serde_json::Value>> {
    let rows = app.outbox.captured(tenant, 50).await?;
    Ok(rows
        .iter()
        .map(|r| serde_json::json!({"id": r.id, "message": r.message, "to": r.to, "subject": r.subject, "at": r.at}))
        .collect())
}
