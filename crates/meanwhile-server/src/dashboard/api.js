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

/** The event a view gets when events may have passed unseen: read everything anew. */
export const RESYNC = {kind: 'resync'};

const listeners = new Set();
let stream = null;

/** Calls fn(event) for every event from now on (and `RESYNC` after a gap); returns
 * the way to stop. */
export function onEvent(fn) {
  listeners.add(fn);
  if (!stream) stream = typeof SharedWorker === 'function' ? shared() : own();
  return () => listeners.delete(fn);
}

function deliver(e) {
  for (const fn of [...listeners]) fn(e);
}

function showLive(on) {
  const live = document.getElementById('live');
  if (!live) return;
  live.className = on ? 'live on' : 'live off';
  live.title = on ? 'live: following events' : document.hidden ? 'paused while hidden' : 'reconnecting to the event stream';
}

function parsed(data) {
  try { return JSON.parse(data); } catch { return null; }
}

/** The stream every tab shares, through the shared worker that holds it. */
function shared() {
  const worker = new SharedWorker('/ui/static/events.js', {name: 'meanwhile-events'});
  const port = worker.port;
  port.onmessage = (m) => {
    const msg = m.data || {};
    if (msg.type === 'event') { const e = parsed(msg.data); if (e) deliver(e); }
    else if (msg.type === 'resync') deliver(RESYNC);
    else if (msg.type === 'live') showLive(msg.live);
  };
  port.start();
  const say = () => port.postMessage({type: document.hidden ? 'hidden' : 'visible'});
  document.addEventListener('visibilitychange', say);
  window.addEventListener('pagehide', () => port.postMessage({type: 'bye'}));
  window.addEventListener('pageshow', say);
  say();
  return port;
}

/** A stream of this tab's own where shared workers are not there, closed while the
 * tab is hidden. */
function own() {
  let source = null;
  let gap = false;
  function open() {
    if (source) return;
    source = new EventSource('/v1/events');
    source.onopen = () => { showLive(true); if (gap) deliver(RESYNC); gap = false; };
    source.onerror = () => showLive(false);
    for (const kind of KINDS) {
      source.addEventListener(kind, (m) => { const e = parsed(m.data); if (e) deliver(e); });
    }
  }
  function close() {
    if (!source) return;
    source.close();
    source = null;
    gap = true;
    showLive(false);
  }
  document.addEventListener('visibilitychange', () => (document.hidden ? close() : open()));
  window.addEventListener('pagehide', close);
  if (!document.hidden) open(); else gap = true;
  return {close};
}

/** Calls fn at most once per `ms`, with the latest call's wish. */
export function debounce(fn, ms) {
  let timer = null;
  return () => {
    if (timer) return;
    timer = setTimeout(() => { timer = null; fn(); }, ms);
  };
}
