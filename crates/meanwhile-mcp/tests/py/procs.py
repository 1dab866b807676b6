"""Looking for processes by their exact command line, to see that a stopped task
left none of its process tree behind."""

from __future__ import annotations

import os


def count(argv: list[str]) -> int:
    want = "\0".join(argv).encode() + b"\0"
    n = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if f.read() == want:
                    n += 1
        except OSError:
            pass
    return n
