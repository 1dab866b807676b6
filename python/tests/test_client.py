"""`Client` and `AsyncClient` against a real daemon, each test in its own home."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest

import meanwhile
from meanwhile import AsyncClient, Client, MeanwhileError

from conftest import serve_tcp, stop_daemon


def test_the_readme_example_runs_waits_reads_and_drains(home: Path) -> None:
    c = Client()
    t = c.run("echo hello from meanwhile; exit 3", session="s1")
    assert t.id >= 1 and t.session == "s1"
    c.wait([t.id])
    assert c.output(t.id).text == "hello from meanwhile\n"
    notices = c.drain_notifications("s1")
    assert [n.task_id for n in notices] == [t.id]
    n = notices[0]
    assert (n.state, n.exit_code) == ("failed", 3)
    assert n.text.startswith(
        f"task {t.id} (echo hello from meanwhile; exit 3) failed with exit code 3 after "
    )
    assert "hello from meanwhile" in n.text
    assert c.drain_notifications("s1") == [], "each notice is drained once"
    done = c.get(t.id)
    assert done.ended and done.state == "failed" and done.exit_code == 3


def test_the_client_starts_the_daemon_when_none_answers(home: Path) -> None:
    assert not (home / "meanwhile.sock").exists()
    status = Client().status()
    assert status["version"]
    assert (home / "meanwhile.sock").exists()
    # A second client finds the daemon the first one started.
    assert Client().status()["pid"] == status["pid"]


def test_without_starting_or_a_binary_no_daemon_is_an_unavailable_error(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(meanwhile.Unavailable) as e:
        Client(start_daemon=False).status()
    assert e.value.code == "unavailable" and "meanwhile daemon start" in e.value.message
    monkeypatch.setenv("MEANWHILE_BIN", str(home / "no-such-binary"))
    with pytest.raises(meanwhile.Unavailable) as e:
        Client().status()
    assert "MEANWHILE_BIN" in e.value.message
    assert not (home / "meanwhile.sock").exists()


def test_argv_specs_and_task_fields_reach_the_daemon(home: Path, tmp_path: Path) -> None:
    c = Client()
    a = c.run(["printf", "%s|", "two words", "$HOME"], name="argv", labels=["py"], cwd=tmp_path)
    s = c.run(
        spec={"command": "pwd; echo $GREETING", "name": "from-spec", "env": {"GREETING": "hi"}}
    )
    w = c.wait([a.id, s.id])
    assert not w.timed_out and [t.state for t in w.tasks] == ["succeeded", "succeeded"]
    assert c.output(a.id).text == "two words|$HOME|"
    assert c.get(a.id).labels == ["py"] and c.get(a.id).spec["cwd"] == str(tmp_path)
    assert c.output(s.id).text == f"{os.getcwd()}\nhi\n", "a task runs where its submitter is"
    assert c.get(s.id).name == "from-spec"
    page = c.list(label="py")
    assert [t.id for t in page] == [a.id] and page.next is None
    assert {t.id for t in c.list(state=["succeeded"])} == {a.id, s.id}


def test_output_reads_with_a_cursor_tail_grep_and_waits(home: Path) -> None:
    c = Client()
    t = c.run("cat", stdin=True)
    sent = c.send(t.id, "one\nerror: two\nthree\n")
    assert sent.bytes == len("one\nerror: two\nthree\n")
    got = c.output(t.id, wait="match", match="three", timeout="10m")
    assert got.matched == "three\n" or got.matched == "three"
    c.send(t.id, eof=True)
    end = c.output(t.id, wait=True, timeout=600)
    assert end.state == "succeeded" and end.exit_code == 0
    assert end.text == "one\nerror: two\nthree\n"
    assert c.output(t.id, tail=1).text == "three\n"
    assert c.output(t.id, grep="^error").text == "error: two\n"
    assert c.output(t.id, since=end.cursor).text == ""


def test_stop_and_retry(home: Path) -> None:
    c = Client()
    t = c.run("sleep 1000", session="s2")
    stopping = c.stop(t.id)
    assert stopping.id == t.id
    assert c.wait(t.id).tasks[0].state == "cancelled"
    again = c.retry(t.id)
    assert again.id == t.id and not again.ended
    c.stop(t.id, force=True)
    assert c.wait([t.id]).tasks[0].state == "cancelled"
    assert [n.state for n in c.drain_notifications("s2")] == ["cancelled", "cancelled"]


def test_errors_carry_the_code_message_and_field(home: Path) -> None:
    c = Client()
    with pytest.raises(meanwhile.NotFound) as e:
        c.get(424242)
    assert (e.value.code, e.value.status) == ("not_found", 404)
    assert "unknown task 424242" in e.value.message
    with pytest.raises(meanwhile.InvalidArgument) as e:
        c.run("true", timeout="fast")
    assert (e.value.code, e.value.field) == ("invalid_argument", "timeout")
    assert "fast" in str(e.value)
    with pytest.raises(MeanwhileError) as e:
        c.run()
    assert (e.value.code, e.value.field) == ("invalid_argument", "command")
    with pytest.raises(MeanwhileError) as e:
        c.run(42)  # type: ignore[arg-type]
    assert e.value.field == "command"
    t = c.run("sleep 1000")
    with pytest.raises(meanwhile.Conflict) as e:
        c.retry(t.id)
    assert e.value.code == "conflict"
    c.stop(t.id, force=True)


def test_events_resume_after_the_daemon_restarts(home: Path, bin_path: str) -> None:
    c = Client()
    events = c.events(after=0)
    first = c.run("echo one")
    seen = []
    for e in events:
        seen.append(e)
        if e.kind == "finished" and e.task_id == first.id:
            break
    # The stream drops with the daemon; the next task starts a new daemon.
    stop_daemon(bin_path, home)
    second = c.run("echo two")
    c.wait([second.id])
    for e in events:
        seen.append(e)
        if e.kind == "finished" and e.task_id == second.id:
            break
    seqs = [e.seq for e in seen]
    assert seqs == sorted(set(seqs)), "no event twice, none out of order"
    kinds = [(e.task_id, e.kind) for e in seen if e.task_id is not None]
    for task in (first.id, second.id):
        assert (task, "submitted") in kinds and (task, "finished") in kinds, kinds


def test_queues_budgets_and_schedules(home: Path) -> None:
    c = Client()
    q = c.set_queue("gpu", max_parallel=1, per_key=2, rate="60/m")
    assert (q.name, q.max_parallel, q.per_key, q.rate) == ("gpu", 1, 2, "60/m")
    assert c.pause_queue("gpu").paused
    assert not c.resume_queue("gpu").paused
    assert c.set_queue("gpu", rate=None).rate is None and c.set_queue("gpu").per_key == 2
    assert {q.name for q in c.queues()} >= {"default", "gpu"}
    c.remove_queue("gpu")
    assert "gpu" not in {q.name for q in c.queues()}
    with pytest.raises(meanwhile.Conflict) as e:
        c.remove_queue("default")
    assert e.value.code == "conflict"

    b = c.set_budget("llm", tokens=1000, window="day", alarms=[50, 100])
    assert (b.queue, b.tokens, b.window, b.alarms, b.state) == ("llm", 1000, "day", [50, 100], "ok")
    assert [x.queue for x in c.budgets()] == ["llm"] and c.budget("llm").tokens == 1000
    with pytest.raises(MeanwhileError) as e:
        c.set_budget("llm", tokens=0)
    assert e.value.field == "tokens"
    c.remove_budget("llm")
    assert c.budgets() == []

    s = c.add_schedule("nightly", "echo scheduled", cron="0 3 * * *", tz="Europe/Berlin")
    assert (s.name, s.cron, s.tz, s.paused) == ("nightly", "0 3 * * *", "Europe/Berlin", False)
    assert s.next_fire is not None
    with pytest.raises(meanwhile.Conflict):
        c.add_schedule("nightly", "true", every="1h")
    with pytest.raises(MeanwhileError) as e:
        c.add_schedule("bad", "true", cron="not a cron")
    assert e.value.field == "cron"
    fired = c.run_schedule("nightly")
    assert "schedule:nightly" in fired.labels
    c.wait([fired.id])
    assert c.output(fired.id).text == "scheduled\n"
    assert c.pause_schedule("nightly").paused and not c.resume_schedule("nightly").paused
    assert c.schedule("nightly").last_task == fired.id
    c.remove_schedule("nightly")
    with pytest.raises(meanwhile.NotFound):
        c.schedule("nightly")


def test_tcp_with_a_bearer_token(
    home: Path, bin_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    proc, addr = serve_tcp(bin_path, home)
    try:
        token = (home / "token").read_text().strip()
        monkeypatch.setenv("MEANWHILE_URL", f"http://{addr}")
        monkeypatch.setenv("MEANWHILE_TOKEN", token)
        c = Client()
        assert c.target == f"http://{addr}"
        t = c.run("echo over tcp", session="tcp")
        c.wait([t.id])
        assert c.output(t.id).text == "over tcp\n"
        assert [n.task_id for n in c.drain_notifications("tcp")] == [t.id]
        # Without MEANWHILE_TOKEN the home's token file is read, as the CLI does.
        monkeypatch.delenv("MEANWHILE_TOKEN")
        monkeypatch.setenv("MEANWHILE_URL", addr)
        assert Client().get(t.id).state == "succeeded"
        with pytest.raises(meanwhile.Unauthorized) as e:
            Client(token="not-the-token").get(t.id)
        assert e.value.code == "unauthorized" and e.value.status == 401
    finally:
        stop_daemon(bin_path, home)
        proc.wait()


def test_a_remote_daemon_is_never_started(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from conftest import free_port

    monkeypatch.setenv("MEANWHILE_URL", f"127.0.0.1:{free_port()}")
    monkeypatch.setenv("MEANWHILE_TOKEN", "x")
    with pytest.raises(meanwhile.Unavailable) as e:
        Client().status()
    assert "MEANWHILE_URL" in e.value.message
    assert not (home / "meanwhile.sock").exists()


def test_the_async_client(home: Path) -> None:
    async def go() -> None:
        async with AsyncClient(session="a1") as c:
            events = c.events(after=0)
            t = await c.run(["sh", "-c", "echo async; exit 7"])
            assert t.session == "a1"
            w = await c.wait([t.id])
            assert w.tasks[0].exit_code == 7
            assert (await c.output(t.id)).text == "async\n"
            notes = await c.drain_notifications("a1")
            assert [n.exit_code for n in notes] == [7]
            async for e in events:
                if e.kind == "finished" and e.task_id == t.id:
                    break
            await events.aclose()
            with pytest.raises(meanwhile.NotFound):
                await c.get(999)
            assert [q.name for q in await c.queues()] == ["default"]

    asyncio.run(go())


@pytest.mark.parametrize(
    "env, expect",
    [
        ({"MEANWHILE_HOME": "/srv/mw", "XDG_DATA_HOME": "/x", "HOME": "/h"}, "/srv/mw"),
        ({"MEANWHILE_HOME": "", "XDG_DATA_HOME": "/x", "HOME": "/h"}, "/x/meanwhile"),
        ({"XDG_DATA_HOME": "relative", "HOME": "/h"}, "/h/.local/share/meanwhile"),
        ({"HOME": "/h"}, "/h/.local/share/meanwhile"),
        ({}, "/tmp/meanwhile"),
    ],
)
def test_the_default_home_is_the_commands(
    env: dict, expect: str, monkeypatch: pytest.MonkeyPatch, bin_path: str
) -> None:
    for k in ("MEANWHILE_HOME", "XDG_DATA_HOME", "HOME"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert str(meanwhile.default_home()) == expect
    if env.get("MEANWHILE_HOME") == "":
        return  # the command refuses an empty --home given by the variable
    # The command agrees: `meanwhile daemon status` names the home it looks at.
    done = subprocess.run(
        [bin_path, "daemon", "status"], env=dict(os.environ), capture_output=True, text=True
    )
    assert expect in done.stdout + done.stderr
