//! `herald rule` and `herald event`: notification rules, and events that
//! matching rules turn into messages, delivered right away.

use super::messages::deliver_now;
use super::{pretty, print};
use crate::error::Error;
use crate::rules::{EventInput, Match, Method, RuleInput, RuleView, Severity};
use crate::services::Services;
use clap::{Args, Subcommand};
use std::process::ExitCode;

/// Subcommands of `herald rule`.
#[derive(Subcommand)]
pub(super) enum RuleCommand {
    List,
    Show {
        id: String,
    },
    /// Add a rule from flags.
    Add {
        #[arg(long)]
        name: String,
        /// Event type glob (repeat for several), e.g. backup.*
        #[arg(long = "type")]
        types: Vec<String>,
        #[arg(long, default_value = "info")]
        min_severity: String,
        #[arg(long = "keyword")]
        keywords: Vec<String>,
        #[arg(long = "source")]
        sources: Vec<String>,
        /// Recipient address, or @admins (repeat for several).
        #[arg(long, required = true)]
        to: Vec<String>,
        /// Sending account; the default route when absent.
        #[arg(long)]
        account: Option<String>,
        #[arg(long)]
        from_name: Option<String>,
        #[arg(long, default_value_t = 0)]
        throttle_secs: u64,
    },
    Enable {
        id: String,
    },
    Disable {
        id: String,
    },
    Remove {
        id: String,
    },
}

/// Arguments of `herald event`.
#[derive(Args)]
pub(super) struct EventArgs {
    #[arg(long = "type")]
    kind: String,
    /// info, warning, error or critical.
    #[arg(long, default_value = "info")]
    severity: String,
    #[arg(long)]
    title: String,
    #[arg(long)]
    message: Option<String>,
    #[arg(long)]
    source: Option<String>,
}

/// Runs one `herald rule` subcommand within `tenant`.
pub(super) async fn run(app: &Services, tenant: &str, cmd: RuleCommand, json: bool) -> anyhow::Result<ExitCode> {
    match cmd {
        RuleCommand::List => {
            let l = app.rules.list_rules(tenant).await?;
            print(json, &l, |l| l.iter().map(rule_line).collect::<Vec<_>>().join("\n"));
        }
        RuleCommand::Show { id } => {
            let r = app.rules.get_rule(tenant, &id).await?;
            print(json, &r, pretty);
        }
        RuleCommand::Add {
            name,
            types,
            min_severity,
            keywords,
            sources,
            to,
            account,
            from_name,
            throttle_secs,
        } => {
            let min = Severity::parse(&min_severity)
                .ok_or_else(|| Error::field("min_severity", "must be info, warning, error or critical"))?;
            let input = RuleInput {
                name: Some(name),
                enabled: Some(true),
                matcher: Some(Match {
                    types,
                    min_severity: min,
                    keywords,
                    sources,
                }),
                methods: Some(vec![Method {
                    channel: "email".into(),
                    account,
                    to,
                    from_name,
                    template: None,
                }]),
                throttle_secs: Some(throttle_secs),
            };
            let r = app.rules.create_rule(tenant, input).await?;
            print(json, &r, |r| format!("added {}", rule_line(r)));
        }
        RuleCommand::Enable { id } => set_enabled(app, tenant, &id, true, json).await?,
        RuleCommand::Disable { id } => set_enabled(app, tenant, &id, false, json).await?,
        RuleCommand::Remove { id } => {
            app.rules.delete_rule(tenant, &id).await?;
            if !json {
                println!("removed rule {id}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Enables or disables a rule and prints it.
async fn set_enabled(app: &Services, tenant: &str, id: &str, enabled: bool, json: bool) -> anyhow::Result<()> {
    let input = RuleInput {
        enabled: Some(enabled),
        ..Default::default()
    };
    let r = app.rules.edit_rule(tenant, id, input).await?;
    print(json, &r, rule_line);
    Ok(())
}

/// One rule on a line: id, name, state, what it matches and who it notifies.
fn rule_line(r: &RuleView) -> String {
    format!(
        "{}  {:<30} {}  types {:?} ≥{}  → {}",
        r.id,
        r.name,
        if r.enabled { "enabled " } else { "disabled" },
        r.matcher.types,
        r.matcher.min_severity.as_str(),
        r.methods
            .iter()
            .flat_map(|m| m.to.clone())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Posts an event, delivers the messages its rules created now, as `send`
/// does, and says which rules matched.
pub(super) async fn event(app: &Services, tenant: &str, args: EventArgs, json: bool) -> anyhow::Result<ExitCode> {
    let input = EventInput {
        kind: Some(args.kind),
        severity: Some(args.severity),
        source: args.source,
        title: Some(args.title),
        message: args.message,
        data: None,
    };
    let out = app.rules.post_event(tenant, input).await?;
    for id in &out.messages {
        deliver_now(app, id).await?;
    }
    print(json, &out, |o| {
        format!(
            "event {}: {} rule(s) matched ({}), {} message(s)",
            o.id,
            o.rules.len(),
            o.rules
                .iter()
                .map(|r| if r.sent {
                    r.name.clone()
                } else {
                    format!("{} (throttled)", r.name)
                })
                .collect::<Vec<_>>()
                .join(", "),
            o.messages.len()
        )
    });
    Ok(ExitCode::SUCCESS)
}
