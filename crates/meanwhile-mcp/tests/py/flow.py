"""The whole tool surface over one transport: list tools and templates, run a task,
read its output incrementally, wait for a regex, watch its output resource, see its
completion notice once, stop a process tree, and get clear errors for bad input.

The tasks wait for files this script creates, so nothing depends on timing."""

from __future__ import annotations

import os
import random
import warnings

import anyio
import mcp_types as types
from mcp.client.subscriptions import ResourceUpdated
from mcp.shared.exceptions import MCPError

import procs
from common import body_of, call, config, connect, cursor_of, report, started_id


async def main() -> None:
    cfg = config()
    work = cfg["cwd"]
    obs: dict = {}
    updated: list[str] = []
    changed = anyio.Event()

    async def on_message(message) -> None:
        # Legacy (resources/subscribe) updates arrive as plain notifications.
        if isinstance(message, types.ResourceUpdatedNotification):
            updated.append(message.params.uri)
            changed.set()

    async with connect(cfg, session=cfg["session"], message_handler=on_message) as c:
        obs["protocol"] = c.protocol_version
        caps = c.server_capabilities.model_dump(exclude_none=True) if c.server_capabilities else {}
        obs["capabilities"] = sorted(caps)
        tools = (await c.list_tools()).tools
        obs["tools"] = [t.name for t in tools]
        obs["required"] = {t.name: t.input_schema.get("required", []) for t in tools}
        templates = (await c.list_resource_templates()).resource_templates
        obs["templates"] = [t.uri_template for t in templates]

        # Commands run in the server's directory unless told otherwise (stdio), or
        # where they are told (HTTP: the daemon has no project of its own).
        # Gate files of this run only, so runs can share a directory.
        go1, go2 = f"go1-{random.getrandbits(32)}", f"go2-{random.getrandbits(32)}"
        cmd = (
            f"echo first; while [ ! -e {go1} ]; do sleep 0.02; done; echo 'ready on port 7'; "
            f"while [ ! -e {go2} ]; do sleep 0.02; done; echo last; exit 3"
        )
        args = {"command": cmd, "name": "gated"}
        if cfg["transport"] == "http":
            args["cwd"] = work
        run = await call(c, "background_run", args)
        obs["run"] = run.json()
        tid = started_id(run)
        obs["id"] = tid
        notices = run.notified(tid)

        first = await call(c, "background_output", {"id": tid, "wait": "output", "timeout_seconds": 60})
        notices += first.notified(tid)
        obs["first"] = body_of(first)
        c1 = cursor_of(first)

        open(os.path.join(work, go1), "w").close()
        match = await call(
            c,
            "background_output",
            {"id": tid, "since": c1, "wait": "match", "pattern": r"ready on port \d+", "timeout_seconds": 60},
        )
        notices += match.notified(tid)
        obs["match"] = match.json()
        obs["match_body"] = body_of(match)
        c2 = cursor_of(match)
        empty = await call(c, "background_output", {"id": tid, "since": c2})
        notices += empty.notified(tid)
        obs["empty_body"] = body_of(empty)

        uri = f"meanwhile://tasks/{tid}/output"
        obs["resource_before"] = (await c.read_resource(uri)).contents[0].text
        if c.protocol_version >= "2026-07-28":
            updates = 0
            async with c.listen(resource_subscriptions=[uri]) as sub:
                obs["honored"] = list(sub.honored.resource_subscriptions or [])
                open(os.path.join(work, go2), "w").close()
                async for event in sub:
                    if isinstance(event, ResourceUpdated) and event.uri == uri:
                        updates += 1
                        text = (await c.read_resource(uri)).contents[0].text
                        if "last" in text or updates >= 50:
                            break
            obs["updates"] = updates
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                await c.subscribe_resource(uri)
            open(os.path.join(work, go2), "w").close()
            for _ in range(50):
                text = (await c.read_resource(uri)).contents[0].text
                if "last" in text and updated:
                    break
                with anyio.move_on_after(5):
                    await changed.wait()
                changed = anyio.Event()
            obs["updates"] = sum(1 for u in updated if u == uri)
        obs["resource_after"] = (await c.read_resource(uri)).contents[0].text

        waited = await call(c, "background_wait", {"ids": [tid], "timeout_seconds": 120})
        notices += waited.notified(tid)
        obs["wait"] = waited.json()
        later = await call(c, "background_list", {})
        notices += later.notified(tid)
        obs["list"] = later.json()
        obs["notices_for_task"] = notices
        drained = await call(c, "background_notifications", {})
        obs["notifications_after"] = drained.json()

        # A process tree: two sleeps under a shell; stopping the task must end all three.
        tag = f"9{random.randrange(10**6, 10**7)}"
        tree = await call(
            c,
            "background_run",
            {"command": f"sleep {tag} & sleep {tag} & echo started; wait", "cwd": work},
        )
        tree_id = started_id(tree)
        await call(c, "background_output", {"id": tree_id, "wait": "match", "pattern": "started", "timeout_seconds": 60})
        # The shell prints before its children have necessarily exec'd sleep.
        for _ in range(200):
            if procs.count(["sleep", tag]) >= 2:
                break
            await anyio.sleep(0.05)
        obs["tree_before"] = procs.count(["sleep", tag])
        stop = await call(c, "background_stop", {"id": tree_id})
        obs["stop"] = stop.json()
        ended = await call(c, "background_wait", {"ids": [tree_id], "timeout_seconds": 120})
        obs["tree_wait"] = ended.json()
        # The group got SIGTERM with the shell; give the sleeps a moment to go.
        for _ in range(200):
            if procs.count(["sleep", tag]) == 0:
                break
            await anyio.sleep(0.05)
        obs["tree_after"] = procs.count(["sleep", tag])

        # Bad input: errors the model can read, and the server keeps serving.
        bad = {}
        bad["unknown_task"] = (await call(c, "background_output", {"id": 999999})).json()
        bad["bad_regex"] = (await call(c, "background_output", {"id": tid, "grep": "(unclosed"})).json()
        bad["bad_wait_regex"] = (
            await call(c, "background_output", {"id": tid, "wait": "match", "pattern": "[z-a]", "timeout_seconds": 1})
        ).json()
        bad["wrong_type"] = (await call(c, "background_output", {"id": "abc"})).json()
        bad["wrong_ids"] = (await call(c, "background_wait", {"ids": "7"})).json()
        bad["command_type"] = (await call(c, "background_run", {"command": 5})).json()
        bad["unknown_field"] = (await call(c, "background_list", {"everything": True})).json()
        bad["stop_unknown"] = (await call(c, "background_stop", {"id": 999999})).json()
        for name, what in [("unknown_tool", ("rm_rf", {})), ("unknown_tool2", ("bash", {"command": "ls"}))]:
            try:
                await c.call_tool(*what)
                bad[name] = "no error"
            except MCPError as e:
                bad[name] = str(e)
        for name, u in [("unknown_resource", "meanwhile://tasks/999999/output"), ("foreign_resource", "file:///etc/passwd")]:
            try:
                await c.read_resource(u)
                bad[name] = "no error"
            except MCPError as e:
                bad[name] = str(e)
                bad[name + "_error"] = {"code": e.code, "data": e.data}
        obs["bad"] = bad
        obs["still_serving"] = (await call(c, "background_list", {"all_sessions": True})).json()
    report(obs)


anyio.run(main)
