"""Shared helpers of the MCP client scripts: connect to meanwhile over stdio or
streamable HTTP with the official Python SDK, call tools, and report observations
as one JSON object on the last line of stdout for the Rust tests to check."""

from __future__ import annotations

import json
import os
import re
import sys
from typing import Any, Literal

import httpx2
import mcp_types as types
from mcp import Client
from mcp.client.extension import ClaimContext, ClientExtension, ResultClaim
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from pydantic import BaseModel, ConfigDict, Field

TASKS = "io.modelcontextprotocol/tasks"


def config() -> dict[str, Any]:
    """The test's settings, passed by the Rust side as JSON in argv[1]."""
    return json.loads(sys.argv[1])


def report(observations: dict[str, Any]) -> None:
    print(json.dumps(observations), flush=True)


def connect(cfg: dict[str, Any], *, session: str | None = None, extensions=None, message_handler=None) -> Client:
    """A client of meanwhile over the transport the config names, in the config's
    lifecycle mode: "auto" (the 2026-07-28 revision) or "legacy" (initialize)."""
    mode = cfg.get("mode", "auto")
    if cfg["transport"] == "stdio":
        args = ["mcp"]
        if session is not None:
            args += ["--session", session]
        env = {"MEANWHILE_HOME": cfg["home"], "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        params = StdioServerParameters(command=cfg["bin"], args=args, env=env, cwd=cfg.get("cwd"))
        return Client(params, extensions=extensions, mode=mode, message_handler=message_handler)
    url = cfg["url"]
    if session is not None:
        url += f"?session={session}"
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {cfg['token']}"}, timeout=httpx2.Timeout(120.0))
    return Client(
        streamable_http_client(url, http_client=http),
        extensions=extensions,
        mode=mode,
        message_handler=message_handler,
    )


class Answer:
    """A tool result: its main text, the notices that rode along, and whether it is an error."""

    def __init__(self, result: types.CallToolResult):
        texts = [c.text for c in result.content if isinstance(c, types.TextContent)]
        self.is_error = bool(result.is_error)
        self.text = texts[0] if texts else ""
        self.notices = [t for t in texts[1:] if t.startswith("[meanwhile]")]
        self.blocks = len(texts)

    def notified(self, task_id: int) -> int:
        """How many notices about task `task_id` this result carries."""
        return sum(len(re.findall(rf"^- task {task_id} \(", n, re.M)) for n in self.notices)

    def json(self) -> dict[str, Any]:
        return {"text": self.text, "is_error": self.is_error, "notices": self.notices}


async def call(client: Client, name: str, args: dict[str, Any]) -> Answer:
    return Answer(await client.call_tool(name, args))


def started_id(answer: Answer) -> int:
    m = re.search(r"Started task (\d+)", answer.text)
    assert m, f"no task id in {answer.text!r}"
    return int(m.group(1))


def cursor_of(answer: Answer) -> int:
    m = re.search(r"pass since=(\d+)", answer.text)
    assert m, f"no cursor in {answer.text!r}"
    return int(m.group(1))


def body_of(answer: Answer) -> str:
    """The output text of a background_output answer (after its header and notes)."""
    lines = answer.text.split("\n")
    i = 1
    while i < len(lines) and lines[i].startswith("["):
        i += 1
    return "\n".join(lines[i:])


# The tasks extension (SEP-2663): a task handle is a result of type "task"; the
# client polls tasks/get and may send tasks/cancel.


class TaskHandle(types.Result):
    model_config = ConfigDict(extra="allow", populate_by_name=True)
    result_type: Literal["task"] = Field(alias="resultType")
    task_id: str = Field(alias="taskId")
    status: str


class TasksExtension(ClientExtension):
    identifier = TASKS

    def claims(self):
        async def resolve(handle: TaskHandle, ctx: ClaimContext) -> types.CallToolResult:
            raise RuntimeError("the tests poll tasks/get themselves (call with allow_claimed=True)")

        return [ResultClaim(result_type="task", model=TaskHandle, resolve=resolve)]


class TaskIdParams(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    task_id: str = Field(alias="taskId")


class GetTask(types.Request[TaskIdParams, Literal["tasks/get"]]):
    method: Literal["tasks/get"] = "tasks/get"
    params: TaskIdParams
    name_param = "taskId"


class CancelTask(types.Request[TaskIdParams, Literal["tasks/cancel"]]):
    method: Literal["tasks/cancel"] = "tasks/cancel"
    params: TaskIdParams
    name_param = "taskId"


class AnyResult(types.Result):
    model_config = ConfigDict(extra="allow")


async def tasks_get(client: Client, task_id: str) -> dict[str, Any]:
    r = await client.session.send_request(GetTask(params=TaskIdParams(task_id=task_id)), AnyResult)
    return r.model_dump(by_alias=True, mode="json", exclude_none=True)


async def tasks_cancel(client: Client, task_id: str) -> None:
    await client.session.send_request(CancelTask(params=TaskIdParams(task_id=task_id)), AnyResult)
