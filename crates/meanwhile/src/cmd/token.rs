//! `meanwhile token`: the named bearer tokens of the TCP listener: add (prints the
//! token once), list (names and creation times, never the secrets), remove. They
//! work only over the Unix socket: a token must not be able to mint another.

use super::Ctx;
use crate::fmt;
use std::process::ExitCode;

/// Arguments of `token`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to do; lists the tokens when absent.
    #[command(subcommand)]
    pub action: Option<Action>,
    /// Print as JSON.
    #[arg(long, global = true)]
    pub json: bool,
}

/// A token action.
#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Add a token named NAME and print it: it is shown this once (meanwhile
    /// keeps only its hash). Requests made with it are recorded under NAME.
    Add {
        /// 1 to 64 letters, digits, '_', '.' or '-'.
        name: String,
    },
    /// List the tokens: names and creation times (`default` is the token file's).
    Ls,
    /// Remove a token: requests made with it are refused at once.
    #[command(visible_alias = "remove")]
    Rm {
        /// The token's name.
        name: String,
    },
}

/// Runs `token`.
pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitCode> {
    if std::env::var("MEANWHILE_URL").is_ok_and(|u| !u.is_empty()) {
        anyhow::bail!(
            "tokens are managed over the daemon's Unix socket only; run this on the daemon's machine without MEANWHILE_URL"
        );
    }
    let client = ctx.client()?;
    match args.action.unwrap_or(Action::Ls) {
        Action::Add { name } => {
            let t = client.add_token(&name).await?;
            if args.json {
                super::print_json(&t)?;
            } else {
                outln!("{}", t.token);
                errln!(
                    "token {} added; it is not shown again (send it as 'Authorization: Bearer <token>')",
                    t.name
                );
            }
        }
        Action::Ls => {
            let tokens = client.tokens().await?;
            if args.json {
                super::print_json(&tokens)?;
            } else {
                let now = fmt::now();
                let rows: Vec<Vec<String>> = tokens
                    .iter()
                    .map(|t| {
                        vec![
                            t.name.clone(),
                            t.created_at.map_or("-".into(), |at| fmt::ago(at, now)),
                        ]
                    })
                    .collect();
                out!("{}", fmt::table(&["NAME", "CREATED"], &rows));
            }
        }
        Action::Rm { name } => {
            client.remove_token(&name).await?;
            if args.json {
                super::print_json(&serde_json::json!({ "removed": name }))?;
            } else {
                outln!("token {name} removed");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
