// The fake's dashboard: polls the control API's JSON endpoints and draws them.
// Plain DOM calls and textContent only: paths and values come from clients.
"use strict";

const POLL_MS = 1000;
const CALLS_SHOWN = 25;
let frozen = false;

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

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
  for (const child of children) node.append(child instanceof Node ? child : String(child));
  return node;
}

async function api(path, method = "GET", body = undefined) {
  const init = { method, headers: { Accept: "application/json" } };
  if (controlToken) init.headers.Authorization = "Bearer " + controlToken;
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const reply = await fetch(path, init);
  const data = await reply.json();
  if (!reply.ok) throw new Error(data.message || reply.statusText);
  return data;
}

function fill(table, rows, columns, emptyText) {
  const body = table.tBodies[0];
  body.replaceChildren();
  if (rows.length === 0) {
    body.append(el("tr", {}, el("td", { colspan: columns, class: "empty" }, emptyText)));
  }
  for (const row of rows) body.append(row);
}

function ttlText(seconds) {
  if (seconds === null || seconds === undefined) return "no TTL";
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

function drawClock(clock) {
  frozen = clock.frozen;
  const time = document.getElementById("clock-time");
  time.textContent = clock.time;
  time.dataset.now = clock.now;
  const state = document.getElementById("clock-state");
  state.textContent = clock.frozen ? "frozen" : "running";
  state.className = clock.frozen ? "badge frozen" : "badge";
  document.getElementById("clock-offset").textContent = spanText(clock.now - Date.now() / 1000);
  document.getElementById("freeze").textContent = clock.frozen ? "Unfreeze" : "Freeze";
}

function drawTokens(data) {
  document.getElementById("index").textContent = `index ${data.index}`;
  const rows = data.tokens.map((t) => {
    const members = el("ul", { class: "members" });
    for (const m of t.members) {
      members.append(el("li", { class: "member", "data-name": m.name },
        el("strong", {}, m.name), " ", m.peer_urls.join(", "), " · ", ttlText(m.ttl)));
    }
    if (t.members.length === 0) members.append(el("li", { class: "empty" }, "none yet"));
    return el("tr", { class: "token", "data-token": t.token },
      el("td", { class: "mono" }, el("a", { href: t.url }, t.token)),
      el("td", {}, t.size ?? "–"), el("td", {}, t.state ?? "–"), el("td", {}, members));
  });
  fill(document.getElementById("tokens"), rows, 4, "no tokens");
}

function drawFaults(data) {
  const rows = data.faults.map((f) => el("tr", { class: f.exhausted ? "fault exhausted" : "fault" },
    el("td", {}, f.description + (f.exhausted ? " (used up)" : "")),
    el("td", {}, f.seen), el("td", {}, f.times === null ? f.fired : `${f.fired} of ${f.times}`)));
  fill(document.getElementById("faults"), rows, 3, "no faults");
}

function drawCalls(data) {
  const rows = data.calls.slice().reverse().map((c) => el("tr", { class: "call" },
    el("td", {}, c.number), el("td", {}, c.method),
    el("td", { class: "mono" }, c.path + (c.query ? "?" + c.query : "")),
    el("td", { class: "st" + String(c.status ?? "").charAt(0) }, c.status ?? "pending"),
    el("td", {}, c.transport), el("td", {}, c.fault ?? "")));
  fill(document.getElementById("calls"), rows, 6, "no requests yet");
}

async function refresh() {
  const status = document.getElementById("status");
  try {
    const [clock, tokens, faults, calls] = await Promise.all([
      api("clock"), api("tokens"), api("faults"), api(`calls?limit=${CALLS_SHOWN}`),
    ]);
    drawClock(clock);
    drawTokens(tokens);
    drawFaults(faults);
    drawCalls(calls);
    status.textContent = "updated " + new Date().toLocaleTimeString();
    status.className = "status";
  } catch (err) {
    status.textContent = "cannot reach the fake: " + err.message;
    status.className = "status error";
  }
}

async function act(path, body) {
  try {
    await api(path, "POST", body);
  } catch (err) {
    alert(err.message);
  }
  await refresh();
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("advance-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const seconds = Number(document.getElementById("advance-seconds").value);
    act("clock/advance", { seconds });
  });
  document.getElementById("advance-week").addEventListener("click", (event) => {
    act("clock/advance", { seconds: Number(event.target.dataset.seconds) });
  });
  document.getElementById("freeze").addEventListener("click", () => {
    act(frozen ? "clock/unfreeze" : "clock/freeze");
  });
  refresh();
  setInterval(refresh, POLL_MS);
});
