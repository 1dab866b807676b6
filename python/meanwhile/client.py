"""`Client` and `AsyncClient`: the daemon's HTTP API on httpx.

Both find the daemon as the `meanwhile` command does: `MEANWHILE_URL` with a bearer
token (`MEANWHILE_TOKEN`, else the home's `token` file) when set, else the Unix
socket in the home, starting the daemon there (`meanwhile daemon start`) when none
answers. Every call is written once, as a plan of requests (a generator) that the
blocking and the asyncio client each carry out.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import shutil
import subprocess
import sys
import urllib.parse
from pathlib import Path
from typing import Any
from collections.abc import AsyncIterator, Generator, Iterator, Sequence

import httpx

from .errors import MeanwhileError, error, from_response
from .types import (
    Budget,
    Event,
    InputSent,
    Notification,
    OutputChunk,
    Page,
    Queue,
    Schedule,
    Task,
    WaitResult,
)

SOCKET_FILE = "meanwhile.sock"
TOKEN_FILE = "token"
SESSION_HEADER = "meanwhile-session"

#: No deadline on answers: a wait blocks as long as it was asked to; only
#: connecting is bounded.
_TIMEOUT = httpx.Timeout(None, connect=30.0)

_UNSET: Any = object()


def default_home() -> Path:
    """`$MEANWHILE_HOME`, else the platform's data directory plus `meanwhile`
    (`$XDG_DATA_HOME/meanwhile` when absolute, `~/.local/share/meanwhile`, or on
    macOS `~/Library/Application Support/meanwhile`), as the `meanwhile` command
    computes it."""

    def var(k: str) -> str | None:
        v = os.environ.get(k)
        return v if v else None

    h = var("MEANWHILE_HOME")
    if h is not None:
        return Path(h)
    home = var("HOME")
    if sys.platform == "darwin" and home is not None:
        return Path(home) / "Library/Application Support/meanwhile"
    x = var("XDG_DATA_HOME")
    if x is not None and os.path.isabs(x):
        return Path(x) / "meanwhile"
    if home is not None:
        return Path(home) / ".local/share/meanwhile"
    return Path("/tmp/meanwhile")


def find_binary(explicit: str | os.PathLike[str] | None = None) -> str:
    """The `meanwhile` binary: `explicit`, else `$MEANWHILE_BIN`, else the one the
    wheel installed next to this Python, else the one on PATH."""
    for candidate in (explicit, os.environ.get("MEANWHILE_BIN") or None):
        if candidate is not None:
            path = os.fspath(candidate)
            if not os.access(path, os.X_OK):
                raise error(
                    "unavailable",
                    f"the meanwhile binary {path} does not exist or is not executable: "
                    "set MEANWHILE_BIN to the meanwhile program, or `pip install meanwhile`",
                )
            return path
    # The wheel's own binary, next to this Python, matches this package's version;
    # another on PATH may not.
    scripts = Path(sys.executable).parent / "meanwhile"
    found = str(scripts) if os.access(scripts, os.X_OK) else shutil.which("meanwhile")
    if found is None:
        raise error(
            "unavailable",
            "no meanwhile daemon answers and the meanwhile binary is not on PATH to start one: "
            "`pip install meanwhile`, set MEANWHILE_BIN to the program, or start the daemon "
            "with `meanwhile daemon start`",
        )
    return found


def _quote(part: str | int) -> str:
    return urllib.parse.quote(str(part), safe="-_.:@")


def _duration(value: Any, field: str) -> Any:
    """A duration for the API: `"30s"` as it is, a number as seconds, a timedelta."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise error(
            "invalid_argument",
            f'{field} must be a duration like "30s", a number of seconds or a timedelta, '
            f"got {value!r}",
            field,
        )
    return value


def _ids(ids: int | Sequence[int], field: str = "ids") -> list[int]:
    items = [ids] if isinstance(ids, int) else list(ids)
    for i in items:
        if isinstance(i, bool) or not isinstance(i, int):
            raise error(
                "invalid_argument", f"{field} must be task ids (integers), got {i!r}", field
            )
    return items


def _spec_of(
    command: str | Sequence[str] | None,
    spec: dict[str, Any] | None,
    agent: str | dict[str, Any] | None,
    llm: str | dict[str, Any] | None,
    fields: dict[str, Any],
) -> dict[str, Any]:
    """The TaskSpec a `run` call asks for."""
    if spec is not None and not isinstance(spec, dict):
        raise error(
            "invalid_argument",
            f"spec must be a dict (a TaskSpec), got {type(spec).__name__}",
            "spec",
        )
    out: dict[str, Any] = dict(spec or {})
    if command is not None:
        if isinstance(command, str):
            out["command"] = command
        elif isinstance(command, (list, tuple)) and all(isinstance(a, str) for a in command):
            out["argv"] = list(command)
        else:
            raise error(
                "invalid_argument",
                "command must be a string (run with sh -c) or a list of strings (a program "
                f"and its arguments), got {command!r}",
                "command",
            )
    for key, value in (("agent", agent), ("llm", llm)):
        if value is None:
            continue
        if isinstance(value, str):
            out[key] = {"prompt": value}
        elif isinstance(value, dict):
            out[key] = value
        else:
            raise error(
                "invalid_argument",
                f"{key} must be a prompt (a string) or a dict, got {value!r}",
                key,
            )
    for key, value in fields.items():
        if value is None:
            continue
        if key in ("timeout", "delay", "grace", "stall", "cpu_time"):
            value = _duration(value, key)
        if key == "after":
            value = _ids(value, "after")
        out[key] = value
    if not any(out.get(k) is not None for k in ("command", "argv", "agent", "llm")):
        raise error(
            "invalid_argument",
            "run needs something to run: a command string (sh -c), a list (a program and "
            "its arguments), agent=PROMPT, llm=PROMPT, or spec={...}",
            "command",
        )
    if out.get("command") is not None or out.get("argv") is not None:
        # As `meanwhile run` does: the task runs where its submitter is.
        out.setdefault("cwd", os.getcwd())
    return out


class _Request:
    """One HTTP request of a plan."""

    __slots__ = ("method", "path", "params", "body")

    def __init__(
        self, method: str, path: str, params: dict[str, Any] | None = None, body: Any = _UNSET
    ):
        self.method = method
        self.path = path
        self.params = {k: v for k, v in (params or {}).items() if v is not None}
        self.body = body


# A plan yields requests, is sent each answer's decoded JSON, and returns the result.
Plan = Generator[_Request, Any, Any]


class _Base:
    """The calls, each written once as a plan; subclasses carry them out."""

    def __init__(
        self,
        *,
        home: str | os.PathLike[str] | None = None,
        url: str | None = None,
        token: str | None = None,
        session: str | None = None,
        start_daemon: bool = True,
        binary: str | os.PathLike[str] | None = None,
    ) -> None:
        self.home = Path(home) if home is not None else default_home()
        if not self.home.is_absolute():
            self.home = Path.cwd() / self.home
        url = url if url is not None else (os.environ.get("MEANWHILE_URL") or None)
        #: The session tasks run through this client notify unless `run` names
        #: another; also sent to the daemon with every request (the audit trail).
        self.session = session
        headers = {}
        if session is not None:
            headers[SESSION_HEADER] = session
        if url is not None:
            if "://" not in url:
                url = "http://" + url
            if token is None:
                token = os.environ.get("MEANWHILE_TOKEN") or None
            if token is None:
                try:
                    token = (self.home / TOKEN_FILE).read_text().strip()
                except OSError:
                    token = ""
            headers["authorization"] = f"Bearer {token.strip()}"
            self._base_url = url.rstrip("/")
            self._socket: Path | None = None
            self._start = False
        else:
            self._base_url = "http://meanwhile"
            self._socket = self.home / SOCKET_FILE
            self._start = start_daemon
        self._headers = headers
        self._binary = binary

    @property
    def target(self) -> str:
        """Where this client connects, for messages."""
        return str(self._socket) if self._socket is not None else self._base_url

    def _unreachable(self, e: Exception) -> MeanwhileError:
        if self._socket is not None:
            how = "start it with `meanwhile daemon start`" + (
                "" if self._start else " (this client was made with start_daemon=False)"
            )
        else:
            how = "start it there with `meanwhile serve --listen ADDR`, or unset MEANWHILE_URL"
        return error("unavailable", f"no meanwhile daemon answers at {self.target} ({e}): {how}")

    def _start_command(self) -> list[str]:
        return [find_binary(self._binary), "daemon", "start"]

    def _start_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["MEANWHILE_HOME"] = str(self.home)
        env.pop("MEANWHILE_URL", None)
        return env

    @staticmethod
    def _decode(response: httpx.Response) -> Any:
        if response.status_code >= 400:
            raise from_response(response.status_code, response.content)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as e:
            raise error(
                "internal", f"the daemon's answer is not JSON: {e}", None, response.status_code
            ) from e

    def _build(self, req: _Request) -> dict[str, Any]:
        kw: dict[str, Any] = {"params": req.params}
        if req.body is not _UNSET:
            kw["content"] = json.dumps(req.body).encode()
            kw["headers"] = {"content-type": "application/json"}
        return kw

    # ---- the calls ----------------------------------------------------------------

    def _drive(self, plan: Plan) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def status(self) -> Any:
        """The daemon's health, version and task counts (a dict)."""
        return self._drive(self._one(_Request("GET", "/v1/status")))

    def openapi(self) -> Any:
        """The daemon's OpenAPI document (a dict): every endpoint and schema."""
        return self._drive(self._one(_Request("GET", "/v1/openapi.json")))

    def run(
        self,
        command: str | Sequence[str] | None = None,
        *,
        spec: dict[str, Any] | None = None,
        session: str | None = None,
        name: str | None = None,
        queue: str | None = None,
        agent: str | dict[str, Any] | None = None,
        llm: str | dict[str, Any] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        env: dict[str, str] | None = None,
        timeout: Any = None,
        labels: Sequence[str] | None = None,
        priority: int | None = None,
        after: Sequence[int] | None = None,
        delay: Any = None,
        idempotency_key: str | None = None,
        **fields: Any,
    ) -> Any:
        """Submit a task and return its record at once (`Task`, with `.id`).

        `command` is a string run with `sh -c`, or a list run as a program and its
        arguments; `agent=` and `llm=` take a prompt (or an AgentSpec / LlmSpec
        dict); `spec=` takes any TaskSpec as a dict, and the keywords override it.
        Other TaskSpec fields pass as keywords (`concurrency_key=`, `stdin=True`,
        `retry={"max_attempts": 3}`, ...). Durations are `"30s"`, seconds or a
        timedelta. The session is this client's unless `session=` names one.
        """
        session = session if session is not None else self.session
        all_fields = dict(
            session=session,
            name=name,
            queue=queue,
            cwd=os.fspath(cwd) if cwd is not None else None,
            env=env,
            timeout=timeout,
            labels=list(labels) if labels is not None else None,
            priority=priority,
            after=after,
            delay=delay,
            idempotency_key=idempotency_key,
        )
        all_fields.update(fields)
        body = _spec_of(command, spec, agent, llm, all_fields)
        return self._drive(self._run(body))

    def _run(self, body: dict[str, Any]) -> Plan:
        answer = yield _Request("POST", "/v1/tasks", body=body)
        task = Task.from_dict((yield _Request("GET", f"/v1/tasks/{answer['id']}"))["task"])
        task.warning = answer.get("warning")
        return task

    def get(self, id: int) -> Any:
        """One task's record."""
        (i,) = _ids(id, "id")
        return self._drive(
            self._one(_Request("GET", f"/v1/tasks/{i}"), lambda d: Task.from_dict(d["task"]))
        )

    def attempts(self, id: int) -> Any:
        """A task's attempts, oldest first (`Attempt`)."""
        from .types import Attempt

        (i,) = _ids(id, "id")
        return self._drive(
            self._one(
                _Request("GET", f"/v1/tasks/{i}"),
                lambda d: [Attempt.from_dict(a) for a in d["attempts"]],
            )
        )

    def list(
        self,
        *,
        state: str | Sequence[str] | None = None,
        queue: str | None = None,
        session: str | None = None,
        label: str | None = None,
        name: str | None = None,
        text: str | None = None,
        limit: int | None = None,
        before: int | None = None,
    ) -> Any:
        """One page of tasks, newest first (a list of `Task` with `.next`, the
        `before` of the next page). `state` takes one state or several."""
        if state is not None and not isinstance(state, str):
            state = ",".join(state)
        params = dict(
            state=state,
            queue=queue,
            session=session,
            label=label,
            name=name,
            text=text,
            limit=limit,
            before=before,
        )
        return self._drive(
            self._one(
                _Request("GET", "/v1/tasks", params),
                lambda d: Page([Task.from_dict(t) for t in d["tasks"]], d.get("next")),
            )
        )

    def output(
        self,
        id: int,
        *,
        since: int | None = None,
        tail: int | None = None,
        grep: str | None = None,
        max_bytes: int | None = None,
        strip_ansi: bool | None = None,
        wait: str | bool | None = None,
        match: str | None = None,
        timeout: Any = None,
    ) -> Any:
        """Read a task's output (`OutputChunk`, `.text` and `.cursor`).

        `since` is the `cursor` of an earlier answer; `tail` keeps the last lines,
        `grep` the lines matching a regex. `wait` blocks first (at most `timeout`,
        30s when absent): `"exit"` (or True) until the task ends, `"output"`,
        `"match"` (a line matching `match`), `"listening"` or `"input"`.
        """
        (i,) = _ids(id, "id")
        if wait is True:
            wait = "exit"
        elif wait is False:
            wait = None
        t = _duration(timeout, "timeout")
        if isinstance(t, (int, float)):
            t = f"{round(t * 1000)}ms"
        params = dict(
            since=since,
            tail=tail,
            grep=grep,
            max_bytes=max_bytes,
            strip_ansi=None if strip_ansi is None else str(bool(strip_ansi)).lower(),
            wait=wait,
            match=match,
            timeout=t,
        )
        return self._drive(
            self._one(_Request("GET", f"/v1/tasks/{i}/output", params), OutputChunk.from_dict)
        )

    def wait(self, ids: int | Sequence[int], *, mode: str = "all", timeout: Any = None) -> Any:
        """Wait until all (or, with `mode="any"`, one) of the tasks end, at most
        `timeout` (no limit when absent). Answers `WaitResult` (`.tasks`,
        `.timed_out`)."""
        body: dict[str, Any] = {"ids": _ids(ids), "mode": mode}
        if timeout is not None:
            body["timeout"] = _duration(timeout, "timeout")
        return self._drive(self._one(_Request("POST", "/v1/wait", body=body), WaitResult.from_dict))

    def stop(self, id: int, *, force: bool = False) -> Any:
        """Stop a task and its process tree (SIGTERM, grace, SIGKILL; `force`:
        SIGKILL at once). Answers its record."""
        (i,) = _ids(id, "id")
        body = {"mode": "force" if force else "graceful"}
        return self._drive(
            self._one(_Request("POST", f"/v1/tasks/{i}/stop", body=body), Task.from_dict)
        )

    def retry(self, id: int) -> Any:
        """Run a finished task again. Answers its record."""
        (i,) = _ids(id, "id")
        return self._drive(self._one(_Request("POST", f"/v1/tasks/{i}/retry"), Task.from_dict))

    def send(
        self,
        id: int,
        text: str | None = None,
        *,
        keys: Sequence[str] | None = None,
        eof: bool = False,
        resize: dict[str, int] | None = None,
    ) -> Any:
        """Send input to a task started with `stdin=True` or `tty=`: text as typed
        (no newline added), then keys (`"enter"`, `"ctrl-c"`, ...), then `eof`."""
        (i,) = _ids(id, "id")
        body: dict[str, Any] = {"eof": eof}
        if text is not None:
            body["text"] = text
        if keys:
            body["keys"] = list(keys)
        if resize is not None:
            body["resize"] = resize
        return self._drive(
            self._one(_Request("POST", f"/v1/tasks/{i}/input", body=body), InputSent.from_dict)
        )

    def remove(self, ids: int | Sequence[int]) -> Any:
        """Remove finished tasks and their logs; answers the ids removed."""
        body = {"ids": _ids(ids)}
        return self._drive(
            self._one(
                _Request("POST", "/v1/tasks/remove", body=body), lambda d: d.get("removed", [])
            )
        )

    def drain_notifications(self, session: str, *, limit: int | None = None) -> Any:
        """A session's undelivered notices (`Notification`, `.text`), marked
        delivered: each is returned once."""
        return self._drive(
            self._one(
                _Request(
                    "POST", f"/v1/sessions/{_quote(session)}/notifications/drain", {"limit": limit}
                ),
                lambda d: [Notification.from_dict(n) for n in d],
            )
        )

    def notifications(self, session: str, *, limit: int | None = None) -> Any:
        """A session's undelivered notices, left undelivered."""
        return self._drive(
            self._one(
                _Request("GET", f"/v1/sessions/{_quote(session)}/notifications", {"limit": limit}),
                lambda d: [Notification.from_dict(n) for n in d],
            )
        )

    # Queues.

    def queues(self) -> Any:
        """The queues with their limits and counts (`Queue`)."""
        return self._drive(
            self._one(_Request("GET", "/v1/queues"), lambda d: [Queue.from_dict(q) for q in d])
        )

    def set_queue(
        self,
        name: str,
        *,
        max_parallel: int | None = None,
        paused: bool | None = None,
        per_key: int | None = _UNSET,
        rate: str | None = _UNSET,
        alert_after: int | None = _UNSET,
    ) -> Any:
        """Create or change a queue. Options left out keep their value; `per_key`,
        `rate` and `alert_after` set to None remove that limit."""
        body: dict[str, Any] = {}
        if max_parallel is not None:
            body["max_parallel"] = max_parallel
        if paused is not None:
            body["paused"] = paused
        for k, v in (("per_key", per_key), ("rate", rate), ("alert_after", alert_after)):
            if v is not _UNSET:
                body[k] = v
        return self._drive(
            self._one(_Request("PUT", f"/v1/queues/{_quote(name)}", body=body), Queue.from_dict)
        )

    def pause_queue(self, name: str) -> Any:
        """Pause a queue: it starts nothing new."""
        return self.set_queue(name, paused=True)

    def resume_queue(self, name: str) -> Any:
        """Resume a paused queue."""
        return self.set_queue(name, paused=False)

    def remove_queue(self, name: str) -> Any:
        """Remove a queue without pending or running tasks or a budget."""
        return self._drive(self._one(_Request("DELETE", f"/v1/queues/{_quote(name)}")))

    # Budgets.

    def budgets(self) -> Any:
        """The queues' budgets (`Budget`)."""
        return self._drive(
            self._one(_Request("GET", "/v1/budgets"), lambda d: [Budget.from_dict(b) for b in d])
        )

    def budget(self, queue: str) -> Any:
        """One queue's budget."""
        return self._drive(
            self._one(_Request("GET", f"/v1/budgets/{_quote(queue)}"), Budget.from_dict)
        )

    def set_budget(
        self,
        queue: str,
        *,
        tokens: int | None = None,
        cost_usd: float | None = None,
        window: str | None = None,
        alarms: Sequence[int] | None = None,
    ) -> Any:
        """Set a queue's budget: tokens and/or US dollars per `hour`, `day` (the
        default), `month` or `total`, with alarms in percent."""
        body: dict[str, Any] = {}
        if tokens is not None:
            body["tokens"] = tokens
        if cost_usd is not None:
            body["cost_usd"] = cost_usd
        if window is not None:
            body["window"] = window
        if alarms is not None:
            body["alarms"] = list(alarms)
        return self._drive(
            self._one(_Request("PUT", f"/v1/budgets/{_quote(queue)}", body=body), Budget.from_dict)
        )

    def remove_budget(self, queue: str) -> Any:
        """Remove a queue's budget; a queue it paused resumes."""
        return self._drive(self._one(_Request("DELETE", f"/v1/budgets/{_quote(queue)}")))

    # Schedules.

    def schedules(self) -> Any:
        """The schedules with their next time and latest task (`Schedule`)."""
        return self._drive(
            self._one(
                _Request("GET", "/v1/schedules"), lambda d: [Schedule.from_dict(s) for s in d]
            )
        )

    def schedule(self, name: str) -> Any:
        """One schedule."""
        return self._drive(
            self._one(_Request("GET", f"/v1/schedules/{_quote(name)}"), Schedule.from_dict)
        )

    def add_schedule(
        self,
        name: str,
        command: str | Sequence[str] | None = None,
        *,
        cron: str | None = None,
        every: Any = None,
        tz: str | None = None,
        missed: str | None = None,
        task: dict[str, Any] | None = None,
        agent: str | dict[str, Any] | None = None,
        **fields: Any,
    ) -> Any:
        """Add a schedule: the task (`command`, `agent=`, or `task=` a TaskSpec dict,
        plus TaskSpec keywords) is submitted at each time of `cron` (in `tz`) or
        `every` interval."""
        spec = _spec_of(command, task, agent, None, fields)
        body: dict[str, Any] = {"name": name, "task": spec}
        if cron is not None:
            body["cron"] = cron
        if every is not None:
            body["every"] = _duration(every, "every")
        if tz is not None:
            body["tz"] = tz
        if missed is not None:
            body["missed"] = missed
        return self._drive(
            self._one(_Request("POST", "/v1/schedules", body=body), Schedule.from_dict)
        )

    def pause_schedule(self, name: str) -> Any:
        """Pause a schedule: it fires nothing until resumed."""
        return self._drive(
            self._one(_Request("POST", f"/v1/schedules/{_quote(name)}/pause"), Schedule.from_dict)
        )

    def resume_schedule(self, name: str) -> Any:
        """Resume a schedule from its next time after now."""
        return self._drive(
            self._one(_Request("POST", f"/v1/schedules/{_quote(name)}/resume"), Schedule.from_dict)
        )

    def run_schedule(self, name: str) -> Any:
        """Fire a schedule now (its next time stays); answers the task's record."""
        return self._drive(self._fire(name))

    def _fire(self, name: str) -> Plan:
        answer = yield _Request("POST", f"/v1/schedules/{_quote(name)}/run")
        task = Task.from_dict((yield _Request("GET", f"/v1/tasks/{answer['id']}"))["task"])
        task.warning = answer.get("warning")
        return task

    def remove_schedule(self, name: str) -> Any:
        """Remove a schedule; the tasks it submitted stay."""
        return self._drive(self._one(_Request("DELETE", f"/v1/schedules/{_quote(name)}")))

    @staticmethod
    def _one(req: _Request, decode: Any = None) -> Plan:
        data = yield req
        return decode(data) if decode is not None else data


def _sse_events(lines: Iterator[str]) -> Iterator[tuple[str | None, str]]:
    """(id, data) of each server-sent event in `lines`; comments and keep-alives skipped."""
    ident: str | None = None
    data: list[str] = []
    for line in lines:
        if line == "":
            if data:
                yield ident, "\n".join(data)
            ident, data = None, []
            continue
        if line.startswith(":"):
            continue
        key, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if key == "id":
            ident = value
        elif key == "data":
            data.append(value)


class Client(_Base):
    """A blocking client of the meanwhile daemon.

    ```python
    c = Client()
    t = c.run("cargo test", session="s1")
    c.wait([t.id])
    print(c.output(t.id).text)
    for n in c.drain_notifications("s1"):
        print(n.text)
    ```
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        transport = httpx.HTTPTransport(uds=str(self._socket)) if self._socket is not None else None
        self._http = httpx.Client(
            base_url=self._base_url, headers=self._headers, timeout=_TIMEOUT, transport=transport
        )

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _start_daemon(self) -> None:
        done = subprocess.run(
            self._start_command(),
            env=self._start_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise error(
                "unavailable",
                f"`meanwhile daemon start` for {self.home} exited with {done.returncode}: "
                f"{(done.stderr or done.stdout).strip()}",
            )

    def _send(self, req: _Request, stream: bool = False) -> httpx.Response:
        built = self._http.build_request(req.method, req.path, **self._build(req))
        try:
            return self._http.send(built, stream=stream)
        except httpx.ConnectError as e:
            # Nothing was sent: starting the daemon and sending again is safe.
            if not self._start:
                raise self._unreachable(e) from e
            self._start_daemon()
            try:
                return self._http.send(built, stream=stream)
            except httpx.ConnectError as e2:
                raise self._unreachable(e2) from e2
        except httpx.TransportError as e:
            raise error("unavailable", f"the connection to {self.target} failed: {e}") from e

    def _drive(self, plan: Plan) -> Any:
        try:
            req = next(plan)
            while True:
                req = plan.send(self._decode(self._send(req)))
        except StopIteration as done:
            return done.value

    def events(self, *, after: int | None = None) -> Iterator[Event]:
        """Every event from now on (or after sequence number `after`), as `Event`s.
        A dropped connection is resumed where it left off (`Last-Event-ID`), so no
        event is missed or repeated; the daemon is started again if it went away."""
        last = after
        while True:
            headers = {} if last is None else {"last-event-id": str(last)}
            req = _Request("GET", "/v1/events")
            built = self._http.build_request(req.method, req.path, headers=headers)
            try:
                try:
                    response = self._http.send(built, stream=True)
                except httpx.ConnectError as e:
                    if not self._start:
                        raise self._unreachable(e) from e
                    self._start_daemon()
                    response = self._http.send(built, stream=True)
                try:
                    if response.status_code >= 400:
                        response.read()
                        raise from_response(response.status_code, response.content)
                    for ident, data in _sse_events(response.iter_lines()):
                        event = Event.from_dict(json.loads(data))
                        last = event.seq if ident is None else int(ident)
                        yield event
                finally:
                    response.close()
            except (httpx.RemoteProtocolError, httpx.ReadError):
                pass
            except httpx.ConnectError as e:
                raise self._unreachable(e) from e
            # The stream ended or broke (the daemon stopped or restarted): resume.


class AsyncClient(_Base):
    """The asyncio client: the same calls as `Client`, each awaited."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        transport = (
            httpx.AsyncHTTPTransport(uds=str(self._socket)) if self._socket is not None else None
        )
        self._http = httpx.AsyncClient(
            base_url=self._base_url, headers=self._headers, timeout=_TIMEOUT, transport=transport
        )

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def _start_daemon(self) -> None:
        proc = await asyncio.create_subprocess_exec(
            *self._start_command(),
            env=self._start_env(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        if proc.returncode != 0:
            raise error(
                "unavailable",
                f"`meanwhile daemon start` for {self.home} exited with {proc.returncode}: "
                f"{(err or out).decode(errors='replace').strip()}",
            )

    async def _send(self, req: _Request, stream: bool = False) -> httpx.Response:
        built = self._http.build_request(req.method, req.path, **self._build(req))
        try:
            return await self._http.send(built, stream=stream)
        except httpx.ConnectError as e:
            if not self._start:
                raise self._unreachable(e) from e
            await self._start_daemon()
            try:
                return await self._http.send(built, stream=stream)
            except httpx.ConnectError as e2:
                raise self._unreachable(e2) from e2
        except httpx.TransportError as e:
            raise error("unavailable", f"the connection to {self.target} failed: {e}") from e

    def _drive(self, plan: Plan) -> Any:
        async def go() -> Any:
            try:
                req = next(plan)
                while True:
                    req = plan.send(self._decode(await self._send(req)))
            except StopIteration as done:
                return done.value

        return go()

    async def events(self, *, after: int | None = None) -> AsyncIterator[Event]:
        """Every event from now on (or after `after`), resumed after a dropped
        connection with `Last-Event-ID`; see `Client.events`."""
        last = after
        while True:
            headers = {} if last is None else {"last-event-id": str(last)}
            built = self._http.build_request("GET", "/v1/events", headers=headers)
            try:
                try:
                    response = await self._http.send(built, stream=True)
                except httpx.ConnectError as e:
                    if not self._start:
                        raise self._unreachable(e) from e
                    await self._start_daemon()
                    response = await self._http.send(built, stream=True)
                try:
                    if response.status_code >= 400:
                        await response.aread()
                        raise from_response(response.status_code, response.content)
                    ident: str | None = None
                    data: list[str] = []
                    async for line in response.aiter_lines():
                        if line == "":
                            if data:
                                event = Event.from_dict(json.loads("\n".join(data)))
                                last = event.seq if ident is None else int(ident)
                                yield event
                            ident, data = None, []
                            continue
                        if line.startswith(":"):
                            continue
                        key, _, value = line.partition(":")
                        value = value[1:] if value.startswith(" ") else value
                        if key == "id":
                            ident = value
                        elif key == "data":
                            data.append(value)
                finally:
                    await response.aclose()
            except (httpx.RemoteProtocolError, httpx.ReadError):
                pass
            except httpx.ConnectError as e:
                raise self._unreachable(e) from e


__all__ = ["Client", "AsyncClient", "default_home", "find_binary"]
