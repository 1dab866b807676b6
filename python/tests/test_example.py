"""examples/python/agent_loop.py against a scripted model: an HTTP server speaking
Anthropic's Messages API, which checks what the loop sends at each turn."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from collections.abc import Callable

from meanwhile import tools

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples/python/agent_loop.py"
KEY = "sk-test-key"


def message(content: list[dict], stop: str) -> dict:
    return {
        "id": "msg_test",
        "type": "message",
        "role": "assistant",
        "model": "claude-test",
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 5},
    }


def tool_use(ident: str, name: str, input: dict) -> dict:
    return {"type": "tool_use", "id": ident, "name": name, "input": input}


class Provider:
    """Answers each POST /v1/messages with the next turn of a script; each turn checks
    the request and notes what was wrong in `problems`."""

    def __init__(self, turns: list[Callable[[dict], dict]]) -> None:
        self.turns = list(turns)
        self.problems: list[str] = []
        self.requests: list[dict] = []
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                provider.requests.append(body)
                if self.path != "/v1/messages":
                    provider.problems.append(f"POST {self.path}, not /v1/messages")
                if self.headers.get("x-api-key") != KEY or not self.headers.get(
                    "anthropic-version"
                ):
                    provider.problems.append(f"headers: {dict(self.headers)}")
                if not provider.turns:
                    provider.problems.append("a model call after the script ended")
                    answer: dict[str, Any] = {
                        "type": "error",
                        "error": {"type": "invalid_request_error", "message": "script ended"},
                    }
                    status = 400
                else:
                    try:
                        answer, status = provider.turns.pop(0)(body), 200
                    except AssertionError as e:
                        provider.problems.append(f"turn {len(provider.requests)}: {e}")
                        answer, status = (
                            {
                                "type": "error",
                                "error": {"type": "invalid_request_error", "message": str(e)},
                            },
                            400,
                        )
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def last_user_blocks(body: dict) -> list[dict]:
    last = body["messages"][-1]
    assert last["role"] == "user", f"the conversation ends with {last['role']}"
    assert isinstance(last["content"], list), last
    return last["content"]


def test_the_agent_loop_dispatches_tools_and_hears_notices(home: Path) -> None:
    task: dict[str, int] = {}

    def first(body: dict) -> dict:
        assert [t["name"] for t in body["tools"]] == list(tools.NAMES), body["tools"]
        assert body["messages"] == [{"role": "user", "content": "check the build"}], body[
            "messages"
        ]
        return message(
            [
                tool_use(
                    "call_1",
                    "background_run",
                    {"command": "echo from-the-task; exit 4", "name": "build"},
                )
            ],
            "tool_use",
        )

    def second(body: dict) -> dict:
        blocks = last_user_blocks(body)
        # The task may have ended already: then its notice follows the tool result.
        assert [b["type"] for b in blocks][:1] == ["tool_result"] and len(blocks) <= 2, blocks
        assert blocks[0]["tool_use_id"] == "call_1" and not blocks[0].get("is_error")
        m = re.match(r"Started task (\d+) in the background", blocks[0]["content"])
        assert m, blocks[0]["content"]
        task["id"] = int(m.group(1))
        return message(
            [
                {"type": "text", "text": "Waiting for it."},
                tool_use("call_2", "background_wait", {"ids": [task["id"]]}),
                tool_use("call_3", "background_output", {"id": "the build"}),
            ],
            "tool_use",
        )

    def third(body: dict) -> dict:
        blocks = last_user_blocks(body)
        assert [b["type"] for b in blocks][:2] == ["tool_result", "tool_result"], blocks
        wait, bad = blocks[:2]
        assert (
            wait["tool_use_id"] == "call_2"
            and f"task {task['id']} (build): failed with exit code 4" in wait["content"]
        )
        assert bad["tool_use_id"] == "call_3" and bad.get("is_error") is True
        assert "id must be an integer" in bad["content"], bad
        # The task's end was told once, before this call or the one before it.
        notices = [
            b["text"]
            for m in body["messages"]
            if m["role"] == "user" and isinstance(m["content"], list)
            for b in m["content"]
            if b["type"] == "text"
        ]
        assert len(notices) == 1, notices
        assert notices[0].startswith("[meanwhile] Background tasks that ended"), notices
        assert (
            f"task {task['id']} (build) failed with exit code 4" in notices[0]
            and "from-the-task" in notices[0]
        )
        return message([{"type": "text", "text": "The build failed with exit code 4."}], "end_turn")

    provider = Provider([first, second, third])
    try:
        env = dict(
            os.environ,
            ANTHROPIC_BASE_URL=provider.url,
            ANTHROPIC_API_KEY=KEY,
            PYTHONPATH=str(ROOT / "python"),
        )
        done = subprocess.run(
            [sys.executable, str(EXAMPLE), "check the build", "--session", "example"],
            env=env,
            capture_output=True,
            text=True,
        )
    finally:
        provider.close()
    assert provider.problems == [], provider.problems
    assert done.returncode == 0, done.stderr
    assert done.stdout == "The build failed with exit code 4.\n"
    assert len(provider.requests) == 3


def test_the_agent_loop_says_when_the_key_is_missing(home: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    env["PYTHONPATH"] = str(ROOT / "python")
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "hi"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 1 and "set ANTHROPIC_API_KEY" in done.stderr
