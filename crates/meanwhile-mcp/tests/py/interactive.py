"""An interactive task through MCP: a REPL in a terminal (background_run tty),
waited for at its prompt (background_output wait "input"), answered with
background_input; a server waited for until it listens (wait "listening")."""

from __future__ import annotations

import anyio

from common import body_of, call, config, connect, cursor_of, report, started_id


async def main() -> None:
    cfg = config()
    obs: dict = {}
    async with connect(cfg, session="repl") as c:
        run = await call(c, "background_run", {"command": "python3 -q", "tty": True})
        tid = started_id(run)
        ready = await call(c, "background_output", {"id": tid, "wait": "input", "timeout_seconds": 120})
        obs["ready"] = ready.json()
        sent = await call(c, "background_input", {"id": tid, "text": "print(6*7)", "keys": ["enter"]})
        obs["sent"] = sent.json()
        since = cursor_of(ready)
        text = ""
        for _ in range(50):
            out = await call(c, "background_output", {"id": tid, "since": since, "wait": "output", "timeout_seconds": 10})
            text += body_of(out)
            since = cursor_of(out)
            if "42" in text:
                break
        obs["answer"] = text
        bad = await call(c, "background_input", {"id": tid, "keys": ["f13"]})
        obs["bad_key"] = bad.json()
        await call(c, "background_input", {"id": tid, "keys": ["ctrl-d"]})
        end = await call(c, "background_wait", {"ids": [tid], "timeout_seconds": 120})
        obs["end"] = end.json()

        srv = await call(c, "background_run", {"command": "python3 -m http.server 0 --bind 127.0.0.1"})
        sid = started_id(srv)
        up = await call(c, "background_output", {"id": sid, "wait": "listening", "timeout_seconds": 120})
        obs["listening"] = up.json()
        listed = await call(c, "background_list", {})
        obs["listed"] = listed.json()
        await call(c, "background_stop", {"id": sid})
        none = await call(c, "background_input", {"id": sid, "text": "x"})
        obs["no_input"] = none.json()
    report(obs)


anyio.run(main)
