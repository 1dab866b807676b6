"""Helpers of the Python package's tests: a home (and so a daemon) per test, the real
`meanwhile` binary, and waiting without deadlines."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TypeVar
from collections.abc import Callable

import pytest

from meanwhile import find_binary

T = TypeVar("T")


def until(what: str, check: Callable[[], T | None]) -> T:
    """Calls `check` until it answers something truthy, and returns that. No deadline:
    the test runner ends a test that hangs, and names it."""
    pause = 0.005
    while True:
        got = check()
        if got:
            return got
        time.sleep(pause)  # a process start has nothing to wait on from here
        pause = min(pause * 2, 0.1)


@pytest.fixture
def bin_path() -> str:
    """The meanwhile binary under test (MEANWHILE_BIN, else PATH)."""
    return find_binary()


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch, bin_path: str):
    """A fresh MEANWHILE_HOME for this test; its daemon is stopped at the end."""
    # Short, under /tmp: the daemon's socket path must fit in sun_path.
    path = Path(tempfile.mkdtemp(prefix="mwpy", dir="/tmp"))
    monkeypatch.setenv("MEANWHILE_HOME", str(path))
    monkeypatch.delenv("MEANWHILE_URL", raising=False)
    monkeypatch.delenv("MEANWHILE_TOKEN", raising=False)
    yield path
    stop_daemon(bin_path, path)
    shutil.rmtree(path, ignore_errors=True)


def stop_daemon(bin_path: str, home: Path) -> None:
    """`meanwhile daemon stop --stop-tasks` for `home`, when a daemon runs there."""
    if not (home / "meanwhile.sock").exists():
        return
    env = dict(os.environ, MEANWHILE_HOME=str(home))
    env.pop("MEANWHILE_URL", None)
    done = subprocess.run(
        [bin_path, "daemon", "stop", "--stop-tasks"], env=env, capture_output=True, text=True
    )
    # 69: no daemon answered, which is what stopping wants.
    assert done.returncode in (0, 69), done.stderr


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_tcp(bin_path: str, home: Path) -> tuple[subprocess.Popen, str]:
    """`meanwhile serve --listen 127.0.0.1:PORT` for `home`; its address once it answers."""
    port = free_port()
    addr = f"127.0.0.1:{port}"
    env = dict(os.environ, MEANWHILE_HOME=str(home))
    env.pop("MEANWHILE_URL", None)
    with open(home / "serve.log", "wb") as log:
        proc = subprocess.Popen(
            [bin_path, "serve", "--listen", addr],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )

    def answers() -> bool:
        if proc.poll() is not None:
            raise AssertionError(
                f"meanwhile serve exited with {proc.returncode}: {(home / 'serve.log').read_text()}"
            )
        try:
            socket.create_connection(("127.0.0.1", port)).close()
        except OSError:
            return False
        return (home / "token").exists()

    until("the TCP listener", answers)
    return proc, addr
