// The error every call rejects with: the API's own `code`, `message` and `field`.

/**
 * A request the daemon refused, or a daemon that could not be reached.
 *
 * `code` is the API's error code (`invalid_argument`, `not_found`, `conflict`,
 * `unauthorized`, `unavailable`, ...), `message` says what was wrong and what to do,
 * `field` names the request field at fault when there is one, and `status` is the
 * HTTP status, or null when no answer came.
 */
export class MeanwhileError extends Error {
  readonly code: string;
  readonly field: string | null;
  readonly status: number | null;

  constructor(code: string, message: string, field: string | null = null, status: number | null = null) {
    super(message);
    this.name = "MeanwhileError";
    this.code = code;
    this.field = field;
    this.status = status;
  }
}

/** The error of an answer with an error status: `{"error": {"code", "message", "field"}}`
 * (a bare `{"code", "message", "field"}` is read too). */
export function fromResponse(status: number, body: string): MeanwhileError {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    parsed = null;
  }
  if (isObject(parsed) && isObject(parsed.error)) {
    parsed = parsed.error;
  }
  if (isObject(parsed) && typeof parsed.code === "string") {
    const message = typeof parsed.message === "string" && parsed.message !== "" ? parsed.message : parsed.code;
    const field = typeof parsed.field === "string" ? parsed.field : null;
    return new MeanwhileError(parsed.code, message, field, status);
  }
  const text = body.trim().slice(0, 500);
  return new MeanwhileError("internal", `the daemon answered HTTP ${status}: ${text || "(no body)"}`, null, status);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
