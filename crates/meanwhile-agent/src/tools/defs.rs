//! Every tool's name, description and JSON schema, in one place, so that the agent
//! loop and the MCP server offer the model exactly the same definitions.

use meanwhile_llm::ToolDefinition;
use serde_json::{Value, json};

/// Runs a command and waits; moves it to the background when it runs long.
pub const BASH: &str = "bash";
/// Reads a file of the workspace.
pub const READ_FILE: &str = "read_file";
/// Writes a file of the workspace.
pub const WRITE_FILE: &str = "write_file";
/// Replaces one exact piece of text in a file of the workspace.
pub const EDIT_FILE: &str = "edit_file";
/// Starts a command in the background.
pub const BACKGROUND_RUN: &str = "background_run";
/// Reads a background task's output.
pub const BACKGROUND_OUTPUT: &str = "background_output";
/// Sends input to a background task's stdin or terminal.
pub const BACKGROUND_INPUT: &str = "background_input";
/// Stops a background task.
pub const BACKGROUND_STOP: &str = "background_stop";
/// Lists background tasks.
pub const BACKGROUND_LIST: &str = "background_list";
/// Waits for background tasks to end.
pub const BACKGROUND_WAIT: &str = "background_wait";
/// Starts a sub-agent as a background task.
pub const SPAWN_AGENT: &str = "spawn_agent";

/// The least output `background_output` may ask for, and the most; more would crowd
/// out the conversation.
pub(crate) const MIN_OUTPUT_BYTES: usize = 256;
/// See [`MIN_OUTPUT_BYTES`].
pub(crate) const MAX_OUTPUT_BYTES: usize = 100_000;
/// The most tasks `background_list` shows at once.
pub(crate) const MAX_LIST: u32 = 200;

/// Every tool, in the order they are offered.
pub const ALL_TOOLS: [&str; 11] = [
    BASH,
    READ_FILE,
    WRITE_FILE,
    EDIT_FILE,
    BACKGROUND_RUN,
    BACKGROUND_OUTPUT,
    BACKGROUND_INPUT,
    BACKGROUND_STOP,
    BACKGROUND_LIST,
    BACKGROUND_WAIT,
    SPAWN_AGENT,
];

/// The background task tools, which need nothing but a backend (the MCP server
/// offers these).
pub const BACKGROUND_TOOLS: [&str; 6] = [
    BACKGROUND_RUN,
    BACKGROUND_OUTPUT,
    BACKGROUND_INPUT,
    BACKGROUND_STOP,
    BACKGROUND_LIST,
    BACKGROUND_WAIT,
];

fn object(properties: Value, required: &[&str]) -> Value {
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

fn task_id_schema(what: &str) -> Value {
    json!({"type": "integer", "minimum": 1, "description": what})
}

/// The definition of the tool called `name`, or `None` when there is no such tool.
pub fn definition(name: &str) -> Option<ToolDefinition> {
    let (description, schema) = match name {
        BASH => (
            "Run a shell command (sh -c) in the workspace and wait for it. Use it for builds, tests, git, \
             searching (rg, grep, find) and anything else a terminal does. If the command is still running \
             after the background threshold (30 s unless configured otherwise), it is NOT killed: it moves to \
             the background as a meanwhile task, you get its task id and the output so far, and you are told \
             how it ended before a later turn. Read it with background_output, stop it with background_stop. \
             Output is merged stdout and stderr; long output is shortened to its head and tail. Do not use it \
             for commands that wait for input (use background_run with tty or stdin, then background_input). \
             For work you already know is slow (a full test suite, a server), prefer background_run and keep \
             working.",
            object(
                json!({
                    "command": {"type": "string", "description": "The command line, run with sh -c in the workspace directory."},
                    "timeout_seconds": {"type": "number", "exclusiveMinimum": 0, "description": "Stop the command if it runs longer than this in total, in the foreground or background. No limit when absent."}
                }),
                &["command"],
            ),
        ),
        READ_FILE => (
            "Read a text file of the workspace. Lines come numbered (`  12\tcode`); the numbers are not part \
             of the file, leave them out when quoting text for edit_file. Reads 2000 lines from the start \
             unless offset and limit say otherwise; the answer says how to read on when there is more. Paths \
             are relative to the workspace; paths outside it are refused.",
            object(
                json!({
                    "path": {"type": "string", "description": "File path, relative to the workspace (or absolute inside it)."},
                    "offset": {"type": "integer", "minimum": 1, "description": "First line to read, counting from 1."},
                    "limit": {"type": "integer", "minimum": 1, "description": "Most lines to read (default 2000)."}
                }),
                &["path"],
            ),
        ),
        WRITE_FILE => (
            "Write a file of the workspace, replacing it if it exists and creating missing parent \
             directories. Give the complete content. To change part of an existing file, edit_file is safer.",
            object(
                json!({
                    "path": {"type": "string", "description": "File path, relative to the workspace."},
                    "content": {"type": "string", "description": "The whole new content of the file."}
                }),
                &["path", "content"],
            ),
        ),
        EDIT_FILE => (
            "Replace one exact piece of text in a file of the workspace. old_text must occur exactly once in \
             the file, byte for byte (whitespace and indentation included, no line numbers): the edit fails \
             when it occurs zero times or more than once; add surrounding lines to make it unique. Read the \
             file first.",
            object(
                json!({
                    "path": {"type": "string", "description": "File path, relative to the workspace."},
                    "old_text": {"type": "string", "minLength": 1, "description": "The exact text to replace; must occur exactly once."},
                    "new_text": {"type": "string", "description": "The text to put in its place (may be empty to delete)."}
                }),
                &["path", "old_text", "new_text"],
            ),
        ),
        BACKGROUND_RUN => (
            "Start a shell command (sh -c) as a background task and return its task id at once, without \
             waiting. Use it for slow work (test suites, builds, servers, long scripts) and keep working on \
             something else meanwhile: when the task ends you are told how it ended (state, exit code, last \
             lines of output) before your next turn. Its whole output is kept; read it any time with \
             background_output. For a program that asks questions or is interactive (a REPL, a prompt like \
             `Proceed? [y/N]`, a TUI), set tty (a terminal) or stdin (a pipe) and answer it with \
             background_input: you are told when it waits for input. For a server, you are told when it \
             listens and where; background_output with wait \"listening\" waits until it is ready.",
            object(
                json!({
                    "command": {"type": "string", "description": "The command line, run with sh -c."},
                    "name": {"type": "string", "description": "A short name to recognise the task by (default: the command)."},
                    "cwd": {"type": "string", "description": "Working directory (default: the workspace)."},
                    "timeout_seconds": {"type": "number", "exclusiveMinimum": 0, "description": "Stop the task if it runs longer than this."},
                    "env": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Environment variables to add."},
                    "queue": {"type": "string", "description": "The meanwhile queue to run in (default: `default`)."},
                    "concurrency_key": {"type": "string", "description": "Tasks of a queue with the same key share its per_key limit (say, one per customer or per repository)."},
                    "on_end": {"type": "string", "description": "A shell command run when the task ends, with MEANWHILE_TASK_ID, MEANWHILE_TASK_STATE and MEANWHILE_EXIT_CODE set."},
                    "stall_seconds": {"type": "number", "exclusiveMinimum": 0, "description": "Raise a `stalled` alert when the task prints nothing for this long."},
                    "stall_action": {"type": "string", "enum": ["alert", "stop"], "description": "With stall_seconds: `stop` also stops a stalled task (default: `alert` only)."},
                    "tty": {"type": "boolean", "description": "Run it in a pseudo-terminal (120x40): for REPLs, prompts and programs that only behave interactively in a terminal. Its output is what the terminal showed. Answer it with background_input."},
                    "stdin": {"type": "boolean", "description": "Give it a pipe as stdin, written with background_input (without tty or stdin, stdin is empty)."},
                    "sandbox": {"type": "boolean", "description": "Let it write only in its working directory, allow_write and its own $TMPDIR (reading stays open). Use it for commands you have not checked."},
                    "allow_write": {"type": "array", "items": {"type": "string"}, "description": "With sandbox: more absolute paths it may write in (say, a cache directory)."},
                    "no_network": {"type": "boolean", "description": "Run it without network (its own loopback only)."},
                    "memory": {"type": "string", "description": "Kill it when its processes hold more memory than this (\"512M\", \"2G\"); it ends with `memory limit 2G exceeded`."},
                    "cpu_time_seconds": {"type": "number", "exclusiveMinimum": 0, "description": "Kill a process of it that uses more CPU time than this."},
                    "max_procs": {"type": "integer", "minimum": 1, "description": "Kill it when it has more processes than this at once."},
                    "max_files": {"type": "integer", "minimum": 1, "description": "The most files each of its processes may have open."}
                }),
                &["command"],
            ),
        ),
        BACKGROUND_OUTPUT => (
            "Read a background task's output (stdout and stderr merged). Every answer gives a cursor: pass it \
             as `since` next time to read only what is new. `tail` keeps the last lines, `grep` keeps matching \
             lines (regex), `max_bytes` keeps the head and tail of long output. `wait` blocks first, at most \
             timeout_seconds: \"exit\" until the task ends, \"output\" until there is new output, \"match\" \
             until a new line matches `pattern`, \"listening\" until its processes listen on a socket (a dev \
             server is ready; the answer says where), \"input\" until it waits for input (the answer shows the \
             prompt).",
            object(
                json!({
                    "id": task_id_schema("The task id."),
                    "since": {"type": "integer", "minimum": 0, "description": "Byte cursor from an earlier answer; read only output after it."},
                    "tail": {"type": "integer", "minimum": 1, "description": "Only the last N lines."},
                    "grep": {"type": "string", "description": "Only lines matching this regex."},
                    "max_bytes": {"type": "integer", "minimum": MIN_OUTPUT_BYTES, "maximum": MAX_OUTPUT_BYTES, "description": "Most bytes of text (head and tail kept); default 16000, at most 100000."},
                    "wait": {"type": "string", "enum": ["exit", "output", "match", "listening", "input"], "description": "Block until the task ends, new output arrives, a line matches `pattern`, it listens on a socket, or it waits for input."},
                    "pattern": {"type": "string", "description": "Regex for wait = \"match\"."},
                    "timeout_seconds": {"type": "number", "minimum": 0, "description": "Longest wait, default 30, at most 600."}
                }),
                &["id"],
            ),
        ),
        BACKGROUND_INPUT => (
            "Send input to a running background task started with tty or stdin: text as typed, then keys. \
             No newline is added: to answer a prompt, send the text with keys [\"enter\"]. On a terminal, \
             \"ctrl-c\" interrupts the program in the foreground (as a person's keypress would) and \"ctrl-d\" \
             at the start of a line ends input; eof closes a pipe. Use it when you are told a task waits for \
             input; read what it printed next with background_output (wait \"output\" or \"input\").",
            object(
                json!({
                    "id": task_id_schema("The task id."),
                    "text": {"type": "string", "maxLength": meanwhile_core::MAX_INPUT_CHARS, "description": "Text to type (no newline is added)."},
                    "keys": {"type": "array", "maxItems": meanwhile_core::MAX_INPUT_KEYS, "items": {"type": "string", "enum": ["enter", "tab", "ctrl-c", "ctrl-d", "ctrl-z", "up", "down", "left", "right", "esc", "backspace"]}, "description": "Keys pressed after the text, in order."},
                    "eof": {"type": "boolean", "description": "End the input afterwards (close the pipe, or Ctrl-D on a terminal)."}
                }),
                &["id"],
            ),
        ),
        BACKGROUND_STOP => (
            "Stop a background task and its whole process tree: SIGTERM, a grace period, then SIGKILL; with \
             force, SIGKILL at once. A task that has not started yet never starts. It ends as cancelled.",
            object(
                json!({
                    "id": task_id_schema("The task id."),
                    "force": {"type": "boolean", "description": "Kill at once instead of asking it to stop (default false)."}
                }),
                &["id"],
            ),
        ),
        BACKGROUND_LIST => (
            "List background tasks, newest first, with their state, exit code and how long they ran. By \
             default only the tasks of this session.",
            object(
                json!({
                    "states": {"type": "array", "items": {"type": "string", "enum": ["pending", "running", "succeeded", "failed", "timed_out", "cancelled", "quarantined", "lost"]}, "description": "Only tasks in these states."},
                    "all_sessions": {"type": "boolean", "description": "List tasks of every session, not just this one."},
                    "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIST, "description": "Most tasks to list (default 30, at most 200)."}
                }),
                &[],
            ),
        ),
        BACKGROUND_WAIT => (
            "Wait until background tasks end: all of them (mode \"all\", the default) or the first one (mode \
             \"any\"), at most timeout_seconds. Returns each task's state, exit code and, for sub-agents, \
             their final answer. Waiting is rarely needed: you are told when tasks end anyway, so prefer \
             doing other work; wait when you have nothing else to do.",
            object(
                json!({
                    "ids": {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 1, "description": "The task ids."},
                    "mode": {"type": "string", "enum": ["all", "any"], "description": "Wait for all (default) or any."},
                    "timeout_seconds": {"type": "number", "minimum": 0, "description": "Longest wait, default 60, at most 600."}
                }),
                &["ids"],
            ),
        ),
        SPAWN_AGENT => (
            "Start a sub-agent as a background task: it works on `prompt` with its own tools, turns and \
             budget in the same workspace, and its final answer comes back to you when it ends (also readable \
             with background_wait or background_output). Give it a complete, self-contained task: it does not \
             see this conversation. Several sub-agents run in parallel, as their queue allows.",
            object(
                json!({
                    "prompt": {"type": "string", "description": "The whole task for the sub-agent."},
                    "name": {"type": "string", "description": "A short name for the task."},
                    "model": {"type": "string", "description": "Model to use (default: the configured one)."},
                    "tools": {"type": "array", "items": {"type": "string"}, "description": "Tools it may use (default: all but spawn_agent)."},
                    "max_turns": {"type": "integer", "minimum": 1, "description": "Most model calls it may make."},
                    "max_tokens": {"type": "integer", "minimum": 1, "description": "Most tokens it may use."},
                    "max_cost_usd": {"type": "number", "minimum": 0, "description": "Most US dollars it may spend."},
                    "queue": {"type": "string", "description": "The meanwhile queue to run in (its max_parallel limits how many run at once)."}
                }),
                &["prompt"],
            ),
        ),
        _ => return None,
    };
    Some(ToolDefinition {
        name: name.to_string(),
        description: description.to_string(),
        input_schema: schema,
    })
}

/// The definitions of the background task tools.
pub fn background_tools() -> Vec<ToolDefinition> {
    BACKGROUND_TOOLS
        .iter()
        .filter_map(|n| definition(n))
        .collect()
}

/// The definitions of every tool of the agent.
pub fn agent_tools() -> Vec<ToolDefinition> {
    ALL_TOOLS.iter().filter_map(|n| definition(n)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_has_an_object_schema_whose_required_fields_exist() {
        for name in ALL_TOOLS {
            let d = definition(name).unwrap();
            assert_eq!(d.name, name);
            assert!(d.description.len() > 40, "{name} needs a real description");
            let schema = &d.input_schema;
            assert_eq!(schema["type"], "object", "{name}");
            for r in schema["required"].as_array().unwrap() {
                let r = r.as_str().unwrap();
                assert!(schema["properties"].get(r).is_some(), "{name}.{r}");
            }
        }
        assert!(definition("rm_rf").is_none());
        assert_eq!(background_tools().len(), 6);
    }
}
