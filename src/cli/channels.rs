//! `herald channel`: webhook and chat-robot channels. A URL may hold a token
//! and a secret is a secret: both are read from stdin or a file, never from
//! the command line.

use super::{pretty, print, read_file, read_secret};
use crate::channels::{ChannelInput, ChannelLimits, ChannelView};
use crate::services::Services;
use clap::{Args, Subcommand};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

/// Subcommands of `herald channel`.
#[derive(Subcommand)]
pub(super) enum ChannelCommand {
    /// List the channels.
    List,
    /// Show one channel (URL masked, no secret).
    Show { id: String },
    /// Add a channel: webhook, slack, teams, dingtalk, feishu or wecom.
    Add {
        #[arg(long)]
        name: String,
        /// webhook, slack, teams, dingtalk, feishu or wecom.
        #[arg(long)]
        kind: String,
        #[command(flatten)]
        fields: ChannelFields,
    },
    /// Change a channel; absent flags keep their values.
    Edit {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        kind: Option<String>,
        #[command(flatten)]
        fields: ChannelFields,
    },
    /// Remove a channel no rule names.
    Remove { id: String },
    /// Send a test notification and report what came of it.
    Test {
        id: String,
        /// en or zh-CN: the language of the hint.
        #[arg(long)]
        locale: Option<String>,
    },
}

/// The flags `add` and `edit` share.
#[derive(Args)]
pub(super) struct ChannelFields {
    /// Read the URL from stdin (it may hold a token).
    #[arg(long, conflicts_with = "url_file")]
    url_stdin: bool,
    /// Read the URL from this file.
    #[arg(long)]
    url_file: Option<PathBuf>,
    /// Read the signing secret from stdin (webhook: whsec_…, made when absent;
    /// DingTalk / Feishu: the robot's secret).
    #[arg(long, conflicts_with_all = ["secret_file", "url_stdin"])]
    secret_stdin: bool,
    /// Read the signing secret from this file.
    #[arg(long)]
    secret_file: Option<PathBuf>,
    /// Read extra headers from this file, one `Name: value` a line.
    #[arg(long)]
    headers_file: Option<PathBuf>,
    /// Messages a minute (0: no limit); default the kind's published limit.
    #[arg(long)]
    per_minute: Option<u32>,
}

impl ChannelFields {
    fn input(self, name: Option<String>, kind: Option<String>) -> anyhow::Result<ChannelInput> {
        let url = read_secret(self.url_stdin, self.url_file.as_deref(), "--url-file")?;
        let secret = read_secret(self.secret_stdin, self.secret_file.as_deref(), "--secret-file")?;
        let headers = match &self.headers_file {
            None => None,
            Some(path) => {
                let text = read_file("--headers-file", path)?;
                let mut map = BTreeMap::new();
                for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
                    let (k, v) = line
                        .split_once(':')
                        .ok_or_else(|| anyhow::anyhow!("--headers-file line {}: write `Name: value`", i + 1))?;
                    map.insert(k.trim().to_string(), v.trim().to_string());
                }
                Some(map)
            }
        };
        Ok(ChannelInput {
            name,
            kind,
            url,
            secret,
            headers,
            limits: self.per_minute.map(|n| ChannelLimits { per_minute: Some(n) }),
        })
    }
}

fn line(c: &ChannelView) -> String {
    format!("{}  {}  {}  {}  {}", c.id, c.name, c.kind, c.status, c.url)
}

/// Runs one `herald channel` subcommand within `tenant`.
pub(super) async fn run(app: &Services, tenant: &str, cmd: ChannelCommand, json: bool) -> anyhow::Result<ExitCode> {
    match cmd {
        ChannelCommand::List => {
            let l = app.channels.list(tenant).await?;
            print(json, &l, |l| l.iter().map(line).collect::<Vec<_>>().join("\n"));
        }
        ChannelCommand::Show { id } => {
            let c = app.channels.get(tenant, &id).await?;
            print(json, &c, pretty);
        }
        ChannelCommand::Add { name, kind, fields } => {
            let c = app
                .channels
                .create(tenant, fields.input(Some(name), Some(kind))?)
                .await?;
            print(json, &c, |c| {
                let mut s = format!("added {}", line(c));
                if let Some(secret) = &c.secret {
                    s.push_str(&format!(
                        "\nsigning secret (shown once; give it to the receiver): {secret}"
                    ));
                }
                s
            });
        }
        ChannelCommand::Edit { id, name, kind, fields } => {
            let c = app.channels.edit(tenant, &id, fields.input(name, kind)?).await?;
            print(json, &c, |c| format!("changed {}", line(c)));
        }
        ChannelCommand::Remove { id } => {
            app.channels.delete(tenant, &id).await?;
            if !json {
                println!("removed channel {id}");
            }
        }
        ChannelCommand::Test { id, locale } => {
            let r = app.channels.test(tenant, &id, locale.as_deref()).await?;
            print(json, &r, |r| {
                let mut s = format!(
                    "{} at stage {}{} in {} ms",
                    if r.ok { "ok" } else { "failed" },
                    serde_json::to_value(r.stage)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default(),
                    r.status.map(|s| format!(", HTTP {s}")).unwrap_or_default(),
                    r.elapsed_ms
                );
                for (label, v) in [("error", &r.error), ("body", &r.body), ("hint", &r.hint)] {
                    if let Some(v) = v {
                        s.push_str(&format!("\n{label}: {v}"));
                    }
                }
                s
            });
            return Ok(if r.ok { ExitCode::SUCCESS } else { ExitCode::FAILURE });
        }
    }
    Ok(ExitCode::SUCCESS)
}
