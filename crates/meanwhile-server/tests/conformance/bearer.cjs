// Preloaded into the MCP conformance suite (node --require): the suite's client has
// no way to send credentials, and the daemon's TCP listener wants its bearer token
// on every request. This adds `Authorization: Bearer $MEANWHILE_TOKEN` to every
// request the suite makes (through fetch or undici), and changes nothing else, so
// the Host and Origin headers the suite tests reach the daemon as it sent them.
"use strict";
const path = require("path");
const { createRequire } = require("module");

const token = process.env.MEANWHILE_TOKEN;
const suite = process.env.MEANWHILE_CONFORMANCE_DIR;
if (!token || !suite) {
  throw new Error("bearer.cjs needs MEANWHILE_TOKEN and MEANWHILE_CONFORMANCE_DIR");
}
// The undici the suite itself uses; its global dispatcher also serves Node's fetch.
const { Agent, setGlobalDispatcher } = createRequire(path.join(suite, "package.json"))("undici");

function withToken(headers) {
  const auth = `Bearer ${token}`;
  if (headers == null) return { authorization: auth };
  if (Array.isArray(headers)) return [...headers, "authorization", auth];
  if (typeof headers[Symbol.iterator] === "function") {
    const flat = [];
    for (const [k, v] of headers) flat.push(k, v);
    return [...flat, "authorization", auth];
  }
  return { ...headers, authorization: auth };
}

class Bearer extends Agent {
  dispatch(opts, handler) {
    return super.dispatch({ ...opts, headers: withToken(opts.headers) }, handler);
  }
}

setGlobalDispatcher(new Bearer());
