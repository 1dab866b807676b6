// One event stream for every tab of the dashboard, held by a shared worker: a
// browser allows six connections per host over HTTP/1.1, so a stream per tab
// would leave the seventh tab blank. The stream is open while at least one tab is
// visible, and closed while every tab is hidden; when it opens again the tabs are
// told to read what they show afresh (`resync`), as events passed meanwhile.

const tabs = new Map(); // port -> visible
let source = null;
let live = false;
let everOpen = false;

const KINDS = [
  'submitted', 'started', 'attempt_ended', 'finished', 'progress', 'stop_requested',
  'retried', 'released', 'removed', 'queue', 'schedule', 'alert', 'budget',
  'waiting_for_input', 'listening',
];

function tell(message) {
  for (const port of tabs.keys()) port.postMessage(message);
}

function setLive(on) {
  live = on;
  tell({type: 'live', live});
}

function open() {
  if (source && source.readyState !== EventSource.CLOSED) return;
  // EventSource resumes with Last-Event-ID by itself after a lost connection.
  source = new EventSource('/v1/events');
  source.onopen = () => {
    setLive(true);
    if (everOpen) tell({type: 'resync'});
    everOpen = true;
  };
  source.onerror = () => setLive(false);
  for (const kind of KINDS) {
    source.addEventListener(kind, (m) => tell({type: 'event', data: m.data}));
  }
}

function close() {
  if (!source) return;
  source.close();
  source = null;
  setLive(false);
}

/** Open while a tab is visible, closed while none is. */
function fit() {
  if ([...tabs.values()].some(Boolean)) open(); else close();
}

self.onconnect = (e) => {
  const port = e.ports[0];
  tabs.set(port, true);
  port.onmessage = (m) => {
    const {type} = m.data || {};
    if (type === 'visible') tabs.set(port, true);
    else if (type === 'hidden') tabs.set(port, false);
    else if (type === 'bye') tabs.delete(port);
    fit();
  };
  port.start();
  port.postMessage({type: 'live', live});
  fit();
};
