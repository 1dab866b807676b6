#!/usr/bin/env node
// The `meanwhile` command of the npm package: finds the binary of this platform's
// package (@meanwhile/linux-x64), or $MEANWHILE_BIN, and runs it with the same
// arguments, stdio and exit code (`npx -y meanwhile mcp`).

import { spawn } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { createRequire } from "node:module";

/** The platform packages there are, by `${process.platform}-${process.arch}`. */
const PACKAGES = { "linux-x64": "@meanwhile/linux-x64" };

function fail(message) {
  process.stderr.write(`meanwhile: ${message}\n`);
  process.exit(1);
}

function binary() {
  const explicit = process.env.MEANWHILE_BIN;
  if (explicit) {
    try {
      accessSync(explicit, constants.X_OK);
    } catch {
      fail(`MEANWHILE_BIN is ${explicit}, which does not exist or is not executable: set it to the meanwhile program, or unset it`);
    }
    return explicit;
  }
  const platform = `${process.platform}-${process.arch}`;
  const pkg = PACKAGES[platform];
  if (pkg === undefined) {
    fail(
      `no meanwhile binary is published for ${platform} (there is one for ${Object.keys(PACKAGES).join(", ")}): ` +
        "build it with `cargo install --path crates/meanwhile` from the repository and set MEANWHILE_BIN to it",
    );
  }
  try {
    return createRequire(import.meta.url).resolve(`${pkg}/bin/meanwhile`);
  } catch {
    fail(
      `the package ${pkg}, which holds the meanwhile binary for ${platform}, is not installed ` +
        "(was it installed with --omit=optional or --no-optional?): install meanwhile again with optional " +
        `dependencies, or \`npm install ${pkg}\`, or set MEANWHILE_BIN to the meanwhile program`,
    );
  }
}

const child = spawn(binary(), process.argv.slice(2), { stdio: "inherit" });
// A signal meant for this launcher (an MCP client ending its server) is passed on to
// the binary, and the launcher ends when the binary does. Ctrl-C and Ctrl-\ in a
// terminal already reach the binary (the whole foreground group gets them): the
// launcher only outlives them, so the binary gets each once and decides what it means.
for (const signal of ["SIGTERM", "SIGHUP"]) {
  process.on(signal, () => child.kill(signal));
}
for (const signal of ["SIGINT", "SIGQUIT"]) {
  process.on(signal, () => {});
}
child.on("error", (e) => fail(`could not run ${child.spawnfile}: ${e.message}`));
child.on("exit", (code, signal) => {
  if (signal !== null) {
    // Die of the same signal, so that the caller sees what the binary saw.
    process.removeAllListeners(signal);
    process.kill(process.pid, signal);
    return;
  }
  process.exit(code ?? 1);
});
