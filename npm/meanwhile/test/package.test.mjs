// The npm packages as a user gets them: `scripts/dist --npm-only` packs both around
// the binary under test, a fresh project installs the two tarballs (no registry),
// and the installed `meanwhile` command, the README's snippet and the client's suite
// work from there.

import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { test } from "node:test";

import { bin, stopDaemon } from "./support.mjs";

/** The repository: $MEANWHILE_REPO (the Rust test runs a copy of this file), else
 * the one this file is in. */
const repo = process.env.MEANWHILE_REPO ?? path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");

/** The pids whose parent is `pid`, from /proc. */
function childrenOf(pid) {
  const found = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let stat;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, "utf8");
    } catch {
      continue; // ended meanwhile
    }
    // pid (comm) state ppid ...: comm may hold spaces and parentheses.
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    if (ppid === pid) found.push(Number(entry));
  }
  return found;
}

test("the packed packages install offline and run the README snippet", async (t) => {
  const work = mkdtempSync("/tmp/mwjs-pack");
  const home = path.join(work, "h");
  t.after(() => {
    stopDaemon(home);
    rmSync(work, { recursive: true, force: true });
  });
  const out = path.join(work, "dist");
  mkdirSync(out);
  execFileSync(path.join(repo, "scripts/dist"), ["--bin", bin(), "--npm-only", "--out", out], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const tarballs = readdirSync(out)
    .filter((f) => f.endsWith(".tgz"))
    .sort();
  const version = JSON.parse(
    execFileSync("cargo", ["metadata", "--no-deps", "--format-version", "1"], { cwd: repo, encoding: "utf8" }),
  ).packages.find((p) => p.name === "meanwhile").version;
  assert.deepEqual(tarballs, [`meanwhile-${version}.tgz`, `meanwhile-linux-x64-${version}.tgz`]);

  const project = path.join(work, "p");
  mkdirSync(project);
  writeFileSync(
    path.join(project, "package.json"),
    JSON.stringify({ name: "p", version: "1.0.0", private: true, type: "module", scripts: { test: "echo hello from npm test" } }),
  );
  // A user's environment: no MEANWHILE_BIN, so the installed packages must find their binary.
  const env = { ...process.env, MEANWHILE_HOME: home };
  for (const k of ["MEANWHILE_BIN", "MEANWHILE_URL", "MEANWHILE_TOKEN", "npm_config_registry"]) delete env[k];
  env.npm_config_cache = path.join(work, "npm-cache");
  execFileSync(
    "npm",
    ["install", "--offline", "--no-audit", "--no-fund", "--loglevel=error", ...tarballs.map((f) => path.join(out, f))],
    { cwd: project, env, stdio: ["ignore", "pipe", "inherit"] },
  );
  const installed = path.join(project, "node_modules/@meanwhile/linux-x64/bin/meanwhile");
  const pkg = JSON.parse(readFileSync(path.join(project, "node_modules/meanwhile/package.json"), "utf8"));
  assert.equal(pkg.version, version);
  assert.equal(pkg.optionalDependencies["@meanwhile/linux-x64"], version);

  const v = spawnSync("npx", ["meanwhile", "--version"], { cwd: project, env, encoding: "utf8" });
  assert.equal(v.status, 0, v.stderr);
  assert.equal(v.stdout.trim(), `meanwhile ${version}`);
  // Arguments, stdio and the exit code pass through the launcher.
  const run = spawnSync("npx", ["meanwhile", "run", "--follow", "--", "sh", "-c", "echo through; exit 7"], {
    cwd: project,
    env,
    encoding: "utf8",
  });
  assert.equal(run.status, 7, run.stderr);
  assert.ok(run.stdout.includes("through"), run.stdout);
  stopDaemon(home);

  // `npx -y meanwhile mcp`: the MCP server on the launcher's stdin and stdout.
  const init = {
    jsonrpc: "2.0",
    id: 1,
    method: "initialize",
    params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "npm-test", version: "1" } },
  };
  const mcp = spawnSync("npx", ["-y", "meanwhile", "mcp"], {
    cwd: project,
    env,
    input: JSON.stringify(init) + "\n",
    encoding: "utf8",
  });
  assert.equal(mcp.status, 0, mcp.stderr);
  const answer = JSON.parse(mcp.stdout.split("\n")[0]);
  assert.equal(answer.id, 1);
  assert.equal(answer.result.serverInfo.name, "meanwhile");
  assert.equal(answer.result.serverInfo.version, version);

  // An MCP client ends its server by closing its stdin: the binary ends, and the
  // launcher with its exit code.
  const launcher = spawn("node", [path.join(project, "node_modules/meanwhile/bin/meanwhile.js"), "mcp"], {
    cwd: project,
    env,
    stdio: ["pipe", "pipe", "inherit"],
  });
  const ended = new Promise((resolve) => launcher.on("exit", (code, signal) => resolve({ code, signal })));
  launcher.stdin.write(JSON.stringify(init) + "\n");
  await new Promise((resolve) => {
    let said = "";
    launcher.stdout.on("data", (d) => {
      said += d;
      if (said.includes("\n")) resolve();
    });
  });
  const [server] = childrenOf(launcher.pid);
  assert.equal(realpathSync(`/proc/${server}/exe`), realpathSync(installed), "the launcher runs the installed binary");
  launcher.stdin.end();
  assert.deepEqual(await ended, { code: 0, signal: null });
  assert.throws(() => process.kill(server, 0), { code: "ESRCH" }, "the binary ended with its launcher");
  stopDaemon(home);

  // The README's snippet, as written, in the project: its client starts the daemon
  // from the installed binary.
  writeFileSync(
    path.join(project, "snippet.mjs"),
    `import { Client } from "meanwhile"; const c = new Client(); const t = await c.run("npm test", { session: "s1" }); await c.wait([t.id]); console.log(JSON.stringify({ text: (await c.output(t.id)).text, pid: (await c.status()).pid }));\n`,
  );
  // The same in TypeScript type-checks against the shipped declarations.
  writeFileSync(
    path.join(project, "snippet.ts"),
    `import { Client, MeanwhileError, type Task } from "meanwhile";
const c = new Client();
const t: Task = await c.run("npm test", { session: "s1" });
await c.wait([t.id]);
const text: string = (await c.output(t.id)).text;
for (const n of await c.drainNotifications("s1")) console.log(n.text, n.exit_code);
await c.run({ agent: "hi", queue: "q", timeout: "1m", retry: { max_attempts: 2 } });
for await (const e of c.events({ after: 0 })) if (e.kind === "finished") break;
try { await c.get(1); } catch (e) { if (e instanceof MeanwhileError) console.log(e.code, e.field, e.status); }
console.log(text);
`,
  );
  const ts = process.env.MEANWHILE_NPM_TS ?? path.join(repo, ".npm-ts");
  const types = spawnSync(
    "node",
    [
      path.join(ts, "node_modules/typescript/bin/tsc"),
      ...["--noEmit", "--strict", "--module", "nodenext", "--moduleResolution", "nodenext", "--target", "es2022"],
      ...["--typeRoots", path.join(ts, "node_modules/@types"), "--types", "node", "snippet.ts"],
    ],
    { cwd: project, env, encoding: "utf8" },
  );
  assert.equal(types.status, 0, types.stdout + types.stderr);

  const snippet = spawnSync("node", ["snippet.mjs"], { cwd: project, env, encoding: "utf8" });
  assert.equal(snippet.status, 0, snippet.stderr);
  const got = JSON.parse(snippet.stdout);
  assert.ok(got.text.includes("hello from npm test"), got.text);
  assert.equal(realpathSync(`/proc/${got.pid}/exe`), realpathSync(installed), "the daemon is the installed binary");
  stopDaemon(home);

  // The client's whole suite, from the project: `import "meanwhile"` is the installed
  // package, and its daemons start from the installed binary.
  const tests = path.join(project, "test");
  mkdirSync(tests);
  const here = path.dirname(fileURLToPath(import.meta.url));
  for (const f of ["client.test.mjs", "support.mjs"]) copyFileSync(path.join(here, f), path.join(tests, f));
  // A run of its own, not a child of this one's (NODE_TEST_CONTEXT), reporting in TAP.
  const suiteEnv = { ...env, MEANWHILE_BIN: installed };
  delete suiteEnv.NODE_TEST_CONTEXT;
  const suite = spawnSync("node", ["--test", "--test-reporter=tap", path.join(tests, "client.test.mjs")], {
    cwd: project,
    env: suiteEnv,
    encoding: "utf8",
  });
  assert.equal(suite.status, 0, suite.stdout + suite.stderr);
  assert.match(suite.stdout, /^# fail 0$/m);
  assert.doesNotMatch(suite.stdout, /^# pass 0$/m);
  const resolved = spawnSync("node", ["--input-type=module", "-e", 'console.log(import.meta.resolve("meanwhile"))'], {
    cwd: tests,
    env,
    encoding: "utf8",
  });
  assert.equal(
    fileURLToPath(resolved.stdout.trim()),
    path.join(project, "node_modules/meanwhile/dist/index.js"),
    "the suite imported the installed package",
  );

  // Without the platform package (optional dependencies left out), the launcher
  // says which package is missing and how to get it.
  rmSync(path.join(project, "node_modules/@meanwhile"), { recursive: true });
  const missing = spawnSync("npx", ["meanwhile", "--version"], { cwd: project, env, encoding: "utf8" });
  assert.equal(missing.status, 1);
  assert.ok(missing.stderr.includes("@meanwhile/linux-x64") && missing.stderr.includes("MEANWHILE_BIN"), missing.stderr);
});
