// The records the daemon answers and the specs it takes, as the OpenAPI document
// (`GET /v1/openapi.json`) describes them. Times are milliseconds since the Unix
// epoch; durations are sent as text like "30s" (or a number of seconds). Records
// are the daemon's JSON as it is: fields it adds later are there too.

/** A task's state. */
export type TaskState =
  | "pending"
  | "running"
  | "succeeded"
  | "failed"
  | "timed_out"
  | "cancelled"
  | "quarantined"
  | "lost";

/** The states in which a task has ended for good. */
export const TERMINAL_STATES: ReadonlySet<string> = new Set([
  "succeeded",
  "failed",
  "timed_out",
  "cancelled",
  "quarantined",
  "lost",
]);

/** True once a task (or a state) has ended for good. */
export function isEnded(task: { state: string } | string): boolean {
  return TERMINAL_STATES.has(typeof task === "string" ? task : task.state);
}

/** A duration: text like "500ms", "30s", "1h30m" (kept to the millisecond), or a number of seconds. */
export type Duration = string | number;

/** What a sub-agent task runs. */
export interface AgentSpec {
  prompt: string;
  model?: string;
  provider?: string;
  tools?: string[];
  max_turns?: number;
  max_tokens?: number;
  max_cost_usd?: number;
  workspace?: string;
  [field: string]: unknown;
}

/** One model call, optionally with a JSON Schema its answer must satisfy. */
export interface LlmSpec {
  prompt: string;
  system?: string;
  model?: string;
  provider?: string;
  schema?: Record<string, unknown>;
  temperature?: number;
  [field: string]: unknown;
}

/** How failed attempts are retried. */
export interface RetryPolicy {
  max_attempts?: number;
  backoff?: Duration;
  backoff_max?: Duration;
  jitter?: number;
}

/** A terminal's size. */
export interface Terminal {
  cols: number;
  rows: number;
}

/** What to run and how (`TaskSpec`): one of `command`, `argv`, `agent` or `llm`. */
export interface TaskSpec {
  /** A command line run with `sh -c`. */
  command?: string;
  /** A program and its arguments, run without a shell. */
  argv?: string[];
  agent?: AgentSpec;
  llm?: LlmSpec;
  /** Working directory (absolute); the client's when absent for a command. */
  cwd?: string;
  env?: Record<string, string>;
  name?: string;
  labels?: string[];
  queue?: string;
  priority?: number;
  timeout?: Duration;
  grace?: Duration;
  retry?: RetryPolicy;
  idempotency_key?: string;
  run_after?: number;
  delay?: Duration;
  after?: number[];
  session?: string;
  concurrency_key?: string;
  on_end?: string;
  stall?: Duration;
  stall_action?: "alert" | "stop";
  stdin?: boolean;
  tty?: Terminal;
  sandbox?: boolean;
  allow_write?: string[];
  no_network?: boolean;
  memory?: string;
  cpu_time?: Duration;
  max_procs?: number;
  max_files?: number;
  max_output?: string;
  secrets?: Record<string, string>;
  [field: string]: unknown;
}

/** Where a task listens: an address, its port, and a URL when it speaks HTTP. */
export interface Listener {
  address: string;
  port?: number | null;
  url?: string | null;
}

/** A task's latest progress report. */
export interface Progress {
  percent?: number | null;
  message: string;
  at: number;
}

/** A task's record (`TaskRecord`). */
export interface Task {
  id: number;
  kind: "shell" | "agent" | "llm" | "function" | string;
  name: string;
  state: TaskState;
  queue: string;
  priority: number;
  labels: string[];
  session?: string | null;
  concurrency_key?: string | null;
  spec: TaskSpec;
  created_at: number;
  run_after?: number | null;
  started_at?: number | null;
  finished_at?: number | null;
  attempts: number;
  exit_code?: number | null;
  signal?: number | null;
  reason?: string | null;
  progress?: Progress | null;
  result?: string | null;
  node?: string | null;
  stop_requested: boolean;
  tokens?: number;
  cost_usd?: number;
  model_calls?: number;
  waiting_for_input?: boolean;
  waiting_since?: number | null;
  prompt?: string | null;
  listening?: Listener[];
  /** What the task will trip over at its start (`command not found: NAME`), as the
   * submit answered it (`run` and `runSchedule` only). */
  warning?: string | null;
  [field: string]: unknown;
}

/** One attempt of a task. */
export interface Attempt {
  number: number;
  node: string;
  started_at: number;
  ended_at?: number | null;
  pid?: number | null;
  exit_code?: number | null;
  signal?: number | null;
  outcome?: string | null;
  reason?: string | null;
  cpu_ms?: number | null;
  peak_rss_kb?: number | null;
  [field: string]: unknown;
}

/** One page of tasks, newest first; pass `next` as `before` for the next page (null on the last). */
export interface TaskPage {
  tasks: Task[];
  next: number | null;
}

/** A piece of a task's output. Pass `cursor` as `since` to read what follows. */
export interface OutputChunk {
  id: number;
  text: string;
  start: number;
  cursor: number;
  total_bytes: number;
  elided_bytes?: number;
  dropped_bytes?: number;
  skipped_lines?: number;
  more: boolean;
  state: TaskState;
  exit_code?: number | null;
  timed_out?: boolean;
  matched?: string | null;
  listening?: Listener[];
  waiting_for_input?: boolean;
  prompt?: string | null;
  [field: string]: unknown;
}

/** A notice for a session as the daemon sends it. */
export interface NotificationFields {
  seq: number;
  kind: "ended" | "waiting_for_input" | "listening" | string;
  session: string;
  task_id: number;
  name: string;
  state: TaskState;
  exit_code?: number | null;
  signal?: number | null;
  reason?: string | null;
  duration_ms: number;
  attempts: number;
  tail: string;
  output_bytes: number;
  created_at: number;
  prompt?: string | null;
  listening?: Listener[];
}

/** A notice for a session: a task ended, waits for input, or listens. `headline`
 * and `text` are worded as meanwhile words them for a model. */
export interface Notification extends NotificationFields {
  /** One line: `task 7 (cargo test) failed with exit code 101 after 41s`. */
  headline: string;
  /** The whole notice: headline, reason, last lines of output, and how to read the rest. */
  text: string;
  [field: string]: unknown;
}

/** An entry of the event log (`/v1/events`). */
export interface Event {
  seq: number;
  at: number;
  kind: string;
  task_id?: number | null;
  data?: unknown;
  [field: string]: unknown;
}

/** The end of a wait: the tasks as they were, and whether the timeout came first. */
export interface WaitResult {
  tasks: Task[];
  timed_out: boolean;
  [field: string]: unknown;
}

/** What `send` handed to a task. */
export interface InputSent {
  id: number;
  bytes: number;
  eof: boolean;
  [field: string]: unknown;
}

/** A queue with its limits and counts (`QueueInfo`). */
export interface Queue {
  name: string;
  max_parallel: number;
  paused: boolean;
  pause_reason?: string | null;
  pending: number;
  running: number;
  per_key?: number | null;
  rate?: string | null;
  alert_after?: number | null;
  [field: string]: unknown;
}

/** A queue's budget and what was used of it in the current window (`BudgetInfo`). */
export interface Budget {
  queue: string;
  tokens?: number | null;
  cost_usd?: number | null;
  window: "hour" | "day" | "month" | "total" | string;
  alarms: number[];
  window_start: number;
  window_end?: number | null;
  used_tokens: number;
  used_cost_usd: number;
  model_calls: number;
  used_percent: number;
  state: string;
  alarms_fired: number[];
  [field: string]: unknown;
}

/** A schedule with its next time and latest task (`ScheduleInfo`). */
export interface Schedule {
  name: string;
  task: TaskSpec;
  cron?: string | null;
  tz?: string | null;
  every?: string | null;
  missed: "skip" | "once" | string;
  paused: boolean;
  fired: number;
  missed_count: number;
  created_at: number;
  next_fire?: number | null;
  last_fire?: number | null;
  last_task?: number | null;
  last_state?: TaskState | null;
  [field: string]: unknown;
}

/** A measured time for reading, as meanwhile writes it: `850ms`, `4.2s`, `3m07s`. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms}ms`;
  const secs = Math.floor(ms / 1000);
  const two = (n: number) => String(n).padStart(2, "0");
  if (secs < 60) {
    const tenths = Math.floor((ms % 1000) / 100);
    return secs < 10 && tenths > 0 ? `${secs}.${tenths}s` : `${secs}s`;
  }
  if (secs < 3600) return `${Math.floor(secs / 60)}m${two(secs % 60)}s`;
  if (secs < 86400) return `${Math.floor(secs / 3600)}h${two(Math.floor((secs % 3600) / 60))}m`;
  return `${Math.floor(secs / 86400)}d${two(Math.floor((secs % 86400) / 3600))}h`;
}

const SIGNALS: Record<number, string> = {
  1: "SIGHUP",
  2: "SIGINT",
  3: "SIGQUIT",
  4: "SIGILL",
  6: "SIGABRT",
  7: "SIGBUS",
  8: "SIGFPE",
  9: "SIGKILL",
  11: "SIGSEGV",
  13: "SIGPIPE",
  14: "SIGALRM",
  15: "SIGTERM",
};

type NoticeFields = NotificationFields;

function headline(n: NoticeFields): string {
  const who = `task ${n.task_id} (${n.name})`;
  if (n.kind === "waiting_for_input") return `${who} is waiting for input: ${n.prompt || "(no prompt shown)"}`;
  if (n.kind === "listening") {
    const places = (n.listening ?? []).map((l) => l.url || l.address || "?").join(", ");
    return `${who} is listening on ${places}`;
  }
  let how: string;
  switch (n.state) {
    case "succeeded":
      how = "succeeded";
      break;
    case "failed":
    case "quarantined": {
      let end = "";
      if (n.exit_code != null) end = `with exit code ${n.exit_code}`;
      else if (n.signal != null) end = `killed by signal ${n.signal} (${SIGNALS[n.signal] ?? "signal"})`;
      const verb = n.state === "quarantined" ? `was quarantined after ${n.attempts} attempts, the last` : "failed";
      how = `${verb} ${end}`.trimEnd();
      break;
    }
    case "timed_out":
      how = "timed out";
      break;
    case "cancelled":
      how = "was cancelled";
      break;
    case "lost":
      how = "was lost (its end was not seen)";
      break;
    default:
      how = n.state;
  }
  return `${who} ${how} after ${formatDuration(n.duration_ms)}`;
}

function noticeText(n: NoticeFields, head: string): string {
  if (n.kind === "waiting_for_input") {
    return `${head}; it is still running. Answer with the background_input tool or \`meanwhile send ${n.task_id} TEXT --key enter\``;
  }
  if (n.kind === "listening") return `${head}; it is still running`;
  let s = head;
  if (n.reason) s += `; ${n.reason}`;
  if (!n.tail) {
    s += "; no output";
  } else {
    s += "; last lines of output:\n" + n.tail.replace(/\n+$/, "");
    s += `\n(output is ${n.output_bytes} bytes; read it all with the output tool or \`meanwhile logs ${n.task_id}\`)`;
  }
  return s;
}

/** A notification as the daemon sent it, with its `headline` and `text` added. */
export function notification(raw: NoticeFields): Notification {
  const head = headline(raw);
  return { ...raw, headline: head, text: noticeText(raw, head) };
}
