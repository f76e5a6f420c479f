//! `herald account`: add, list, show, edit and remove mail accounts, send a
//! test email with its diagnosis, and authorize an OAuth2 account through a
//! loopback listener.

use super::{pretty, print, read_optional_file, read_secret};
use crate::accounts::{AccountInput, AccountView, AuthInput, FromInput, LimitsInput, TlsInput};
use crate::error::Error;
use crate::i18n::Locale;
use crate::services::Services;
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Subcommands of `herald account`.
#[derive(Subcommand)]
pub(super) enum AccountCommand {
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

/// The fields of an account, as `add` and `edit` take them.
#[derive(Args, Default)]
pub(super) struct AccountArgs {
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
    /// none, password, oauth2 or google_service_account.
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
    /// Trust exactly the server certificate with this SHA-256 fingerprint
    /// (hex, colons allowed: the test report's certificate.sha256); "" removes the pin.
    #[arg(long)]
    pin_sha256: Option<String>,
    /// Proxy to reach the server through: http (HTTP CONNECT), socks5, none
    /// (directly, despite a platform default) or default (the platform's, if any).
    #[arg(long)]
    proxy: Option<String>,
    #[arg(long)]
    proxy_host: Option<String>,
    #[arg(long)]
    proxy_port: Option<u16>,
    #[arg(long)]
    proxy_username: Option<String>,
    /// Read the proxy password from stdin.
    #[arg(long, conflicts_with_all = ["secret_stdin", "client_secret_stdin"])]
    proxy_secret_stdin: bool,
    /// Read the proxy password from a file.
    #[arg(long)]
    proxy_secret_file: Option<PathBuf>,
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
    /// A Google service account's JSON key file (sets --auth google_service_account): sends as
    /// --from through domain-wide delegation.
    #[arg(long)]
    service_account_key_file: Option<PathBuf>,
}

/// Runs one `herald account` subcommand within `tenant`.
pub(super) async fn run(app: &Services, tenant: &str, cmd: AccountCommand, json: bool) -> anyhow::Result<ExitCode> {
    match cmd {
        AccountCommand::Add(args) => {
            let a = app.accounts.create_account(tenant, account_input(&args)?).await?;
            print(json, &a, |a| format!("added {}", account_line(a)));
        }
        AccountCommand::List => {
            let list = app.accounts.list_accounts(tenant).await?;
            print(json, &list, |l| {
                if l.is_empty() {
                    "No accounts yet: `herald account add --help`. Messages go to the capture mailbox until one exists."
                        .into()
                } else {
                    l.iter().map(account_line).collect::<Vec<_>>().join("\n")
                }
            });
        }
        AccountCommand::Show { id } => {
            let row = app.accounts.find_account(tenant, &id).await?;
            let a = app.accounts.account_view(&row).await?;
            print(json, &a, pretty);
        }
        AccountCommand::Edit { id, args } => {
            let a = app.accounts.edit_account(tenant, &id, account_input(&args)?).await?;
            print(json, &a, |a| format!("updated {}", account_line(a)));
        }
        AccountCommand::Remove { id } => {
            app.accounts.delete_account(tenant, &id).await?;
            if !json {
                println!("removed {id}");
            }
        }
        AccountCommand::Authorize { id, wait_secs } => return authorize(app, tenant, &id, wait_secs, json).await,
        AccountCommand::Test { id, to, locale } => return test(app, tenant, &id, &to, &locale, json).await,
    }
    Ok(ExitCode::SUCCESS)
}

/// The flags, and the secrets and files they name, as the domain's input;
/// a group of fields is absent when none of its flags is given.
fn account_input(args: &AccountArgs) -> anyhow::Result<AccountInput> {
    let secret = read_secret(args.secret_stdin, args.secret_file.as_deref(), "--secret-file")?;
    let ca_pem = read_optional_file("--ca-file", args.ca_file.as_ref())?;
    let client_secret = read_secret(
        args.client_secret_stdin,
        args.client_secret_file.as_deref(),
        "--client-secret-file",
    )?;
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
        issuer: None,
    });
    let service_account_key = read_optional_file("--service-account-key-file", args.service_account_key_file.as_ref())?;
    let auth = (args.auth.is_some()
        || args.username.is_some()
        || secret.is_some()
        || oauth.is_some()
        || service_account_key.is_some())
    .then(|| AuthInput {
        method: args.auth.clone(),
        username: args.username.clone(),
        secret,
        oauth,
        service_account_key,
    });
    let from = (args.from.is_some() || args.from_name.is_some()).then(|| FromInput {
        address: args.from.clone(),
        name: args.from_name.clone(),
    });
    let tls = (ca_pem.is_some() || args.skip_verify.is_some() || args.pin_sha256.is_some()).then_some(TlsInput {
        ca_pem,
        skip_verify: args.skip_verify,
        pin_sha256: args.pin_sha256.clone(),
    });
    let proxy_secret = read_secret(
        args.proxy_secret_stdin,
        args.proxy_secret_file.as_deref(),
        "--proxy-secret-file",
    )?;
    let proxy = match args.proxy.as_deref() {
        Some("default") => Some(None),
        kind if kind.is_some()
            || args.proxy_host.is_some()
            || args.proxy_port.is_some()
            || args.proxy_username.is_some()
            || proxy_secret.is_some() =>
        {
            Some(Some(crate::proxy::ProxyDoc {
                kind: kind.map(str::to_string),
                host: args.proxy_host.clone(),
                port: args.proxy_port,
                username: args.proxy_username.clone(),
                secret: proxy_secret,
                secret_set: None,
            }))
        }
        _ => None,
    };
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
        proxy,
    })
}

/// One account on a line, and its status message under it when there is one.
fn account_line(a: &AccountView) -> String {
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

/// Sends a test email and prints the transcript and the diagnosis; fails
/// when the email was not accepted.
async fn test(app: &Services, tenant: &str, id: &str, to: &str, locale: &str, json: bool) -> anyhow::Result<ExitCode> {
    let locale = Locale::parse(locale).ok_or_else(|| Error::field("locale", "must be en or zh-CN"))?;
    let report = app.test_mail.test_account(tenant, id, to, locale).await?;
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
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
/// The loopback flow of command-line tools: a listener on 127.0.0.1 receives
/// the redirect, the same code path as the server's `/oauth2/callback`
/// completes it.
async fn authorize(app: &Services, tenant: &str, id: &str, wait_secs: u64, json: bool) -> anyhow::Result<ExitCode> {
    use axum::extract::{Query, State};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let redirect = format!("http://127.0.0.1:{}/oauth2/callback", listener.local_addr()?.port());
    let started = app
        .authorizations
        .begin_authorization(tenant, id, Some(redirect.clone()))
        .await?;
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
                move |state: State<crate::oauth::Authorizations>, query: Query<crate::api::oauth::CallbackQuery>| {
                    let tx = tx.clone();
                    async move {
                        let (status, page) = crate::api::oauth::callback(state, query).await;
                        let _ = tx.send(status).await;
                        (status, page)
                    }
                },
            ),
        )
        .with_state(app.authorizations.clone());
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    let outcome = tokio::time::timeout(std::time::Duration::from_secs(wait_secs), rx.recv()).await;
    // Let the browser get its page before the listener goes away.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    server.abort();
    match outcome {
        Ok(Some(s)) if s.is_success() => {
            let row = app.accounts.find_account(tenant, id).await?;
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
