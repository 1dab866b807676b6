//! `meanwhile completions SHELL`: prints a completion script.

use clap::CommandFactory;
use std::process::ExitCode;

/// Arguments of `completions`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// bash, zsh, fish, elvish or powershell.
    pub shell: clap_complete::Shell,
}

/// Runs `completions`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut cmd = crate::Cli::command();
    // Generated into memory first: the generator panics on a failed write, and a
    // closed stdout must end the command quietly (see `crate::out`).
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "meanwhile", &mut script);
    crate::out::bytes(&script)?;
    Ok(ExitCode::SUCCESS)
}
