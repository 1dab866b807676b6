//! `meanwhile completions SHELL`: prints the shell's completion script. The script
//! asks `meanwhile` itself as the user presses Tab (`COMPLETE=SHELL meanwhile --
//! ARGS`), so commands and options always match this binary, and task ids and the
//! names of queues, schedules, budgets and alerts come from the daemon (see
//! `crate::complete`).

use clap_complete::env::EnvCompleter;
use std::process::ExitCode;

/// Arguments of `completions`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// bash, zsh, fish, elvish or powershell.
    pub shell: clap_complete::Shell,
}

/// The variable the script sets to ask for completions.
pub const VAR: &str = "COMPLETE";

/// Runs `completions`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let shell: &dyn EnvCompleter = match args.shell {
        clap_complete::Shell::Bash => &clap_complete::env::Bash,
        clap_complete::Shell::Zsh => &clap_complete::env::Zsh,
        clap_complete::Shell::Fish => &clap_complete::env::Fish,
        clap_complete::Shell::Elvish => &clap_complete::env::Elvish,
        clap_complete::Shell::PowerShell => &clap_complete::env::Powershell,
        other => anyhow::bail!(
            "shell: no completions for {other} (give bash, zsh, fish, elvish or powershell)"
        ),
    };
    // The script calls this binary by its path, so it completes with the same
    // meanwhile wherever PATH leads.
    let bin = std::env::current_exe()
        .ok()
        .and_then(|p| p.to_str().map(str::to_string))
        .unwrap_or_else(|| "meanwhile".to_string());
    let mut script = Vec::new();
    shell.write_registration(VAR, "meanwhile", &bin, &bin, &mut script)?;
    crate::out::bytes(&script)?;
    Ok(ExitCode::SUCCESS)
}
