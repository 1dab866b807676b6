// The page's router: each address under /ui/ is a view drawn into <main>; links
// marked data-link move without reloading, and the browser's back button works.

import {get} from './api.js';
import {h, replace} from './dom.js';
import {tasksView} from './tasks.js';
import {taskView} from './task.js';
import {queuesView, schedulesView, budgetsView, alertsView, notificationsView, auditView, nodesView} from './pages.js';
import {chartsView} from './charts.js';

const VIEWS = [
  ['/ui/', 'Tasks', tasksView],
  ['/ui/queues', 'Queues', queuesView],
  ['/ui/schedules', 'Schedules', schedulesView],
  ['/ui/budgets', 'Budgets', budgetsView],
  ['/ui/alerts', 'Alerts', alertsView],
  ['/ui/notifications', 'Notifications', notificationsView],
  ['/ui/audit', 'Audit', auditView],
  ['/ui/nodes', 'Nodes', nodesView],
  ['/ui/charts', 'Charts', chartsView],
];

const main = document.getElementById('main');
const nav = document.getElementById('nav');
let leave = () => {};

function go(url, push = true) {
  if (push) history.pushState(null, '', url);
  show();
}

async function show() {
  leave();
  leave = () => {};
  const {pathname, searchParams} = new URL(location.href);
  for (const a of nav.querySelectorAll('a')) a.classList.toggle('here', a.getAttribute('href') === pathname);
  const task = pathname.match(/^\/ui\/tasks\/(\d+)$/);
  const view = task ? null : VIEWS.find(([p]) => p === pathname);
  document.title = `${task ? `Task #${task[1]}` : view ? view[1] : 'Not found'} · meanwhile`;
  if (task) {
    leave = await taskView(main, Number(task[1]), go);
  } else if (view) {
    leave = (await view[2](main, searchParams, go)) || (() => {});
  } else {
    replace(main, h('h1', {}, 'Not found'), h('p', {}, 'No page here. ', h('a', {href: '/ui/', 'data-link': ''}, 'The tasks')));
  }
}

replace(nav, VIEWS.map(([p, name]) => h('a', {href: p, 'data-link': ''}, name)));
document.addEventListener('click', (e) => {
  const a = e.target.closest('a[data-link]');
  if (!a || e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
  e.preventDefault();
  go(a.getAttribute('href'));
});
window.addEventListener('popstate', () => show());

// The daemon's name in the header.
get('/v1/status').then((s) => {
  const who = document.getElementById('node');
  if (who) who.textContent = `${s.node} · v${s.version}`;
}).catch(() => {});
show();
