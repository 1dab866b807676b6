"""`meanwhile.tools` against a real daemon: the definitions are the ones meanwhile's
MCP server offers, and each call answers as meanwhile's own agent does."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

from meanwhile import Client, tools


def mcp_tools(bin_path: str, home: Path) -> list[dict]:
    """The tools `meanwhile mcp` lists, over its stdio transport."""
    lines = [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "pytest", "version": "1"},
            },
        },
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}},
    ]
    proc = subprocess.Popen(
        [bin_path, "mcp"],
        env=dict(os.environ, MEANWHILE_HOME=str(home)),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    for m in lines:
        proc.stdin.write(json.dumps(m) + "\n")
    proc.stdin.flush()
    listed = None
    for line in proc.stdout:
        answer = json.loads(line)
        if answer.get("id") == 2:
            listed = answer["result"]["tools"]
            break
    proc.stdin.close()
    proc.wait()
    assert listed is not None, "meanwhile mcp answered no tools/list"
    return listed


def test_the_definitions_are_the_mcp_servers(home: Path, bin_path: str) -> None:
    ours = tools.anthropic_tools()
    assert [d["name"] for d in ours] == list(tools.NAMES)
    theirs = {t["name"]: t for t in mcp_tools(bin_path, home)}
    for d in ours:
        t = theirs[d["name"]]
        assert d["description"] == t["description"], d["name"]
        assert d["input_schema"] == t["inputSchema"], d["name"]
    openai = tools.openai_tools()
    assert [f["type"] for f in openai] == ["function"] * len(ours)
    assert [f["function"]["name"] for f in openai] == [d["name"] for d in ours]
    assert all(
        f["function"]["parameters"] == d["input_schema"] for f, d in zip(openai, ours, strict=False)
    )


def test_run_wait_output_list_and_notices(home: Path) -> None:
    c = Client()
    assert tools.notices("agent-1", client=c) == ""
    started = tools.dispatch(
        "background_run",
        {"command": "echo built; exit 2", "name": "build"},
        session="agent-1",
        client=c,
    )
    m = re.match(
        r"Started task (\d+) in the background: echo built; exit 2\. You will be told", started
    )
    assert m, started
    tid = int(m.group(1))
    waited = tools.dispatch("background_wait", {"ids": [tid]}, client=c)
    assert waited.startswith(f"task {tid} (build): failed with exit code 2 after "), waited
    text = tools.notices("agent-1", client=c)
    assert text.startswith(
        "[meanwhile] Background tasks that ended since your last turn (each is reported once):\n- "
    )
    assert f"task {tid} (build) failed with exit code 2" in text and "\n  built" in text
    assert tools.notices("agent-1", client=c) == ""
    out = tools.dispatch("background_output", {"id": tid}, client=c)
    assert (
        out
        == f"task {tid} is failed (exit code 2); bytes 0..6 of 6; pass since=6 to read only newer output\nbuilt\n"
    )
    listed = tools.dispatch("background_list", {}, session="agent-1", client=c)
    assert listed.startswith(f"task {tid} (build): failed")
    assert tools.dispatch("background_list", {}, session="someone-else", client=c) == "No tasks."


def test_input_and_stop(home: Path) -> None:
    c = Client()
    started = tools.dispatch(
        "background_run", {"command": "read x; echo got $x", "stdin": True}, session="s", client=c
    )
    tid = int(re.search(r"task (\d+)", started).group(1))
    sent = tools.dispatch(
        "background_input", {"id": tid, "text": "yes", "keys": ["enter"]}, client=c
    )
    assert sent.startswith(f"Sent 4 bytes to task {tid}."), sent
    out = tools.dispatch(
        "background_output", {"id": tid, "wait": "exit", "timeout_seconds": 600}, client=c
    )
    assert out.endswith("\ngot yes\n"), out
    sleeper = int(
        re.search(
            r"task (\d+)", tools.dispatch("background_run", {"command": "sleep 1000"}, client=c)
        ).group(1)
    )
    stopped = tools.dispatch("background_stop", {"id": sleeper, "force": True}, client=c)
    assert stopped.startswith(f"Killing task {sleeper}") or "cancelled" in stopped, stopped
    c.wait([sleeper])
    again = tools.dispatch("background_stop", {"id": sleeper}, client=c)
    assert again.startswith(f"task {sleeper} (sleep 1000): cancelled") and again.endswith(
        "already; nothing to stop"
    )


def test_mistakes_answer_what_to_do(home: Path) -> None:
    c = Client()

    def check(name: str, args: object, expect: str) -> None:
        got = tools.dispatch(name, args, client=c)
        assert got.startswith("error: ") and expect in got, got

    check("rm_rf", {}, "unknown tool 'rm_rf'; the tools you can use are: background_run, ")
    check("background_run", {}, "bad arguments for background_run: missing field 'command'")
    check("background_run", {"command": "  "}, "command must not be empty")
    check("background_run", {"command": "x", "colour": "red"}, "unknown field 'colour'")
    check(
        "background_run",
        {"command": "x", "tty": True, "stdin": True},
        "give tty or stdin, not both",
    )
    check(
        "background_run",
        {"command": "x", "timeout_seconds": "soon"},
        "timeout_seconds must be a number",
    )
    check("background_run", "{not json", "not valid JSON")
    check("background_run", [1], "must be a JSON object")
    check(
        "background_output", {"id": 1, "max_bytes": 10}, "max_bytes must be between 256 and 100000"
    )
    check("background_output", {"id": 1, "wait": "match"}, 'wait = "match" needs a pattern')
    check("background_output", {"id": 999}, "unknown task 999 (see 'meanwhile ls')")
    check("background_input", {"id": 1}, "give text, keys or eof")
    check("background_list", {"states": ["done"]}, "'done' is not a task state")
    check("background_list", {"limit": 500}, "limit must be between 1 and 200")
    check("background_wait", {"ids": []}, "ids must name at least one task")
    check(
        "background_wait",
        {"ids": [1], "timeout_seconds": 9999},
        "timeout_seconds must be at most 600 seconds",
    )
    check("background_stop", {"id": "seven"}, "id must be an integer")
