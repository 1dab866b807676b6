// Charts drawn as SVG from the API's own answers: tasks started and ended per
// minute, durations by queue, and cost per day. No charting service, no library.

import {get, onEvent, debounce, RESYNC} from './api.js';
import {h, replace, duration, errorLine} from './dom.js';

const NS = 'http://www.w3.org/2000/svg';
function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

const key = (cls, name) => h('span', {}, h('i', {class: `swatch ${cls}`}), name);

const W = 720, H = 220, PAD = {l: 48, r: 12, t: 12, b: 28};

/** About how wide `text` is at the axis font (11px): wide enough never to cut it. */
function textWidth(text) {
  return [...String(text)].reduce((w, c) => w + (/[\u1100-\u115f\u2e80-\ua4cf\uac00-\ud7a3\uf900-\ufaff\uff00-\uff60\u{1f300}-\u{1faff}]/u.test(c) ? 11 : 7), 0);
}

/** `text`, shortened with … to at most `width`; the whole name is in its tooltip. */
function fit(text, width) {
  if (textWidth(text) <= width) return text;
  let out = '';
  for (const c of text) {
    if (textWidth(`${out}${c}…`) > width) break;
    out += c;
  }
  return `${out}…`;
}

/** Bars of one or more series over shared labels; series: [{name, cls, values}]. */
export function barChart(labels, series, {title, fmt = (v) => String(v), every = 1} = {}) {
  const max = Math.max(1, ...series.flatMap((x) => x.values));
  const ticks = [0, 1, 2, 3, 4].map((i) => fmt(Math.round(((max * i) / 4) * 100) / 100));
  // The axis is as wide as its widest figure, so none is cut.
  const pl = Math.max(PAD.l, Math.max(...ticks.map(textWidth)) + 12);
  const iw = W - pl - PAD.r, ih = H - PAD.t - PAD.b;
  const slot = iw / Math.max(1, labels.length);
  const bw = Math.max(1, (slot * 0.8) / series.length);
  const svg = s('svg', {viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': title});
  for (let i = 0; i <= 4; i++) {
    const y = PAD.t + ih - (ih * i) / 4;
    svg.append(s('line', {x1: pl, x2: W - PAD.r, y1: y, y2: y, class: 'grid'}),
      s('text', {x: pl - 6, y: y + 4, class: 'axis', 'text-anchor': 'end'}, ticks[i]));
  }
  labels.forEach((label, i) => {
    series.forEach((x, j) => {
      const v = x.values[i] || 0;
      const bh = (ih * v) / max;
      const rect = s('rect', {x: pl + i * slot + slot * 0.1 + j * bw, y: PAD.t + ih - bh, width: bw, height: bh, class: x.cls});
      rect.append(s('title', {}, `${label}: ${x.name} ${fmt(v)}`));
      svg.append(rect);
    });
    if (i % every === 0) svg.append(s('text', {x: pl + i * slot + slot / 2, y: H - 8, class: 'axis', 'text-anchor': 'middle'}, label));
  });
  const legend = h('p', {class: 'legend'}, series.map((x) => key(x.cls, x.name)));
  return h('figure', {}, h('figcaption', {}, title), svg, legend);
}

/** Horizontal ranges per queue: median and 90th percentile of durations. */
function durationChart(byQueue) {
  const rows = Object.entries(byQueue).sort();
  if (!rows.length) return h('figure', {}, h('figcaption', {}, 'Durations by queue'), h('p', {class: 'empty'}, 'No finished task in the sample.'));
  const stats = rows.map(([q, d]) => {
    d.sort((a, b) => a - b);
    const at = (p) => d[Math.min(d.length - 1, Math.floor(p * d.length))];
    return {q, n: d.length, p50: at(0.5), p90: at(0.9), max: d[d.length - 1]};
  });
  const max = Math.max(1, ...stats.map((x) => x.max));
  // Room for the longest queue name on the left and the figures after the longest
  // bar on the right, so no label is cut.
  const labels = stats.map((x) => `${x.q} (${x.n})`);
  const notes = stats.map((x) => `median ${duration(x.p50)} · p90 ${duration(x.p90)}`);
  const left = Math.min(W / 2, Math.max(60, ...labels.map(textWidth)) + 12);
  const right = Math.max(...notes.map(textWidth)) + 12;
  const rh = 26, hh = PAD.t + rows.length * rh + 8, iw = Math.max(40, W - left - PAD.r - right);
  const svg = s('svg', {viewBox: `0 0 ${W} ${hh}`, class: 'chart', role: 'img', 'aria-label': 'Durations by queue'});
  stats.forEach((x, i) => {
    const y = PAD.t + i * rh;
    const len = (v) => Math.max(1, (iw * v) / max);
    svg.append(s('text', {x: left - 10, y: y + 15, class: 'axis', 'text-anchor': 'end'}, fit(labels[i], left - 12), s('title', {}, labels[i])),
      s('rect', {x: left, y: y + 4, width: len(x.max), height: 14, class: 'range'}),
      s('rect', {x: left, y: y + 4, width: len(x.p90), height: 14, class: 'p90'}),
      s('rect', {x: left, y: y + 4, width: len(x.p50), height: 14, class: 'p50'}));
    const t = s('title', {}, `${x.q}: median ${duration(x.p50)}, p90 ${duration(x.p90)}, max ${duration(x.max)}`);
    svg.lastChild.append(t);
    svg.append(s('text', {x: left + 6 + len(x.max), y: y + 15, class: 'axis'}, notes[i]));
  });
  return h('figure', {}, h('figcaption', {}, 'Durations by queue'), svg,
    h('p', {class: 'legend'}, key('p50', 'median'), key('p90', '90th percentile'), key('range', 'longest')));
}

/** The newest tasks, up to `pages` pages of 1000 or until they are older than `since`. */
async function sample(since, pages = 5) {
  const tasks = [];
  let before = '';
  for (let i = 0; i < pages; i++) {
    const page = await get(`/v1/tasks?limit=1000${before ? `&before=${before}` : ''}`);
    tasks.push(...page.tasks);
    if (!page.next || !page.tasks.length || page.tasks[page.tasks.length - 1].created_at < since) break;
    before = page.next;
  }
  return tasks;
}

export function chartsView(main) {
  const body = h('div', {class: 'charts'});
  replace(main, h('h1', {}, 'Charts'), h('p', {class: 'note'}, 'From the newest tasks (up to 5,000), read from the API; redrawn as tasks start and end.'), body);
  let alive = true;
  async function draw() {
    try {
      const now = Date.now();
      const minute = 60000, hour0 = Math.floor(now / minute) * minute - 59 * minute;
      const day = 86400000, day0 = Math.floor(now / day) * day - 13 * day;
      const [tasks, budgets] = await Promise.all([sample(Math.min(hour0, day0)), get('/v1/budgets')]);
      const started = new Array(60).fill(0), ended = new Array(60).fill(0);
      const byQueue = {};
      const cost = new Array(14).fill(0);
      for (const t of tasks) {
        const bin = (at) => Math.floor((at - hour0) / minute);
        if (t.started_at && bin(t.started_at) >= 0 && bin(t.started_at) < 60) started[bin(t.started_at)]++;
        if (t.finished_at && bin(t.finished_at) >= 0 && bin(t.finished_at) < 60) ended[bin(t.finished_at)]++;
        if (t.finished_at && t.started_at) (byQueue[t.queue] ||= []).push(t.finished_at - t.started_at);
        const d = Math.floor(((t.finished_at || t.created_at) - day0) / day);
        if (t.cost_usd && d >= 0 && d < 14) cost[d] += t.cost_usd;
      }
      const minutes = started.map((_, i) => new Date(hour0 + i * minute).toLocaleTimeString([], {hour: '2-digit', minute: '2-digit'}));
      const days = cost.map((_, i) => new Date(day0 + i * day).toLocaleDateString([], {month: 'short', day: 'numeric'}));
      const parts = [
        barChart(minutes, [{name: 'started', cls: 'started', values: started}, {name: 'ended', cls: 'ended', values: ended}],
          {title: 'Tasks started and ended per minute, the last hour', every: 10}),
        durationChart(byQueue),
      ];
      if (budgets.length || cost.some((c) => c > 0)) {
        parts.push(barChart(days, [{name: 'cost (US dollars)', cls: 'cost', values: cost}],
          {title: 'Cost per day, the last 14 days (UTC)', fmt: (v) => `$${Number(v).toFixed(2)}`, every: 2}));
        for (const b of budgets) {
          parts.push(h('p', {class: 'note'}, `Budget of ${b.queue}: $${b.used_cost_usd.toFixed(2)}${b.cost_usd ? ` of $${b.cost_usd.toFixed(2)}` : ''}, ${b.used_tokens.toLocaleString()}${b.tokens ? ` of ${b.tokens.toLocaleString()}` : ''} tokens this ${b.window}.`));
        }
      } else {
        parts.push(h('p', {class: 'note'}, 'Cost per day appears once a queue has a budget or a task has cost something.'));
      }
      if (alive) replace(body, parts);
    } catch (e) {
      if (alive) replace(body, errorLine(e));
    }
  }
  draw();
  const later = debounce(draw, 3000);
  const stop = onEvent((e) => { if (e === RESYNC || e.kind === 'started' || e.kind === 'finished' || e.kind === 'budget') later(); });
  const tick = setInterval(draw, 60000);
  return () => { alive = false; stop(); clearInterval(tick); };
}
