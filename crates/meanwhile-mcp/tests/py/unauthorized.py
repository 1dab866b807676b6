"""The MCP endpoint on TCP answers nothing without the daemon's bearer token."""

from __future__ import annotations

import anyio
import httpx2

from common import config, report


async def main() -> None:
    cfg = config()
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {cfg['token']}"}) as http:
        r = await http.post(
            cfg["url"],
            json={"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {}},
            headers={"Accept": "application/json, text/event-stream"},
        )
    report({"status": r.status_code, "body": r.text})


anyio.run(main)
