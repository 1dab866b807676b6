"""The records the daemon answers, as the OpenAPI document (`GET /v1/openapi.json`)
describes them. Fields the daemon adds later are kept in `extra`, never refused."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar
from collections.abc import Callable

from .errors import error

#: The states in which a task has ended for good.
TERMINAL_STATES = frozenset(
    {"succeeded", "failed", "timed_out", "cancelled", "quarantined", "lost"}
)


class Record:
    """Built from a JSON object: known fields become attributes, the rest `extra`."""

    _nested: ClassVar[dict[str, Callable[[Any], Any]]] = {}

    @classmethod
    def from_dict(cls, data: Any):
        if not isinstance(data, dict):
            raise error(
                "internal",
                f"the daemon answered {type(data).__name__} where a {cls.__name__} object was expected",
            )
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        known: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for k, v in data.items():
            if k in names and k != "extra":
                convert = cls._nested.get(k)
                known[k] = convert(v) if convert is not None and v is not None else v
            else:
                extra[k] = v
        return cls(**known, extra=extra)  # type: ignore[call-arg]

    def to_dict(self) -> dict[str, Any]:
        """The record as the daemon sent it (unknown fields included)."""
        out = {k: v for k, v in dataclasses.asdict(self).items() if k != "extra"}  # type: ignore[call-overload]
        out.update(self.extra)  # type: ignore[attr-defined]
        return out


def _list_of(cls: type[Record]) -> Callable[[Any], list[Any]]:
    return lambda items: [cls.from_dict(x) for x in items]


@dataclass
class Attempt(Record):
    """One attempt of a task."""

    number: int = 0
    node: str = ""
    started_at: int = 0
    ended_at: int | None = None
    pid: int | None = None
    exit_code: int | None = None
    signal: int | None = None
    outcome: str | None = None
    reason: str | None = None
    cpu_ms: int | None = None
    peak_rss_kb: int | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class Task(Record):
    """A task's record (`TaskRecord`). Times are milliseconds since the Unix epoch."""

    id: int = 0
    kind: str = ""
    name: str = ""
    state: str = ""
    queue: str = ""
    priority: int = 0
    spec: dict[str, Any] = field(default_factory=dict, repr=False)
    created_at: int = 0
    attempts: int = 0
    labels: list[str] = field(default_factory=list)
    session: str | None = None
    concurrency_key: str | None = None
    exit_code: int | None = None
    signal: int | None = None
    reason: str | None = None
    result: str | None = None
    started_at: int | None = None
    finished_at: int | None = None
    run_after: int | None = None
    node: str | None = None
    progress: dict[str, Any] | None = None
    prompt: str | None = None
    waiting_for_input: bool = False
    waiting_since: int | None = None
    listening: list[dict[str, Any]] = field(default_factory=list)
    stop_requested: bool = False
    tokens: int | None = None
    cost_usd: float | None = None
    model_calls: int | None = None
    #: What the task will trip over at its start (`command not found: NAME`), as
    #: the submit answered it; None otherwise and for records not just submitted.
    warning: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def ended(self) -> bool:
        """True once the task is in a terminal state."""
        return self.state in TERMINAL_STATES


@dataclass
class OutputChunk(Record):
    """A piece of a task's output. Pass `cursor` as `since` to read what follows."""

    id: int = 0
    text: str = ""
    start: int = 0
    cursor: int = 0
    total_bytes: int = 0
    elided_bytes: int = 0
    dropped_bytes: int = 0
    skipped_lines: int = 0
    more: bool = False
    state: str = ""
    exit_code: int | None = None
    timed_out: bool = False
    matched: str | None = None
    listening: list[dict[str, Any]] = field(default_factory=list)
    waiting_for_input: bool = False
    prompt: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)


def _format_duration(ms: int) -> str:
    """A measured time for reading, as meanwhile writes it: `850ms`, `4.2s`, `3m07s`."""
    if ms < 1000:
        return f"{ms}ms"
    secs = ms // 1000
    if secs < 60:
        tenths = (ms % 1000) // 100
        return f"{secs}.{tenths}s" if secs < 10 and tenths > 0 else f"{secs}s"
    if secs < 3600:
        return f"{secs // 60}m{secs % 60:02}s"
    if secs < 86400:
        return f"{secs // 3600}h{(secs % 3600) // 60:02}m"
    return f"{secs // 86400}d{(secs % 86400) // 3600:02}h"


_SIGNALS = {
    1: "SIGHUP",
    2: "SIGINT",
    3: "SIGQUIT",
    4: "SIGILL",
    6: "SIGABRT",
    7: "SIGBUS",
    8: "SIGFPE",
    9: "SIGKILL",
    11: "SIGSEGV",
    13: "SIGPIPE",
    14: "SIGALRM",
    15: "SIGTERM",
}


def _reach(listener: dict[str, Any]) -> str:
    return str(listener.get("url") or listener.get("address") or "?")


@dataclass
class Notification(Record):
    """A notice for a session: a task ended, waits for input, or listens."""

    seq: int = 0
    kind: str = "ended"
    session: str = ""
    task_id: int = 0
    name: str = ""
    state: str = ""
    exit_code: int | None = None
    signal: int | None = None
    reason: str | None = None
    duration_ms: int = 0
    attempts: int = 0
    tail: str = ""
    output_bytes: int = 0
    created_at: int = 0
    prompt: str | None = None
    listening: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def headline(self) -> str:
        """One line: `task 7 (cargo test) failed with exit code 101 after 41s`."""
        if self.kind == "waiting_for_input":
            return f"task {self.task_id} ({self.name}) is waiting for input: {self.prompt or '(no prompt shown)'}"
        if self.kind == "listening":
            places = ", ".join(_reach(x) for x in self.listening)
            return f"task {self.task_id} ({self.name}) is listening on {places}"
        s = self.state
        if s == "succeeded":
            how = "succeeded"
        elif s in ("failed", "quarantined"):
            if self.exit_code is not None:
                end = f"with exit code {self.exit_code}"
            elif self.signal is not None:
                end = f"killed by signal {self.signal} ({_SIGNALS.get(self.signal, 'signal')})"
            else:
                end = ""
            verb = (
                f"was quarantined after {self.attempts} attempts, the last"
                if s == "quarantined"
                else "failed"
            )
            how = f"{verb} {end}".rstrip()
        elif s == "timed_out":
            how = "timed out"
        elif s == "cancelled":
            how = "was cancelled"
        elif s == "lost":
            how = "was lost (its end was not seen)"
        else:
            how = s
        return f"task {self.task_id} ({self.name}) {how} after {_format_duration(self.duration_ms)}"

    @property
    def text(self) -> str:
        """The whole notice, as meanwhile words it for a model: headline, reason,
        last lines of output, and how to read the rest."""
        s = self.headline
        if self.kind == "waiting_for_input":
            return (
                s + f"; it is still running. Answer with the background_input tool or "
                f"`meanwhile send {self.task_id} TEXT --key enter`"
            )
        if self.kind == "listening":
            return s + "; it is still running"
        if self.reason:
            s += f"; {self.reason}"
        if not self.tail:
            s += "; no output"
        else:
            s += "; last lines of output:\n" + self.tail.rstrip("\n")
            s += (
                f"\n(output is {self.output_bytes} bytes; read it all with the output tool "
                f"or `meanwhile logs {self.task_id}`)"
            )
        return s


@dataclass
class Event(Record):
    """An entry of the event log (`/v1/events`)."""

    seq: int = 0
    at: int = 0
    kind: str = ""
    task_id: int | None = None
    data: Any = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class WaitResult(Record):
    """The end of a wait: the tasks as they were, and whether the timeout came first."""

    tasks: list[Task] = field(default_factory=list)
    timed_out: bool = False
    extra: dict[str, Any] = field(default_factory=dict, repr=False)
    _nested: ClassVar[dict[str, Callable[[Any], Any]]] = {"tasks": _list_of(Task)}


@dataclass
class InputSent(Record):
    """What `send` handed to a task."""

    id: int = 0
    bytes: int = 0
    eof: bool = False
    extra: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class Queue(Record):
    """A queue with its limits and counts (`QueueInfo`)."""

    name: str = ""
    max_parallel: int = 0
    paused: bool = False
    pause_reason: str | None = None
    pending: int = 0
    running: int = 0
    per_key: int | None = None
    rate: str | None = None
    alert_after: int | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class Budget(Record):
    """A queue's budget and what was used of it in the current window (`BudgetInfo`)."""

    queue: str = ""
    tokens: int | None = None
    cost_usd: float | None = None
    window: str = "day"
    alarms: list[int] = field(default_factory=list)
    window_start: int = 0
    window_end: int | None = None
    used_tokens: int = 0
    used_cost_usd: float = 0.0
    model_calls: int = 0
    used_percent: float = 0.0
    state: str = "ok"
    alarms_fired: list[int] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class Schedule(Record):
    """A schedule with its next time and latest task (`ScheduleInfo`)."""

    name: str = ""
    task: dict[str, Any] = field(default_factory=dict, repr=False)
    cron: str | None = None
    tz: str | None = None
    every: Any = None
    missed: str = "skip"
    paused: bool = False
    fired: int = 0
    missed_count: int = 0
    created_at: int = 0
    next_fire: int | None = None
    last_fire: int | None = None
    last_task: int | None = None
    last_state: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)


class Page(list):
    """One page of tasks, newest first; pass `next` as `before` for the next page
    (None on the last one)."""

    def __init__(self, tasks: list[Task], next: int | None) -> None:
        super().__init__(tasks)
        self.next = next
