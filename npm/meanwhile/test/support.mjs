// Helpers of the client's tests: a home (and so a daemon) per test, the real
// `meanwhile` binary ($MEANWHILE_BIN), and waiting without deadlines.

import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, openSync, rmSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

/** The meanwhile binary under test. */
export function bin() {
  const b = process.env.MEANWHILE_BIN;
  if (!b) throw new Error("the tests need MEANWHILE_BIN set to the meanwhile binary (cargo build -p meanwhile)");
  return b;
}

/** The environment for running `bin()` against `home`. */
export function envFor(home) {
  const env = { ...process.env, MEANWHILE_HOME: home };
  delete env.MEANWHILE_URL;
  delete env.MEANWHILE_TOKEN;
  return env;
}

/**
 * A fresh MEANWHILE_HOME for test `t`, set in the environment for as long as it runs
 * (the tests of a file run one at a time); its daemon is stopped and the directory
 * removed after it.
 */
export function freshHome(t) {
  // Short, under /tmp: the daemon's socket path must fit in sun_path.
  const home = mkdtempSync("/tmp/mwjs");
  const saved = {};
  for (const k of ["MEANWHILE_HOME", "MEANWHILE_URL", "MEANWHILE_TOKEN"]) saved[k] = process.env[k];
  process.env.MEANWHILE_HOME = home;
  delete process.env.MEANWHILE_URL;
  delete process.env.MEANWHILE_TOKEN;
  t.after(() => {
    stopDaemon(home);
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    rmSync(home, { recursive: true, force: true });
  });
  return home;
}

/** `meanwhile daemon stop --stop-tasks` for `home`, when a daemon runs there. */
export function stopDaemon(home) {
  if (!existsSync(path.join(home, "meanwhile.sock"))) return;
  const done = spawnSync(bin(), ["daemon", "stop", "--stop-tasks"], { env: envFor(home), encoding: "utf8" });
  // 69: no daemon answered, which is what stopping wants.
  if (done.status !== 0 && done.status !== 69) {
    throw new Error(`meanwhile daemon stop exited with ${done.status}: ${done.stderr}`);
  }
}

/** Calls `check` until it answers something truthy, and answers that. No deadline:
 * the test runner ends a test that hangs, and names it. */
export async function until(check) {
  let pause = 5;
  for (;;) {
    const got = await check();
    if (got) return got;
    await sleep(pause); // a process start has nothing to wait on from here
    pause = Math.min(pause * 2, 100);
  }
}

/** A TCP port nothing listens on now. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function connects(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, "127.0.0.1");
    s.on("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.on("error", () => resolve(false));
  });
}

/** `meanwhile serve --listen 127.0.0.1:PORT` for `home`; its process and address once it answers. */
export async function serveTcp(home) {
  const port = await freePort();
  const addr = `127.0.0.1:${port}`;
  const log = openSync(path.join(home, "serve.log"), "w");
  const proc = spawn(bin(), ["serve", "--listen", addr], { env: envFor(home), stdio: ["ignore", log, log] });
  let exited = null;
  const ended = new Promise((resolve) => proc.on("exit", (code, signal) => resolve((exited = code ?? signal))));
  await until(async () => {
    if (exited !== null) throw new Error(`meanwhile serve exited with ${exited}; see ${home}/serve.log`);
    return (await connects(port)) && existsSync(path.join(home, "token"));
  });
  return { proc, addr, ended };
}
