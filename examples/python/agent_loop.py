#!/usr/bin/env python3
"""A small agent loop with meanwhile's background tools.

The model (any Anthropic Messages API: ANTHROPIC_BASE_URL, ANTHROPIC_API_KEY,
ANTHROPIC_MODEL) gets the background tools; each tool call runs against the meanwhile
daemon, and before every model call the session's notices (tasks that ended, or wait
for input, since the last turn) join the conversation, so the model hears how its
background work went without polling. The loop ends at the model's first answer
without tool calls, which it prints.

    python examples/python/agent_loop.py "Run the test suite and tell me what fails"
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid

import httpx

from meanwhile import Client, tools

SYSTEM = (
    "You are a coding agent. Start slow commands with background_run and keep working; "
    "you are told how each background task ended before your next turn."
)


def model_call(http: httpx.Client, model: str, messages: list[dict]) -> dict:
    """One Messages API call; the whole answer."""
    r = http.post(
        "/v1/messages",
        json={
            "model": model,
            "max_tokens": 4096,
            "system": SYSTEM,
            "tools": tools.anthropic_tools(),
            "messages": messages,
        },
    )
    if r.status_code != 200:
        sys.exit(f"the model call failed with HTTP {r.status_code}: {r.text[:500]}")
    return r.json()


def add_notices(messages: list[dict], text: str) -> None:
    """Puts the notices into the pending user turn, after its tool results."""
    last = messages[-1]
    if isinstance(last["content"], str):
        last["content"] = [{"type": "text", "text": last["content"]}]
    last["content"].append({"type": "text", "text": text})


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("prompt", help="what the agent should do")
    p.add_argument(
        "--session",
        default=f"agent-{uuid.uuid4().hex[:8]}",
        help="the meanwhile session its tasks notify",
    )
    p.add_argument(
        "--max-turns", type=int, default=50, help="most model calls (default 50)"
    )
    args = p.parse_args()

    key = os.environ.get("ANTHROPIC_API_KEY")
    if not key:
        sys.exit("set ANTHROPIC_API_KEY to the API key of your Messages API")
    base = os.environ.get("ANTHROPIC_BASE_URL", "https://api.anthropic.com").rstrip("/")
    model = os.environ.get("ANTHROPIC_MODEL", "claude-sonnet-4-5")
    http = httpx.Client(
        base_url=base,
        headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
        timeout=httpx.Timeout(600.0, connect=30.0),
    )
    client = Client(session=args.session)

    messages: list[dict] = [{"role": "user", "content": args.prompt}]
    for _ in range(args.max_turns):
        notices = tools.notices(args.session, client=client)
        if notices:
            add_notices(messages, notices)
        answer = model_call(http, model, messages)
        content = answer.get("content", [])
        messages.append({"role": "assistant", "content": content})
        calls = [b for b in content if b.get("type") == "tool_use"]
        if not calls:
            print(
                "".join(b.get("text", "") for b in content if b.get("type") == "text")
            )
            return 0
        results = []
        for call in calls:
            text = tools.dispatch(
                call["name"], call.get("input"), session=args.session, client=client
            )
            result = {"type": "tool_result", "tool_use_id": call["id"], "content": text}
            if text.startswith("error: "):
                result["is_error"] = True
            results.append(result)
        messages.append({"role": "user", "content": results})
    sys.exit(f"no final answer after {args.max_turns} model calls (raise --max-turns)")


if __name__ == "__main__":
    sys.exit(main())
