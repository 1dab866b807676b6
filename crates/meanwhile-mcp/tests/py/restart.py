"""A notice survives a restart of the stdio server: a task started by one server
process ends while no server runs; a new server started the same way (same
directory, no --session) delivers its notice on its first tool result, once."""

from __future__ import annotations

import os
import subprocess

import anyio

from common import call, config, connect, report, started_id


async def main() -> None:
    cfg = config()
    work = cfg["cwd"]
    obs: dict = {}
    async with connect(cfg) as c:
        run = await call(c, "background_run", {"command": "while [ ! -e go4 ]; do sleep 0.02; done; echo outlived"})
        tid = started_id(run)
        obs["id"] = tid
    # The server has exited with its client; the task runs on in the daemon.
    open(os.path.join(work, "go4"), "w").close()
    # Wait for the end without reading the session's notices (the CLI does not).
    env = dict(os.environ, MEANWHILE_HOME=cfg["home"])
    subprocess.run([cfg["bin"], "wait", str(tid)], env=env, check=True, stdout=subprocess.DEVNULL)
    async with connect(cfg) as c:
        first = await call(c, "background_list", {})
        obs["first"] = first.json()
        obs["first_count"] = first.notified(tid)
        second = await call(c, "background_list", {})
        obs["second_count"] = second.notified(tid)
    report(obs)


anyio.run(main)
