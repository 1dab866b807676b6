// meanwhile: durable background tasks for AI agents, from Node.js. `Client` speaks to
// the meanwhile daemon (started on first use); the `meanwhile` command of this
// package is the daemon and command-line program itself.

export { Client, defaultHome, findBinary, type ClientOptions, type RunOptions } from "./client.js";
export { MeanwhileError } from "./errors.js";
export {
  TERMINAL_STATES,
  formatDuration,
  isEnded,
  type AgentSpec,
  type Attempt,
  type Budget,
  type Duration,
  type Event,
  type InputSent,
  type Listener,
  type LlmSpec,
  type Notification,
  type OutputChunk,
  type Progress,
  type Queue,
  type RetryPolicy,
  type Schedule,
  type Task,
  type TaskPage,
  type TaskSpec,
  type TaskState,
  type Terminal,
  type WaitResult,
} from "./types.js";
