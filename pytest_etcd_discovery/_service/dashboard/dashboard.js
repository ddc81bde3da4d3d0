// The fake's dashboard: polls GET /_fake/changes (only what changed since the last poll)
// and drives the control API.  Plain DOM calls and textContent only: tokens, names, paths
// and values come from clients and are never parsed as HTML.
"use strict";

const POLL_MS = 1000;
const TICK_MS = 1000;
const CALLS_KEPT = 500; // the journal the filter searches: the latest calls
const CALLS_SHOWN = 25;

// A fake started with --control-token: the page is opened once as /_fake/?token=TOKEN.
// The token is kept for this tab (sessionStorage, so a reload keeps working), taken out
// of the address bar (no copy of it in a shared link or a screenshot) and sent as a
// bearer header on every API request.
const TOKEN_KEY = "etcd-discovery-fake-token";
const controlToken = (() => {
  const params = new URLSearchParams(location.search);
  const given = params.get("token");
  if (given !== null) {
    sessionStorage.setItem(TOKEN_KEY, given);
    params.delete("token");
    const rest = params.toString();
    history.replaceState(null, "", location.pathname + (rest ? "?" + rest : "") + location.hash);
  }
  return sessionStorage.getItem(TOKEN_KEY);
})();

// What the page knows of the fake: kept between polls, changed by what each poll says.
const view = {
  cursor: null,
  clock: null, // {now, frozen, at}: the fake's time and when (performance.now()) we read it
  tokens: new Map(), // token -> its data
  rows: new Map(), // token -> its <tr>
  faults: [],
  calls: [], // the latest CALLS_KEPT, oldest first
};

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
  for (const child of children) node.append(child instanceof Node ? child : String(child));
  return node;
}

function headers(extra) {
  const all = { Accept: "application/json", ...extra };
  if (controlToken) all.Authorization = "Bearer " + controlToken;
  return all;
}

async function reply(response) {
  const data = await response.json();
  if (!response.ok) throw new Error(data.message || response.statusText);
  return data;
}

async function api(path, method = "GET", body = undefined) {
  const init = { method, headers: headers() };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  return reply(await fetch(path, init));
}

// -- time --------------------------------------------------------------------------------

function fakeNow() {
  const clock = view.clock;
  if (clock === null) return Date.now() / 1000;
  return clock.frozen ? clock.now : clock.now + (performance.now() - clock.at) / 1000;
}

function ttlText(seconds) {
  if (seconds === null || seconds === undefined) return "no TTL";
  if (seconds <= 0) return "expiring";
  const d = Math.floor(seconds / 86400), h = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
  return "TTL " + (d ? `${d}d ${h}h` : h ? `${h}h ${m}m` : m ? `${m}m ${s}s` : `${s}s`);
}

function spanText(seconds) {
  const abs = Math.abs(seconds);
  if (abs < 1) return "";
  const d = Math.floor(abs / 86400), h = Math.floor((abs % 86400) / 3600);
  const m = Math.floor((abs % 3600) / 60);
  const text = d ? `${d}d ${h}h` : h ? `${h}h ${m}m` : m ? `${m}m` : `${Math.floor(abs)}s`;
  return `${text} ${seconds > 0 ? "ahead of" : "behind"} real time`;
}

// Between polls the TTLs count down on the fake's clock (still while it is frozen).
function tick() {
  const now = fakeNow();
  for (const span of document.querySelectorAll("span.ttl[data-expires]")) {
    span.textContent = ttlText(Math.ceil(Number(span.dataset.expires) - now - 1e-6));
  }
}

// -- drawing -----------------------------------------------------------------------------

function placeholder(table, columns, text) {
  const body = table.tBodies[0];
  const empty = body.querySelector("tr.placeholder");
  if (body.rows.length === (empty ? 1 : 0)) {
    if (!empty) body.append(el("tr", { class: "placeholder" }, el("td", { colspan: columns, class: "empty" }, text)));
  } else if (empty && body.rows.length > 1) {
    empty.remove();
  }
}

function drawClock(clock) {
  view.clock = { now: clock.now, frozen: clock.frozen, at: performance.now() };
  const time = document.getElementById("clock-time");
  time.textContent = clock.time;
  time.dataset.now = clock.now;
  const state = document.getElementById("clock-state");
  state.textContent = clock.frozen ? "frozen" : "running";
  state.className = clock.frozen ? "badge frozen" : "badge";
  document.getElementById("clock-offset").textContent = spanText(clock.now - Date.now() / 1000);
  const freeze = document.getElementById("freeze");
  freeze.textContent = clock.frozen ? "Unfreeze" : "Freeze";
  freeze.disabled = !clock.controllable;
}

function memberItem(m, expired) {
  const item = el("li", { class: expired ? "member expired" : "member", "data-name": m.name },
    el("strong", {}, m.name), " ", m.peer_urls.join(", "), " · ");
  if (expired) {
    item.append(el("span", { class: "badge expired" }, "expired"));
  } else if (m.expires !== null && m.expires !== undefined) {
    item.append(el("span", { class: "ttl", "data-expires": m.expires }, ttlText(m.ttl)));
  } else {
    item.append(el("span", { class: "ttl" }, "no TTL"));
  }
  return item;
}

function tokenRow(t) {
  const members = el("ul", { class: "members" });
  for (const m of t.members) members.append(memberItem(m, false));
  for (const m of t.expired || []) members.append(memberItem(m, true));
  if (members.children.length === 0) members.append(el("li", { class: "empty" }, "none yet"));
  const count = t.members.length;
  const registered = el("td", { class: "registered" });
  if (t.size !== null && t.size > 0) {
    registered.append(el("progress", { max: t.size, value: Math.min(count, t.size) }), " ",
      el("span", { class: count >= t.size ? "count full" : "count" }, `${count} of ${t.size}`));
  } else {
    registered.append(el("span", { class: "count" }, `${count} of ${t.size_value ?? "–"}`));
  }
  return el("tr", { class: "token", "data-token": t.token, "data-created": t.createdIndex },
    el("td", { class: "mono" }, el("a", { href: t.url }, t.token)),
    registered, el("td", {}, t.state ?? "–"), el("td", {}, members));
}

function drawTokens(change, index) {
  document.getElementById("index").textContent = `index ${index}`;
  if (!change) return;
  const body = document.getElementById("tokens").tBodies[0];
  if (change.full) {
    view.tokens.clear();
    view.rows.clear();
    body.replaceChildren();
  }
  for (const name of change.removed) {
    view.tokens.delete(name);
    view.rows.get(name)?.remove();
    view.rows.delete(name);
  }
  for (const t of change.tokens) {
    const row = tokenRow(t);
    const old = view.rows.get(t.token);
    view.tokens.set(t.token, t);
    view.rows.set(t.token, row);
    if (old) {
      old.replaceWith(row);
    } else if (change.full) {
      body.append(row); // a full listing comes oldest first
    } else {
      // A new token: before the first one created after it.
      const later = [...body.rows].find((r) => Number(r.dataset.created) > t.createdIndex);
      body.insertBefore(row, later || null);
    }
  }
  placeholder(document.getElementById("tokens"), 4, "no tokens");
  const n = view.tokens.size;
  document.getElementById("token-count").textContent = `· ${n} token${n === 1 ? "" : "s"}`;
}

function drawFaults(faults) {
  if (!faults) return;
  view.faults = faults;
  const body = document.getElementById("faults").tBodies[0];
  body.replaceChildren();
  for (const f of faults) {
    const remove = el("button", { type: "button", class: "delete-fault", title: "remove this rule" }, "Delete");
    if (f.id === undefined || f.id === null) {
      remove.disabled = true; // a fake without fault ids: "Remove all" only
    } else {
      remove.dataset.id = f.id;
      remove.addEventListener("click", () => act(`faults/${encodeURIComponent(f.id)}`, "DELETE"));
    }
    body.append(el("tr", { class: f.exhausted ? "fault exhausted" : "fault", "data-id": f.id ?? "" },
      el("td", {}, f.description + (f.exhausted ? " (used up)" : "")),
      el("td", {}, f.seen), el("td", {}, f.times === null ? f.fired : `${f.fired} of ${f.times}`),
      el("td", {}, remove)));
  }
  placeholder(document.getElementById("faults"), 4, "no faults");
}

function mergeCalls(change) {
  if (!change) return false;
  const byNumber = new Map(change.full ? [] : view.calls.map((c) => [c.number, c]));
  for (const c of change.calls) byNumber.set(c.number, c);
  view.calls = [...byNumber.values()].sort((a, b) => a.number - b.number).slice(-CALLS_KEPT);
  return true;
}

function callMatches(c, method, status, text) {
  if (method && c.method !== method) return false;
  if (status === "pending" && c.status !== null) return false;
  if (status === "fault" && !c.fault) return false;
  if (/^[1-5]$/.test(status) && String(c.status ?? "").charAt(0) !== status) return false;
  const where = (c.path + (c.query ? "?" + c.query : "")).toLowerCase();
  return !text || where.includes(text.toLowerCase());
}

function drawCalls() {
  const method = document.getElementById("filter-method").value;
  const status = document.getElementById("filter-status").value;
  const text = document.getElementById("filter-text").value.trim();
  const matching = view.calls.filter((c) => callMatches(c, method, status, text));
  const body = document.getElementById("calls").tBodies[0];
  body.replaceChildren();
  for (const c of matching.slice(-CALLS_SHOWN).reverse()) {
    body.append(el("tr", { class: "call", "data-number": c.number }, el("td", {}, c.number), el("td", {}, c.method),
      el("td", { class: "mono" }, c.path + (c.query ? "?" + c.query : "")),
      el("td", { class: "st" + String(c.status ?? "").charAt(0) }, c.status ?? "pending"),
      el("td", {}, c.transport), el("td", {}, c.fault ?? "")));
  }
  const filtered = method || status || text;
  placeholder(document.getElementById("calls"), 6, filtered ? "no request matches" : "no requests yet");
  document.getElementById("calls-count").textContent = filtered
    ? `· ${matching.length} of the last ${view.calls.length} match`
    : `· ${Math.min(view.calls.length, CALLS_SHOWN)} of the last ${view.calls.length}`;
}

// -- polling -----------------------------------------------------------------------------

let polling = null;
let pollAgain = false;

async function pollOnce() {
  const status = document.getElementById("status");
  try {
    const query = new URLSearchParams({ calls: CALLS_KEPT });
    if (view.cursor) query.set("since", view.cursor);
    const data = await api("changes?" + query);
    drawClock(data.clock);
    drawTokens(data.tokens, data.index);
    drawFaults(data.faults);
    if (mergeCalls(data.calls)) drawCalls();
    view.cursor = data.cursor;
    tick();
    status.textContent = "updated " + new Date().toLocaleTimeString();
    status.className = "status";
  } catch (err) {
    status.textContent = "cannot reach the fake: " + err.message;
    status.className = "status error";
  }
}

// One poll at a time; a poll asked for meanwhile (after an action) runs right after it.
function refresh() {
  if (polling) {
    pollAgain = true;
    return polling;
  }
  polling = (async () => {
    do {
      pollAgain = false;
      await pollOnce();
    } while (pollAgain);
    polling = null;
  })();
  return polling;
}

// -- actions -----------------------------------------------------------------------------

function said(text, error = false) {
  const line = document.getElementById("action-status");
  line.textContent = text;
  line.className = error ? "action-status error" : "action-status";
}

async function act(path, method = "POST", body = undefined, done = undefined) {
  try {
    const data = await api(path, method, body);
    said(done ? done(data) : `${method} /_fake/${path}: done`);
  } catch (err) {
    said(`${method} /_fake/${path}: ${err.message}`, true);
  }
  await refresh();
}

function numberOrNull(id) {
  const raw = document.getElementById(id).value.trim();
  return raw === "" ? null : Number(raw);
}

function faultRule() {
  const rule = { action: document.getElementById("fault-action").value };
  const route = document.getElementById("fault-route").value;
  if (route !== "*") rule.route = route;
  const method = document.getElementById("fault-method").value;
  if (method) rule.method = method;
  const times = numberOrNull("fault-times");
  if (times !== null) rule.times = times;
  if (rule.action === "status") rule.status = numberOrNull("fault-status") ?? 503;
  if (rule.action === "delay") rule.delay = numberOrNull("fault-delay") ?? 1;
  return rule;
}

// The snapshot as the fake wrote it (not parsed and re-written: its int64 expiry
// nanoseconds are beyond what a JavaScript number holds exactly).
async function download() {
  try {
    const response = await fetch("state", { headers: headers() });
    if (!response.ok) throw new Error((await response.json()).message || response.statusText);
    const blob = await response.blob();
    const link = el("a", { href: URL.createObjectURL(blob), download: "etcd-discovery-state.json" });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 60000);
    said(`GET /_fake/state: saved etcd-discovery-state.json (${blob.size} bytes)`);
  } catch (err) {
    said(`GET /_fake/state: ${err.message}`, true);
  }
}

async function upload(file) {
  try {
    const text = await file.text();
    const response = await fetch("state", {
      method: "PUT", body: text, headers: headers({ "Content-Type": "application/json" }),
    });
    const data = await reply(response);
    said(`PUT /_fake/state: restored ${file.name} (index ${data.index})`);
  } catch (err) {
    said(`PUT /_fake/state: ${file.name}: ${err.message}`, true);
  }
  await refresh();
}

document.addEventListener("DOMContentLoaded", () => {
  const on = (id, type, handler) => document.getElementById(id).addEventListener(type, handler);
  on("advance-form", "submit", (event) => {
    event.preventDefault();
    act("clock/advance", "POST", { seconds: Number(document.getElementById("advance-seconds").value) });
  });
  on("advance-week", "click", (event) => {
    act("clock/advance", "POST", { seconds: Number(event.target.dataset.seconds) });
  });
  on("freeze", "click", () => act(view.clock?.frozen ? "clock/unfreeze" : "clock/freeze"));
  on("token-form", "submit", (event) => {
    event.preventDefault();
    const body = { size: numberOrNull("token-size") ?? 3 };
    const members = numberOrNull("token-members");
    if (members) body.members = members;
    act("tokens", "POST", body, (data) => `created token ${data.token}`);
  });
  on("fault-form", "submit", (event) => {
    event.preventDefault();
    act("faults", "POST", faultRule(), (data) => `added fault: ${data.description}`);
  });
  on("clear-faults", "click", () => act("faults", "DELETE", undefined, (data) => `removed ${data.removed} fault(s)`));
  on("reset", "click", () => {
    if (confirm("Reset the fake? Every token, fault and logged request goes; the clock runs again.")) {
      act("reset", "POST", undefined, () => "reset: empty store, clock at real time, no faults");
    }
  });
  on("download", "click", download);
  on("upload", "change", (event) => {
    const file = event.target.files[0];
    event.target.value = ""; // the same file can be chosen again
    if (file) upload(file);
  });
  for (const id of ["filter-method", "filter-status", "filter-text"]) {
    on(id, "input", drawCalls);
    on(id, "change", drawCalls);
  }
  on("calls-filter", "submit", (event) => event.preventDefault());
  refresh();
  setInterval(refresh, POLL_MS);
  setInterval(tick, TICK_MS);
});
