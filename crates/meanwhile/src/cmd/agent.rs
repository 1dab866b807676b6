//! `meanwhile agent`: the coding agent, interactive or one-shot (`-p PROMPT`). Its
//! tasks run on the daemon, so they outlive the session; its conversation is kept in
//! the daemon's store step by step, so that `--session NAME --resume` continues it,
//! and hears the notices of the tasks it started meanwhile.

use super::{Ctx, agent_record, duration};
use anyhow::Context;
use meanwhile_agent::{AgentConfig, AgentEvent, AgentOverrides, RunOutcome, RunStop, Session};
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
    /// Session name: background tasks notify it, and its conversation is kept under
    /// it. Without --resume a new conversation begins, and replaces the one the name
    /// had at the first message.
    #[arg(long, short = 's', env = "MEANWHILE_AGENT_SESSION")]
    pub session: Option<String>,
    /// Continue the --session's conversation where it stopped (after a closed
    /// terminal, a killed process, a reboot): a turn that did not finish goes on,
    /// and the notices of the tasks it started meanwhile reach it. In the session's
    /// workspace unless --workspace says.
    #[arg(long, requires = "session")]
    pub resume: bool,
    /// List the sessions that keep a conversation, the last active first, and exit.
    #[arg(long, conflicts_with_all = ["prompt", "resume", "forget"])]
    pub sessions: bool,
    /// Forget this session's conversation and exit (the notices of its tasks stay).
    #[arg(long, value_name = "NAME", conflicts_with_all = ["prompt", "resume"])]
    pub forget: Option<String>,
    /// With --sessions: print JSON.
    #[arg(long, requires = "sessions")]
    pub json: bool,
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
    /// Interactive: only print the notices that arrive while you are at the prompt;
    /// by default a notice about a task the agent started (it ended, waits for
    /// input, or listens) also gives the agent a turn at once.
    #[arg(long)]
    pub no_wake: bool,
    /// Run calls this pattern matches without asking (repeat): a tool, or a tool and
    /// its main argument, `*` matching anything: `bash(cargo test*)`,
    /// `write_file(src/*)`, `background_stop`. Read before [agent.permissions].
    #[arg(long, value_name = "PATTERN")]
    pub allow: Vec<String>,
    /// Ask before calls this pattern matches (repeat).
    #[arg(long, value_name = "PATTERN")]
    pub ask: Vec<String>,
    /// Refuse calls this pattern matches (repeat): `bash(rm -rf *)`. Deny rules are
    /// read first, then ask, then allow; the first that matches decides. With no
    /// match, tools that only read are allowed and the rest asked.
    #[arg(long, value_name = "PATTERN")]
    pub deny: Vec<String>,
    /// Run what would be asked without asking. Without it, -p refuses what would be
    /// asked (the model is told, and can choose another way).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Run every command the agent starts (bash, background_run, its sub-agents') as
    /// a sandboxed task: it writes only in its working directory and $TMPDIR.
    #[arg(long)]
    pub sandbox: bool,
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
        permissions: meanwhile_agent::PermissionRules {
            allow: args.allow.clone(),
            ask: args.ask.clone(),
            deny: args.deny.clone(),
        },
        yes: args.yes,
        sandbox: args.sandbox,
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
    if args.sessions {
        agent_record::list(&ctx.client()?, args.json).await?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(name) = &args.forget {
        ctx.client()?
            .forget_agent_session(name)
            .await
            .map_err(|e| anyhow::anyhow!("forgetting session {name}: {e}"))?;
        errln!("session {name}: its conversation is forgotten");
        return Ok(ExitCode::SUCCESS);
    }
    // The configuration file lives in the home unless named: without
    // MEANWHILE_HOME, the home this command uses stands for it.
    let env = |name: &str| match std::env::var(name).ok() {
        None if name == "MEANWHILE_HOME" => ctx.home.to_str().map(str::to_owned),
        value => value,
    };
    let client = ctx.client()?;
    let mut overrides = overrides(&args);
    // The session's own record, when it has one: what --resume continues, or what a
    // new conversation under the same name replaces.
    let earlier = match &args.session {
        Some(name) => match client.agent_session(name).await {
            Ok(info) => Some(info),
            Err(e)
                if e.api()
                    .is_some_and(|a| a.code == meanwhile_core::ErrorCode::NotFound) =>
            {
                None
            }
            Err(e) => anyhow::bail!("looking up session {name}: {e}"),
        },
        None => None,
    };
    if args.resume {
        let Some(info) = &earlier else {
            anyhow::bail!(
                "--resume: session {} keeps no conversation to continue (see `meanwhile agent --sessions`); leave out --resume to begin one",
                args.session.as_deref().unwrap_or_default()
            );
        };
        if args.workspace.is_none() {
            overrides.workspace = Some(PathBuf::from(&info.workspace));
        }
    }
    let config = AgentConfig::resolve(&overrides, &env).map_err(|e| anyhow::anyhow!("{e}"))?;
    // The daemon's audit trail names the agent's session with what it changes.
    let client = client.with_session(&config.session);
    let backend: Arc<dyn Backend> = Arc::new(client.clone());
    let provider = config
        .build_provider()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut session =
        Session::new(&config, provider, backend.clone()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let workspace = session.workspace().display().to_string();
    let resumed = match earlier.as_ref().filter(|_| args.resume) {
        Some(info) => {
            let (record, opened, steps) = agent_record::Record::resume(client, info).await?;
            session
                .restore(&steps)
                .map_err(|e| anyhow::anyhow!("session {}: {e}", info.name))?;
            session.set_step_log(Some(Arc::new(record)));
            Some(opened)
        }
        None => {
            if let Some(info) = earlier.as_ref().filter(|i| i.steps > 0) {
                let name = &info.name;
                let ago = crate::fmt::ago(info.updated_at, crate::fmt::now());
                if args.prompt.is_some() {
                    errln!(
                        "(session {name}: a new conversation replaces its earlier one of {} steps, active {ago})",
                        info.steps
                    );
                } else {
                    errln!(
                        "session {name} keeps a conversation of {} steps (active {ago}); your first message begins a new one in its place. To continue it instead, quit (Ctrl-D) and run `meanwhile agent --session {name} --resume`.",
                        info.steps
                    );
                }
            }
            let record = agent_record::Record::fresh(client, &config.session, &workspace);
            session.set_step_log(Some(Arc::new(record)));
            None
        }
    };
    match args.prompt.clone() {
        Some(prompt) => {
            let wait = !args.no_wait_tasks;
            one_shot(session, backend, &prompt, args.verbose, wait, resumed).await
        }
        None => interactive(session, backend, !args.no_wake, resumed).await,
    }
}

/// Goes on with a resumed conversation's turn that did not finish, printing what
/// it does; answers the outcome, or `None` when the last turn had ended.
async fn finish_resumed(
    session: &mut Session,
    on_event: &mut (dyn FnMut(&AgentEvent) + Send),
) -> anyhow::Result<Option<RunOutcome>> {
    if !session.unfinished() {
        return Ok(None);
    }
    errln!("(going on with the turn that did not finish)");
    let outcome = session
        .resume(on_event)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(Some(outcome))
}

/// Says which conversation goes on, with its last exchange.
fn recap(session: &Session, opened: &meanwhile_core::AgentSession) -> anyhow::Result<()> {
    errln!(
        "session {} resumed: {} steps, begun {}",
        opened.name,
        opened.steps,
        crate::fmt::ago(opened.created_at, crate::fmt::now())
    );
    if let Some(said) = session.last_user_text() {
        errln!("you> {}", said.trim_end());
    }
    if !session.unfinished() {
        let answer = session.last_answer();
        if !answer.trim().is_empty() {
            outln!("\n{}\n", answer.trim_end());
        }
    }
    Ok(())
}

async fn one_shot(
    mut session: Session,
    backend: Arc<dyn Backend>,
    prompt: &str,
    verbose: bool,
    wait_tasks: bool,
    resumed: Option<meanwhile_core::AgentSession>,
) -> anyhow::Result<ExitCode> {
    let agent_error = |e: meanwhile_agent::AgentError| anyhow::anyhow!("{e}");
    let mut on_event = |e: &AgentEvent| show(e, verbose);
    if resumed.is_some()
        && let Some(earlier) = finish_resumed(&mut session, &mut on_event).await?
        && !earlier.answer.is_empty()
    {
        outln!("{}\n", earlier.answer.trim_end());
    }
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
        // An end, or a notice that one of them waits for input or listens.
        let w = backend
            .wait(running, meanwhile_core::WaitMode::Any, Some(NOTICES_EVERY))
            .await
            .map_err(|e| anyhow::anyhow!("waiting for the agent's tasks: {}", e.message))?;
        if w.timed_out {
            let started = session.started_tasks();
            let notes = backend
                .peek_notifications(session.session_name(), 100)
                .await
                .map_err(|e| anyhow::anyhow!("reading the session's notices: {}", e.message))?;
            if !notes.iter().any(|n| started.contains(&n.task_id)) {
                continue;
            }
        }
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

/// How often the session's notices are looked at while the person is at the prompt.
const NOTICES_EVERY: Duration = Duration::from_secs(1);

/// What the line editor's thread hands the session: a line, or the end.
enum Typed {
    Line(String),
    Interrupted,
    End,
}

/// The line editor on a thread of its own, so that notices can be printed (above
/// the prompt) and turns run while the person types. It reads a line each time it
/// is asked to.
struct Editor {
    lines: Lines,
    /// Read a line, at this prompt (`you> ` when `None`).
    ask: std::sync::mpsc::Sender<Option<String>>,
    printer: Option<Box<dyn rustyline::ExternalPrinter + Send>>,
    /// True while the person is typing at the `you> ` prompt.
    typing: Arc<std::sync::atomic::AtomicBool>,
}

type Lines = Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<anyhow::Result<Typed>>>>;

impl Editor {
    fn start(history: Option<PathBuf>) -> anyhow::Result<Editor> {
        let mut editor = rustyline::DefaultEditor::new().context("starting the line editor")?;
        if let Some(h) = &history {
            let _ = editor.load_history(h); // a first session has none
        }
        // Only on a terminal; elsewhere notices are printed plainly.
        let printer = editor
            .create_external_printer()
            .ok()
            .map(|p| Box::new(p) as Box<dyn rustyline::ExternalPrinter + Send>);
        let (line_tx, lines) = tokio::sync::mpsc::channel(1);
        let (ask, asked) = std::sync::mpsc::channel::<Option<String>>();
        std::thread::spawn(move || {
            while let Ok(question) = asked.recv() {
                let typed = match editor.readline(question.as_deref().unwrap_or("you> ")) {
                    Ok(l) => {
                        if question.is_none() {
                            let _ = editor.add_history_entry(l.trim());
                        }
                        Ok(Typed::Line(l))
                    }
                    Err(rustyline::error::ReadlineError::Interrupted) => Ok(Typed::Interrupted),
                    Err(rustyline::error::ReadlineError::Eof) => Ok(Typed::End),
                    Err(e) => Err(anyhow::Error::new(e).context("reading a line")),
                };
                // Ctrl-D answers a question (no); at `you> ` it ends the session.
                let end =
                    question.is_none() && !matches!(typed, Ok(Typed::Line(_) | Typed::Interrupted));
                if line_tx.blocking_send(typed).is_err() || end {
                    break;
                }
            }
            if let Some(h) = &history {
                let _ = editor.save_history(h); // best effort, as any shell's
            }
        });
        Ok(Editor {
            lines: Arc::new(tokio::sync::Mutex::new(lines)),
            ask,
            printer,
            typing: Arc::default(),
        })
    }

    /// Shows the prompt and reads the next line (in the editor's thread).
    fn prompt(&self) {
        self.typing.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = self.ask.send(None); // the thread ended only after the end of input
    }

    /// The next line, or the end.
    async fn next(lines: &Lines) -> Option<anyhow::Result<Typed>> {
        lines.lock().await.recv().await
    }

    /// Asks the person through this editor before the calls the rules leave to
    /// asking.
    fn approver(&self) -> Arc<dyn meanwhile_agent::Approver> {
        Arc::new(TerminalApprover {
            ask: self.ask.clone(),
            lines: self.lines.clone(),
            typing: self.typing.clone(),
        })
    }

    /// Prints `text` above the prompt while the person types.
    fn print(&mut self, text: &str) {
        let text = format!("{}\n", text.trim_end());
        let printed = match &mut self.printer {
            Some(p) => p.print(text.clone()).is_ok(),
            None => false,
        };
        if !printed {
            errln!("{}", text.trim_end());
        }
    }
}

async fn interactive(
    mut session: Session,
    backend: Arc<dyn Backend>,
    wake: bool,
    resumed: Option<meanwhile_core::AgentSession>,
) -> anyhow::Result<ExitCode> {
    let history = std::env::var_os("MEANWHILE_HOME")
        .map(PathBuf::from)
        .map(|h| h.join("agent_history"));
    outln!(
        "meanwhile agent: session {}, workspace {}. Ctrl-C stops the current turn, Ctrl-D quits.",
        session.session_name(),
        session.workspace().display()
    );
    let _ = std::io::stdout().flush();
    if let Some(opened) = &resumed {
        recap(&session, opened)?;
        let mut on_event = |e: &AgentEvent| {
            if let Some(line) = transcript_line(e) {
                errln!("{line}");
            }
        };
        match finish_resumed(&mut session, &mut on_event).await {
            Ok(Some(o)) if !o.answer.is_empty() => outln!("\n{}\n", o.answer.trim_end()),
            Ok(Some(o)) if o.stop != RunStop::Answered => errln!("({})", o.stop),
            Ok(_) => {}
            Err(e) => errln!("meanwhile: {e}"),
        }
        let _ = std::io::stdout().flush();
    }
    let mut editor = Editor::start(history)?;
    session.set_approver(Some(editor.approver()));
    let mut shown = 0i64; // the latest notice printed
    let mut look = tokio::time::interval(NOTICES_EVERY);
    editor.prompt();
    loop {
        tokio::select! {
            typed = Editor::next(&editor.lines) => {
                editor.typing.store(false, std::sync::atomic::Ordering::SeqCst);
                let text = match typed {
                    None | Some(Ok(Typed::End)) => break,
                    Some(Err(e)) => return Err(e),
                    Some(Ok(Typed::Interrupted)) => {
                        editor.prompt();
                        continue;
                    }
                    Some(Ok(Typed::Line(l))) => l.trim().to_string(),
                };
                if matches!(text.as_str(), "/exit" | "/quit") {
                    break;
                }
                if !text.is_empty() {
                    turn(&mut session, &text).await?;
                }
                editor.prompt();
            }
            _ = look.tick() => {
                // Notices that came while the person is at the prompt: printed at
                // once (left undelivered: the model reads them before its next
                // call), and one about a task the agent started wakes it.
                let Ok(notes) = backend.peek_notifications(session.session_name(), 100).await else {
                    continue; // the daemon restarting; the next look tells
                };
                let fresh: Vec<_> = notes.into_iter().filter(|n| n.seq > shown).collect();
                let Some(last) = fresh.last() else { continue };
                shown = last.seq;
                let started = session.started_tasks();
                let mut own = false;
                for n in &fresh {
                    editor.print(&format!("[meanwhile] {}", n.headline()));
                    own |= started.contains(&n.task_id);
                }
                if wake && own {
                    wake_turn(&mut session, &mut editor).await;
                }
            }
        }
    }
    errln!("session {}: {}", session.session_name(), session.usage());
    Ok(ExitCode::SUCCESS)
}

/// Prints a tool call or a notice of a turn (not the model's text, printed at the
/// end, nor usage).
fn transcript_line(e: &AgentEvent) -> Option<String> {
    match e {
        AgentEvent::Text { .. } | AgentEvent::Usage { .. } | AgentEvent::ModelCall { .. } => None,
        other => {
            let t = other.transcript();
            (!t.trim().is_empty()).then(|| t.trim_end().to_string())
        }
    }
}

/// One turn for a line the person typed; Ctrl-C cancels it.
async fn turn(session: &mut Session, text: &str) -> anyhow::Result<()> {
    let mut on_event = |e: &AgentEvent| {
        if let Some(line) = transcript_line(e) {
            errln!("{line}");
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
                RunStop::Cancelled => errln!("(turn cancelled; background tasks keep running)"),
                other => errln!("({other})"),
            }
        }
        Err(e) => errln!("meanwhile: {e}"),
    }
    let _ = std::io::stdout().flush();
    Ok(())
}

/// A turn the agent gets for notices about its own tasks while the person is at the
/// prompt; what it does and says is printed above the prompt.
async fn wake_turn(session: &mut Session, editor: &mut Editor) {
    let lines = std::sync::Mutex::new(Vec::new());
    let mut on_event = |e: &AgentEvent| {
        if let Some(line) = transcript_line(e) {
            lines.lock().unwrap_or_else(|e| e.into_inner()).push(line);
        }
    };
    let outcome = session.wake(&mut on_event).await;
    for line in lines.into_inner().unwrap_or_else(|e| e.into_inner()) {
        editor.print(&line);
    }
    match outcome {
        Ok(Some(o)) if !o.answer.is_empty() => {
            editor.print(&format!("\n{}\n", o.answer.trim_end()));
        }
        Ok(Some(o)) if o.stop != RunStop::Answered => editor.print(&format!("({})", o.stop)),
        Ok(_) => {}
        Err(e) => editor.print(&format!("meanwhile: {e}")),
    }
}

/// The interactive agent's questions before a call, asked on its terminal between
/// the person's lines: yes, no, or always for a pattern this session.
struct TerminalApprover {
    ask: std::sync::mpsc::Sender<Option<String>>,
    lines: Lines,
    typing: Arc<std::sync::atomic::AtomicBool>,
}

impl meanwhile_agent::Approver for TerminalApprover {
    fn ask<'a>(
        &'a self,
        q: &'a meanwhile_agent::Question,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = meanwhile_agent::Answer> + Send + 'a>>
    {
        use meanwhile_agent::Answer;
        Box::pin(async move {
            // A turn of its own while the person types at `you> `: the editor is
            // theirs, and the question waits for another time.
            if self.typing.load(std::sync::atomic::Ordering::SeqCst) {
                return Answer::NotNow;
            }
            errln!(
                "the agent wants to run {}\n  [y]es, [n]o, or [a]lways allow {} this session",
                q.what,
                q.always
            );
            let _ = std::io::stderr().flush();
            loop {
                if self.ask.send(Some("allow? [y/n/a] ".into())).is_err() {
                    return Answer::No;
                }
                let typed = self.lines.lock().await.recv().await;
                match typed {
                    Some(Ok(Typed::Line(l))) => match l.trim().to_ascii_lowercase().as_str() {
                        "y" | "yes" => return Answer::Yes,
                        "a" | "always" => return Answer::Always,
                        "n" | "no" => return Answer::No,
                        _ => errln!("answer y, n or a"),
                    },
                    _ => return Answer::No,
                }
            }
        })
    }
}
