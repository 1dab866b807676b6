"""meanwhile's background tools for any Python agent loop.

The same six tools meanwhile's own agent and its MCP server offer (`background_run`,
`background_output`, `background_input`, `background_stop`, `background_list`,
`background_wait`), with the same names, descriptions and input schemas, answered
the same way:

```python
from meanwhile import tools

tools.anthropic_tools()          # [{"name", "description", "input_schema"}, ...]
tools.openai_tools()             # [{"type": "function", "function": {...}}, ...]
text = tools.dispatch("background_run", {"command": "cargo test"}, session="s1")
prefix = tools.notices("s1")     # put before the next model call; "" when none
```
"""

from __future__ import annotations

import copy
import json
import time
from typing import Any

from .client import Client
from .errors import MeanwhileError
from .types import Notification, OutputChunk, Task

BACKGROUND_RUN = "background_run"
BACKGROUND_OUTPUT = "background_output"
BACKGROUND_INPUT = "background_input"
BACKGROUND_STOP = "background_stop"
BACKGROUND_LIST = "background_list"
BACKGROUND_WAIT = "background_wait"

#: The tools, in the order they are offered.
NAMES = (
    BACKGROUND_RUN,
    BACKGROUND_OUTPUT,
    BACKGROUND_INPUT,
    BACKGROUND_STOP,
    BACKGROUND_LIST,
    BACKGROUND_WAIT,
)

_MIN_OUTPUT_BYTES = 256
_MAX_OUTPUT_BYTES = 100_000
_DEFAULT_OUTPUT_BYTES = 16_000
_MAX_LIST = 200
_MAX_WAIT_SECONDS = 600.0
_MAX_TASK_SECONDS = 30 * 24 * 3600.0
_MAX_INPUT_CHARS = 65_536
_MAX_INPUT_KEYS = 256
_STATES = [
    "pending",
    "running",
    "succeeded",
    "failed",
    "timed_out",
    "cancelled",
    "quarantined",
    "lost",
]
_KEYS = [
    "enter",
    "tab",
    "ctrl-c",
    "ctrl-d",
    "ctrl-z",
    "up",
    "down",
    "left",
    "right",
    "esc",
    "backspace",
]


def _object(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


def _task_id(what: str) -> dict[str, Any]:
    return {"type": "integer", "minimum": 1, "description": what}


_DEFINITIONS: list[dict[str, Any]] = [
    {
        "name": BACKGROUND_RUN,
        "description": (
            "Start a shell command (sh -c) as a background task and return its task id at once, without "
            "waiting. Use it for slow work (test suites, builds, servers, long scripts) and keep working on "
            "something else meanwhile: when the task ends you are told how it ended (state, exit code, last "
            "lines of output) before your next turn. Its whole output is kept; read it any time with "
            "background_output. For a program that asks questions or is interactive (a REPL, a prompt like "
            "`Proceed? [y/N]`, a TUI), set tty (a terminal) or stdin (a pipe) and answer it with "
            "background_input: you are told when it waits for input. For a server, you are told when it "
            'listens and where; background_output with wait "listening" waits until it is ready.'
        ),
        "input_schema": _object(
            {
                "command": {"type": "string", "description": "The command line, run with sh -c."},
                "name": {
                    "type": "string",
                    "description": "A short name to recognise the task by (default: the command).",
                },
                "cwd": {
                    "type": "string",
                    "description": "Working directory (default: the workspace).",
                },
                "timeout_seconds": {
                    "type": "number",
                    "exclusiveMinimum": 0,
                    "description": "Stop the task if it runs longer than this.",
                },
                "env": {
                    "type": "object",
                    "additionalProperties": {"type": "string"},
                    "description": "Environment variables to add.",
                },
                "queue": {
                    "type": "string",
                    "description": "The meanwhile queue to run in (default: `default`).",
                },
                "concurrency_key": {
                    "type": "string",
                    "description": "Tasks of a queue with the same key share its per_key limit (say, one per customer or per repository).",
                },
                "on_end": {
                    "type": "string",
                    "description": "A shell command run when the task ends, with MEANWHILE_TASK_ID, MEANWHILE_TASK_STATE and MEANWHILE_EXIT_CODE set.",
                },
                "stall_seconds": {
                    "type": "number",
                    "exclusiveMinimum": 0,
                    "description": "Raise a `stalled` alert when the task prints nothing for this long.",
                },
                "stall_action": {
                    "type": "string",
                    "enum": ["alert", "stop"],
                    "description": "With stall_seconds: `stop` also stops a stalled task (default: `alert` only).",
                },
                "tty": {
                    "type": "boolean",
                    "description": "Run it in a pseudo-terminal (120x40): for REPLs, prompts and programs that only behave interactively in a terminal. Its output is what the terminal showed. Answer it with background_input.",
                },
                "stdin": {
                    "type": "boolean",
                    "description": "Give it a pipe as stdin, written with background_input (without tty or stdin, stdin is empty).",
                },
                "sandbox": {
                    "type": "boolean",
                    "description": "Let it write only in its working directory, allow_write and its own $TMPDIR (reading stays open). Use it for commands you have not checked.",
                },
                "allow_write": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "With sandbox: more absolute paths it may write in (say, a cache directory).",
                },
                "no_network": {
                    "type": "boolean",
                    "description": "Run it without network (its own loopback only).",
                },
                "memory": {
                    "type": "string",
                    "description": 'Kill it when its processes hold more memory than this ("512M", "2G"); it ends with `memory limit 2G exceeded`.',
                },
                "cpu_time_seconds": {
                    "type": "number",
                    "exclusiveMinimum": 0,
                    "description": "Kill a process of it that uses more CPU time than this.",
                },
                "max_procs": {
                    "type": "integer",
                    "minimum": 1,
                    "description": "Kill it when it has more processes than this at once.",
                },
                "max_files": {
                    "type": "integer",
                    "minimum": 1,
                    "description": "The most files each of its processes may have open.",
                },
            },
            ["command"],
        ),
    },
    {
        "name": BACKGROUND_OUTPUT,
        "description": (
            "Read a background task's output (stdout and stderr merged). Every answer gives a cursor: pass it "
            "as `since` next time to read only what is new. `tail` keeps the last lines, `grep` keeps matching "
            "lines (regex), `max_bytes` keeps the head and tail of long output. `wait` blocks first, at most "
            'timeout_seconds: "exit" until the task ends, "output" until there is new output, "match" '
            'until a new line matches `pattern`, "listening" until its processes listen on a socket (a dev '
            'server is ready; the answer says where), "input" until it waits for input (the answer shows the '
            "prompt)."
        ),
        "input_schema": _object(
            {
                "id": _task_id("The task id."),
                "since": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "Byte cursor from an earlier answer; read only output after it.",
                },
                "tail": {"type": "integer", "minimum": 1, "description": "Only the last N lines."},
                "grep": {"type": "string", "description": "Only lines matching this regex."},
                "max_bytes": {
                    "type": "integer",
                    "minimum": _MIN_OUTPUT_BYTES,
                    "maximum": _MAX_OUTPUT_BYTES,
                    "description": "Most bytes of text (head and tail kept); default 16000, at most 100000.",
                },
                "wait": {
                    "type": "string",
                    "enum": ["exit", "output", "match", "listening", "input"],
                    "description": "Block until the task ends, new output arrives, a line matches `pattern`, it listens on a socket, or it waits for input.",
                },
                "pattern": {"type": "string", "description": 'Regex for wait = "match".'},
                "timeout_seconds": {
                    "type": "number",
                    "minimum": 0,
                    "description": "Longest wait, default 30, at most 600.",
                },
            },
            ["id"],
        ),
    },
    {
        "name": BACKGROUND_INPUT,
        "description": (
            "Send input to a running background task started with tty or stdin: text as typed, then keys. "
            'No newline is added: to answer a prompt, send the text with keys ["enter"]. On a terminal, '
            '"ctrl-c" interrupts the program in the foreground (as a person\'s keypress would) and "ctrl-d" '
            "at the start of a line ends input; eof closes a pipe. Use it when you are told a task waits for "
            'input; read what it printed next with background_output (wait "output" or "input").'
        ),
        "input_schema": _object(
            {
                "id": _task_id("The task id."),
                "text": {
                    "type": "string",
                    "maxLength": _MAX_INPUT_CHARS,
                    "description": "Text to type (no newline is added).",
                },
                "keys": {
                    "type": "array",
                    "maxItems": _MAX_INPUT_KEYS,
                    "items": {"type": "string", "enum": _KEYS},
                    "description": "Keys pressed after the text, in order.",
                },
                "eof": {
                    "type": "boolean",
                    "description": "End the input afterwards (close the pipe, or Ctrl-D on a terminal).",
                },
            },
            ["id"],
        ),
    },
    {
        "name": BACKGROUND_STOP,
        "description": (
            "Stop a background task and its whole process tree: SIGTERM, a grace period, then SIGKILL; with "
            "force, SIGKILL at once. A task that has not started yet never starts. It ends as cancelled."
        ),
        "input_schema": _object(
            {
                "id": _task_id("The task id."),
                "force": {
                    "type": "boolean",
                    "description": "Kill at once instead of asking it to stop (default false).",
                },
            },
            ["id"],
        ),
    },
    {
        "name": BACKGROUND_LIST,
        "description": (
            "List background tasks, newest first, with their state, exit code and how long they ran. By "
            "default only the tasks of this session."
        ),
        "input_schema": _object(
            {
                "states": {
                    "type": "array",
                    "items": {"type": "string", "enum": _STATES},
                    "description": "Only tasks in these states.",
                },
                "all_sessions": {
                    "type": "boolean",
                    "description": "List tasks of every session, not just this one.",
                },
                "limit": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": _MAX_LIST,
                    "description": "Most tasks to list (default 30, at most 200).",
                },
            },
            [],
        ),
    },
    {
        "name": BACKGROUND_WAIT,
        "description": (
            'Wait until background tasks end: all of them (mode "all", the default) or the first one (mode '
            '"any"), at most timeout_seconds. Returns each task\'s state, exit code and, for sub-agents, '
            "their final answer. Waiting is rarely needed: you are told when tasks end anyway, so prefer "
            "doing other work; wait when you have nothing else to do."
        ),
        "input_schema": _object(
            {
                "ids": {
                    "type": "array",
                    "items": {"type": "integer", "minimum": 1},
                    "minItems": 1,
                    "description": "The task ids.",
                },
                "mode": {
                    "type": "string",
                    "enum": ["all", "any"],
                    "description": "Wait for all (default) or any.",
                },
                "timeout_seconds": {
                    "type": "number",
                    "minimum": 0,
                    "description": "Longest wait, default 60, at most 600.",
                },
            },
            ["ids"],
        ),
    },
]


def anthropic_tools() -> list[dict[str, Any]]:
    """The tools in Anthropic's Messages format: `{"name", "description", "input_schema"}`."""
    return copy.deepcopy(_DEFINITIONS)


def openai_tools() -> list[dict[str, Any]]:
    """The tools in OpenAI's function-calling format:
    `{"type": "function", "function": {"name", "description", "parameters"}}`."""
    return [
        {
            "type": "function",
            "function": {
                "name": d["name"],
                "description": d["description"],
                "parameters": copy.deepcopy(d["input_schema"]),
            },
        }
        for d in _DEFINITIONS
    ]


class ToolError(MeanwhileError):
    """A tool call the model got wrong; its message says what to do instead."""

    def __init__(self, tool: str, message: str, field: str | None = None) -> None:
        super().__init__("invalid_argument", f"bad arguments for {tool}: {message}", field)


_default_client: Client | None = None


def _client(client: Client | None) -> Client:
    global _default_client
    if client is not None:
        return client
    if _default_client is None:
        _default_client = Client()
    return _default_client


def dispatch(
    name: str,
    input: Any,
    *,
    session: str | None = None,
    client: Client | None = None,
) -> str:
    """Run one tool call against the daemon and return the text to give the model.

    Tasks started by `background_run` notify `session`, and `background_list` shows
    that session's tasks unless asked for all. A call the model got wrong, or that
    the daemon refused, answers the reason as text (starting `error: `) instead of
    raising, so the loop can hand it back as the tool's result; check the prefix, or
    use `call`, which raises, to mark the result as an error.
    """
    try:
        return call(name, input, session=session, client=client)
    except MeanwhileError as e:
        return f"error: {e.message}"


def call(
    name: str,
    input: Any,
    *,
    session: str | None = None,
    client: Client | None = None,
) -> str:
    """As `dispatch`, but a wrong call or a refusal raises `MeanwhileError` (a
    `ToolError` for the model's mistakes)."""
    if isinstance(input, str):
        try:
            input = json.loads(input) if input.strip() else {}
        except ValueError as e:
            raise ToolError(
                str(name), f"the arguments are not valid JSON ({e}); send a JSON object"
            ) from e
    if input is None:
        input = {}
    if not isinstance(input, dict):
        raise ToolError(
            str(name), f"the arguments must be a JSON object, got {type(input).__name__}"
        )
    handler = _HANDLERS.get(name) if isinstance(name, str) else None
    if handler is None:
        raise MeanwhileError(
            "invalid_argument",
            f"unknown tool {name!r}; the tools you can use are: {', '.join(NAMES)}",
            "name",
        )
    _check_fields(name, input)
    return handler(_client(client), session, input)


def notices(session: str, *, client: Client | None = None) -> str:
    """The text to put before the next model call: the session's notices (each
    delivered once), under a `[meanwhile]` header; an empty string when there are
    none."""
    drained = _client(client).drain_notifications(session)
    return notices_text(drained)


def notices_text(items: list[Notification]) -> str:
    """The text a model sees for `items`, as meanwhile's own agent words it."""
    if not items:
        return ""
    s = "[meanwhile] Background tasks that ended since your last turn (each is reported once):"
    for n in items:
        s += "\n- " + n.text.replace("\n", "\n  ")
    return s


# ---- argument checks ------------------------------------------------------------


def _check_fields(tool: str, args: dict[str, Any]) -> None:
    schema = next(d["input_schema"] for d in _DEFINITIONS if d["name"] == tool)
    props = schema["properties"]
    for k in args:
        if k not in props:
            raise ToolError(tool, f"unknown field {k!r}; the fields are: {', '.join(props)}", k)
    for k in schema["required"]:
        if args.get(k) is None:
            raise ToolError(tool, f"missing field {k!r}", k)
    for k, v in args.items():
        kind = props[k].get("type")
        if v is None:
            continue
        ok = {
            "string": isinstance(v, str),
            "boolean": isinstance(v, bool),
            "integer": isinstance(v, int) and not isinstance(v, bool),
            "number": isinstance(v, (int, float)) and not isinstance(v, bool),
            "array": isinstance(v, list),
            "object": isinstance(v, dict),
        }.get(kind, True)
        if not ok:
            raise ToolError(
                tool,
                f"{k} must be {'an' if kind in ('integer', 'array', 'object') else 'a'} {kind}, got {json.dumps(v)}",
                k,
            )
        # Fields with a range get their own message, which names both ends.
        if (
            kind == "integer"
            and "minimum" in props[k]
            and "maximum" not in props[k]
            and v < props[k]["minimum"]
        ):
            raise ToolError(tool, f"{k} must be at least {props[k]['minimum']}, got {v}", k)
        if "enum" in props[k] and v not in props[k]["enum"]:
            raise ToolError(
                tool, f"{k} must be one of {', '.join(props[k]['enum'])}, got {json.dumps(v)}", k
            )


def _seconds(tool: str, field: str, value: Any, most: float) -> float | None:
    if value is None:
        return None
    if value < 0 or value != value:
        raise ToolError(tool, f"{field} must be a number of seconds from 0, got {value}", field)
    if value > most:
        raise ToolError(tool, f"{field} must be at most {most:g} seconds, got {value}", field)
    return float(value)


# ---- the tools ------------------------------------------------------------------


def _run(c: Client, session: str | None, a: dict[str, Any]) -> str:
    tool = BACKGROUND_RUN
    command = a["command"]
    if not command.strip():
        raise ToolError(tool, "command must not be empty", "command")
    if a.get("tty") and a.get("stdin"):
        raise ToolError(
            tool, "give tty or stdin, not both (a terminal is also the task's input)", "tty"
        )
    spec: dict[str, Any] = {"command": command}
    if (a.get("name") or "").strip():
        spec["name"] = a["name"]
    for k in (
        "cwd",
        "env",
        "queue",
        "concurrency_key",
        "stall_action",
        "allow_write",
        "max_procs",
        "max_files",
        "memory",
        "sandbox",
    ):
        if a.get(k) is not None:
            spec[k] = a[k]
    if (a.get("on_end") or "").strip():
        spec["on_end"] = a["on_end"]
    for src, dst in (
        ("timeout_seconds", "timeout"),
        ("stall_seconds", "stall"),
        ("cpu_time_seconds", "cpu_time"),
    ):
        secs = _seconds(tool, src, a.get(src), _MAX_TASK_SECONDS)
        if secs:
            spec[dst] = float(max(int(secs), 1)) if dst == "cpu_time" else secs
    if a.get("tty"):
        spec["tty"] = {"cols": 120, "rows": 40}
    if a.get("stdin"):
        spec["stdin"] = True
    if a.get("no_network"):
        spec["no_network"] = True
    t = c.run(spec=spec, session=session)
    notify = (
        " You will be told how it ended (state, exit code, last lines) before a later turn, so there is no need to poll it."
        if session is not None
        else ""
    )
    return (
        f"Started task {t.id} in the background: {_shorten(command, 100)}.{notify} "
        f"Read its output with background_output (id {t.id}), stop it with background_stop."
    )


def _output(c: Client, session: str | None, a: dict[str, Any]) -> str:
    tool = BACKGROUND_OUTPUT
    wait, pattern = a.get("wait"), a.get("pattern")
    if wait == "match" and pattern is None:
        raise ToolError(tool, 'wait = "match" needs a pattern (a regex)', "pattern")
    if pattern is not None and wait not in (None, "match"):
        raise ToolError(tool, 'pattern goes with wait = "match" only', "pattern")
    if pattern is not None:
        wait = "match"
    timeout = _seconds(tool, "timeout_seconds", a.get("timeout_seconds"), _MAX_WAIT_SECONDS)
    max_bytes = a.get("max_bytes")
    if max_bytes is not None and not (_MIN_OUTPUT_BYTES <= max_bytes <= _MAX_OUTPUT_BYTES):
        raise ToolError(
            tool,
            f"max_bytes must be between {_MIN_OUTPUT_BYTES} and {_MAX_OUTPUT_BYTES}, got {max_bytes}; read long output in pieces with since",
            "max_bytes",
        )
    chunk = c.output(
        a["id"],
        since=a.get("since"),
        tail=a.get("tail"),
        grep=a.get("grep"),
        max_bytes=max_bytes if max_bytes is not None else _DEFAULT_OUTPUT_BYTES,
        strip_ansi=True,
        wait=wait,
        match=pattern,
        timeout=timeout,
    )
    return format_output(chunk)


def _input(c: Client, session: str | None, a: dict[str, Any]) -> str:
    tool = BACKGROUND_INPUT
    text = a.get("text") or None
    keys = a.get("keys") or []
    eof = bool(a.get("eof"))
    if text is None and not keys and not eof:
        raise ToolError(tool, "give text, keys or eof", "text")
    for k in keys:
        if k not in _KEYS:
            raise ToolError(tool, f"{k!r} is not a key ({', '.join(_KEYS)})", "keys")
    sent = c.send(a["id"], text, keys=keys, eof=eof)
    ended = " and ended its input" if sent.eof else ""
    return (
        f"Sent {sent.bytes} bytes to task {sent.id}{ended}. Read what it printed next with "
        f'background_output (id {sent.id}, wait "output" or "input").'
    )


def _stop(c: Client, session: str | None, a: dict[str, Any]) -> str:
    before = c.get(a["id"])
    if before.ended:
        return f"{describe(before)} already; nothing to stop"
    force = bool(a.get("force"))
    t = c.stop(a["id"], force=force)
    if t.ended:
        return describe(t)
    if force:
        return f"Killing task {t.id} ({t.name}) with SIGKILL; it will end as cancelled."
    return (
        f"Stopping task {t.id} ({t.name}): SIGTERM to its process group, then SIGKILL after the "
        "grace period; it will end as cancelled."
    )


def _list(c: Client, session: str | None, a: dict[str, Any]) -> str:
    tool = BACKGROUND_LIST
    states = a.get("states") or []
    for s in states:
        if s not in _STATES:
            raise ToolError(tool, f"{s!r} is not a task state ({', '.join(_STATES)})", "states")
    limit = a.get("limit")
    if limit is not None and not (1 <= limit <= _MAX_LIST):
        raise ToolError(tool, f"limit must be between 1 and {_MAX_LIST}, got {limit}", "limit")
    limit = limit or 30
    page = c.list(
        state=states or None,
        session=None if a.get("all_sessions") else session,
        limit=limit,
    )
    if not page:
        return "No tasks."
    out = [describe(t) for t in page]
    if page.next is not None:
        out.append(f"(more tasks not shown; raise limit above {limit} or filter by states)")
    return "\n".join(out)


def _wait(c: Client, session: str | None, a: dict[str, Any]) -> str:
    tool = BACKGROUND_WAIT
    ids = a["ids"]
    if not ids:
        raise ToolError(tool, "ids must name at least one task", "ids")
    for i in ids:
        if isinstance(i, bool) or not isinstance(i, int) or i < 1:
            raise ToolError(
                tool, f"ids must be task ids (integers from 1), got {json.dumps(i)}", "ids"
            )
    timeout = _seconds(tool, "timeout_seconds", a.get("timeout_seconds"), _MAX_WAIT_SECONDS)
    timeout = 60.0 if timeout is None else timeout
    w = c.wait(ids, mode=a.get("mode") or "all", timeout=timeout)
    out = []
    if w.timed_out:
        running = ", ".join(str(t.id) for t in w.tasks if not t.ended)
        out.append(
            f"Stopped waiting after {_format_seconds(timeout)}; not finished yet: {running}."
        )
    per_result = _DEFAULT_OUTPUT_BYTES // max(len(w.tasks), 1)
    for t in w.tasks:
        out.append(describe(t))
        if t.result is not None and t.kind == "agent":
            result = t.result
            most = max(per_result, 500)
            if len(result) > most:
                result = (
                    result[:most]
                    + f"\n[... cut; read the whole transcript with background_output id {t.id}]"
                )
            out.append(f"final answer of task {t.id}:\n{result}")
    return "\n".join(out)


_HANDLERS = {
    BACKGROUND_RUN: _run,
    BACKGROUND_OUTPUT: _output,
    BACKGROUND_INPUT: _input,
    BACKGROUND_STOP: _stop,
    BACKGROUND_LIST: _list,
    BACKGROUND_WAIT: _wait,
}


# ---- how answers read ------------------------------------------------------------


def _shorten(text: str, most: int) -> str:
    line = " ".join(text.split())
    return line if len(line) <= most else line[: most - 1] + "…"


def _format_seconds(secs: float) -> str:
    from .types import _format_duration

    return _format_duration(int(secs * 1000))


def describe(t: Task, now_ms: int | None = None) -> str:
    """One line about a task: `task 7 (cargo test): failed with exit code 101 after 41s`."""
    from .types import _format_duration

    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    took = None
    if t.started_at is not None:
        took = _format_duration(max((t.finished_at or now_ms) - t.started_at, 0))
    if t.state == "pending":
        state = "pending (waiting for its time, its dependencies or a free slot in its queue)"
    elif t.state == "running":
        state = f"running for {took}" if took else "running"
    else:
        state = t.state.replace("_", " ")
        if t.exit_code is not None:
            state += f" with exit code {t.exit_code}"
        elif t.signal is not None:
            state += f" by signal {t.signal}"
        if took:
            state += f" after {took}"
    line = f"task {t.id} ({t.name}): {state}"
    if t.reason and t.ended:
        line += f"; {t.reason}"
    if t.state == "running" and t.waiting_for_input:
        line += f"; waiting for input at: {t.prompt or '(no prompt shown)'} (answer with background_input)"
    if t.state == "running" and t.listening:
        line += "; listening on " + ", ".join(
            str(x.get("url") or x.get("address")) for x in t.listening
        )
    if t.state == "running" and t.progress:
        pc = t.progress.get("percent")
        msg = t.progress.get("message", "")
        line += f"; progress {pc:.0f}% {msg}" if pc is not None else f"; progress: {msg}"
    return line


def format_output(c: OutputChunk) -> str:
    """An output answer as a model reads it: where it is in the log, the state, the text."""
    head = f"task {c.id} is {c.state.replace('_', ' ')}"
    if c.exit_code is not None:
        head += f" (exit code {c.exit_code})"
    head += f"; bytes {c.start}..{c.cursor} of {c.total_bytes}; pass since={c.cursor} to read only newer output"
    notes = []
    if c.timed_out:
        notes.append("the wait timed out first")
    if c.matched is not None:
        notes.append(f"matched line: {c.matched.rstrip()}")
    if c.listening:
        notes.append(
            "listening on " + ", ".join(str(x.get("url") or x.get("address")) for x in c.listening)
        )
    if c.waiting_for_input:
        notes.append(
            f"waiting for input at: {c.prompt or '(no prompt shown)'} (answer with background_input)"
        )
    if c.elided_bytes > 0:
        notes.append(
            f"{c.elided_bytes} bytes in the middle left out (use since, tail or grep to read them)"
        )
    if c.skipped_lines > 0:
        notes.append(f"{c.skipped_lines} lines not matching grep skipped")
    if c.more:
        notes.append(f"more output follows; read on with since={c.cursor}")
    out = head + "".join(f"\n[{n}]" for n in notes) + "\n"
    out += c.text if c.text else "(no output in this range)"
    return out
