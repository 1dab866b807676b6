// Small helpers to build the page from code: elements are made with textContent and
// properties, never from HTML strings, so nothing a task prints can become markup.

/** An element: h('a', {href: '/ui/', class: 'x', onclick: f}, 'text', child, ...). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'style' && typeof v === 'object') Object.assign(el.style, v);
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

/** Appends children (strings, nodes, arrays of them; null is skipped). */
export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Replaces an element's children. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** What a state looks like in a table: a symbol and its name. */
export const STATES = {
  pending: '○', running: '◐', succeeded: '✔', failed: '✘', timed_out: '⏱',
  cancelled: '⊘', quarantined: '☣', lost: '?',
};

export function stateBadge(state) {
  return h('span', {class: `state state-${state}`, title: state}, `${STATES[state] || '·'} ${state.replace('_', ' ')}`);
}

/** 1.2 s, 3 m 04 s, 2 h 05 m. */
export function duration(ms) {
  if (ms === null || ms === undefined || ms < 0) return '';
  if (ms < 1000) return `${ms} ms`;
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${(ms / 1000).toFixed(1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} m ${String(s % 60).padStart(2, '0')} s`;
  const hr = Math.floor(m / 60);
  if (hr < 48) return `${hr} h ${String(m % 60).padStart(2, '0')} m`;
  return `${Math.floor(hr / 24)} d ${hr % 24} h`;
}

/** How long a task ran, or has run so far. */
export function taskDuration(t, now = Date.now()) {
  if (!t.started_at) return '';
  return duration((t.finished_at || (t.state === 'running' ? now : t.started_at)) - t.started_at);
}

/** A timestamp (ms since the epoch) in the reader's time zone. */
export function time(ms) {
  if (!ms) return '';
  const d = new Date(ms);
  const today = new Date();
  const t = d.toLocaleTimeString([], {hour: '2-digit', minute: '2-digit', second: '2-digit'});
  return d.toDateString() === today.toDateString() ? t : `${d.toLocaleDateString()} ${t}`;
}

/** A time with its date, always (`6 Dec 2026, 23:10:04`). */
export function dateTime(ms) {
  if (!ms) return '';
  return new Date(ms).toLocaleString([], {year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit'});
}

/** A time with its date and zone: in `tz` (an IANA name) when given, else the
 * browser's own (`7 Dec 2026, 09:00 CET`). */
export function zoned(ms, tz) {
  if (!ms) return '';
  const opts = {year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', timeZoneName: 'short'};
  try {
    return new Date(ms).toLocaleString([], tz ? {...opts, timeZone: tz} : opts);
  } catch {
    return new Date(ms).toLocaleString([], opts);
  }
}

export function bytes(n) {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024, i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

/** A progress bar, or nothing without progress. */
export function progressBar(p) {
  if (!p) return '';
  const pct = typeof p.percent === 'number' ? Math.max(0, Math.min(100, p.percent)) : null;
  return h('span', {class: 'progress', title: p.message || ''},
    h('span', {class: 'bar'}, h('span', {class: 'fill', style: {width: `${pct ?? 0}%`}})),
    h('span', {class: 'pct'}, pct === null ? (p.message || '') : `${Math.round(pct)}%`));
}

/** A message line that says what went wrong, for a failed request. */
export function errorLine(e) {
  return h('p', {class: 'error', role: 'alert'}, e && e.message ? e.message : String(e));
}

/** Runs an action from a button, showing its failure next to it. */
export async function act(button, fn) {
  button.disabled = true;
  const old = button.parentElement.querySelector('.error');
  if (old) old.remove();
  try {
    await fn();
  } catch (e) {
    button.parentElement.append(errorLine(e));
  } finally {
    button.disabled = false;
  }
}
