// The public HTTP API, as the page uses it: same origin, the session cookie sent by
// the browser, JSON in and out. And the event stream, shared by every view.

export class ApiError extends Error {
  constructor(status, body) {
    super(body && body.error ? `${body.error.message}${body.error.field ? ` (${body.error.field})` : ''}` : `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

export async function api(method, path, body, signal) {
  const init = {method, credentials: 'same-origin', headers: {}, signal};
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const r = await fetch(path, init);
  if (r.status === 401) {
    location.href = `/login?next=${encodeURIComponent(location.pathname + location.search)}`;
    throw new ApiError(401, null);
  }
  if (r.status === 204) return null;
  const j = await r.json().catch(() => null);
  if (!r.ok) throw new ApiError(r.status, j);
  return j;
}

export const get = (path, signal) => api('GET', path, undefined, signal);
export const post = (path, body) => api('POST', path, body);
export const put = (path, body) => api('PUT', path, body);
export const del = (path) => api('DELETE', path);

/** `?a=1&b=2` of the parameters that have a value. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

export const KINDS = [
  'submitted', 'started', 'attempt_ended', 'finished', 'progress', 'stop_requested',
  'retried', 'released', 'removed', 'queue', 'schedule', 'alert', 'budget',
  'waiting_for_input', 'listening',
];

const listeners = new Set();
let source = null;

/** Calls fn(event) for every event from now on; returns the way to stop. */
export function onEvent(fn) {
  listeners.add(fn);
  if (!source) connect();
  return () => listeners.delete(fn);
}

function connect() {
  // EventSource resumes with Last-Event-ID by itself after a lost connection.
  source = new EventSource('/v1/events');
  const live = document.getElementById('live');
  source.onopen = () => { if (live) { live.className = 'live on'; live.title = 'live: following events'; } };
  source.onerror = () => { if (live) { live.className = 'live off'; live.title = 'reconnecting to the event stream'; } };
  for (const kind of KINDS) {
    source.addEventListener(kind, (m) => {
      let e;
      try { e = JSON.parse(m.data); } catch { return; }
      for (const fn of [...listeners]) fn(e);
    });
  }
}

/** Calls fn at most once per `ms`, with the latest call's wish. */
export function debounce(fn, ms) {
  let timer = null;
  return () => {
    if (timer) return;
    timer = setTimeout(() => { timer = null; fn(); }, ms);
  };
}
