//! `herald serve`: the HTTP API and the delivery worker, until a signal.

use crate::services::Services;
use clap::Args;
use std::process::ExitCode;

/// Flags of `herald serve`.
#[derive(Args)]
pub(super) struct ServeArgs {
    /// Listen address (HERALD_LISTEN); default 127.0.0.1:8080.
    #[arg(long)]
    pub(super) listen: Option<String>,
}

/// Serves until Ctrl-C or SIGTERM; the listen address has already gone into
/// the configuration through HERALD_LISTEN.
pub(super) async fn run(app: &Services, serve: super::Serve) -> anyhow::Result<ExitCode> {
    serve(app.clone()).await?;
    Ok(ExitCode::SUCCESS)
}
