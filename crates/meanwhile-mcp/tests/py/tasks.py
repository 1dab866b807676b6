"""The tasks extension (io.modelcontextprotocol/tasks): a client that declares it
gets a task handle from background_wait and follows it with tasks/get and
tasks/cancel; a client that does not gets the plain tool result."""

from __future__ import annotations

import os
import random

import anyio
import mcp_types as types
from mcp.shared.exceptions import MCPError

from common import Answer, TaskHandle, TasksExtension, call, config, connect, report, started_id, tasks_cancel, tasks_get


async def follow(c, task_id: str) -> tuple[list[str], dict]:
    """Polls tasks/get until the task ends; the statuses seen, and the last answer."""
    seen: list[str] = []
    for _ in range(2400):
        got = await tasks_get(c, task_id)
        if not seen or seen[-1] != got["status"]:
            seen.append(got["status"])
        if got["status"] in ("completed", "failed", "cancelled"):
            return seen, got
        await anyio.sleep(got.get("pollIntervalMs", 1000) / 1000 / 20)
    return seen, got


async def main() -> None:
    cfg = config()
    work = cfg["cwd"]
    obs: dict = {}
    async with connect(cfg, session=cfg["session"], extensions=[TasksExtension()]) as c:
        obs["protocol"] = c.protocol_version
        run = await call(c, "background_run", {"command": "while [ ! -e go3 ]; do sleep 0.02; done; echo tasked", "cwd": work})
        tid = started_id(run)
        handle = await c.session.call_tool("background_wait", {"ids": [tid]}, allow_claimed=True)
        obs["handle_type"] = type(handle).__name__
        assert isinstance(handle, TaskHandle), handle
        obs["handle"] = {"id": handle.task_id, "status": handle.status}
        obs["first_get"] = (await tasks_get(c, handle.task_id))["status"]
        open(os.path.join(work, "go3"), "w").close()
        seen, last = await follow(c, handle.task_id)
        obs["statuses"] = seen
        result = types.CallToolResult.model_validate(last["result"])
        obs["result"] = Answer(result).json()

        tag = f"9{random.randrange(10**6, 10**7)}"
        run = await call(c, "background_run", {"command": f"sleep {tag}", "cwd": work})
        sid = started_id(run)
        handle = await c.session.call_tool("background_wait", {"ids": [sid]}, allow_claimed=True)
        await tasks_cancel(c, handle.task_id)
        seen, last = await follow(c, handle.task_id)
        obs["cancel_statuses"] = seen
        obs["after_cancel"] = (await call(c, "background_list", {"states": ["cancelled"]})).json()

        try:
            await tasks_get(c, "no-such-task")
            obs["bogus"] = "no error"
        except MCPError as e:
            obs["bogus"] = str(e)
        # A wait that could only fail is answered as a plain (error) result.
        unknown = await c.session.call_tool("background_wait", {"ids": [999999]}, allow_claimed=True)
        obs["unknown_wait"] = Answer(unknown).json()

    async with connect(cfg, session=cfg["session"]) as plain:
        answer = await call(plain, "background_wait", {"ids": [tid], "timeout_seconds": 5})
        obs["plain"] = answer.json()
    report(obs)


anyio.run(main)
