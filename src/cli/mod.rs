//! The command line. Every command but `serve` works on the data directory
//! directly, through the same domain layer as the API, so it works with or
//! without a server running. Secrets are read from stdin or a file, never
//! from the command line, where they would end up in shell history and `ps`.
//!
//! This file parses the command line, opens the app and hands each command to
//! its family's file; it also holds what the families share: output, and
//! reading secrets and files named by flags.

mod accounts;
mod admin;
mod channels;
mod dkim;
mod messages;
mod providers;
mod rules;
mod serve;
mod tenants;

use crate::config::Config;
use crate::error::Error;
use crate::services::Services;
use crate::store::PLATFORM;
use clap::{Parser, Subcommand};
use serde::Serialize;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "herald",
    version,
    about = "Herald: system email through any SMTP provider, with diagnoses that say what to fix"
)]
struct Cli {
    /// Data directory (HERALD_DATA_DIR); default ./herald-data.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    json: bool,
    /// Act within this tenant (id); default the platform.
    #[arg(long, global = true)]
    tenant: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP API and the delivery worker.
    Serve(serve::ServeArgs),
    /// List the provider catalog.
    Providers,
    /// Propose SMTP settings for an address.
    Discover(providers::DiscoverArgs),
    /// Manage mail accounts.
    #[command(subcommand)]
    Account(Box<accounts::AccountCommand>),
    /// Queue a message (and deliver it right away).
    Send(messages::SendArgs),
    /// The delivery log.
    #[command(subcommand)]
    Messages(messages::MessagesCommand),
    /// Messages kept in the capture mailbox (no account configured).
    Capture,
    /// Platform admin API tokens.
    #[command(subcommand)]
    Token(tenants::TokenCommand),
    /// Tenants (platform admin).
    #[command(subcommand)]
    Tenant(tenants::TenantCommand),
    /// Notification rules.
    #[command(subcommand)]
    Rule(Box<rules::RuleCommand>),
    /// Post an event: matching rules turn it into messages.
    Event(rules::EventArgs),
    /// Webhook and chat-robot channels (webhook, slack, teams, dingtalk, feishu, wecom).
    #[command(subcommand)]
    Channel(Box<channels::ChannelCommand>),
    /// DKIM keys per sending domain: the TXT record to publish, its check.
    #[command(subcommand)]
    Dkim(dkim::DkimCommand),
    /// The web console's users (`herald admin reset-password`).
    #[command(subcommand)]
    Admin(admin::AdminCommand),
}

/// How `herald serve` runs the services: given by `main`, which alone knows
/// the start-up (the edges do not import it).
pub type Serve = fn(Services) -> std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + Send>>;

/// Runs the `herald` command line: parses it, runs the command and reports
/// an error on stderr; the exit code says whether the command succeeded.
pub fn main(serve: Serve) -> ExitCode {
    let cli = Cli::parse();
    if let Some(dir) = &cli.data_dir {
        // SAFETY: set before any thread is started.
        unsafe { std::env::set_var("HERALD_DATA_DIR", dir) };
    }
    if let Command::Serve(serve::ServeArgs { listen: Some(l) }) = &cli.command {
        unsafe { std::env::set_var("HERALD_LISTEN", l) };
    }
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    init_logging(&config, matches!(cli.command, Command::Serve(_)));
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(cli, config, serve)) {
        Ok(code) => code,
        Err(e) => {
            match e.downcast_ref::<Error>() {
                Some(Error::Invalid(list)) => {
                    eprintln!("error: invalid input");
                    for f in list {
                        eprintln!("  {}: {}", f.field, f.message);
                    }
                }
                _ => eprintln!("error: {e:#}"),
            }
            ExitCode::FAILURE
        }
    }
}

fn init_logging(config: &Config, serving: bool) {
    use tracing_subscriber::EnvFilter;
    let default = if serving { "info,sqlx=warn" } else { "warn" };
    let filter = EnvFilter::try_from_env("HERALD_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if config.log_json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn run(cli: Cli, config: Config, serve: Serve) -> anyhow::Result<ExitCode> {
    let json = cli.json;
    // The catalog commands need no data directory.
    let command = match cli.command {
        Command::Providers => return Ok(providers::list(json)),
        Command::Discover(args) => return providers::discover(args, json).await,
        command => command,
    };
    let tenant = cli.tenant.unwrap_or_else(|| PLATFORM.to_string());
    let tenant = tenant.as_str();
    let app = open(config, tenant).await?;
    let code = match command {
        Command::Providers | Command::Discover(_) => unreachable!("handled above"),
        // The server closes the database when it stops.
        Command::Serve(_) => return serve::run(&app, serve).await,
        Command::Account(cmd) => accounts::run(&app, tenant, *cmd, json).await?,
        Command::Send(args) => messages::send(&app, tenant, args, json).await?,
        Command::Messages(cmd) => messages::run(&app, tenant, cmd, json).await?,
        Command::Capture => messages::capture(&app, tenant, json).await?,
        Command::Token(cmd) => tenants::token(&app, cmd).await?,
        Command::Tenant(cmd) => tenants::run(&app, tenant, cmd, json).await?,
        Command::Rule(cmd) => rules::run(&app, tenant, *cmd, json).await?,
        Command::Event(args) => rules::event(&app, tenant, args, json).await?,
        Command::Channel(cmd) => channels::run(&app, tenant, *cmd, json).await?,
        Command::Dkim(cmd) => dkim::run(&app, tenant, cmd, json).await?,
        Command::Admin(cmd) => admin::run(&app, cmd, json).await?,
    };
    close(&app).await?;
    Ok(code)
}

/// Opens the services on the data directory, for a tenant that must exist.
async fn open(config: Config, tenant: &str) -> anyhow::Result<Services> {
    let app = Services::open(config).await?;
    if !app.tenants.exists(tenant).await? {
        anyhow::bail!("--tenant {tenant}: no such tenant (see `herald tenant list`)");
    }
    Ok(app)
}

/// After a command that succeeded: the account events it raised (a delivery
/// that found the account broken) become notifications now, as the server's
/// event feed would make them; then the database is closed.
async fn close(app: &Services) -> anyhow::Result<()> {
    app.rules.dispatch_pending().await?;
    app.close().await;
    Ok(())
}

/// Prints `value` as pretty JSON with `--json`, else as `human` renders it.
fn print<T: Serialize>(json: bool, value: &T, human: impl FnOnce(&T) -> String) {
    if json {
        println!("{}", serde_json::to_string_pretty(value).expect("serializable"));
    } else {
        println!("{}", human(value));
    }
}

/// Pretty JSON, the human form of a `show` command.
fn pretty<T: Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).expect("serializable")
}

/// A secret from stdin (when `stdin`) or from `file`, without the line end a
/// shell or an editor adds; `flag` names the file's flag in an error.
fn read_secret(stdin: bool, file: Option<&Path>, flag: &str) -> anyhow::Result<Option<String>> {
    let text = if stdin {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        s
    } else if let Some(path) = file {
        read_file(flag, path)?
    } else {
        return Ok(None);
    };
    Ok(Some(text.trim_end_matches(['\r', '\n']).to_string()))
}

/// The text of a file named by `flag`, with the flag and path in an error.
fn read_file(flag: &str, path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{flag} {}: {e}", path.display()))
}

/// [`read_file`] for an optional flag.
fn read_optional_file(flag: &str, path: Option<&PathBuf>) -> anyhow::Result<Option<String>> {
    path.map(|p| read_file(flag, p)).transpose()
}
