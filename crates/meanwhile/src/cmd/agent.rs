//! `meanwhile agent`: the coding agent, interactive or one-shot (`-p PROMPT`). Its
//! tasks run on the daemon, so they outlive the session; a later session with the
//! same `--session` name receives their notices.

use super::{Ctx, duration};
use anyhow::Context;
use meanwhile_agent::{AgentConfig, AgentEvent, AgentOverrides, RunStop, Session};
use meanwhile_core::Backend;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Arguments of `agent`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run this prompt to its end, print the final answer and exit (non-zero when
    /// the run did not end with an answer).
    #[arg(long, short = 'p')]
    pub prompt: Option<String>,
    /// Provider: anthropic, openai, openrouter or openai-compatible (vLLM, Ollama,
    /// llama.cpp). Default: the first whose API key is set.
    #[arg(long, env = "MEANWHILE_AGENT_PROVIDER")]
    pub provider: Option<String>,
    /// Model name (default: the provider's default model).
    #[arg(long, short = 'm', env = "MEANWHILE_AGENT_MODEL")]
    pub model: Option<String>,
    /// The provider's endpoint (default: its public API, or the provider's
    /// *_BASE_URL variable).
    #[arg(long)]
    pub base_url: Option<String>,
    /// API key (default: the provider's *_API_KEY variable).
    #[arg(long)]
    pub api_key: Option<String>,
    /// Session name: background tasks notify it, and a later run with the same name
    /// receives the notices of tasks that ended in between.
    #[arg(long, short = 's', env = "MEANWHILE_AGENT_SESSION")]
    pub session: Option<String>,
    /// Directory the file tools are confined to (default: the current one).
    #[arg(long, short = 'w')]
    pub workspace: Option<PathBuf>,
    /// Move a `bash` command to the background once it has run this long.
    #[arg(long, value_parser = duration)]
    pub background_after: Option<Duration>,
    /// Most model calls per prompt.
    #[arg(long)]
    pub max_turns: Option<u32>,
    /// Most tokens (input plus output) per prompt.
    #[arg(long)]
    pub max_tokens: Option<u64>,
    /// Most US dollars per prompt.
    #[arg(long)]
    pub max_cost: Option<f64>,
    /// Configuration file (default: $MEANWHILE_HOME/config.toml, its agent section).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Print tool calls and notices to stderr in one-shot mode too.
    #[arg(long, short = 'v')]
    pub verbose: bool,
    /// With -p: once the agent has answered, wait for the background tasks it
    /// started and give it a turn as each ends, so that it can report them too
    /// (the default).
    #[arg(long, overrides_with = "no_wait_tasks")]
    pub wait_tasks: bool,
    /// With -p: end at the first answer, leaving the agent's background tasks running
    /// (their notices wait for the session).
    #[arg(long, overrides_with = "wait_tasks")]
    pub no_wait_tasks: bool,
}

fn overrides(args: &Args) -> AgentOverrides {
    AgentOverrides {
        provider: args.provider.clone(),
        model: args.model.clone(),
        base_url: args.base_url.clone(),
        api_key: args.api_key.clone(),
        workspace: args
            .workspace
            .clone()
            .or_else(|| std::env::current_dir().ok()),
        session: args.session.clone(),
        bash_background_after: args.background_after,
        max_turns: args.max_turns,
        max_tokens: args.max_tokens,
        max_cost_usd: args.max_cost,
        tools: None,
        config_file: args.config.clone(),
    }
}

fn show(event: &AgentEvent, verbose: bool) {
    let line = match event {
        AgentEvent::Text { .. } | AgentEvent::Usage { .. } | AgentEvent::ModelCall { .. } => {
            return;
        }
        other => other.transcript(),
    };
    if verbose && !line.trim().is_empty() {
        errln!("{}", line.trim_end());
    }
}

/// Runs `agent`.
pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitCode> {
    // The configuration file lives in the home unless named.
    if std::env::var_os("MEANWHILE_HOME").is_none() {
        // SAFETY: set before any thread of ours reads the environment.
        unsafe { std::env::set_var("MEANWHILE_HOME", &ctx.home) };
    }
    let config = AgentConfig::load(&overrides(&args)).map_err(|e| anyhow::anyhow!("{e}"))?;
    // The daemon's audit trail names the agent's session with what it changes.
    let backend: Arc<dyn Backend> = Arc::new(ctx.client()?.with_session(&config.session));
    match args.prompt.clone() {
        Some(prompt) => {
            let wait = !args.no_wait_tasks;
            one_shot(&config, backend, &prompt, args.verbose, wait).await
        }
        None => interactive(&config, backend).await,
    }
}

async fn one_shot(
    config: &AgentConfig,
    backend: Arc<dyn Backend>,
    prompt: &str,
    verbose: bool,
    wait_tasks: bool,
) -> anyhow::Result<ExitCode> {
    let agent_error = |e: meanwhile_agent::AgentError| anyhow::anyhow!("{e}");
    let mut on_event = |e: &AgentEvent| show(e, verbose);
    let provider = config.build_provider().map_err(agent_error)?;
    let mut session = Session::new(config, provider, backend.clone()).map_err(agent_error)?;
    let mut outcome = session
        .send(prompt, &mut on_event)
        .await
        .map_err(agent_error)?;
    if !outcome.answer.is_empty() {
        outln!("{}", outcome.answer.trim_end());
    }
    errln!("{}", outcome.usage);
    // The agent answered, but tasks it started may still run: it hears of each as
    // it ends and gets a turn to report it.
    while wait_tasks && outcome.is_answered() {
        let running = session.running_tasks().await.map_err(agent_error)?;
        if running.is_empty() {
            break;
        }
        if verbose {
            let ids: Vec<String> = running.iter().map(|i| i.to_string()).collect();
            errln!(
                "(waiting for the agent's background tasks: {})",
                ids.join(", ")
            );
        }
        backend
            .wait(running, meanwhile_core::WaitMode::Any, None)
            .await
            .map_err(|e| anyhow::anyhow!("waiting for the agent's tasks: {}", e.message))?;
        if let Some(next) = session.wake(&mut on_event).await.map_err(agent_error)? {
            outcome = next;
            if !outcome.answer.is_empty() {
                outln!("\n{}", outcome.answer.trim_end());
            }
            errln!("{}", outcome.usage);
        }
    }
    if outcome.is_answered() {
        Ok(ExitCode::SUCCESS)
    } else {
        errln!(
            "meanwhile: the run stopped without an answer: {}",
            outcome.stop
        );
        Ok(ExitCode::from(1))
    }
}

async fn interactive(config: &AgentConfig, backend: Arc<dyn Backend>) -> anyhow::Result<ExitCode> {
    let provider = config
        .build_provider()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut session =
        Session::new(config, provider, backend).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut editor = rustyline::DefaultEditor::new().context("starting the line editor")?;
    let history = std::env::var_os("MEANWHILE_HOME")
        .map(PathBuf::from)
        .map(|h| h.join("agent_history"));
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    outln!(
        "meanwhile agent: session {}, workspace {}. Ctrl-C stops the current turn, Ctrl-D quits.",
        session.session_name(),
        session.workspace().display()
    );
    loop {
        let line = tokio::task::block_in_place(|| editor.readline("you> "));
        let line = match line {
            Ok(l) => l,
            Err(rustyline::error::ReadlineError::Interrupted) => continue,
            Err(rustyline::error::ReadlineError::Eof) => break,
            Err(e) => return Err(e).context("reading a line"),
        };
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        if matches!(text, "/exit" | "/quit") {
            break;
        }
        let _ = editor.add_history_entry(text);
        let mut on_event = |e: &AgentEvent| match e {
            AgentEvent::Text { .. } | AgentEvent::Usage { .. } | AgentEvent::ModelCall { .. } => {}
            other => {
                let t = other.transcript();
                if !t.trim().is_empty() {
                    errln!("{}", t.trim_end());
                }
            }
        };
        let cancel = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        match session.send_until(text, &mut on_event, cancel).await {
            Ok(outcome) => {
                if !outcome.answer.is_empty() {
                    outln!("\n{}\n", outcome.answer.trim_end());
                }
                match outcome.stop {
                    RunStop::Answered => {}
                    RunStop::Cancelled => {
                        errln!("(turn cancelled; background tasks keep running)")
                    }
                    other => errln!("(stopped: {other})"),
                }
            }
            Err(e) => errln!("meanwhile: {e}"),
        }
        let _ = std::io::stdout().flush();
    }
    if let Some(h) = &history {
        let _ = editor.save_history(h);
    }
    errln!("session {}: {}", session.session_name(), session.usage());
    Ok(ExitCode::SUCCESS)
}
