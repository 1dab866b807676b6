//! `meanwhile batch FILE.jsonl`: one `llm` task per input line, the answers
//! gathered into a results file as they come.
//!
//! Every line's task carries an idempotency key made of the batch's hash (the
//! file's content with the prompt, schema, model and provider) and the line's
//! number, so the same command run again after a crash or a kill submits nothing
//! twice: lines whose tasks already ended are only written, and the results file,
//! read back first, gets each line exactly once (`--retry-failed` appends a new
//! result for each line it runs again).
//!
//! While the batch's queue is paused by its budget, the batch says so at once: when
//! the queue resumes by itself and how to raise the budget.

use super::Ctx;
use anyhow::{Context as _, anyhow, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use meanwhile_client::Client;
use meanwhile_core::{
    EventKind, ListFilter, LlmSpec, RetryPolicy, TaskId, TaskRecord, TaskSpec, TaskState,
};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, IsTerminal, Seek, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// Specs sent per request when submitting.
const SUBMIT_CHUNK: usize = 500;
/// Input lines reported as broken at most, before the rest are summed up.
const SHOWN_ERRORS: usize = 5;

/// The prompts that come with meanwhile, each with the schema of its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Template {
    /// A summary of a few sentences: `{"summary": ...}`.
    Summarize,
    /// The sentiment: `{"label": positive|negative|neutral|mixed, "confidence": 0..1}`.
    Sentiment,
    /// The named entities: `{"entities": [{"name": ..., "type": ...}]}`.
    Entities,
}

impl Template {
    fn prompt(self) -> &'static str {
        match self {
            Template::Summarize => {
                "Summarize the following text in at most three sentences, in the language it is written in. Keep names, numbers and conclusions; leave out nothing that changes its meaning.\n\nText:\n{text}"
            }
            Template::Sentiment => {
                "Classify the sentiment the author of the following text expresses: positive, negative, neutral, or mixed (both positive and negative). Give your confidence from 0 to 1.\n\nText:\n{text}"
            }
            Template::Entities => {
                "List the named entities in the following text: people, organizations, locations, products, events, dates and other proper names, each once, with its type (person, organization, location, product, event, date or other), as written in the text.\n\nText:\n{text}"
            }
        }
    }

    fn schema(self) -> Value {
        match self {
            Template::Summarize => json!({
                "type": "object",
                "properties": {"summary": {"type": "string", "minLength": 1}},
                "required": ["summary"],
                "additionalProperties": false
            }),
            Template::Sentiment => json!({
                "type": "object",
                "properties": {
                    "label": {"type": "string", "enum": ["positive", "negative", "neutral", "mixed"]},
                    "confidence": {"type": "number", "minimum": 0, "maximum": 1}
                },
                "required": ["label", "confidence"],
                "additionalProperties": false
            }),
            Template::Entities => json!({
                "type": "object",
                "properties": {
                    "entities": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "name": {"type": "string", "minLength": 1},
                                "type": {"type": "string", "enum": ["person", "organization", "location", "product", "event", "date", "other"]}
                            },
                            "required": ["name", "type"],
                            "additionalProperties": false
                        }
                    }
                },
                "required": ["entities"],
                "additionalProperties": false
            }),
        }
    }
}

/// Arguments of `batch`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["template", "prompt", "prompt_file"])))]
pub struct Args {
    /// The input: one JSON value per line, an object (its fields fill the prompt) or
    /// a string (the text). Blank lines are skipped but counted.
    #[arg(value_name = "FILE.jsonl")]
    pub file: PathBuf,
    /// A prompt that comes with meanwhile, with the schema of its answer.
    #[arg(long, value_enum)]
    pub template: Option<Template>,
    /// Your own prompt: `{text}` is the line's text (see --field), `{NAME}` the
    /// line's field NAME, `{{` and `}}` are braces; `\n` is a new line, `\t` a tab
    /// and `\\` a backslash.
    #[arg(long, value_name = "TEMPLATE")]
    pub prompt: Option<String>,
    /// Your own prompt, read from a file as it is (no escapes), with the same
    /// `{text}`, `{NAME}` and braces as --prompt.
    #[arg(long, value_name = "FILE")]
    pub prompt_file: Option<PathBuf>,
    /// The field of each line that `{text}` stands for.
    #[arg(long, default_value = "text", value_name = "FIELD")]
    pub field: String,
    /// A JSON Schema file the answers must satisfy (instead of a template's own);
    /// each result is then the parsed answer.
    #[arg(long, value_name = "FILE.json")]
    pub schema: Option<PathBuf>,
    /// Where the results go, one JSON line per input line in the order they end;
    /// standard output when absent. Run the same command again to resume: lines
    /// already in it are kept and not written twice.
    #[arg(long, value_name = "RESULTS.jsonl")]
    pub out: Option<PathBuf>,
    /// The queue the tasks run in (its limits, rate and budget apply).
    #[arg(long, short = 'q')]
    pub queue: Option<String>,
    /// The model; the configured one when absent.
    #[arg(long)]
    pub model: Option<String>,
    /// The provider (anthropic, openai, openrouter, ...); the configured one when
    /// absent.
    #[arg(long)]
    pub provider: Option<String>,
    /// Attempts per line, the first included, with backoff between them.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub attempts: u32,
    /// Run again the lines whose tasks failed or were quarantined (by an earlier run
    /// of the same batch): their tasks are retried, and each new result is appended to
    /// --out, where the last line for a line number is its result.
    #[arg(long)]
    pub retry_failed: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// One input line, ready to submit.
struct Line {
    number: u64,
    id: Option<Value>,
    prompt: String,
}

/// The batch: its lines, and what identifies it.
struct Batch {
    hash: String,
    lines: Vec<Line>,
    spec: LlmSpec,
}

/// Fills `{text}` and `{NAME}` placeholders from one line; the placeholder missing
/// from it when one is.
fn fill(template: &str, text: &str, fields: &Map<String, Value>) -> Result<String, String> {
    let mut out = String::with_capacity(template.len() + text.len());
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(t) = tail.strip_prefix("{{") {
            out.push('{');
            rest = t;
        } else if let Some(t) = tail.strip_prefix("}}") {
            out.push('}');
            rest = t;
        } else if let Some(t) = tail.strip_prefix('}') {
            out.push('}');
            rest = t;
        } else {
            let Some(end) = tail.find('}') else {
                out.push_str(tail);
                rest = "";
                break;
            };
            let name = &tail[1..end];
            if name == "text" {
                out.push_str(text);
            } else {
                match fields.get(name) {
                    Some(Value::String(s)) => out.push_str(s),
                    Some(v) => out.push_str(&v.to_string()),
                    None => return Err(name.to_string()),
                }
            }
            rest = &tail[end + 1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// `--prompt` as a shell user means it: `\n` a new line, `\t` a tab, `\\` a
/// backslash; any other backslash stays as it is.
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('\\') => out.push('\\'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// Reads and checks every line before anything is submitted, so that a broken line
/// costs no model call.
fn read_batch(args: &Args) -> anyhow::Result<Batch> {
    let content = std::fs::read(&args.file).map_err(|e| {
        crate::exit::refuse(
            crate::exit::NO_INPUT,
            format!("reading {}: {e}", args.file.display()),
        )
    })?;
    let text = std::str::from_utf8(&content)
        .map_err(|e| anyhow!("{} is not UTF-8 text: {e}", args.file.display()))?;
    let schema = match (&args.schema, args.template) {
        (Some(path), _) => {
            let raw = std::fs::read_to_string(path).map_err(|e| {
                crate::exit::refuse(
                    crate::exit::NO_INPUT,
                    format!("reading --schema {}: {e}", path.display()),
                )
            })?;
            let schema: Value = serde_json::from_str(&raw)
                .map_err(|e| anyhow!("--schema {}: not JSON: {e}", path.display()))?;
            jsonschema::validator_for(&schema).map_err(|e| {
                anyhow!("--schema {}: not a valid JSON Schema: {e}", path.display())
            })?;
            Some(schema)
        }
        (None, Some(t)) => Some(t.schema()),
        (None, None) => None,
    };
    let template = match (&args.prompt, &args.prompt_file, args.template) {
        (Some(p), _, _) => unescape(p),
        (None, Some(path), _) => std::fs::read_to_string(path).map_err(|e| {
            crate::exit::refuse(
                crate::exit::NO_INPUT,
                format!("reading --prompt-file {}: {e}", path.display()),
            )
        })?,
        (None, None, Some(t)) => t.prompt().to_string(),
        (None, None, None) => bail!("give --template, --prompt or --prompt-file"),
    };
    let spec = LlmSpec {
        prompt: String::new(),
        system: None,
        model: args.model.clone(),
        provider: args.provider.clone(),
        schema,
        temperature: None,
        max_tokens: None,
    };

    let mut lines = Vec::new();
    let mut broken = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let number = i as u64 + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let value: Value = match serde_json::from_str(raw) {
            Ok(v) => v,
            Err(e) => {
                broken.push(format!("line {number}: not JSON ({e})"));
                continue;
            }
        };
        let empty = Map::new();
        let (text, fields, id) = match &value {
            Value::String(s) => (s.clone(), &empty, None),
            Value::Object(map) => {
                let text = match map.get(&args.field) {
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                    None if template.contains("{text}") => {
                        broken.push(format!(
                            "line {number}: no field {:?} for {{text}}; name the field with --field",
                            args.field
                        ));
                        continue;
                    }
                    None => String::new(),
                };
                (text, map, map.get("id").cloned())
            }
            _ => {
                broken.push(format!(
                    "line {number}: a JSON object or string is needed, got {}",
                    json_kind(&value)
                ));
                continue;
            }
        };
        match fill(&template, &text, fields) {
            Ok(prompt) if prompt.trim().is_empty() => {
                broken.push(format!("line {number}: its prompt is empty"));
            }
            Ok(prompt) => lines.push(Line { number, id, prompt }),
            Err(name) => broken.push(format!(
                "line {number}: no field {name:?} for {{{name}}} in the prompt"
            )),
        }
    }
    if !broken.is_empty() {
        let mut msg = format!(
            "{} of the lines of {} cannot be sent, so none was:",
            broken.len(),
            args.file.display()
        );
        for b in broken.iter().take(SHOWN_ERRORS) {
            msg.push_str("\n  ");
            msg.push_str(b);
        }
        if broken.len() > SHOWN_ERRORS {
            msg.push_str(&format!("\n  and {} more", broken.len() - SHOWN_ERRORS));
        }
        bail!(msg);
    }
    if lines.is_empty() {
        bail!("{} has no lines to send", args.file.display());
    }

    let mut h = Sha256::new();
    h.update(&content);
    h.update([0]);
    h.update(template.as_bytes());
    h.update([0]);
    h.update(args.field.as_bytes());
    h.update([0]);
    h.update(serde_json::to_vec(&spec)?);
    let hash = hex::encode(&h.finalize()[..12]);
    Ok(Batch { hash, lines, spec })
}

/// One line of the results file.
fn result_line(batch: &str, line: u64, id: Option<&Value>, t: &TaskRecord) -> Value {
    let mut o = Map::new();
    o.insert("line".into(), json!(line));
    if let Some(id) = id {
        o.insert("id".into(), id.clone());
    }
    o.insert("state".into(), json!(t.state));
    if t.state == TaskState::Succeeded {
        let answer = t.result.clone().unwrap_or_default();
        let parsed = match t.spec.llm.as_ref().and_then(|l| l.schema.as_ref()) {
            Some(_) => serde_json::from_str(&answer).unwrap_or(Value::String(answer)),
            None => Value::String(answer),
        };
        o.insert("result".into(), parsed);
    } else {
        let error = t
            .reason
            .clone()
            .unwrap_or_else(|| format!("the task ended {}", t.state));
        o.insert("error".into(), json!(error));
    }
    o.insert("task".into(), json!(t.id));
    o.insert("tokens".into(), json!(t.tokens));
    o.insert("cost".into(), json!(t.cost_usd));
    o.insert("batch".into(), json!(batch));
    Value::Object(o)
}

/// What the results file already holds, after cutting off a line half written.
fn read_results(path: &Path, batch: &str) -> anyhow::Result<HashSet<u64>> {
    let mut done = HashSet::new();
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(done),
        Err(e) => return Err(e).with_context(|| format!("opening --out {}", path.display())),
    };
    let mut reader = std::io::BufReader::new(&file);
    let mut good_end = 0u64;
    let mut buf = String::new();
    loop {
        buf.clear();
        let n = reader
            .read_line(&mut buf)
            .with_context(|| format!("reading --out {}", path.display()))?;
        if n == 0 || !buf.ends_with('\n') {
            break;
        }
        let v: Value = match serde_json::from_str(&buf) {
            Ok(v) => v,
            Err(_) => break,
        };
        if v["batch"].as_str() != Some(batch) {
            bail!(
                "--out {} holds results of another batch (another file, prompt, schema or model); pass another --out, or remove it to start over",
                path.display()
            );
        }
        if let Some(line) = v["line"].as_u64() {
            done.insert(line);
        }
        good_end += n as u64;
    }
    let len = file.metadata()?.len();
    if good_end < len {
        file.set_len(good_end)
            .with_context(|| format!("cutting the unfinished last line of {}", path.display()))?;
    }
    Ok(done)
}

/// Where results go, and what the summary counts.
struct Sink {
    out: Box<dyn Write>,
    batch: String,
    done: HashSet<u64>,
    summary: Summary,
}

#[derive(Debug, Default, serde::Serialize)]
struct Summary {
    lines: u64,
    done: u64,
    failed: u64,
    quarantined: u64,
    tokens: u64,
    cost: f64,
    batch: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    out: Option<PathBuf>,
}

impl Sink {
    fn record(&mut self, line: u64, id: Option<&Value>, t: &TaskRecord) -> anyhow::Result<()> {
        match t.state {
            TaskState::Succeeded => self.summary.done += 1,
            TaskState::Quarantined => self.summary.quarantined += 1,
            _ => self.summary.failed += 1,
        }
        self.summary.tokens += t.tokens;
        self.summary.cost += t.cost_usd;
        if self.done.insert(line) {
            let mut text = result_line(&self.batch, line, id, t).to_string();
            text.push('\n');
            // One write per line: a kill leaves whole lines behind.
            self.out.write_all(text.as_bytes())?;
            self.out.flush()?;
        }
        Ok(())
    }
}

/// `12,345`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `$0.0123`.
fn fmt_cost(usd: f64) -> String {
    format!("${usd:.4}")
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Runs `batch`.
pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitCode> {
    let batch = read_batch(&args)?;
    let client = ctx.client()?;
    let done = match &args.out {
        Some(path) => read_results(path, &batch.hash)?,
        None => HashSet::new(),
    };
    let out: Box<dyn Write> = match &args.out {
        Some(path) => {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening --out {}", path.display()))?;
            f.seek(std::io::SeekFrom::End(0))?;
            Box::new(f)
        }
        None => Box::new(std::io::stdout()),
    };
    let mut done = done;
    let mut sink = Sink {
        out,
        batch: batch.hash.clone(),
        done: HashSet::new(),
        summary: Summary {
            lines: batch.lines.len() as u64,
            batch: batch.hash.clone(),
            out: args.out.clone(),
            ..Summary::default()
        },
    };

    // Opened before submitting, so no task can end unseen in between.
    let mut events = client.events(None).await?;
    let label = format!("batch:{}", batch.hash);
    let ids = submit(&client, &args, &batch, &label).await?;
    let mut waiting: HashMap<TaskId, usize> =
        ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    if args.retry_failed {
        let again = retry_failed(&client, &label, &waiting).await?;
        for i in &again {
            done.remove(&batch.lines[*i].number);
        }
        if again.is_empty() {
            errln!("no line of this batch failed; nothing to run again");
        } else {
            errln!(
                "running {} failed line(s) again",
                thousands(again.len() as u64)
            );
        }
    }
    sink.done = done;

    let bar = progress_bar(batch.lines.len() as u64, args.json);
    let queue = args
        .queue
        .clone()
        .unwrap_or_else(|| meanwhile_core::DEFAULT_QUEUE.to_string());
    let mut paused = None;
    paused_by_budget(&client, &queue, &bar, &mut paused).await;
    // Tasks that ended before now (an earlier run's), found by their label.
    let mut filter = ListFilter {
        label: Some(label),
        states: TaskState::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .collect(),
        limit: Some(meanwhile_core::MAX_LIST_LIMIT),
        ..ListFilter::default()
    };
    loop {
        let page = client.list(&filter).await?;
        for t in &page.tasks {
            if let Some(i) = waiting.remove(&t.id) {
                let line = &batch.lines[i];
                sink.record(line.number, line.id.as_ref(), t)?;
                show(&bar, &sink.summary);
            }
        }
        match page.next {
            Some(b) => filter.before = Some(b),
            None => break,
        }
    }
    while !waiting.is_empty() {
        let ev = match events.next().await {
            Some(Ok(ev)) => ev,
            Some(Err(e)) => return Err(e.into()),
            None => {
                events = events.reconnect().await?;
                continue;
            }
        };
        if matches!(ev.kind, EventKind::Budget | EventKind::Queue) {
            paused_by_budget(&client, &queue, &bar, &mut paused).await;
            continue;
        }
        if ev.kind != EventKind::Finished {
            continue;
        }
        let Some(i) = ev.task_id.and_then(|id| waiting.remove(&id)) else {
            continue;
        };
        let t = client.get(ids[i]).await?;
        let line = &batch.lines[i];
        sink.record(line.number, line.id.as_ref(), &t)?;
        show(&bar, &sink.summary);
    }
    bar.finish_and_clear();

    let s = &sink.summary;
    if args.json {
        if args.out.is_some() {
            super::print_json(s)?;
        } else {
            errln!("{}", serde_json::to_string(s)?);
        }
    } else {
        let text = format!(
            "{} lines: {} done, {} failed, {} quarantined; {} tokens, {}{}",
            thousands(s.lines),
            thousands(s.done),
            thousands(s.failed),
            thousands(s.quarantined),
            thousands(s.tokens),
            fmt_cost(s.cost),
            match &args.out {
                Some(p) => format!("; results in {}", p.display()),
                None => String::new(),
            }
        );
        if args.out.is_some() {
            outln!("{text}");
        } else {
            errln!("{text}");
        }
    }
    Ok(if s.done == s.lines {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Retries the batch's tasks that failed or were quarantined; the index of the line
/// of each, by `waiting` (the task of each line).
async fn retry_failed(
    client: &Client,
    label: &str,
    waiting: &HashMap<TaskId, usize>,
) -> anyhow::Result<Vec<usize>> {
    let mut filter = ListFilter {
        label: Some(label.to_string()),
        states: TaskState::ALL
            .into_iter()
            .filter(|s| s.is_terminal() && *s != TaskState::Succeeded)
            .collect(),
        limit: Some(meanwhile_core::MAX_LIST_LIMIT),
        ..ListFilter::default()
    };
    let mut failed = Vec::new();
    loop {
        let page = client.list(&filter).await?;
        failed.extend(page.tasks.iter().map(|t| t.id));
        match page.next {
            Some(b) => filter.before = Some(b),
            None => break,
        }
    }
    let mut again = Vec::new();
    for id in failed {
        let Some(i) = waiting.get(&id) else { continue };
        client
            .retry(id)
            .await
            .with_context(|| format!("running task {id} again"))?;
        again.push(*i);
    }
    Ok(again)
}

/// Says at once when the batch's queue is paused by its budget (when it resumes by
/// itself, and how to raise the budget), and when it resumes; `paused` holds what
/// was said last, so each change is said once.
async fn paused_by_budget(
    client: &Client,
    queue: &str,
    bar: &ProgressBar,
    paused: &mut Option<String>,
) {
    let Ok(queues) = client.queues().await else {
        return;
    };
    let by_budget = queues.iter().any(|q| {
        q.name == queue && q.paused && q.pause_reason == Some(meanwhile_core::PauseReason::Budget)
    });
    let now = match (by_budget, paused.is_some()) {
        (true, false) => match client.budget(queue).await {
            Ok(b) => {
                let spent = match (b.spec.tokens, b.spec.cost_usd) {
                    (Some(t), _) if b.used_tokens >= t => {
                        format!("{} of {} tokens", thousands(b.used_tokens), thousands(t))
                    }
                    (_, Some(c)) => format!("{} of {}", fmt_cost(b.used_cost_usd), fmt_cost(c)),
                    _ => format!("{:.0}%", b.used_percent),
                };
                let resumes = match b.window_end {
                    Some(end) => format!(
                        "it resumes by itself at {} when the next window starts",
                        meanwhile_core::rfc3339_secs(end)
                    ),
                    None => "its window never ends (total)".to_string(),
                };
                Some(format!(
                    "queue {queue:?} is paused: its budget is spent ({spent} this window); {resumes}, or raise it: meanwhile budget set {queue} --tokens N / --cost USD"
                ))
            }
            Err(_) => Some(format!(
                "queue {queue:?} is paused: its budget is spent; see meanwhile budget ls"
            )),
        },
        (false, true) => {
            *paused = None;
            let text = format!("queue {queue:?} resumed; the batch goes on");
            say(bar, &text);
            bar.set_prefix("");
            return;
        }
        _ => return,
    };
    if let Some(text) = now {
        say(bar, &text);
        bar.set_prefix("paused by budget ");
        *paused = Some(text);
    }
}

/// A line on stderr that leaves the progress bar in place below it.
fn say(bar: &ProgressBar, text: &str) {
    if bar.is_hidden() {
        errln!("{text}");
    } else {
        bar.println(text);
    }
}

/// Submits every line (in chunks); the task of each, in the order of the lines.
async fn submit(
    client: &Client,
    args: &Args,
    batch: &Batch,
    label: &str,
) -> anyhow::Result<Vec<TaskId>> {
    let file_name = args
        .file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "batch".into());
    let retry = RetryPolicy {
        max_attempts: args.attempts,
        backoff: Duration::from_secs(2),
        ..RetryPolicy::default()
    };
    let mut ids = Vec::with_capacity(batch.lines.len());
    for chunk in batch.lines.chunks(SUBMIT_CHUNK) {
        let specs = chunk
            .iter()
            .map(|line| TaskSpec {
                llm: Some(LlmSpec {
                    prompt: line.prompt.clone(),
                    ..batch.spec.clone()
                }),
                name: Some(meanwhile_core::shorten(
                    &format!("{file_name}:{}", line.number),
                    meanwhile_core::MAX_NAME_LEN,
                )),
                labels: vec![label.to_string()],
                queue: args.queue.clone(),
                idempotency_key: Some(format!("batch:{}:{}", batch.hash, line.number)),
                retry,
                ..TaskSpec::default()
            })
            .collect();
        for (line, r) in chunk.iter().zip(client.submit_batch(specs).await?) {
            ids.push(r.map_err(|e| anyhow!("line {}: {}", line.number, e.message))?);
        }
    }
    Ok(ids)
}

fn progress_bar(len: u64, json: bool) -> ProgressBar {
    if json || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{prefix}{bar:30} {pos}/{len} lines {elapsed_precise} {msg}")
            .expect("a valid template")
            .progress_chars("█▉▊▋▌▍▎▏ "),
    );
    bar.enable_steady_tick(Duration::from_millis(250));
    bar
}

fn show(bar: &ProgressBar, s: &Summary) {
    bar.set_position(s.done + s.failed + s.quarantined);
    let mut msg = BTreeMap::new();
    if s.failed > 0 {
        msg.insert(0, format!("{} failed", s.failed));
    }
    if s.quarantined > 0 {
        msg.insert(1, format!("{} quarantined", s.quarantined));
    }
    msg.insert(2, format!("{} tokens", thousands(s.tokens)));
    msg.insert(3, fmt_cost(s.cost));
    bar.set_message(msg.into_values().collect::<Vec<_>>().join(" · "));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prompt_reads_new_lines_tabs_and_backslashes() {
        assert_eq!(
            unescape(r"Review: {text}\nSentiment?"),
            "Review: {text}\nSentiment?"
        );
        assert_eq!(unescape(r"a\tb\\n"), "a\tb\\n");
        assert_eq!(unescape(r"C:\dir\"), r"C:\dir\");
    }

    #[test]
    fn placeholders_fill_from_the_line_and_braces_escape() {
        let fields: Map<String, Value> = serde_json::from_str(r#"{"title": "T", "n": 3}"#).unwrap();
        assert_eq!(
            fill("{title} ({n}): {text} {{x}}", "body", &fields).unwrap(),
            "T (3): body {x}"
        );
        assert_eq!(fill("{missing}", "", &fields).unwrap_err(), "missing");
        assert_eq!(fill("a } b {", "", &fields).unwrap(), "a } b {");
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }

    #[test]
    fn every_template_schema_compiles_and_names_its_text() {
        for t in [Template::Summarize, Template::Sentiment, Template::Entities] {
            jsonschema::validator_for(&t.schema()).unwrap();
            assert!(t.prompt().contains("{text}"));
        }
    }
}
