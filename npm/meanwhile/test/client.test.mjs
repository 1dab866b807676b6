// `Client` against a real daemon, each test in its own home.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";

import { Client, MeanwhileError, defaultHome, isEnded } from "meanwhile";

import { bin, envFor, freePort, freshHome, serveTcp, stopDaemon } from "./support.mjs";

/** The error `promise` rejects with; fails when it resolves. */
async function refusal(promise) {
  try {
    await promise;
  } catch (e) {
    assert.ok(e instanceof MeanwhileError, `a MeanwhileError, got ${e?.stack ?? e}`);
    return e;
  }
  assert.fail("the call was expected to fail");
}

test("the README example runs, waits, reads and drains", async (t) => {
  freshHome(t);
  const c = new Client();
  const t1 = await c.run("echo hello from meanwhile; exit 3", { session: "s1" });
  assert.ok(t1.id >= 1);
  assert.equal(t1.session, "s1");
  await c.wait([t1.id]);
  assert.equal((await c.output(t1.id)).text, "hello from meanwhile\n");
  const notices = await c.drainNotifications("s1");
  assert.deepEqual(
    notices.map((n) => n.task_id),
    [t1.id],
  );
  const n = notices[0];
  assert.equal(n.state, "failed");
  assert.equal(n.exit_code, 3);
  assert.ok(n.text.startsWith(`task ${t1.id} (echo hello from meanwhile; exit 3) failed with exit code 3 after `), n.text);
  assert.ok(n.text.includes("hello from meanwhile"));
  assert.deepEqual(await c.drainNotifications("s1"), [], "each notice is drained once");
  const done = await c.get(t1.id);
  assert.ok(isEnded(done));
  assert.equal(done.exit_code, 3);
});

test("the client starts the daemon when none answers", async (t) => {
  const home = freshHome(t);
  assert.ok(!existsSync(path.join(home, "meanwhile.sock")));
  const status = await new Client().status();
  assert.ok(status.version);
  assert.ok(existsSync(path.join(home, "meanwhile.sock")));
  // A second client finds the daemon the first one started; calls at once share a start.
  assert.equal((await new Client().status()).pid, status.pid);
});

test("calls at once on a home without a daemon start one daemon", async (t) => {
  freshHome(t);
  const c = new Client();
  const answers = await Promise.all([c.status(), c.status(), c.queues()]);
  assert.equal(answers[0].pid, answers[1].pid);
  assert.deepEqual(
    answers[2].map((q) => q.name),
    ["default"],
  );
});

test("without starting or a binary, no daemon is an unavailable error", async (t) => {
  const home = freshHome(t);
  let e = await refusal(new Client({ startDaemon: false }).status());
  assert.equal(e.code, "unavailable");
  assert.equal(e.status, null);
  assert.ok(e.message.includes("meanwhile daemon start"), e.message);
  e = await refusal(new Client({ binary: path.join(home, "no-such-binary") }).status());
  assert.equal(e.code, "unavailable");
  assert.ok(e.message.includes("MEANWHILE_BIN"), e.message);
  assert.ok(!existsSync(path.join(home, "meanwhile.sock")));
});

test("argv, specs and task fields reach the daemon", async (t) => {
  freshHome(t);
  const dir = mkdtempSync("/tmp/mwjs-cwd");
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const c = new Client();
  const a = await c.run(["printf", "%s|", "two words", "$HOME"], { name: "argv", labels: ["js"], cwd: dir });
  const s = await c.run({ spec: { command: "pwd; echo $GREETING", name: "from-spec", env: { GREETING: "hi" } } });
  const w = await c.wait([a.id, s.id]);
  assert.equal(w.timed_out, false);
  assert.deepEqual(
    w.tasks.map((x) => x.state),
    ["succeeded", "succeeded"],
  );
  assert.equal((await c.output(a.id)).text, "two words|$HOME|");
  assert.deepEqual((await c.get(a.id)).labels, ["js"]);
  assert.equal((await c.get(a.id)).spec.cwd, dir);
  assert.equal((await c.output(s.id)).text, `${process.cwd()}\nhi\n`, "a task runs where its submitter is");
  assert.equal((await c.get(s.id)).name, "from-spec");
  const page = await c.list({ label: "js" });
  assert.deepEqual(
    page.tasks.map((x) => x.id),
    [a.id],
  );
  assert.equal(page.next, null);
  assert.deepEqual(new Set((await c.list({ state: ["succeeded"] })).tasks.map((x) => x.id)), new Set([a.id, s.id]));
  const attempts = await c.attempts(a.id);
  assert.equal(attempts.length, 1);
  assert.equal(attempts[0].exit_code, 0);
});

test("agent and llm prompts reach the daemon, which has no provider here", async (t) => {
  freshHome(t);
  const saved = {};
  for (const k of ["ANTHROPIC_API_KEY", "OPENAI_API_KEY"]) {
    saved[k] = process.env[k];
    delete process.env[k];
  }
  t.after(() => {
    for (const [k, v] of Object.entries(saved)) if (v !== undefined) process.env[k] = v;
  });
  const c = new Client();
  for (const form of [{ agent: "find why the build is slow" }, { llm: { prompt: "yes or no?", system: "be brief" } }]) {
    const e = await refusal(c.run(form));
    assert.equal(e.code, "no_provider", e.message);
    assert.equal(e.status, 409);
    assert.ok(e.message.includes("ANTHROPIC_API_KEY"), e.message);
  }
  const e = await refusal(c.run({ llm: 42 }));
  assert.equal(e.field, "llm");
  assert.equal(e.status, null);
  assert.deepEqual((await c.list()).tasks, [], "nothing was submitted");
});

test("output reads with a cursor, tail and grep, and waits", async (t) => {
  freshHome(t);
  const c = new Client();
  const task = await c.run("cat", { stdin: true });
  const sent = await c.send(task.id, "one\nerror: two\nthree\n");
  assert.equal(sent.bytes, "one\nerror: two\nthree\n".length);
  const got = await c.output(task.id, { wait: "match", match: "three", timeout: "10m" });
  assert.ok(got.matched === "three\n" || got.matched === "three", got.matched);
  await c.send(task.id, undefined, { eof: true });
  const end = await c.output(task.id, { wait: true, timeout: 600 });
  assert.equal(end.state, "succeeded");
  assert.equal(end.exit_code, 0);
  assert.equal(end.text, "one\nerror: two\nthree\n");
  assert.equal((await c.output(task.id, { tail: 1 })).text, "three\n");
  assert.equal((await c.output(task.id, { grep: "^error" })).text, "error: two\n");
  assert.equal((await c.output(task.id, { since: end.cursor })).text, "");
});

test("stop and retry", async (t) => {
  freshHome(t);
  const c = new Client();
  const task = await c.run("sleep 1000", { session: "s2" });
  assert.equal((await c.stop(task.id)).id, task.id);
  assert.equal((await c.wait(task.id)).tasks[0].state, "cancelled");
  const again = await c.retry(task.id);
  assert.equal(again.id, task.id);
  assert.ok(!isEnded(again));
  await c.stop(task.id, { force: true });
  assert.equal((await c.wait([task.id])).tasks[0].state, "cancelled");
  assert.deepEqual(
    (await c.drainNotifications("s2")).map((n) => n.state),
    ["cancelled", "cancelled"],
  );
});

test("errors carry the code, message, field and status", async (t) => {
  freshHome(t);
  const c = new Client();
  let e = await refusal(c.get(424242));
  assert.equal(e.code, "not_found");
  assert.equal(e.status, 404);
  assert.ok(e.message.includes("unknown task 424242"), e.message);
  e = await refusal(c.run("true", { timeout: "fast" }));
  assert.equal(e.code, "invalid_argument");
  assert.equal(e.field, "timeout");
  assert.equal(e.status, 400);
  assert.ok(e.message.includes("fast"), e.message);
  // Refused before anything is sent: no status.
  e = await refusal(c.run());
  assert.equal(e.code, "invalid_argument");
  assert.equal(e.field, "command");
  assert.equal(e.status, null);
  e = await refusal(c.run(42));
  assert.equal(e.field, "command");
  e = await refusal(c.run(["ls", 7]));
  assert.equal(e.field, "command");
  e = await refusal(c.run("true", { timeout: {} }));
  assert.equal(e.field, "timeout");
  e = await refusal(c.run("true", { after: ["7"] }));
  assert.equal(e.field, "after");
  e = await refusal(c.get("7"));
  assert.equal(e.field, "id");
  e = await refusal(c.wait([1.5]));
  assert.equal(e.field, "ids");
  e = await refusal(c.drainNotifications(""));
  assert.equal(e.field, "session");
  const running = await c.run("sleep 1000");
  e = await refusal(c.retry(running.id));
  assert.equal(e.code, "conflict");
  assert.equal(e.status, 409);
  await c.stop(running.id, { force: true });
});

test("events resume after the daemon restarts", async (t) => {
  const home = freshHome(t);
  const c = new Client();
  const events = c.events({ after: 0 });
  const first = await c.run("echo one");
  const seen = [];
  for (;;) {
    const { value: e } = await events.next();
    seen.push(e);
    if (e.kind === "finished" && e.task_id === first.id) break;
  }
  // The stream drops with the daemon; the next task starts a new daemon.
  stopDaemon(home);
  const second = await c.run("echo two");
  await c.wait([second.id]);
  for (;;) {
    const { value: e } = await events.next();
    seen.push(e);
    if (e.kind === "finished" && e.task_id === second.id) break;
  }
  await events.return();
  const seqs = seen.map((e) => e.seq);
  assert.deepEqual(seqs, [...new Set(seqs)].sort((x, y) => x - y), "no event twice, none out of order");
  const kinds = seen.filter((e) => e.task_id != null).map((e) => `${e.task_id}:${e.kind}`);
  for (const id of [first.id, second.id]) {
    assert.ok(kinds.includes(`${id}:submitted`) && kinds.includes(`${id}:finished`), kinds.join(" "));
  }
});

test("queues, budgets and schedules", async (t) => {
  freshHome(t);
  const c = new Client();
  const q = await c.setQueue("gpu", { max_parallel: 1, per_key: 2, rate: "60/m" });
  assert.deepEqual([q.name, q.max_parallel, q.per_key, q.rate], ["gpu", 1, 2, "60/m"]);
  assert.equal((await c.pauseQueue("gpu")).paused, true);
  assert.equal((await c.resumeQueue("gpu")).paused, false);
  assert.equal((await c.setQueue("gpu", { rate: null })).rate, null);
  assert.equal((await c.setQueue("gpu")).per_key, 2);
  assert.ok((await c.queues()).some((x) => x.name === "gpu"));
  await c.removeQueue("gpu");
  assert.ok(!(await c.queues()).some((x) => x.name === "gpu"));
  let e = await refusal(c.removeQueue("default"));
  assert.equal(e.code, "conflict");

  const b = await c.setBudget("llm", { tokens: 1000, window: "day", alarms: [50, 100] });
  assert.deepEqual([b.queue, b.tokens, b.window, b.alarms, b.state], ["llm", 1000, "day", [50, 100], "ok"]);
  assert.deepEqual(
    (await c.budgets()).map((x) => x.queue),
    ["llm"],
  );
  assert.equal((await c.budget("llm")).tokens, 1000);
  e = await refusal(c.setBudget("llm", { tokens: 0 }));
  assert.equal(e.field, "tokens");
  await c.removeBudget("llm");
  assert.deepEqual(await c.budgets(), []);

  const s = await c.addSchedule("nightly", "echo scheduled", { cron: "0 3 * * *", tz: "Europe/Berlin" });
  assert.deepEqual([s.name, s.cron, s.tz, s.paused], ["nightly", "0 3 * * *", "Europe/Berlin", false]);
  assert.ok(s.next_fire != null);
  e = await refusal(c.addSchedule("nightly", "true", { every: "1h" }));
  assert.equal(e.code, "conflict");
  e = await refusal(c.addSchedule("bad", "true", { cron: "not a cron" }));
  assert.equal(e.field, "cron");
  const fired = await c.runSchedule("nightly");
  assert.ok(fired.labels.includes("schedule:nightly"), fired.labels.join(","));
  await c.wait([fired.id]);
  assert.equal((await c.output(fired.id)).text, "scheduled\n");
  assert.equal((await c.pauseSchedule("nightly")).paused, true);
  assert.equal((await c.resumeSchedule("nightly")).paused, false);
  assert.equal((await c.schedule("nightly")).last_task, fired.id);
  await c.removeSchedule("nightly");
  e = await refusal(c.schedule("nightly"));
  assert.equal(e.code, "not_found");
});

test("TCP with a bearer token", async (t) => {
  const home = freshHome(t);
  const { proc, addr, ended } = await serveTcp(home);
  t.after(async () => {
    stopDaemon(home);
    if (proc.exitCode === null) await ended;
  });
  const token = readFileSync(path.join(home, "token"), "utf8").trim();
  process.env.MEANWHILE_URL = `http://${addr}`;
  process.env.MEANWHILE_TOKEN = token;
  const c = new Client();
  assert.equal(c.target, `http://${addr}`);
  const task = await c.run("echo over tcp", { session: "tcp" });
  await c.wait([task.id]);
  assert.equal((await c.output(task.id)).text, "over tcp\n");
  assert.deepEqual(
    (await c.drainNotifications("tcp")).map((n) => n.task_id),
    [task.id],
  );
  // Without MEANWHILE_TOKEN the home's token file is read, as the command does.
  delete process.env.MEANWHILE_TOKEN;
  process.env.MEANWHILE_URL = addr;
  assert.equal((await new Client().get(task.id)).state, "succeeded");
  const e = await refusal(new Client({ token: "not-the-token" }).get(task.id));
  assert.equal(e.code, "unauthorized");
  assert.equal(e.status, 401);
});

test("a remote daemon is never started", async (t) => {
  const home = freshHome(t);
  process.env.MEANWHILE_URL = `127.0.0.1:${await freePort()}`;
  process.env.MEANWHILE_TOKEN = "x";
  const e = await refusal(new Client().status());
  assert.equal(e.code, "unavailable");
  assert.ok(e.message.includes("MEANWHILE_URL"), e.message);
  assert.ok(!existsSync(path.join(home, "meanwhile.sock")));
  const bad = (() => {
    try {
      new Client({ url: "ftp://example.org" });
    } catch (err) {
      return err;
    }
  })();
  assert.ok(bad instanceof MeanwhileError);
  assert.equal(bad.field, "url");
});

test("the default home is the command's", (t) => {
  const saved = {};
  for (const k of ["MEANWHILE_HOME", "XDG_DATA_HOME", "HOME"]) saved[k] = process.env[k];
  t.after(() => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });
  const check = (env, expect) => {
    for (const k of Object.keys(saved)) delete process.env[k];
    Object.assign(process.env, env);
    assert.equal(defaultHome(), expect, JSON.stringify(env));
    if (env.MEANWHILE_HOME === "") return; // the command refuses an empty --home given by the variable
    // The command agrees: `meanwhile daemon status` names the home it looks at.
    const env2 = { ...process.env };
    delete env2.MEANWHILE_URL;
    const done = spawnSync(bin(), ["daemon", "status"], { env: env2, encoding: "utf8" });
    assert.ok((done.stdout + done.stderr).includes(expect), done.stdout + done.stderr);
  };
  check({ MEANWHILE_HOME: "/srv/mw", XDG_DATA_HOME: "/x", HOME: "/h" }, "/srv/mw");
  check({ MEANWHILE_HOME: "", XDG_DATA_HOME: "/x", HOME: "/h" }, "/x/meanwhile");
  check({ XDG_DATA_HOME: "relative", HOME: "/h" }, "/h/.local/share/meanwhile");
  check({ HOME: "/h" }, "/h/.local/share/meanwhile");
  check({}, "/tmp/meanwhile");
});
