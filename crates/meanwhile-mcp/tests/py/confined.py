"""Confined tasks through MCP: background_run with sandbox (a write outside its
directory fails), no_network, and a memory limit that ends the task with its
reason."""

from __future__ import annotations

import os
import tempfile

import anyio

from common import call, config, connect, report, started_id


async def main() -> None:
    cfg = config()
    outside = tempfile.mkdtemp()
    obs: dict = {}
    async with connect(cfg, session="confined") as c:
        run = await call(c, "background_run", {
            "command": f"echo in > inside.txt && echo out > {outside}/escaped",
            "sandbox": True,
        })
        tid = started_id(run)
        obs["sandboxed"] = (await call(c, "background_wait", {"ids": [tid], "timeout_seconds": 120})).json()
        obs["sandboxed_output"] = (await call(c, "background_output", {"id": tid})).json()
        obs["escaped"] = os.path.exists(os.path.join(outside, "escaped"))

        hog = await call(c, "background_run", {
            "command": "python3 -c \"b = b'x' * (300 * 1024 * 1024); import time; time.sleep(60)\"",
            "memory": "64M",
            "no_network": True,
        })
        hid = started_id(hog)
        obs["hog"] = (await call(c, "background_wait", {"ids": [hid], "timeout_seconds": 120})).json()
        obs["bad_memory"] = (await call(c, "background_run", {"command": "true", "memory": "lots"})).json()
    report(obs)


anyio.run(main)
