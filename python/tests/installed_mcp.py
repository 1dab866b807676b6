"""`meanwhile mcp` as an MCP client configuration starts it from an installed wheel:
the official Python MCP SDK runs the `meanwhile` next to this Python (the
virtualenv's bin), starts a background task and hears of its end as a notice.

Not a pytest file: crates/meanwhile/tests/it/python.rs runs it with the Python of a
fresh virtualenv that has the wheel and `mcp` installed. Exits non-zero on failure.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import anyio
import mcp_types as types
from mcp import Client
from mcp.client.stdio import StdioServerParameters


def texts(result: types.CallToolResult) -> list[str]:
    return [c.text for c in result.content if isinstance(c, types.TextContent)]


async def main() -> None:
    installed = Path(sys.executable).parent / "meanwhile"
    assert installed.is_file(), f"the wheel put no meanwhile next to {sys.executable}"
    home = tempfile.mkdtemp(prefix="mwmcp", dir="/tmp")
    env = {"MEANWHILE_HOME": home, "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    params = StdioServerParameters(command=str(installed), args=["mcp", "--session", "pip"], env=env)
    async with Client(params) as c:
        names = {t.name for t in (await c.list_tools()).tools}
        assert {"background_run", "background_wait", "background_notifications"} <= names, names
        run = texts(await c.call_tool("background_run", {"command": "echo from-the-wheel"}))
        m = re.search(r"Started task (\d+)", run[0])
        assert m, run
        tid = int(m.group(1))
        waited = texts(await c.call_tool("background_wait", {"ids": [tid], "timeout_seconds": 120}))
        assert "succeeded" in waited[0], waited
        # The notice, once: riding along with the run's answer (a task this quick can
        # end before that answer is made) or the wait's, or drained here.
        seen = [t for t in run[1:] + waited[1:] if re.search(rf"^- task {tid} \(", t, re.M)]
        drained = texts(await c.call_tool("background_notifications", {}))
        seen += [t for t in drained if re.search(rf"^- task {tid} \(", t, re.M)]
        assert len(seen) == 1, (waited, drained)
        output = texts(await c.call_tool("background_output", {"id": tid}))
        assert "from-the-wheel" in output[0], output
    # The daemon it started is the installed binary.
    env = dict(os.environ, MEANWHILE_HOME=home)
    status = subprocess.run([installed, "status", "--json"], env=env, capture_output=True, check=True)
    pid = json.loads(status.stdout)["pid"]
    assert os.path.realpath(f"/proc/{pid}/exe") == os.path.realpath(installed), pid
    subprocess.run([installed, "daemon", "stop", "--stop-tasks"], env=env, capture_output=True, check=True)
    print(f"task {tid} ran and was heard of once through {installed}")


anyio.run(main)
