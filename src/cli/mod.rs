//! The command line. Every command but `serve` works on the data directory
//! directly, through the same domain layer as the API, so it works with or
//! without a server running. Secrets are read from stdin or a file, never
//! from the command line, where they would end up in shell history and `ps`.

use crate::accounts::{AccountInput, AuthInput, FromInput, LimitsInput, TlsInput};
use crate::app::App;
use crate::config::Config;
use crate::error::Error;
use crate::i18n::Locale;
use crate::outbox::MessageInput;
use crate::store::PLATFORM;
use crate::store::messages::MessageFilter;
use clap::{Args, Parser, Subcommand};
use serde::Serialize;
use std::io::Read;
use std::path::PathBuf;
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
    Serve {
        /// Listen address (HERALD_LISTEN); default 127.0.0.1:8080.
        #[arg(long)]
        listen: Option<String>,
    },
    /// List the provider catalog.
    Providers,
    /// Propose SMTP settings for an address.
    Discover {
        address: String,
        /// Only the built-in catalog, no DNS or HTTP.
        #[arg(long)]
        offline: bool,
    },
    /// Manage mail accounts.
    #[command(subcommand)]
    Account(Box<AccountCmd>),
    /// Queue a message (and deliver it right away).
    Send(SendArgs),
    /// The delivery log.
    #[command(subcommand)]
    Messages(MessagesCmd),
    /// Messages kept in the capture mailbox (no account configured).
    Capture,
    /// Platform admin API tokens.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Tenants (platform admin).
    #[command(subcommand)]
    Tenant(TenantCmd),
    /// Notification rules.
    #[command(subcommand)]
    Rule(Box<RuleCmd>),
    /// Post an event: matching rules turn it into messages.
    Event {
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
    },
}

#[derive(Subcommand)]
enum TenantCmd {
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

#[derive(Subcommand)]
enum RuleCmd {
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

#[derive(Subcommand)]
enum TokenCmd {
    /// Create another platform admin token (printed once).
    Create {
        #[arg(long, default_value = "cli")]
        label: String,
    },
}

#[derive(Subcommand)]
enum AccountCmd {
    /// Add an account; the preset of --provider fills host, port and security.
    Add(AccountArgs),
    List,
    Show {
        id: String,
    },
    /// Change fields of an account; what is not given stays as it is.
    Edit {
        id: String,
        #[command(flatten)]
        args: AccountArgs,
    },
    Remove {
        id: String,
    },
    /// Authorize an OAuth2 account: prints the sign-in URL and finishes through
    /// a listener on 127.0.0.1 (register http://127.0.0.1 as a redirect URI).
    Authorize {
        id: String,
        /// How long to wait for the sign-in, in seconds.
        #[arg(long, default_value_t = 600)]
        wait_secs: u64,
    },
    /// Send a test email and print the diagnosis.
    Test {
        id: String,
        #[arg(long)]
        to: String,
        /// en or zh-CN.
        #[arg(long, default_value = "en")]
        locale: String,
    },
}

#[derive(Args, Default)]
struct AccountArgs {
    #[arg(long)]
    name: Option<String>,
    /// Catalog id (gmail, qq, office365 …) or custom; see `herald providers`.
    #[arg(long)]
    provider: Option<String>,
    #[arg(long)]
    host: Option<String>,
    #[arg(long)]
    port: Option<u16>,
    /// none, tls (implicit, 465) or starttls (587).
    #[arg(long)]
    security: Option<String>,
    /// none or password.
    #[arg(long)]
    auth: Option<String>,
    /// Login name, when it differs from the sender address.
    #[arg(long)]
    username: Option<String>,
    /// Read the secret (password, app password, authorization code, API key) from stdin.
    #[arg(long)]
    secret_stdin: bool,
    /// Read the secret from a file.
    #[arg(long)]
    secret_file: Option<PathBuf>,
    /// Sender address.
    #[arg(long)]
    from: Option<String>,
    /// Sender display name.
    #[arg(long)]
    from_name: Option<String>,
    /// Extra CA certificate(s) to trust, PEM file.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Do not verify the server certificate (only for servers you control).
    #[arg(long)]
    skip_verify: Option<bool>,
    #[arg(long)]
    timeout_secs: Option<u64>,
    #[arg(long)]
    limit_connections: Option<u32>,
    #[arg(long)]
    limit_per_minute: Option<u32>,
    #[arg(long)]
    limit_per_day: Option<u32>,
    /// Id or name of the backup account.
    #[arg(long)]
    backup_account: Option<String>,
    /// OAuth2 provider: google, microsoft or custom (sets --auth oauth2).
    #[arg(long)]
    oauth_provider: Option<String>,
    /// authorization_code (a person signs in) or client_credentials (app-only, Microsoft).
    #[arg(long)]
    oauth_flow: Option<String>,
    #[arg(long)]
    client_id: Option<String>,
    /// Read the OAuth2 client secret from stdin.
    #[arg(long, conflicts_with = "secret_stdin")]
    client_secret_stdin: bool,
    /// Read the OAuth2 client secret from a file.
    #[arg(long)]
    client_secret_file: Option<PathBuf>,
    /// Microsoft directory (tenant) id; default common.
    #[arg(long)]
    tenant_id: Option<String>,
    #[arg(long)]
    authorize_url: Option<String>,
    #[arg(long)]
    token_url: Option<String>,
    #[arg(long)]
    scope: Option<String>,
}

#[derive(Args)]
struct SendArgs {
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

#[derive(Subcommand)]
enum MessagesCmd {
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

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(dir) = &cli.data_dir {
        // SAFETY: set before any thread is started.
        unsafe { std::env::set_var("HERALD_DATA_DIR", dir) };
    }
    if let Command::Serve { listen: Some(l) } = &cli.command {
        unsafe { std::env::set_var("HERALD_LISTEN", l) };
    }
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    init_logging(&config, matches!(cli.command, Command::Serve { .. }));
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(cli, config)) {
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

fn print<T: Serialize>(json: bool, value: &T, human: impl FnOnce(&T) -> String) {
    if json {
        println!("{}", serde_json::to_string_pretty(value).expect("serializable"));
    } else {
        println!("{}", human(value));
    }
}

fn read_secret(args: &AccountArgs) -> anyhow::Result<Option<String>> {
    if args.secret_stdin {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        return Ok(Some(s.trim_end_matches(['\r', '\n']).to_string()));
    }
    if let Some(path) = &args.secret_file {
        let s = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("--secret-file {}: {e}", path.display()))?;
        return Ok(Some(s.trim_end_matches(['\r', '\n']).to_string()));
    }
    Ok(None)
}

fn account_input(args: &AccountArgs) -> anyhow::Result<AccountInput> {
    let secret = read_secret(args)?;
    let ca_pem = match &args.ca_file {
        Some(p) => Some(std::fs::read_to_string(p).map_err(|e| anyhow::anyhow!("--ca-file {}: {e}", p.display()))?),
        None => None,
    };
    let client_secret = if args.client_secret_stdin {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        Some(s.trim_end_matches(['\r', '\n']).to_string())
    } else if let Some(path) = &args.client_secret_file {
        let s = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("--client-secret-file {}: {e}", path.display()))?;
        Some(s.trim_end_matches(['\r', '\n']).to_string())
    } else {
        None
    };
    let oauth_given = args.oauth_provider.is_some()
        || args.oauth_flow.is_some()
        || args.client_id.is_some()
        || client_secret.is_some()
        || args.tenant_id.is_some()
        || args.authorize_url.is_some()
        || args.token_url.is_some()
        || args.scope.is_some();
    let oauth = oauth_given.then(|| crate::oauth::OAuthInput {
        provider: args.oauth_provider.clone(),
        flow: args.oauth_flow.clone(),
        client_id: args.client_id.clone(),
        client_secret,
        tenant_id: args.tenant_id.clone(),
        authorize_url: args.authorize_url.clone(),
        token_url: args.token_url.clone(),
        scope: args.scope.clone(),
    });
    let auth =
        (args.auth.is_some() || args.username.is_some() || secret.is_some() || oauth.is_some()).then(|| AuthInput {
            method: args.auth.clone(),
            username: args.username.clone(),
            secret,
            oauth,
        });
    let from = (args.from.is_some() || args.from_name.is_some()).then(|| FromInput {
        address: args.from.clone(),
        name: args.from_name.clone(),
    });
    let tls = (ca_pem.is_some() || args.skip_verify.is_some()).then_some(TlsInput {
        ca_pem,
        skip_verify: args.skip_verify,
    });
    let limits = (args.limit_connections.is_some() || args.limit_per_minute.is_some() || args.limit_per_day.is_some())
        .then_some(LimitsInput {
            connections: args.limit_connections,
            per_minute: args.limit_per_minute,
            per_day: args.limit_per_day,
        });
    Ok(AccountInput {
        name: args.name.clone(),
        provider: args.provider.clone(),
        host: args.host.clone(),
        port: args.port,
        security: args.security.clone(),
        auth,
        from,
        tls,
        timeout_secs: args.timeout_secs,
        limits,
        backup_account: args.backup_account.clone(),
    })
}

fn account_line(a: &crate::accounts::AccountView) -> String {
    format!(
        "{}  {:<20} {:<12} {}:{} ({})  from {}  [{}]{}",
        a.id,
        a.name,
        a.provider,
        a.host,
        a.port,
        a.security.as_str(),
        a.from.address,
        a.status,
        a.status_message
            .as_deref()
            .map(|m| format!("\n    {m}"))
            .unwrap_or_default()
    )
}

async fn run(cli: Cli, config: Config) -> anyhow::Result<ExitCode> {
    let json = cli.json;
    if let Command::Providers = cli.command {
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
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::Discover { address, offline } = &cli.command {
        let address = crate::domain::EmailAddress::parse(address).map_err(|m| Error::field("address", m))?;
        let d = crate::discovery::discover(
            &address,
            &crate::discovery::Options {
                offline: *offline,
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
        return Ok(ExitCode::SUCCESS);
    }

    let tenant_owned = cli.tenant.clone().unwrap_or_else(|| PLATFORM.to_string());
    let tenant = tenant_owned.as_str();
    let app = open(config, tenant).await?;
    let code = match cli.command {
        Command::Serve { .. } => {
            crate::app::serve(app.clone()).await?;
            ExitCode::SUCCESS
        }
        Command::Providers | Command::Discover { .. } => unreachable!("handled above"),
        Command::Token(TokenCmd::Create { label }) => {
            let token = app.create_admin_token(&label).await?;
            println!("{token}");
            ExitCode::SUCCESS
        }
        Command::Account(cmd) => match *cmd {
            AccountCmd::Add(args) => {
                let a = app.create_account(tenant, account_input(&args)?).await?;
                print(json, &a, |a| format!("added {}", account_line(a)));
                ExitCode::SUCCESS
            }
            AccountCmd::List => {
                let list = app.list_accounts(tenant).await?;
                print(json, &list, |l| {
                    if l.is_empty() {
                        "No accounts yet: `herald account add --help`. Messages go to the capture mailbox until one exists.".into()
                    } else {
                        l.iter().map(account_line).collect::<Vec<_>>().join("\n")
                    }
                });
                ExitCode::SUCCESS
            }
            AccountCmd::Show { id } => {
                let row = app.find_account(tenant, &id).await?;
                let a = app.account_view(&row).await?;
                print(json, &a, |a| serde_json::to_string_pretty(a).expect("serializable"));
                ExitCode::SUCCESS
            }
            AccountCmd::Edit { id, args } => {
                let a = app.edit_account(tenant, &id, account_input(&args)?).await?;
                print(json, &a, |a| format!("updated {}", account_line(a)));
                ExitCode::SUCCESS
            }
            AccountCmd::Remove { id } => {
                app.delete_account(tenant, &id).await?;
                if !json {
                    println!("removed {id}");
                }
                ExitCode::SUCCESS
            }
            AccountCmd::Authorize { id, wait_secs } => authorize(&app, tenant, &id, wait_secs, json).await?,
            AccountCmd::Test { id, to, locale } => {
                let locale = Locale::parse(&locale).ok_or_else(|| Error::field("locale", "must be en or zh-CN"))?;
                let report = app.test_account(tenant, &id, &to, locale).await?;
                print(json, &report, |r| {
                    let mut s = String::new();
                    for l in &r.transcript {
                        s.push_str(&format!(
                            "{} {}\n",
                            if l.dir == crate::smtp::Dir::C { "C:" } else { "S:" },
                            l.line
                        ));
                    }
                    if r.ok {
                        s.push_str(&format!("\nOK: the test email was accepted ({} ms).", r.elapsed_ms));
                    } else {
                        s.push_str(&format!(
                            "\nFAILED at {}{}{}\nclass: {}\nhint: {}",
                            r.stage.as_str(),
                            r.code.map(|c| format!(" — {c}")).unwrap_or_default(),
                            r.enhanced_code.as_deref().map(|e| format!(" {e}")).unwrap_or_default(),
                            r.class.map(crate::delivery::class_name).unwrap_or(""),
                            r.hint.as_deref().unwrap_or("")
                        ));
                    }
                    s
                });
                if report.ok {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            }
        },
        Command::Send(args) => {
            let text = match (&args.text, &args.text_file) {
                (Some(t), _) => Some(t.clone()),
                (None, Some(p)) => {
                    Some(std::fs::read_to_string(p).map_err(|e| anyhow::anyhow!("--text-file {}: {e}", p.display()))?)
                }
                (None, None) => None,
            };
            let html = match &args.html_file {
                Some(p) => {
                    Some(std::fs::read_to_string(p).map_err(|e| anyhow::anyhow!("--html-file {}: {e}", p.display()))?)
                }
                None => None,
            };
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
            let (view, _) = app.accept_message(tenant, input, args.idempotency_key).await?;
            if !args.queue_only {
                deliver_now(&app, &view.id).await?;
            }
            let view = app.get_message(tenant, &view.id).await?;
            print(json, &view, |v| {
                format!(
                    "{} {}{}",
                    v.id,
                    v.status,
                    v.last_error.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
                )
            });
            if view.status == "failed" {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Command::Messages(cmd) => match cmd {
            MessagesCmd::List { status, limit } => {
                let list = app
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
                ExitCode::SUCCESS
            }
            MessagesCmd::Show { id } => {
                let m = app.get_message(tenant, &id).await?;
                print(json, &m, |m| serde_json::to_string_pretty(m).expect("serializable"));
                ExitCode::SUCCESS
            }
            MessagesCmd::Cancel { id } => {
                let m = app.cancel_message(tenant, &id).await?;
                print(json, &m, |m| format!("{} {}", m.id, m.status));
                ExitCode::SUCCESS
            }
            MessagesCmd::Retry { id } => {
                let m = app.retry_message(tenant, &id).await?;
                print(json, &m, |m| format!("{} {}", m.id, m.status));
                ExitCode::SUCCESS
            }
        },
        Command::Tenant(cmd) => {
            match cmd {
                TenantCmd::Add { name } => {
                    let t = app
                        .create_tenant(tenant, crate::tenants::TenantInput { name: Some(name) })
                        .await?;
                    print(json, &t, |t| {
                        format!(
                            "created tenant {} ({})\nits admin API token (shown once): {}",
                            t.name, t.id, t.token
                        )
                    });
                }
                TenantCmd::List => {
                    let l = app.list_tenants(tenant).await?;
                    print(json, &l, |l| {
                        l.iter()
                            .map(|t| format!("{}  {}", t.id, t.name))
                            .collect::<Vec<_>>()
                            .join("\n")
                    });
                }
                TenantCmd::Remove { id } => {
                    app.delete_tenant(tenant, &id).await?;
                    if !json {
                        println!("removed tenant {id}");
                    }
                }
            }
            ExitCode::SUCCESS
        }
        Command::Rule(cmd) => {
            let line = |r: &crate::rules::RuleView| {
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
            };
            match *cmd {
                RuleCmd::List => {
                    let l = app.list_rules(tenant).await?;
                    print(json, &l, |l| l.iter().map(line).collect::<Vec<_>>().join("\n"));
                }
                RuleCmd::Show { id } => {
                    let r = app.get_rule(tenant, &id).await?;
                    print(json, &r, |r| serde_json::to_string_pretty(r).expect("serializable"));
                }
                RuleCmd::Add {
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
                    let min = crate::rules::Severity::parse(&min_severity)
                        .ok_or_else(|| Error::field("min_severity", "must be info, warning, error or critical"))?;
                    let input = crate::rules::RuleInput {
                        name: Some(name),
                        enabled: Some(true),
                        matcher: Some(crate::rules::Match {
                            types,
                            min_severity: min,
                            keywords,
                            sources,
                        }),
                        methods: Some(vec![crate::rules::Method {
                            channel: "email".into(),
                            account,
                            to,
                            from_name,
                            template: None,
                        }]),
                        throttle_secs: Some(throttle_secs),
                    };
                    let r = app.create_rule(tenant, input).await?;
                    print(json, &r, |r| format!("added {}", line(r)));
                }
                RuleCmd::Enable { id } => {
                    let r = app
                        .edit_rule(
                            tenant,
                            &id,
                            crate::rules::RuleInput {
                                enabled: Some(true),
                                ..Default::default()
                            },
                        )
                        .await?;
                    print(json, &r, |r| line(r));
                }
                RuleCmd::Disable { id } => {
                    let r = app
                        .edit_rule(
                            tenant,
                            &id,
                            crate::rules::RuleInput {
                                enabled: Some(false),
                                ..Default::default()
                            },
                        )
                        .await?;
                    print(json, &r, |r| line(r));
                }
                RuleCmd::Remove { id } => {
                    app.delete_rule(tenant, &id).await?;
                    if !json {
                        println!("removed rule {id}");
                    }
                }
            }
            ExitCode::SUCCESS
        }
        Command::Event {
            kind,
            severity,
            title,
            message,
            source,
        } => {
            let out = app
                .post_event(
                    tenant,
                    crate::rules::EventInput {
                        kind: Some(kind),
                        severity: Some(severity),
                        source,
                        title: Some(title),
                        message,
                        data: None,
                    },
                )
                .await?;
            // Deliver what it created now, as `send` does.
            for id in &out.messages {
                deliver_now(&app, id).await?;
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
            ExitCode::SUCCESS
        }
        Command::Capture => {
            let list = captured(&app, tenant).await?;
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
            ExitCode::SUCCESS
        }
    };
    close(&app).await;
    Ok(code)
}

// store access: to move behind a service

/// Opens the app on the data directory, for a tenant that must exist.
async fn open(config: Config, tenant: &str) -> anyhow::Result<App> {
    let app = App::open(config).await?;
    if app.store.get_tenant(tenant).await?.is_none() {
        anyhow::bail!("--tenant {tenant}: no such tenant (see `herald tenant list`)");
    }
    Ok(app)
}

/// Closes the database after a command that succeeded.
async fn close(app: &App) {
    app.store.close().await;
}

/// Delivers a queued message now, under a lease like the worker's, so a
/// running server cannot send it too. Should become one call to the delivery
/// service.
async fn deliver_now(app: &App, id: &str) -> anyhow::Result<()> {
    let now = crate::now_ms();
    let lease = now + 10 * 60 * 1000;
    if let Some(row) = app.store.claim_message(id, now, lease).await? {
        app.deliver(&row, lease, &crate::delivery::Lookups::new(app)).await?;
    }
    Ok(())
}

/// The capture mailbox's last 50 messages: id, message, to, subject, at.
async fn captured(app: &App, tenant: &str) -> anyhow::Result<Vec<serde_json::Value>> {
    let rows = app.store.list_captured(tenant, 50).await?;
    Ok(rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "id": r.id,
                "message": r.message_id,
                "to": serde_json::from_str::<serde_json::Value>(&r.rcpt_to).unwrap_or_default(),
                "subject": r.subject,
                "at": crate::rfc3339(r.at),
            })
        })
        .collect())
}

/// The loopback flow of command-line tools: a listener on 127.0.0.1 receives
/// the redirect, the same code path as the server's `/oauth2/callback`
/// completes it.
async fn authorize(app: &App, tenant: &str, id: &str, wait_secs: u64, json: bool) -> anyhow::Result<ExitCode> {
    use axum::extract::{Query, State};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let redirect = format!("http://127.0.0.1:{}/oauth2/callback", listener.local_addr()?.port());
    let started = app.begin_authorization(tenant, id, Some(redirect.clone())).await?;
    if json {
        println!("{}", serde_json::to_string(&started)?);
    } else {
        println!(
            "Open this URL in a browser and sign in:\n\n  {}\n",
            started.authorize_url
        );
        println!("Waiting for the redirect to {redirect} …");
    }
    use std::io::Write;
    std::io::stdout().flush()?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<axum::http::StatusCode>(1);
    let router = axum::Router::new()
        .route(
            "/oauth2/callback",
            axum::routing::get(
                move |state: State<App>, query: Query<crate::api::oauth::CallbackQuery>| {
                    let tx = tx.clone();
                    async move {
                        let (status, page) = crate::api::oauth::callback(state, query).await;
                        let _ = tx.send(status).await;
                        (status, page)
                    }
                },
            ),
        )
        .with_state(app.clone());
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    let outcome = tokio::time::timeout(std::time::Duration::from_secs(wait_secs), rx.recv()).await;
    // Let the browser get its page before the listener goes away.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    server.abort();
    match outcome {
        Ok(Some(s)) if s.is_success() => {
            let row = app.find_account(tenant, id).await?;
            if !json {
                println!("Authorized: the account \"{}\" is {}.", row.name, row.status);
            }
            Ok(ExitCode::SUCCESS)
        }
        Ok(_) => {
            eprintln!("error: the authorization failed; the browser page says why. Run the command again to retry.");
            Ok(ExitCode::FAILURE)
        }
        Err(_) => {
            eprintln!("error: no redirect arrived within {wait_secs} s; run the command again to retry.");
            Ok(ExitCode::FAILURE)
        }
    }
}
