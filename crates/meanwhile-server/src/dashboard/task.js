// A task's page: what it is, its attempts, its log (read by cursor, followed as it
// grows, with grep and tail, colours rendered), and the actions on it.

import {get, post, query, onEvent, debounce, RESYNC} from './api.js';
import {h, replace, stateBadge, taskDuration, time, duration, bytes, progressBar, errorLine, act} from './dom.js';
import {LogView} from './ansi.js';

const ENDED = ['succeeded', 'failed', 'timed_out', 'cancelled', 'quarantined', 'lost'];
const KEYS = ['enter', 'tab', 'ctrl-c', 'ctrl-d', 'ctrl-z', 'up', 'down', 'esc'];

function dl(pairs) {
  return h('dl', {class: 'facts'}, pairs.filter(([, v]) => v !== '' && v !== null && v !== undefined)
    .map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

function facts(t) {
  return dl([
    ['state', stateBadge(t.state)],
    ['reason', t.reason],
    ['kind', t.kind],
    ['queue', h('a', {href: `/ui/?queue=${encodeURIComponent(t.queue)}`, 'data-link': ''}, t.queue)],
    ['labels', (t.labels || []).join(', ')],
    ['session', t.session],
    ['node', t.node],
    ['submitted', time(t.created_at)],
    ['started', time(t.started_at)],
    ['finished', time(t.finished_at)],
    ['duration', taskDuration(t)],
    ['exit code', t.exit_code],
    ['signal', t.signal],
    ['attempts', t.attempts],
    ['progress', progressBar(t.progress)],
    ['waiting for input', t.waiting_for_input ? h('code', {class: 'prompt'}, t.prompt || 'yes') : ''],
    ['listening', (t.listening || []).length ? (t.listening.map((l) => l.url
      ? h('a', {href: l.url, target: '_blank', rel: 'noopener', class: 'badge listening'}, l.url)
      : h('span', {class: 'badge listening'}, l.address))) : ''],
    ['tokens', t.tokens],
    ['cost', t.cost_usd ? `$${t.cost_usd.toFixed(4)}` : ''],
    ['result', t.result ? h('pre', {class: 'result'}, t.result) : ''],
  ]);
}

function attemptsTable(attempts) {
  if (!attempts.length) return h('p', {class: 'empty'}, 'No attempt yet.');
  return h('table', {class: 'attempts'},
    h('thead', {}, h('tr', {}, ['#', 'node', 'started', 'ended', 'outcome', 'exit', 'signal', 'peak memory', 'CPU time', 'reason'].map((c) => h('th', {}, c)))),
    h('tbody', {}, attempts.map((a) => h('tr', {},
      h('td', {}, a.number), h('td', {}, a.node), h('td', {}, time(a.started_at)), h('td', {}, time(a.ended_at)),
      h('td', {}, a.outcome || (a.ended_at ? '' : 'running')), h('td', {class: 'num'}, a.exit_code ?? ''),
      h('td', {class: 'num'}, a.signal ?? ''), h('td', {class: 'num'}, a.peak_rss_kb ? bytes(a.peak_rss_kb * 1024) : ''),
      h('td', {class: 'num'}, a.cpu_ms !== null && a.cpu_ms !== undefined ? duration(a.cpu_ms) : ''),
      h('td', {}, a.reason || '')))));
}

function actions(t, id, go, refresh) {
  const running = t.state === 'running' || t.state === 'pending';
  const button = (label, title, fn, cls = '') => {
    const b = h('button', {type: 'button', title, class: cls, onclick: () => act(b, fn)}, label);
    return b;
  };
  const out = [];
  if (running) {
    out.push(button('Stop', 'SIGTERM, the grace period, then SIGKILL', async () => { await post(`/v1/tasks/${id}/stop`, {mode: 'graceful'}); refresh(); }));
    out.push(button('Force stop', 'SIGKILL at once', async () => { await post(`/v1/tasks/${id}/stop`, {mode: 'force'}); refresh(); }, 'danger'));
  } else {
    out.push(button('Retry', 'Run it again', async () => { await post(`/v1/tasks/${id}/retry`); refresh(); }));
    out.push(button('Remove', 'Remove the task and its log', async () => {
      if (!confirm(`Remove task ${id} and its log?`)) return;
      await post('/v1/tasks/remove', {ids: [id]});
      go('/ui/');
    }, 'danger'));
  }
  return h('div', {class: 'actions'}, out);
}

/** The input form of a running task started with stdin or a terminal. */
function inputForm(t, id) {
  if (t.state !== 'running' || !(t.spec.stdin || t.spec.tty)) return null;
  const text = h('input', {type: 'text', name: 'input', placeholder: t.spec.tty ? 'text for the terminal' : 'text for stdin', 'aria-label': 'input', autocomplete: 'off'});
  const send = (body) => post(`/v1/tasks/${id}/input`, body);
  const form = h('form', {class: 'input', onsubmit: (e) => {
    e.preventDefault();
    const b = form.querySelector('button[type=submit]');
    act(b, async () => { await send({text: text.value, keys: ['enter']}); text.value = ''; });
  }},
  text, h('button', {type: 'submit'}, 'Send ⏎'),
  KEYS.map((k) => {
    const b = h('button', {type: 'button', class: 'key', onclick: () => act(b, () => send({keys: [k]}))}, k);
    return b;
  }),
  (() => { const b = h('button', {type: 'button', class: 'key', title: 'close stdin (Ctrl-D on a terminal)', onclick: () => act(b, () => send({eof: true}))}, 'end input'); return b; })());
  return h('section', {}, h('h2', {}, 'Input'), form);
}

/** The log: read by cursor, followed while the task runs, with grep and tail. */
function logPanel(id, taskState) {
  const lines = h('div', {class: 'log', role: 'log', 'aria-live': 'off'});
  const view = new LogView(lines);
  const info = h('span', {class: 'loginfo'});
  const grep = h('input', {type: 'search', name: 'grep', placeholder: 'grep (regex)', 'aria-label': 'grep'});
  const tail = h('input', {type: 'number', name: 'tail', min: 1, value: 1000, class: 'small', 'aria-label': 'tail lines', title: 'lines from the end'});
  const follow = h('input', {type: 'checkbox', name: 'follow', checked: true});
  let run = 0;
  let controller = null;
  let state = taskState;

  const atBottom = () => lines.scrollHeight - lines.scrollTop - lines.clientHeight < 40;
  function push(text) {
    const stick = atBottom();
    view.push(text);
    if (stick) lines.scrollTop = lines.scrollHeight;
  }
  function describe(c, extra = '') {
    const parts = [`${bytes(c.total_bytes)} in all`];
    if (c.start > 0) parts.push(`from byte ${c.start}`);
    if (c.skipped_lines) parts.push(`${c.skipped_lines} lines not matching`);
    if (view.dropped) parts.push(`${view.dropped} earlier lines dropped from view`);
    replace(info, parts.join(' · '), extra);
  }

  async function start(params, fromStart = false) {
    const mine = ++run;
    if (controller) controller.abort();
    controller = new AbortController();
    const signal = controller.signal;
    view.clear();
    try {
      let c;
      if (fromStart) {
        // The whole log, a page at a time, without holding more than the view keeps.
        let since = 0;
        do {
          c = await get(`/v1/tasks/${id}/output${query({since, grep: params.grep})}`, signal);
          if (mine !== run) return;
          push(c.text);
          since = c.cursor;
          await new Promise((r) => setTimeout(r, 0));
        } while (c.more);
      } else {
        c = await get(`/v1/tasks/${id}/output${query({tail: params.tail, grep: params.grep})}`, signal);
        if (mine !== run) return;
        push(c.text);
      }
      const earlier = c.start > 0 && !fromStart
        ? [' · ', h('button', {type: 'button', class: 'link', onclick: () => start(params, true)}, 'read from the start')]
        : '';
      describe(c, earlier);
      lines.scrollTop = lines.scrollHeight;
      let cursor = c.cursor;
      while (mine === run && follow.checked) {
        if (ENDED.includes(c.state) && !c.more) { describe(c, earlier); break; }
        c = await get(`/v1/tasks/${id}/output${query({since: cursor, grep: params.grep, wait: 'output', timeout: '25s'})}`, signal);
        if (mine !== run) return;
        push(c.text);
        cursor = c.cursor;
        state = c.state;
        describe(c, earlier);
      }
    } catch (e) {
      if (e.name === 'AbortError' || mine !== run) return;
      replace(info, errorLine(e));
    }
  }
  const current = () => ({grep: grep.value.trim() || undefined, tail: Number(tail.value) || 1000});
  const toolbar = h('form', {class: 'logbar', onsubmit: (e) => { e.preventDefault(); start(current()); }},
    grep, h('label', {}, 'tail ', tail), h('button', {type: 'submit'}, 'Show'),
    h('label', {}, follow, ' follow'), info);
  follow.addEventListener('change', () => { if (follow.checked) start(current()); else { run++; if (controller) controller.abort(); } });
  // A hidden tab holds no connection waiting for output: it reads again when shown.
  let paused = false;
  const visibility = () => {
    if (document.hidden && follow.checked && !ENDED.includes(state)) { paused = true; run++; if (controller) controller.abort(); }
    else if (!document.hidden && paused) { paused = false; start(current()); }
  };
  document.addEventListener('visibilitychange', visibility);
  start(current());
  return {
    el: h('section', {}, h('h2', {}, 'Output'), toolbar, lines),
    close() { run++; if (controller) controller.abort(); document.removeEventListener('visibilitychange', visibility); },
    restartIfEnded(newState) {
      // A retried task prints again: follow the new attempt.
      if (ENDED.includes(state) && !ENDED.includes(newState) && follow.checked) { state = newState; start(current()); }
    },
  };
}

/** Shows task `id` in `main`; returns how to leave it. */
export async function taskView(main, id, go) {
  const head = h('div');
  const body = h('div');
  const more = h('div');
  let detail;
  try {
    detail = await get(`/v1/tasks/${id}`);
  } catch (e) {
    replace(main, h('h1', {}, `Task #${id}`), errorLine(e));
    return () => {};
  }
  const log = logPanel(id, detail.task.state);
  function render(d) {
    const t = d.task;
    document.title = `#${t.id} ${t.name} · meanwhile`;
    replace(head, h('h1', {}, `#${t.id} `, h('span', {class: 'title'}, t.name), ' ', stateBadge(t.state)), actions(t, id, go, refresh));
    replace(body, facts(t), inputForm(t, id));
    replace(more, h('section', {}, h('h2', {}, 'Attempts'), attemptsTable(d.attempts)),
      h('details', {class: 'spec'}, h('summary', {}, 'Spec'), h('pre', {}, JSON.stringify(t.spec, null, 2))));
  }
  async function refresh() {
    try {
      // Keep a half-typed input.
      const typing = document.activeElement && document.activeElement.name === 'input' ? document.activeElement.value : null;
      detail = await get(`/v1/tasks/${id}`);
      render(detail);
      log.restartIfEnded(detail.task.state);
      if (typing !== null) { const i = body.querySelector('input[name=input]'); if (i) { i.value = typing; i.focus(); } }
    } catch (e) {
      if (e.status === 404) replace(head, h('h1', {}, `Task #${id}`), h('p', {class: 'empty'}, 'This task was removed.'));
    }
  }
  render(detail);
  replace(main, head, body, log.el, more);
  const later = debounce(refresh, 200);
  const stop = onEvent((e) => { if (e === RESYNC || e.task_id === id) later(); });
  return () => { stop(); log.close(); };
}
