//! `pliuz audit ...` commands.

use crate::config::Overrides;
use clap::Subcommand;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Print the verifier key.
    Key,
}

pub async fn run(_command: AuditCommand, _over: &Overrides) -> anyhow::Result<ExitCode> {
    anyhow::bail!("audit commands are not available in this build")
}
