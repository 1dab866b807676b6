//! `meanwhile man [COMMAND]...`: the manual page of meanwhile or of one of its
//! commands (roff, for `man -l -`), or every page written into a directory.

use anyhow::{Context as _, bail};
use clap::CommandFactory;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Arguments of `man`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The command whose page to print (`run`, `queue set`); meanwhile's own page
    /// when absent.
    #[arg(value_name = "COMMAND")]
    pub command: Vec<String>,
    /// Write every page into DIR instead (`meanwhile.1`, `meanwhile-run.1`,
    /// `meanwhile-queue-set.1`, ...), for `man -M` or a package.
    #[arg(long, value_name = "DIR", conflicts_with = "command")]
    pub out_dir: Option<PathBuf>,
}

/// Runs `man`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let root = crate::Cli::command().name("meanwhile");
    if let Some(dir) = &args.out_dir {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("making --out-dir {}", dir.display()))?;
        let n = write_all(&root, "meanwhile", dir)?;
        errln!("wrote {n} manual pages into {}", dir.display());
        return Ok(ExitCode::SUCCESS);
    }
    let mut cmd = root;
    let mut name = "meanwhile".to_string();
    for word in &args.command {
        let Some(sub) = cmd.find_subcommand(word).cloned() else {
            let known: Vec<String> = cmd
                .get_subcommands()
                .filter(|c| !c.is_hide_set())
                .map(|c| c.get_name().to_string())
                .collect();
            bail!(
                "no command {:?} in {name}; its commands: {}",
                word,
                known.join(", ")
            );
        };
        name = format!("{name}-{}", sub.get_name());
        cmd = sub;
    }
    crate::out::bytes(&page(cmd, &name)?)?;
    Ok(ExitCode::SUCCESS)
}

/// The roff page of `cmd`, titled `name`.
fn page(cmd: clap::Command, name: &str) -> anyhow::Result<Vec<u8>> {
    let cmd = cmd.name(name.to_string());
    let mut roff = Vec::new();
    clap_mangen::Man::new(cmd)
        .render(&mut roff)
        .context("rendering the manual page")?;
    Ok(roff)
}

/// Writes the page of `cmd` and of each of its commands, below it; how many.
fn write_all(cmd: &clap::Command, name: &str, dir: &Path) -> anyhow::Result<usize> {
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, page(cmd.clone(), name)?)
        .with_context(|| format!("writing {}", path.display()))?;
    let mut n = 1;
    for sub in cmd.get_subcommands().filter(|c| !c.is_hide_set()) {
        n += write_all(sub, &format!("{name}-{}", sub.get_name()), dir)?;
    }
    Ok(n)
}
