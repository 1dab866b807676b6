// The other pages: queues, schedules, budgets, alerts, notifications, the audit
// trail and the nodes, each with the actions its API offers, read again when an
// event says something it shows changed.

import {get, post, put, del, query, onEvent, debounce, RESYNC} from './api.js';
import {h, replace, time, dateTime, zoned, duration, errorLine, act, stateBadge} from './dom.js';

/** A table from rows of cells. */
function table(headers, rows, empty) {
  if (!rows.length) return h('p', {class: 'empty'}, empty);
  return h('table', {}, h('thead', {}, h('tr', {}, headers.map((c) => h('th', {}, c)))),
    h('tbody', {}, rows.map((cells) => h('tr', {}, cells.map((c) => h('td', {}, c))))));
}

function button(label, fn, cls = '', title = '') {
  const b = h('button', {type: 'button', class: cls, title, onclick: () => act(b, fn)}, label);
  return b;
}

/** A page that draws itself from `load`, again when an event of `kinds` arrives. */
function livePage(main, title, load, kinds, everyTask = false) {
  const body = h('div');
  replace(main, h('h1', {}, title), body);
  let alive = true;
  async function draw() {
    try {
      const el = await load(draw);
      if (alive) replace(body, el);
    } catch (e) {
      if (alive) replace(body, errorLine(e));
    }
  }
  draw();
  const later = debounce(draw, everyTask ? 1000 : 300);
  const stop = onEvent((e) => { if (e === RESYNC || kinds.includes(e.kind) || (everyTask && e.task_id)) later(); });
  return () => { alive = false; stop(); };
}

const taskLink = (id) => (id ? h('a', {href: `/ui/tasks/${id}`, 'data-link': ''}, `#${id}`) : '');

export function queuesView(main) {
  return livePage(main, 'Queues', async (redraw) => {
    const queues = await get('/v1/queues');
    return table(['queue', 'running', 'pending', 'max parallel', 'per key', 'rate', 'state', ''],
      queues.map((q) => {
        const limit = h('input', {type: 'number', min: 1, value: q.max_parallel, name: `max_parallel-${q.name}`, 'aria-label': `max parallel of ${q.name}`, class: 'small'});
        const path = `/v1/queues/${encodeURIComponent(q.name)}`;
        return [
          h('a', {href: `/ui/?queue=${encodeURIComponent(q.name)}`, 'data-link': ''}, q.name),
          q.running, q.pending,
          h('span', {class: 'inline'}, limit, button('Set', async () => { await put(path, {max_parallel: Number(limit.value)}); redraw(); })),
          q.per_key ?? '', q.rate ?? '',
          q.paused ? h('span', {class: 'badge paused'}, `paused${q.pause_reason ? ` (${q.pause_reason})` : ''}`) : 'active',
          q.paused ? button('Resume', async () => { await put(path, {paused: false}); redraw(); })
            : button('Pause', async () => { await put(path, {paused: true}); redraw(); }),
        ];
      }), 'No queues.');
  }, ['queue', 'budget'], true);
}

export function schedulesView(main) {
  return livePage(main, 'Schedules', async (redraw) => {
    const list = await get('/v1/schedules');
    return table(['schedule', 'when', 'next', 'last', 'last task', 'fired', 'missed', ''],
      list.map((s) => {
        const path = `/v1/schedules/${encodeURIComponent(s.name)}`;
        return [
          h('span', {title: s.task.command || (s.task.argv || []).join(' ') || s.task.prompt || ''}, s.name),
          s.cron ? `cron ${s.cron}${s.tz ? ` (${s.tz})` : ''}` : `every ${s.every}`,
          s.paused ? h('span', {class: 'badge paused'}, 'paused') : h('span', {class: 'when'}, zoned(s.next_fire, s.tz)),
          h('span', {class: 'when'}, zoned(s.last_fire, s.tz)),
          s.last_task ? h('span', {}, taskLink(s.last_task), ' ', s.last_state ? stateBadge(s.last_state) : '') : '',
          s.fired, s.missed_count,
          h('span', {class: 'inline'},
            s.paused ? button('Resume', async () => { await post(`${path}/resume`); redraw(); })
              : button('Pause', async () => { await post(`${path}/pause`); redraw(); }),
            button('Run now', async () => { await post(`${path}/run`); redraw(); }),
            button('Remove', async () => { if (confirm(`Remove schedule ${s.name}? Its tasks stay.`)) { await del(path); redraw(); } }, 'danger')),
        ];
      }), 'No schedules. Add one with `meanwhile schedule add`.');
  }, ['schedule']);
}

/** Used against limit, as a bar. */
function usage(used, limit, fmt) {
  if (limit === null || limit === undefined) return fmt(used);
  const pct = limit > 0 ? Math.min(100, (used / limit) * 100) : 100;
  return h('span', {class: 'progress', title: `${pct.toFixed(1)}%`},
    h('span', {class: 'bar'}, h('span', {class: `fill${pct >= 100 ? ' full' : ''}`, style: {width: `${pct}%`}})),
    h('span', {class: 'pct'}, `${fmt(used)} / ${fmt(limit)}`));
}

const usd = (n) => `$${Number(n).toFixed(2)}`;
const count = (n) => Number(n).toLocaleString();

export function budgetsView(main) {
  return livePage(main, 'Budgets', async (redraw) => {
    const list = await get('/v1/budgets');
    const queue = h('input', {name: 'queue', placeholder: 'queue', required: true, 'aria-label': 'queue'});
    const win = h('select', {name: 'window', 'aria-label': 'window'}, ['day', 'hour', 'month', 'total'].map((w) => h('option', {value: w}, w)));
    const tokens = h('input', {name: 'tokens', type: 'number', min: 0, placeholder: 'tokens', 'aria-label': 'tokens', class: 'small'});
    const cost = h('input', {name: 'cost_usd', type: 'number', min: 0, step: '0.01', placeholder: 'US dollars', 'aria-label': 'cost in US dollars', class: 'small'});
    const form = h('form', {class: 'inline', onsubmit: (e) => {
      e.preventDefault();
      const spec = {window: win.value};
      if (tokens.value) spec.tokens = Number(tokens.value);
      if (cost.value) spec.cost_usd = Number(cost.value);
      act(form.querySelector('button'), async () => { await put(`/v1/budgets/${encodeURIComponent(queue.value)}`, spec); redraw(); });
    }}, 'Set a budget: ', queue, win, tokens, cost, h('button', {type: 'submit'}, 'Set'));
    return h('div', {}, table(['queue', 'window', 'tokens', 'cost', 'calls', 'state', 'window ends', ''],
      list.map((b) => [
        b.queue, b.window,
        b.tokens !== null && b.tokens !== undefined ? usage(b.used_tokens, b.tokens, count) : count(b.used_tokens),
        b.cost_usd !== null && b.cost_usd !== undefined ? usage(b.used_cost_usd, b.cost_usd, usd) : usd(b.used_cost_usd),
        b.model_calls,
        h('span', {class: `badge budget-${b.state}`}, b.state),
        time(b.window_end),
        button('Remove', async () => { if (confirm(`Remove the budget of ${b.queue}?`)) { await del(`/v1/budgets/${encodeURIComponent(b.queue)}`); redraw(); } }, 'danger'),
      ]), 'No budgets.'), form);
  }, ['budget', 'queue', 'finished']);
}

/** Whether a person's acknowledgement of alert `a` holds now. */
const acked = (a) => a.state === 'firing' && a.acked && (!a.acked.until || a.acked.until > Date.now());

/** The acknowledgement of a firing alert: who and until when, or the way to give one. */
function ackCell(a, redraw) {
  if (a.state !== 'firing') return '';
  const hold = h('select', {name: `ack-for-${a.id}`, 'aria-label': `acknowledge alert ${a.id} for`},
    [['1h', 'for 1 hour'], ['4h', 'for 4 hours'], ['1d', 'for 1 day'], ['', 'until it resolves']].map(([v, t]) => h('option', {value: v}, t)));
  const give = h('span', {class: 'inline'}, hold, button('Acknowledge', async () => {
    await post(`/v1/alerts/${a.id}/ack`, hold.value ? {for: hold.value} : {});
    redraw();
  }, '', 'No reminders reach the sinks, and health does not count it, for this long'));
  if (!acked(a)) return give;
  return h('span', {}, `by ${a.acked.by}`, a.acked.until ? ` until ${dateTime(a.acked.until)}` : ' until it resolves', give);
}

export function alertsView(main, params, go) {
  const all = params.get('all') === 'true';
  return livePage(main, 'Alerts', async (redraw) => {
    const list = await get(`/v1/alerts${query({all: all || undefined})}`);
    const toggle = h('p', {}, all ? h('a', {href: '/ui/alerts', 'data-link': ''}, 'Only the firing ones')
      : h('a', {href: '/ui/alerts?all=true', 'data-link': ''}, 'Firing and resolved'));
    return h('div', {}, toggle, table(['state', 'kind', 'message', 'queue', 'task', 'fired', 'resolved', 'acknowledged'],
      list.map((a) => [h('span', {class: `badge alert-${acked(a) ? 'acked' : a.state}`, 'data-alert': a.id}, acked(a) ? 'acked' : a.state), a.kind, a.message, a.queue || '',
        taskLink(a.task), dateTime(a.fired_at), dateTime(a.resolved_at), ackCell(a, redraw)]), all ? 'No alerts.' : 'No alert fires.'));
  }, ['alert']);
}

export function notificationsView(main, params, go) {
  const session = params.get('session') || '';
  return livePage(main, 'Notifications', async (redraw) => {
    // Sessions are named by the tasks that notify them.
    const page = await get('/v1/tasks?limit=1000');
    const sessions = [...new Set(page.tasks.map((t) => t.session).filter(Boolean))].sort();
    const pick = h('form', {class: 'inline', onsubmit: (e) => {
      e.preventDefault();
      go(`/ui/notifications${query({session: pick.elements.session.value.trim()})}`);
    }}, h('input', {name: 'session', list: 'sessions', value: session, placeholder: 'session', 'aria-label': 'session'}),
    h('datalist', {id: 'sessions'}, sessions.map((s) => h('option', {value: s}))),
    h('button', {type: 'submit'}, 'Show'));
    if (!session) {
      return h('div', {}, pick, h('p', {}, 'Sessions of recent tasks: ',
        sessions.length ? sessions.map((s) => [h('a', {href: `/ui/notifications?session=${encodeURIComponent(s)}`, 'data-link': ''}, s), ' ']) : 'none.'));
    }
    const path = `/v1/sessions/${encodeURIComponent(session)}/notifications`;
    const list = await get(`${path}?limit=1000`);
    return h('div', {}, pick, h('p', {}, `Undelivered notices of ${session}: they reach its next model call. `,
      list.length ? button('Mark all delivered', async () => { if (confirm('Mark them delivered? The session will not see them.')) { await post(`${path}/drain?limit=1000`); redraw(); } }, 'danger') : ''),
    table(['task', 'notice', 'state', 'name', 'exit', 'duration', 'when', 'last output'],
      list.map((n) => [taskLink(n.task_id), n.kind.replace(/_/g, ' '), stateBadge(n.state), n.name, n.exit_code ?? '',
        duration(n.duration_ms), time(n.created_at), h('pre', {class: 'tail'}, n.prompt || n.tail || '')]), 'Nothing waits for this session.'));
  }, ['finished', 'waiting_for_input', 'listening']);
}

export function auditView(main, params, go) {
  const cursor = params.get('cursor') || '';
  const task = params.get('task') || '';
  return livePage(main, 'Audit trail', async () => {
    const page = await get(`/v1/audit${query({cursor, task, limit: 100, order: 'newest'})}`);
    const verdict = h('span');
    const filter = h('form', {class: 'inline', onsubmit: (e) => {
      e.preventDefault();
      go(`/ui/audit${query({task: filter.elements.task.value.trim()})}`);
    }}, h('input', {name: 'task', type: 'number', min: 1, value: task, placeholder: 'task id', 'aria-label': 'task', class: 'small'}),
    h('button', {type: 'submit'}, 'Filter'),
    button('Verify the chain', async () => {
      const v = await get('/v1/audit/verify');
      replace(verdict, v.intact ? h('span', {class: 'badge ok'}, `intact up to record ${v.last_seq ?? 0}`)
        : h('span', {class: 'badge alert-firing'}, `changed at record ${v.first_bad_seq ?? '?'}`));
    }), verdict);
    const pager = [];
    if (cursor) pager.push(h('a', {href: `/ui/audit${query({task})}`, 'data-link': ''}, '« Newest'));
    if (page.next) pager.push(h('a', {href: `/ui/audit${query({task, cursor: page.next})}`, 'data-link': '', rel: 'next'}, 'Older »'));
    return h('div', {}, filter, h('p', {class: 'note'}, 'Newest first.'), table(['#', 'when', 'who', 'action', 'subject', 'summary'],
      page.records.map((r) => [r.seq, h('span', {class: 'when'}, dateTime(r.at)), r.who, r.action, r.task_id ? taskLink(r.task_id) : r.subject, r.summary]),
      'No records.'), pager.length ? h('nav', {class: 'pager'}, pager) : '');
  }, []);
}

export function nodesView(main) {
  return livePage(main, 'Nodes', async (redraw) => {
    const list = await get('/v1/nodes');
    return table(['node', 'address', 'version', 'alive', 'running', 'heartbeat', 'started', ''],
      list.map((n) => [n.name, n.address || '', n.version, n.alive ? h('span', {class: 'badge ok'}, 'alive') : h('span', {class: 'badge alert-firing'}, 'silent'),
        n.running, time(n.heartbeat_at), time(n.started_at),
        n.alive ? '' : button('Forget', async () => { if (confirm(`Forget node ${n.name}?`)) { await del(`/v1/nodes/${encodeURIComponent(n.name)}`); redraw(); } }, 'danger')]),
      'No nodes.');
  }, ['started', 'finished', 'alert']);
}
