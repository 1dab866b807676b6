// The task table: filters kept in the URL, keyset pages (`before`), and rows kept
// up to date from the event stream without reloading.

import {get, query, onEvent, debounce, RESYNC} from './api.js';
import {h, replace, stateBadge, taskDuration, time, progressBar, errorLine} from './dom.js';

const STATE_NAMES = ['pending', 'running', 'succeeded', 'failed', 'timed_out', 'cancelled', 'quarantined', 'lost'];
const FILTERS = ['state', 'queue', 'label', 'session', 'text'];
const PAGE = 50;

/** The name cell: the name, and what a running task is seen doing. */
function nameCell(t) {
  const extra = [];
  if (t.waiting_for_input) {
    extra.push(h('span', {class: 'badge waiting', title: t.prompt || ''}, 'waiting for input'),
      t.prompt ? h('code', {class: 'prompt'}, t.prompt) : null);
  }
  for (const l of t.listening || []) {
    extra.push(l.url ? h('a', {class: 'badge listening', href: l.url, target: '_blank', rel: 'noopener'}, l.url)
      : h('span', {class: 'badge listening'}, l.address));
  }
  return h('td', {class: 'name'}, h('a', {href: `/ui/tasks/${t.id}`, 'data-link': ''}, t.name), ...extra);
}

function row(t) {
  return h('tr', {'data-id': t.id, class: `task-row state-${t.state}`},
    h('td', {class: 'id'}, h('a', {href: `/ui/tasks/${t.id}`, 'data-link': ''}, `#${t.id}`)),
    h('td', {}, stateBadge(t.state)),
    nameCell(t),
    h('td', {}, h('a', {href: `/ui/?queue=${encodeURIComponent(t.queue)}`, 'data-link': ''}, t.queue)),
    h('td', {}, progressBar(t.progress)),
    h('td', {class: 'num', 'data-started': t.started_at || '', 'data-finished': t.finished_at || '', 'data-state': t.state}, taskDuration(t)),
    h('td', {class: 'num'}, t.exit_code ?? (t.signal ? `sig ${t.signal}` : '')),
    h('td', {class: 'time'}, time(t.created_at)));
}

/** The filter form, filled from the URL; submitting it changes the URL. */
function filterForm(params, queues, go) {
  const sel = (name, options, value) => h('select', {name, 'aria-label': name},
    h('option', {value: ''}, `any ${name}`),
    options.map((o) => h('option', {value: o, selected: o === value}, o)));
  const text = (name, placeholder) => h('input', {name, type: 'search', placeholder, value: params.get(name) || '', 'aria-label': name});
  const form = h('form', {class: 'filters', onsubmit: (e) => {
    e.preventDefault();
    const q = {};
    for (const f of FILTERS) q[f] = form.elements[f].value.trim();
    go(`/ui/${query(q)}`);
  }},
  sel('state', STATE_NAMES, params.get('state') || ''),
  sel('queue', queues, params.get('queue') || ''),
  text('label', 'label'), text('session', 'session'), text('text', 'name contains…'),
  h('button', {type: 'submit'}, 'Filter'),
  h('a', {href: '/ui/', 'data-link': '', class: 'button'}, 'Clear'));
  for (const s of form.querySelectorAll('select')) s.addEventListener('change', () => form.requestSubmit());
  return form;
}

/** Shows the task list in `main`; returns how to leave it. */
export async function tasksView(main, params, go) {
  const filter = {};
  for (const f of FILTERS) filter[f] = params.get(f) || '';
  const before = params.get('before') || '';
  const tbody = h('tbody');
  const pager = h('nav', {class: 'pager'});
  const summary = h('span', {class: 'summary'});
  // The page's own request first: the table waits for nothing else.
  const first = get(`/v1/tasks${query({...filter, before, limit: PAGE})}`);
  first.catch(() => {});
  let queues = [];
  try { queues = (await get('/v1/queues')).map((q) => q.name); } catch { /* shown below */ }
  const table = h('table', {class: 'tasks'},
    h('thead', {}, h('tr', {}, ['id', 'state', 'name', 'queue', 'progress', 'duration', 'exit', 'submitted'].map((c) => h('th', {}, c)))),
    tbody);
  replace(main, h('h1', {}, 'Tasks ', summary), filterForm(params, queues, go), table, pager);

  const shown = new Map();
  async function load(pending) {
    try {
      const page = await (pending || get(`/v1/tasks${query({...filter, before, limit: PAGE})}`));
      shown.clear();
      replace(tbody, page.tasks.length ? page.tasks.map((t) => { shown.set(t.id, t); return row(t); })
        : h('tr', {}, h('td', {colspan: 8, class: 'empty'}, 'No tasks match.')));
      const links = [];
      if (before) links.push(h('a', {href: `/ui/${query(filter)}`, 'data-link': ''}, '« Newest'));
      if (page.next) links.push(h('a', {href: `/ui/${query({...filter, before: page.next})}`, 'data-link': '', rel: 'next'}, 'Older »'));
      replace(pager, links);
    } catch (e) {
      replace(tbody, h('tr', {}, h('td', {colspan: 8}, errorLine(e))));
    }
  }
  async function counts() {
    try {
      const s = await get('/v1/status');
      replace(summary, Object.entries(s.counts).filter(([, n]) => n > 0)
        .map(([st, n]) => h('a', {class: `count state-${st}`, href: `/ui/?state=${st}`, 'data-link': ''}, `${n} ${st.replace('_', ' ')}`)));
    } catch { /* the table says what failed */ }
  }
  await Promise.all([load(first), counts()]);

  // Live: a visible task that changed is read again; a new task, on the first page,
  // reloads the page.
  const changed = new Set();
  let reload = false;
  const flush = debounce(async () => {
    const ids = [...changed];
    changed.clear();
    if (reload) {
      reload = false;
      await load();
    } else {
      await Promise.all(ids.map(async (id) => {
        try {
          const d = await get(`/v1/tasks/${id}`);
          const old = tbody.querySelector(`tr[data-id="${id}"]`);
          if (old) old.replaceWith(row(d.task));
          shown.set(id, d.task);
        } catch { /* removed meanwhile: the next reload drops it */ }
      }));
    }
    counts();
  }, 250);
  const stop = onEvent((e) => {
    if (e === RESYNC) { reload = true; flush(); return; }
    if (!e.task_id) return;
    if ((e.kind === 'submitted' || e.kind === 'retried') && !before) reload = true;
    else if (e.kind === 'removed') reload = true;
    // A task entering or leaving the states shown changes which rows belong.
    else if (filter.state && !before && ['started', 'finished', 'attempt_ended', 'released'].includes(e.kind)) reload = true;
    else if (shown.has(e.task_id)) changed.add(e.task_id);
    else if (e.kind === 'started' || e.kind === 'finished') { /* only the counts */ } else return;
    flush();
  });
  // Running durations tick.
  const tick = setInterval(() => {
    for (const td of tbody.querySelectorAll('td[data-state="running"]')) {
      td.textContent = taskDuration({started_at: Number(td.dataset.started), state: 'running'});
    }
  }, 1000);
  return () => { stop(); clearInterval(tick); };
}
