// The live page: polls the collector's JSON API and renders it. No framework, no build
// step; every value from an event goes in through textContent, never as HTML.
"use strict";

const POLL_MS = 1000;
// The page keeps this many events; older ones stay in the collector (/api/events).
const KEEP = 2000;
// Rows drawn at once: enough to scroll through, cheap to redraw every second.
const SHOW = 500;
const MINUTES = 30;

const state = { events: [], lastId: 0, loaded: false, selected: null, stats: null, statsKey: "", planKey: "" };
const $ = (id) => document.getElementById(id);

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = text;
  return e;
}

function shortTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toLocaleTimeString([], { hour12: false });
}

function matches(e, f) {
  if (f.type && e.type !== f.type) return false;
  if (f.valid && String(e.valid) !== f.valid) return false;
  if (f.plan && String(violationsOf(e).length > 0) !== f.plan) return false;
  if (f.name && !(e.name || "").toLowerCase().includes(f.name)) return false;
  return true;
}

function filters() {
  return {
    type: $("filter-type").value,
    valid: $("filter-valid").value,
    plan: $("filter-plan").value,
    name: $("filter-event").value.trim().toLowerCase(),
  };
}

function violationsOf(e) {
  return e.violations || [];
}

// One line per broken rule: `type /properties/price: expected integer, found string "12"`.
function violationList(violations) {
  const ul = el("ul", "violations");
  for (const v of violations) {
    const li = el("li");
    li.append(el("code", "rule", v.rule), " ", el("code", "pointer", v.pointer),
      ": expected " + v.expected + ", found " + v.found);
    ul.append(li);
  }
  return ul;
}

function renderEvents(newIds) {
  const f = filters();
  const shown = state.events.filter((e) => matches(e, f));
  const body = $("events").tBodies[0];
  const rows = document.createDocumentFragment();
  for (const e of shown.slice(0, SHOW)) {
    const tr = el("tr", e.valid ? "valid" : "invalid");
    const violations = violationsOf(e);
    if (violations.length) tr.classList.add("violating");
    if (newIds && newIds.has(e.id)) tr.classList.add("new");
    if (state.selected === e.id) tr.classList.add("selected");
    tr.dataset.id = e.id;
    const time = el("td", "time", shortTime(e.receivedAt));
    time.title = "received " + e.receivedAt + "\nevent time (skew-corrected) " + e.timestamp;
    tr.append(
      time,
      el("td", "type", e.type || "?"),
      el("td", "name", e.name || ""),
      el("td", "user", e.userId || ""),
      el("td", "device", e.anonymousId || ""),
    );
    const result = el("td", "result");
    if (e.valid) {
      result.append(el("span", "badge ok", "valid"));
    } else {
      result.append(el("span", "badge err", "invalid"), el("span", "reason", e.error || ""));
    }
    if (violations.length) {
      const n = violations.length;
      result.append(el("span", "badge warn", n + (n === 1 ? " plan violation" : " plan violations")),
        violationList(violations));
    }
    tr.append(result);
    rows.append(tr);
  }
  body.replaceChildren(rows);
  $("empty").hidden = state.events.length > 0;
  $("shown-count").textContent =
    shown.length === state.events.length
      ? state.events.length + " events"
      : shown.length + " of " + state.events.length + " events";
}

function showDetail(id) {
  const e = state.events.find((x) => x.id === id);
  if (!e) return;
  state.selected = id;
  history.replaceState(null, "", "#event=" + id);
  $("detail-id").textContent = "#" + e.id;
  const meta = $("detail-meta");
  meta.replaceChildren();
  const add = (k, v) => {
    if (v === null || v === undefined) return;
    meta.append(el("dt", null, k), el("dd", k === "error" ? "reason" : null, String(v)));
  };
  add("valid", e.valid);
  add("error", e.error);
  add("messageId", e.messageId);
  add("receivedAt", e.receivedAt);
  add("timestamp (corrected)", e.timestamp);
  add("originalTimestamp", e.originalTimestamp);
  add("sentAt", e.sentAt);
  const violations = violationsOf(e);
  add("plan violations", violations.length);
  const list = $("detail-violations");
  list.replaceChildren(...violationList(violations).children);
  list.hidden = violations.length === 0;
  $("detail-json").textContent = JSON.stringify(e.json, null, 2);
  $("detail").hidden = false;
  for (const tr of $("events").tBodies[0].rows) {
    tr.classList.toggle("selected", Number(tr.dataset.id) === id);
  }
}

// `#event=12` opens that event: a link to one event can be shared during a QA session.
function openFromHash() {
  const m = /^#event=(\d+)$/.exec(location.hash);
  if (m) showDetail(Number(m[1]));
}

function renderTop(id, items) {
  const list = $(id);
  list.replaceChildren();
  if (!items.length) {
    list.append(el("li", "none", "nothing yet"));
    return;
  }
  const max = items[0].count;
  for (const it of items) {
    const li = el("li");
    const bar = el("span", "bar");
    bar.style.width = Math.max(2, (100 * it.count) / max) + "%";
    li.append(bar, el("span", "item-name", it.name), el("span", "item-count", it.count));
    li.title = it.name + ": " + it.count;
    list.append(li);
  }
}

function minuteKey(d) {
  return d.toISOString().slice(0, 16);
}

function renderPerMinute(perMinute) {
  const counts = new Map(perMinute.map((m) => [m.minute, m.count]));
  const now = new Date();
  const keys = [];
  for (let i = MINUTES - 1; i >= 0; i--) keys.push(minuteKey(new Date(now - i * 60000)));
  const max = Math.max(1, ...keys.map((k) => counts.get(k) || 0));
  const bars = $("per-minute");
  bars.replaceChildren();
  for (const k of keys) {
    const n = counts.get(k) || 0;
    const b = el("div", "col");
    const fill = el("div", "fill");
    fill.style.height = (100 * n) / max + "%";
    b.title = k.slice(11) + " UTC: " + n + " events";
    b.dataset.minute = k;
    b.dataset.count = n;
    b.append(fill);
    bars.append(b);
  }
  $("per-minute-from").textContent = keys[0].slice(11);
  $("per-minute-to").textContent = keys[keys.length - 1].slice(11);
}

function renderStats(s) {
  $("stat-accepted").textContent = s.accepted;
  $("stat-invalid").textContent = s.invalid;
  $("stat-duplicates").textContent = s.duplicates;
  $("stat-requests").textContent = s.requests;
  $("stat-failed").textContent = s.failed_requests;
  renderTop("top-events", s.top_events);
  renderTop("top-screens", s.top_screens);
  renderTop("top-users", s.top_users);
  renderTop("top-devices", s.top_devices);
  renderPerMinute(s.per_minute);
}

function renderViolations(r) {
  $("plan-name").textContent = r.plan
    ? r.plan.id + " " + r.plan.version + " (" + r.plan.events + " events planned)"
    : "none: start the collector with --plan plan.json";
  $("stat-violating").textContent = r.violating_total;
  $("stat-violations").textContent = r.violations + " violations among the " + r.events + " events kept";
  renderTop("top-rules", r.by_rule.map((c) => ({ name: c.rule, count: c.count })));
  renderTop("unplanned", r.unplanned);
  renderTop("top-event-rules", r.by_event_rule.map((c) => ({ name: c.event + " · " + c.rule, count: c.count })));
}

async function poll() {
  try {
    const r = await fetch("/api/events?limit=" + KEEP + "&since_id=" + state.lastId, { cache: "no-store" });
    if (!r.ok) throw new Error("events: HTTP " + r.status);
    const data = await r.json();
    const fresh = data.events;
    const firstLoad = !state.loaded;
    state.loaded = true;
    if (fresh.length) {
      state.events = fresh.concat(state.events).slice(0, KEEP);
      state.lastId = Math.max(state.lastId, ...fresh.map((e) => e.id));
      // Rows that arrive while the page is open flash once; the first load does not.
      renderEvents(firstLoad ? null : new Set(fresh.map((e) => e.id)));
    } else if (firstLoad) {
      renderEvents(null);
    }
    if (firstLoad) openFromHash();
    const s = await fetch("/api/stats", { cache: "no-store" });
    if (!s.ok) throw new Error("stats: HTTP " + s.status);
    const stats = await s.json();
    // Redrawn every minute even if nothing changed, so the chart's window moves on.
    const key = JSON.stringify(stats) + minuteKey(new Date());
    if (key !== state.statsKey) {
      state.statsKey = key;
      renderStats(stats);
    }
    // The numbers only: the violating events themselves come with /api/events.
    const v = await fetch("/api/violations?limit=0", { cache: "no-store" });
    if (!v.ok) throw new Error("violations: HTTP " + v.status);
    const report = await v.json();
    const planKey = JSON.stringify(report);
    if (planKey !== state.planKey) {
      state.planKey = planKey;
      renderViolations(report);
    }
    $("status").textContent = "live";
    $("status").className = "status live";
  } catch (err) {
    $("status").textContent = "collector unreachable, retrying";
    $("status").className = "status down";
  }
  setTimeout(poll, POLL_MS);
}

function init() {
  $("endpoint").textContent = location.origin + "/v1/batch";
  $("empty-url").textContent = location.origin;
  for (const id of ["filter-type", "filter-valid", "filter-plan", "filter-event"]) {
    $(id).addEventListener("input", () => renderEvents(null));
  }
  $("events").tBodies[0].addEventListener("click", (ev) => {
    const tr = ev.target.closest("tr");
    if (tr) showDetail(Number(tr.dataset.id));
  });
  $("detail-close").addEventListener("click", () => {
    $("detail").hidden = true;
    state.selected = null;
    history.replaceState(null, "", location.pathname + location.search);
    for (const tr of $("events").tBodies[0].rows) tr.classList.remove("selected");
  });
  document.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape") $("detail-close").click();
  });
  poll();
}

init();
