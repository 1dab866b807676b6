// `Client`: the daemon's HTTP API from Node.js, on `node:http` alone.
//
// It finds the daemon as the `meanwhile` command does: `MEANWHILE_URL` with a bearer
// token (`MEANWHILE_TOKEN`, else the home's `token` file) when set, else the Unix
// socket in the home, starting the daemon there (`meanwhile daemon start`) when none
// answers.

import { spawn } from "node:child_process";
import { accessSync, constants, readFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import { createRequire } from "node:module";
import path from "node:path";

import { MeanwhileError, fromResponse } from "./errors.js";
import {
  notification,
  type AgentSpec,
  type Attempt,
  type Budget,
  type Duration,
  type Event,
  type InputSent,
  type LlmSpec,
  type Notification,
  type OutputChunk,
  type Queue,
  type Schedule,
  type Task,
  type TaskPage,
  type TaskSpec,
  type Terminal,
  type WaitResult,
} from "./types.js";

const SOCKET_FILE = "meanwhile.sock";
const TOKEN_FILE = "token";
const SESSION_HEADER = "meanwhile-session";

/** The platform packages holding the binary, by `${process.platform}-${process.arch}`. */
const PLATFORM_PACKAGES: Record<string, string> = { "linux-x64": "@meanwhile/linux-x64" };

/** Errors of a connection that was never made: nothing was sent, so sending again is safe. */
const CONNECT_ERRORS = new Set(["ECONNREFUSED", "ENOENT", "ENOTSOCK", "EHOSTUNREACH", "ENETUNREACH", "ENOTFOUND", "EAI_AGAIN", "ETIMEDOUT"]);

function env(name: string): string | undefined {
  const v = process.env[name];
  return v ? v : undefined;
}

/**
 * `$MEANWHILE_HOME`, else the platform's data directory plus `meanwhile`
 * (`$XDG_DATA_HOME/meanwhile` when absolute, `~/.local/share/meanwhile`, or on macOS
 * `~/Library/Application Support/meanwhile`), as the `meanwhile` command computes it.
 */
export function defaultHome(): string {
  const h = env("MEANWHILE_HOME");
  if (h !== undefined) return h;
  const home = env("HOME");
  if (process.platform === "darwin" && home !== undefined) return path.join(home, "Library/Application Support/meanwhile");
  const x = env("XDG_DATA_HOME");
  if (x !== undefined && path.isAbsolute(x)) return path.join(x, "meanwhile");
  if (home !== undefined) return path.join(home, ".local/share/meanwhile");
  return "/tmp/meanwhile";
}

function executable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * The `meanwhile` binary: `explicit`, else `$MEANWHILE_BIN`, else the one of this
 * platform's package (`@meanwhile/linux-x64`, installed with `meanwhile`), else the
 * one on PATH.
 */
export function findBinary(explicit?: string): string {
  for (const candidate of [explicit, env("MEANWHILE_BIN")]) {
    if (candidate === undefined) continue;
    if (!executable(candidate)) {
      throw new MeanwhileError(
        "unavailable",
        `the meanwhile binary ${candidate} does not exist or is not executable: set MEANWHILE_BIN to the meanwhile program, or \`npm install meanwhile\``,
      );
    }
    return candidate;
  }
  const pkg = PLATFORM_PACKAGES[`${process.platform}-${process.arch}`];
  if (pkg !== undefined) {
    try {
      return createRequire(import.meta.url).resolve(`${pkg}/bin/meanwhile`);
    } catch {
      // Not installed (optional dependencies left out): PATH may still have one.
    }
  }
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    if (dir === "") continue;
    const p = path.join(dir, "meanwhile");
    if (executable(p)) return p;
  }
  throw new MeanwhileError(
    "unavailable",
    "no meanwhile daemon answers and the meanwhile binary is not installed to start one: " +
      `\`npm install meanwhile\`${pkg === undefined ? "" : ` (with its optional dependency ${pkg})`}, set MEANWHILE_BIN to the program, ` +
      "or start the daemon with `meanwhile daemon start`",
  );
}

function invalid(field: string, message: string): MeanwhileError {
  return new MeanwhileError("invalid_argument", message, field);
}

function show(v: unknown): string {
  if (typeof v === "string") return JSON.stringify(v);
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}

function duration(value: unknown, field: string): Duration | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === "string") return value;
  if (typeof value === "number" && Number.isFinite(value)) return value;
  throw invalid(field, `${field} must be a duration like "30s" or a number of seconds, got ${show(value)}`);
}

function ids(value: unknown, field = "ids"): number[] {
  const items = Array.isArray(value) ? value : [value];
  for (const i of items) {
    if (!Number.isSafeInteger(i)) throw invalid(field, `${field} must be task ids (integers), got ${show(i)}`);
  }
  return items as number[];
}

function one(value: unknown, field = "id"): number {
  if (!Number.isSafeInteger(value)) throw invalid(field, `${field} must be a task id (an integer), got ${show(value)}`);
  return value as number;
}

function name(value: unknown, field: string): string {
  if (typeof value !== "string" || value === "") throw invalid(field, `${field} must be a non-empty string, got ${show(value)}`);
  return encodeURIComponent(value);
}

const DURATION_FIELDS = new Set(["timeout", "delay", "grace", "stall", "cpu_time"]);

/** A TaskSpec's fields, with `agent` and `llm` also taking a bare prompt, and `spec`
 * a whole TaskSpec that the other options override. */
export type RunOptions = Omit<TaskSpec, "agent" | "llm"> & {
  spec?: TaskSpec;
  agent?: string | AgentSpec;
  llm?: string | LlmSpec;
};

function specOf(command: unknown, options: RunOptions, specField: "spec" | "task"): TaskSpec {
  const given = (options as Record<string, unknown>)[specField];
  if (given !== undefined && (typeof given !== "object" || given === null || Array.isArray(given))) {
    throw invalid(specField, `${specField} must be an object (a TaskSpec), got ${show(given)}`);
  }
  const out: Record<string, unknown> = { ...(given as object | undefined) };
  for (const [key, raw] of Object.entries(options)) {
    if (key === specField || raw === undefined || raw === null) continue;
    let value: unknown = raw;
    if (key === "agent" || key === "llm") {
      if (typeof raw === "string") value = { prompt: raw };
      else if (typeof raw !== "object" || Array.isArray(raw)) {
        throw invalid(key, `${key} must be a prompt (a string) or an object, got ${show(raw)}`);
      }
    } else if (DURATION_FIELDS.has(key)) {
      value = duration(raw, key);
    } else if (key === "after") {
      value = ids(raw, "after");
    }
    out[key] = value;
  }
  if (command !== undefined && command !== null) {
    if (typeof command === "string") {
      out.command = command;
    } else if (Array.isArray(command) && command.every((a) => typeof a === "string")) {
      out.argv = [...command];
    } else {
      throw invalid(
        "command",
        `command must be a string (run with sh -c) or an array of strings (a program and its arguments), got ${show(command)}`,
      );
    }
  }
  if (!["command", "argv", "agent", "llm"].some((k) => out[k] !== undefined && out[k] !== null)) {
    throw invalid(
      "command",
      "run needs something to run: a command string (sh -c), an array (a program and its arguments), " +
        "{ agent: PROMPT }, { llm: PROMPT }, or { spec: {...} }",
    );
  }
  if ((out.command != null || out.argv != null) && out.cwd == null) {
    // As `meanwhile run` does: the task runs where its submitter is.
    out.cwd = process.cwd();
  }
  return out as TaskSpec;
}

/** Where and how a client reaches its daemon. */
export interface ClientOptions {
  /** The home directory; `defaultHome()` when absent. */
  home?: string;
  /** A daemon's TCP address (`http://127.0.0.1:7070`); `$MEANWHILE_URL` when absent. */
  url?: string;
  /** The bearer token for `url`: `$MEANWHILE_TOKEN`, else the home's `token` file. */
  token?: string;
  /** The session tasks run through this client notify unless `run` names another;
   * also sent with every request (the audit trail). */
  session?: string;
  /** Start the daemon when none answers on the socket (default true). */
  startDaemon?: boolean;
  /** The meanwhile binary that starts the daemon; `findBinary()` when absent. */
  binary?: string;
}

interface Req {
  method: string;
  path: string;
  params?: Record<string, unknown>;
  body?: unknown;
  headers?: Record<string, string>;
}

type Raw = { status: number; body: string };

/**
 * A client of the meanwhile daemon; every call answers a promise.
 *
 * ```ts
 * import { Client } from "meanwhile";
 * const c = new Client();
 * const t = await c.run("npm test", { session: "s1" });
 * await c.wait([t.id]);
 * (await c.output(t.id)).text;
 * ```
 */
export class Client {
  /** The home directory (absolute). */
  readonly home: string;
  /** The session of tasks run through this client, unless `run` names another. */
  readonly session: string | undefined;
  private readonly socket: string | undefined;
  private readonly base: URL | undefined;
  private readonly headers: Record<string, string>;
  private readonly start: boolean;
  private readonly binary: string | undefined;
  private starting: Promise<void> | undefined;

  constructor(options: ClientOptions = {}) {
    this.home = path.resolve(options.home ?? defaultHome());
    this.session = options.session;
    this.binary = options.binary;
    this.headers = {};
    if (options.session !== undefined) this.headers[SESSION_HEADER] = options.session;
    let url = options.url ?? env("MEANWHILE_URL");
    if (url !== undefined) {
      if (!url.includes("://")) url = "http://" + url;
      let base: URL;
      try {
        base = new URL(url);
      } catch {
        throw invalid("url", `MEANWHILE_URL (or url) must be an address like http://127.0.0.1:7070, got ${show(url)}`);
      }
      if (base.protocol !== "http:" && base.protocol !== "https:") {
        throw invalid("url", `MEANWHILE_URL (or url) must be an http:// or https:// address, got ${show(url)}`);
      }
      this.base = base;
      let token = options.token ?? env("MEANWHILE_TOKEN");
      if (token === undefined) {
        try {
          token = readFileSync(path.join(this.home, TOKEN_FILE), "utf8");
        } catch {
          token = "";
        }
      }
      this.headers.authorization = `Bearer ${token.trim()}`;
      this.start = false;
    } else {
      this.socket = path.join(this.home, SOCKET_FILE);
      this.start = options.startDaemon ?? true;
    }
  }

  /** Where this client connects, for messages. */
  get target(): string {
    return this.socket ?? this.base!.href.replace(/\/$/, "");
  }

  // ---- the wire ---------------------------------------------------------------------

  private unreachable(e: Error): MeanwhileError {
    const how =
      this.socket !== undefined
        ? "start it with `meanwhile daemon start`" + (this.start ? "" : " (this client was made with startDaemon: false)")
        : "start it there with `meanwhile serve --listen ADDR`, or unset MEANWHILE_URL";
    return new MeanwhileError("unavailable", `no meanwhile daemon answers at ${this.target} (${e.message}): ${how}`);
  }

  private startDaemon(): Promise<void> {
    // Calls that find no daemon at once share one start.
    this.starting ??= new Promise<void>((resolve, reject) => {
      let bin: string;
      try {
        bin = findBinary(this.binary);
      } catch (e) {
        reject(e);
        return;
      }
      const childEnv: NodeJS.ProcessEnv = { ...process.env, MEANWHILE_HOME: this.home };
      delete childEnv.MEANWHILE_URL;
      const child = spawn(bin, ["daemon", "start"], { env: childEnv, stdio: ["ignore", "pipe", "pipe"] });
      let said = "";
      child.stdout.setEncoding("utf8").on("data", (s: string) => (said += s));
      child.stderr.setEncoding("utf8").on("data", (s: string) => (said += s));
      child.on("error", (e) => reject(new MeanwhileError("unavailable", `could not run ${bin} daemon start: ${e.message}`)));
      child.on("close", (code, signal) => {
        if (code === 0) resolve();
        else
          reject(
            new MeanwhileError(
              "unavailable",
              `\`meanwhile daemon start\` for ${this.home} exited with ${code ?? signal}: ${said.trim()}`,
            ),
          );
      });
    }).finally(() => {
      this.starting = undefined;
    });
    return this.starting;
  }

  /** Sends one request and answers the response, its body unread. */
  private open(req: Req): Promise<http.IncomingMessage> {
    let target = req.path;
    const query = new URLSearchParams();
    for (const [k, v] of Object.entries(req.params ?? {})) {
      if (v !== undefined && v !== null) query.set(k, String(v));
    }
    if ([...query.keys()].length > 0) target += "?" + query.toString();
    const headers: Record<string, string> = { ...this.headers, ...req.headers };
    let payload: Buffer | undefined;
    if (req.body !== undefined) {
      payload = Buffer.from(JSON.stringify(req.body));
      headers["content-type"] = "application/json";
      headers["content-length"] = String(payload.length);
    }
    const tls = this.base?.protocol === "https:";
    const options: http.RequestOptions = { method: req.method, headers, agent: false };
    if (this.socket !== undefined) {
      options.socketPath = this.socket;
      options.path = target;
      headers.host = "meanwhile";
    } else {
      const base = this.base!;
      options.host = base.hostname.replace(/^\[|\]$/g, "");
      options.port = base.port || (tls ? 443 : 80);
      options.path = base.pathname.replace(/\/$/, "") + target;
    }
    return new Promise((resolve, reject) => {
      const r = (tls ? https : http).request(options, resolve);
      r.on("error", reject);
      r.end(payload);
    });
  }

  /** `open`, starting the daemon and sending again when no connection could be made. */
  private async request(req: Req): Promise<http.IncomingMessage> {
    try {
      return await this.open(req);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      if (!CONNECT_ERRORS.has(err.code ?? "")) {
        throw new MeanwhileError("unavailable", `the connection to ${this.target} failed: ${err.message}`);
      }
      if (!this.start) throw this.unreachable(err);
    }
    await this.startDaemon();
    try {
      return await this.open(req);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      if (CONNECT_ERRORS.has(err.code ?? "")) throw this.unreachable(err);
      throw new MeanwhileError("unavailable", `the connection to ${this.target} failed: ${err.message}`);
    }
  }

  private async raw(req: Req): Promise<Raw> {
    const res = await this.request(req);
    try {
      res.setEncoding("utf8");
      let body = "";
      for await (const chunk of res) body += chunk;
      return { status: res.statusCode ?? 0, body };
    } catch (e) {
      throw new MeanwhileError("unavailable", `the connection to ${this.target} failed: ${(e as Error).message}`);
    }
  }

  private async call<T = unknown>(req: Req): Promise<T> {
    const { status, body } = await this.raw(req);
    if (status >= 400) throw fromResponse(status, body);
    if (status === 204 || body === "") return null as T;
    try {
      return JSON.parse(body) as T;
    } catch (e) {
      throw new MeanwhileError("internal", `the daemon's answer is not JSON: ${(e as Error).message}`, null, status);
    }
  }

  // ---- tasks ------------------------------------------------------------------------

  /** The daemon's health, version and task counts. */
  async status(): Promise<Record<string, unknown>> {
    return this.call({ method: "GET", path: "/v1/status" });
  }

  /** The daemon's OpenAPI document: every endpoint and schema. */
  async openapi(): Promise<Record<string, unknown>> {
    return this.call({ method: "GET", path: "/v1/openapi.json" });
  }

  /**
   * Submits a task and answers its record at once (with `.id`).
   *
   * `command` is a string run with `sh -c`, or an array run as a program and its
   * arguments; or pass the options alone: `{ agent: PROMPT }`, `{ llm: PROMPT }` (or an
   * AgentSpec / LlmSpec), `{ spec: TaskSpec }`. The options are TaskSpec fields
   * (`name`, `queue`, `timeout: "10m"`, `stdin: true`, ...) and override `spec`.
   * The session is this client's unless `session` names one.
   */
  async run(command?: string | string[] | RunOptions, options: RunOptions = {}): Promise<Task> {
    if (typeof command === "object" && command !== null && !Array.isArray(command)) {
      options = { ...command, ...options };
      command = undefined;
    }
    if (typeof options !== "object" || options === null || Array.isArray(options)) {
      throw invalid("options", `run's options must be an object of TaskSpec fields, got ${show(options)}`);
    }
    const withSession = { ...options };
    if (withSession.session == null && this.session !== undefined) withSession.session = this.session;
    const body = specOf(command, withSession, "spec");
    const answer = await this.call<{ id: number; warning?: string | null }>({ method: "POST", path: "/v1/tasks", body });
    const task = await this.get(answer.id);
    task.warning = answer.warning ?? null;
    return task;
  }

  /** One task's record. */
  async get(id: number): Promise<Task> {
    const d = await this.call<{ task: Task }>({ method: "GET", path: `/v1/tasks/${one(id)}` });
    return d.task;
  }

  /** A task's attempts, oldest first. */
  async attempts(id: number): Promise<Attempt[]> {
    const d = await this.call<{ attempts: Attempt[] }>({ method: "GET", path: `/v1/tasks/${one(id)}` });
    return d.attempts;
  }

  /** One page of tasks, newest first; `state` takes one state or several. */
  async list(
    options: {
      state?: string | string[];
      queue?: string;
      session?: string;
      label?: string;
      name?: string;
      text?: string;
      limit?: number;
      before?: number;
    } = {},
  ): Promise<TaskPage> {
    const params: Record<string, unknown> = { ...options };
    if (Array.isArray(options.state)) params.state = options.state.join(",");
    const d = await this.call<{ tasks: Task[]; next?: number | null }>({ method: "GET", path: "/v1/tasks", params });
    return { tasks: d.tasks, next: d.next ?? null };
  }

  /**
   * Reads a task's output (`.text`, and `.cursor` to pass as `since` next time).
   *
   * `tail` keeps the last lines, `grep` the lines matching a regex. `wait` blocks first
   * (at most `timeout`, 30s when absent): `"exit"` (or true) until the task ends,
   * `"output"`, `"match"` (a line matching `match`), `"listening"` or `"input"`.
   */
  async output(
    id: number,
    options: {
      since?: number;
      tail?: number;
      grep?: string;
      max_bytes?: number;
      strip_ansi?: boolean;
      wait?: "exit" | "output" | "match" | "listening" | "input" | boolean;
      match?: string;
      timeout?: Duration;
    } = {},
  ): Promise<OutputChunk> {
    const i = one(id);
    const wait = options.wait === true ? "exit" : options.wait === false ? undefined : options.wait;
    let timeout = duration(options.timeout, "timeout");
    if (typeof timeout === "number") timeout = `${Math.round(timeout * 1000)}ms`;
    const params = { ...options, wait, timeout };
    return this.call({ method: "GET", path: `/v1/tasks/${i}/output`, params });
  }

  /** Waits until all (or, with `mode: "any"`, one) of the tasks end, at most `timeout`
   * (no limit when absent). */
  async wait(taskIds: number | number[], options: { mode?: "all" | "any"; timeout?: Duration } = {}): Promise<WaitResult> {
    const body: Record<string, unknown> = { ids: ids(taskIds), mode: options.mode ?? "all" };
    const timeout = duration(options.timeout, "timeout");
    if (timeout !== undefined) body.timeout = timeout;
    return this.call({ method: "POST", path: "/v1/wait", body });
  }

  /** Stops a task and its process tree (SIGTERM, grace, SIGKILL; `force`: SIGKILL at once). */
  async stop(id: number, options: { force?: boolean } = {}): Promise<Task> {
    const body = { mode: options.force ? "force" : "graceful" };
    return this.call({ method: "POST", path: `/v1/tasks/${one(id)}/stop`, body });
  }

  /** Runs a finished task again. */
  async retry(id: number): Promise<Task> {
    return this.call({ method: "POST", path: `/v1/tasks/${one(id)}/retry` });
  }

  /** Sends input to a task started with `stdin: true` or `tty`: text as typed (no
   * newline added), then keys (`"enter"`, `"ctrl-c"`, ...), then `eof`. */
  async send(id: number, text?: string, options: { keys?: string[]; eof?: boolean; resize?: Terminal } = {}): Promise<InputSent> {
    const body: Record<string, unknown> = { eof: options.eof ?? false };
    if (text !== undefined && text !== null) body.text = text;
    if (options.keys !== undefined && options.keys.length > 0) body.keys = options.keys;
    if (options.resize !== undefined) body.resize = options.resize;
    return this.call({ method: "POST", path: `/v1/tasks/${one(id)}/input`, body });
  }

  /** Removes finished tasks and their logs; answers the ids removed. */
  async remove(taskIds: number | number[]): Promise<number[]> {
    const d = await this.call<{ removed?: number[] }>({ method: "POST", path: "/v1/tasks/remove", body: { ids: ids(taskIds) } });
    return d?.removed ?? [];
  }

  /** A session's undelivered notices, marked delivered: each is answered once. */
  async drainNotifications(session: string, options: { limit?: number } = {}): Promise<Notification[]> {
    const path = `/v1/sessions/${name(session, "session")}/notifications/drain`;
    const d = await this.call<Notification[]>({ method: "POST", path, params: { limit: options.limit } });
    return d.map(notification);
  }

  /** A session's undelivered notices, left undelivered. */
  async notifications(session: string, options: { limit?: number } = {}): Promise<Notification[]> {
    const path = `/v1/sessions/${name(session, "session")}/notifications`;
    const d = await this.call<Notification[]>({ method: "GET", path, params: { limit: options.limit } });
    return d.map(notification);
  }

  /**
   * Every event from now on (or after sequence number `after`). A dropped connection
   * is resumed where it left off (`Last-Event-ID`), so no event is missed or repeated;
   * the daemon is started again if it went away. Leave the loop (`break`) to close it.
   */
  async *events(options: { after?: number } = {}): AsyncGenerator<Event, void, undefined> {
    let last = options.after;
    for (;;) {
      const headers: Record<string, string> = last === undefined ? {} : { "last-event-id": String(last) };
      const res = await this.request({ method: "GET", path: "/v1/events", headers });
      try {
        if ((res.statusCode ?? 0) >= 400) {
          res.setEncoding("utf8");
          let body = "";
          for await (const chunk of res) body += chunk;
          throw fromResponse(res.statusCode ?? 0, body);
        }
        const stream = sse(res);
        for (;;) {
          let next: IteratorResult<{ id: string | undefined; data: string }>;
          try {
            next = await stream.next();
          } catch {
            break; // the connection broke (the daemon stopped): resume
          }
          if (next.done) break;
          const event = JSON.parse(next.value.data) as Event;
          last = next.value.id === undefined ? event.seq : Number(next.value.id);
          yield event;
        }
      } finally {
        res.destroy();
      }
    }
  }

  // ---- queues -----------------------------------------------------------------------

  /** The queues with their limits and counts. */
  async queues(): Promise<Queue[]> {
    return this.call({ method: "GET", path: "/v1/queues" });
  }

  /** Creates or changes a queue. Options left out keep their value; `per_key`, `rate`
   * and `alert_after` set to null remove that limit. */
  async setQueue(
    queue: string,
    options: { max_parallel?: number; paused?: boolean; per_key?: number | null; rate?: string | null; alert_after?: number | null } = {},
  ): Promise<Queue> {
    const body: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(options)) if (v !== undefined) body[k] = v;
    return this.call({ method: "PUT", path: `/v1/queues/${name(queue, "queue")}`, body });
  }

  /** Pauses a queue: it starts nothing new. */
  async pauseQueue(queue: string): Promise<Queue> {
    return this.setQueue(queue, { paused: true });
  }

  /** Resumes a paused queue. */
  async resumeQueue(queue: string): Promise<Queue> {
    return this.setQueue(queue, { paused: false });
  }

  /** Removes a queue without pending or running tasks or a budget. */
  async removeQueue(queue: string): Promise<void> {
    await this.call({ method: "DELETE", path: `/v1/queues/${name(queue, "queue")}` });
  }

  // ---- budgets ----------------------------------------------------------------------

  /** The queues' budgets. */
  async budgets(): Promise<Budget[]> {
    return this.call({ method: "GET", path: "/v1/budgets" });
  }

  /** One queue's budget. */
  async budget(queue: string): Promise<Budget> {
    return this.call({ method: "GET", path: `/v1/budgets/${name(queue, "queue")}` });
  }

  /** Sets a queue's budget: tokens and/or US dollars per `hour`, `day` (the default),
   * `month` or `total`, with alarms in percent. */
  async setBudget(
    queue: string,
    options: { tokens?: number; cost_usd?: number; window?: "hour" | "day" | "month" | "total"; alarms?: number[] } = {},
  ): Promise<Budget> {
    const body: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(options)) if (v !== undefined && v !== null) body[k] = v;
    return this.call({ method: "PUT", path: `/v1/budgets/${name(queue, "queue")}`, body });
  }

  /** Removes a queue's budget; a queue it paused resumes. */
  async removeBudget(queue: string): Promise<void> {
    await this.call({ method: "DELETE", path: `/v1/budgets/${name(queue, "queue")}` });
  }

  // ---- schedules --------------------------------------------------------------------

  /** The schedules with their next time and latest task. */
  async schedules(): Promise<Schedule[]> {
    return this.call({ method: "GET", path: "/v1/schedules" });
  }

  /** One schedule. */
  async schedule(schedule: string): Promise<Schedule> {
    return this.call({ method: "GET", path: `/v1/schedules/${name(schedule, "name")}` });
  }

  /**
   * Adds a schedule: its task (`command`, or `agent`, or `task` a TaskSpec, plus
   * TaskSpec fields) is submitted at each time of `cron` (read in `tz`) or every
   * `every`.
   */
  async addSchedule(
    schedule: string,
    command?: string | string[],
    options: Omit<RunOptions, "spec" | "llm"> & {
      cron?: string;
      every?: Duration;
      tz?: string;
      missed?: "skip" | "once";
      task?: TaskSpec;
    } = {},
  ): Promise<Schedule> {
    const { cron, every, tz, missed, ...rest } = options;
    const body: Record<string, unknown> = { name: schedule, task: specOf(command, rest, "task") };
    if (cron !== undefined) body.cron = cron;
    if (every !== undefined) body.every = duration(every, "every");
    if (tz !== undefined) body.tz = tz;
    if (missed !== undefined) body.missed = missed;
    return this.call({ method: "POST", path: "/v1/schedules", body });
  }

  /** Pauses a schedule: it fires nothing until resumed. */
  async pauseSchedule(schedule: string): Promise<Schedule> {
    return this.call({ method: "POST", path: `/v1/schedules/${name(schedule, "name")}/pause` });
  }

  /** Resumes a schedule from its next time after now. */
  async resumeSchedule(schedule: string): Promise<Schedule> {
    return this.call({ method: "POST", path: `/v1/schedules/${name(schedule, "name")}/resume` });
  }

  /** Fires a schedule now (its next time stays); answers the task's record. */
  async runSchedule(schedule: string): Promise<Task> {
    const answer = await this.call<{ id: number; warning?: string | null }>({
      method: "POST",
      path: `/v1/schedules/${name(schedule, "name")}/run`,
    });
    const task = await this.get(answer.id);
    task.warning = answer.warning ?? null;
    return task;
  }

  /** Removes a schedule; the tasks it submitted stay. */
  async removeSchedule(schedule: string): Promise<void> {
    await this.call({ method: "DELETE", path: `/v1/schedules/${name(schedule, "name")}` });
  }
}

/** The (id, data) of each server-sent event of a response; comments and keep-alives skipped. */
async function* sse(res: http.IncomingMessage): AsyncGenerator<{ id: string | undefined; data: string }> {
  res.setEncoding("utf8");
  let buffered = "";
  let id: string | undefined;
  let data: string[] = [];
  for await (const chunk of res as AsyncIterable<string>) {
    buffered += chunk;
    let nl: number;
    while ((nl = buffered.indexOf("\n")) >= 0) {
      let line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      if (line.endsWith("\r")) line = line.slice(0, -1);
      if (line === "") {
        if (data.length > 0) yield { id, data: data.join("\n") };
        id = undefined;
        data = [];
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const key = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (key === "id") id = value;
      else if (key === "data") data.push(value);
    }
  }
}
