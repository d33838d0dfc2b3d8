/* autofab dashboard: plain JS, no build step, no network beyond this server. */
"use strict";

const ROLES = ["viewer", "operator", "engineer", "admin"];
const COLORS = ["#4f9cf0", "#e0b341", "#3fb27f", "#e5534b", "#b083f0", "#5fc4d0", "#f08a4f", "#9aa7b5"];
const S = {
  token: localStorage.getItem("autofab_token"),
  me: null, status: null, tags: {}, latest: {}, buf: {}, ws: null, wsRetry: 0,
  loops: [], trendMain: [], trendBig: [], plots: {}, dirty: false, tab: "overview", timers: [],
};
const $ = (sel, el = document) => el.querySelector(sel);
const h = (tag, attrs = {}, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v; else if (k.startsWith("on")) e[k] = v;
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : v);
  }
  for (const k of kids.flat()) if (k !== null && k !== undefined) e.append(k instanceof Node ? k : String(k));
  return e;
};
const can = (role) => S.me && ROLES.indexOf(S.me.role) >= ROLES.indexOf(role);
const fmt = (v, d = 1) => (v === null || v === undefined || Number.isNaN(v)) ? "--" :
  Math.abs(v) >= 1000 ? v.toLocaleString("en", { maximumFractionDigits: 0 }) : v.toFixed(d);
const utc = (ts) => new Date(ts * 1000).toISOString().replace("T", " ").slice(0, 19);
const short = (path) => path.split("/").slice(-3).join("/");

function toast(msg, err = false) {
  const t = $("#toast");
  t.textContent = msg; t.className = "toast" + (err ? " err" : ""); t.hidden = false;
  clearTimeout(toast.t); toast.t = setTimeout(() => { t.hidden = true; }, 4000);
}

async function api(path, opts = {}) {
  const headers = { "Content-Type": "application/json" };
  if (S.token) headers.Authorization = "Bearer " + S.token;
  const r = await fetch(path, { ...opts, headers, body: opts.body ? JSON.stringify(opts.body) : undefined });
  if (r.status === 401 && !path.endsWith("/login")) { signedOut(); throw new Error("signed out"); }
  if (r.status === 204) return null;
  const data = await r.json().catch(() => ({}));
  if (!r.ok) {
    const d = data.detail;
    throw new Error(typeof d === "string" ? d : Array.isArray(d) ? d.map((x) => x.msg).join("; ") : r.statusText);
  }
  return data;
}

/* ----- sign-in ---------------------------------------------------------- */
function signedOut() {
  S.token = null; S.me = null; localStorage.removeItem("autofab_token");
  S.timers.forEach(clearInterval); S.timers = [];
  if (S.ws) { S.ws.onclose = null; S.ws.close(); S.ws = null; }
  $("#app").hidden = true; $("#login").hidden = false; $("#logout").hidden = true;
  $("#who").textContent = ""; setConn(false);
  $("#login-user").focus();
}

$("#login-form").onsubmit = async (ev) => {
  ev.preventDefault();
  $("#login-error").textContent = "";
  try {
    const r = await api("/api/auth/login", { method: "POST",
      body: { username: $("#login-user").value, password: $("#login-pass").value } });
    S.token = r.token; localStorage.setItem("autofab_token", r.token);
    $("#login-pass").value = "";
    await start();
  } catch (e) { $("#login-error").textContent = e.message; }
};
$("#logout").onclick = async () => { try { await api("/api/auth/logout", { method: "POST" }); } catch (e) { /* gone */ } signedOut(); };

/* ----- tabs -------------------------------------------------------------- */
for (const b of document.querySelectorAll(".tab")) {
  b.onclick = () => {
    S.tab = b.dataset.tab;
    document.querySelectorAll(".tab").forEach((x) => x.classList.toggle("active", x === b));
    document.querySelectorAll(".view").forEach((v) => { v.hidden = v.dataset.view !== S.tab; });
    refreshTab(); S.dirty = true;
  };
}

/* ----- live stream ------------------------------------------------------- */
function setConn(on) { const c = $("#conn"); c.textContent = on ? "live" : "offline"; c.className = "conn " + (on ? "on" : "off"); }
function connect() {
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${proto}://${location.host}/api/stream`);
  S.ws = ws;
  ws.onopen = () => ws.send(JSON.stringify({ type: "auth", token: S.token, tags: ["#"] }));
  ws.onmessage = (m) => {
    const msg = JSON.parse(m.data);
    if (msg.type === "hello") { setConn(true); S.wsRetry = 0; }
    else if (msg.type === "samples") onSamples(msg.samples);
    else if (msg.type === "event") onEvent(msg);
  };
  ws.onclose = () => {
    setConn(false);
    if (S.token) setTimeout(connect, Math.min(10000, 500 * 2 ** S.wsRetry++));
  };
}
const KEEP_S = 3600;
function onSamples(rows) {
  for (const [tag, ts, v] of rows) {
    S.latest[tag] = { ts, v };
    let b = S.buf[tag];
    if (!b) b = S.buf[tag] = { ts: [], v: [] };
    if (b.ts.length && ts <= b.ts[b.ts.length - 1]) continue;
    b.ts.push(ts); b.v.push(v);
    if (b.ts.length > 4000 || ts - b.ts[0] > KEEP_S * 1.2) {
      const cut = b.ts.findIndex((x) => x >= ts - KEEP_S);
      b.ts.splice(0, cut); b.v.splice(0, cut);
    }
    if (!S.status || ts > S.status.now) { if (S.status) S.status.now = ts; }
  }
  S.dirty = true;
}
function onEvent(msg) {
  if (msg.event === "audit" && S.tab === "audit") loadAudit();
  if (msg.event === "alarm" || (msg.event === "audit" && msg.entry.action.startsWith("loop"))) refreshCore();
}

/* ----- KPIs -------------------------------------------------------------- */
function kpiTile(label, value, unit, sub, frac) {
  return h("div", { class: "kpi" }, h("div", { class: "label" }, label),
    h("div", { class: "value" }, value, h("span", { class: "unit" }, unit)),
    h("div", { class: "sub" }, sub),
    frac === undefined ? null : h("div", { class: "bar" }, h("i", { style: `width:${Math.max(0, Math.min(1, frac || 0)) * 100}%` })));
}
function renderKpis(k) {
  const u = k.units[k.line] || Object.values(k.units)[0] || {};
  const pct = (x) => (x === null || x === undefined) ? "--" : (100 * x).toFixed(1);
  $("#kpis").replaceChildren(
    kpiTile("OEE", pct(u.oee), "%", `A ${pct(u.availability)} · P ${pct(u.effectiveness)} · Q ${pct(u.quality)}`, u.oee),
    kpiTile("Yield", pct(u.yield), "%", `${fmt(u.parts_good, 0)} good of ${fmt(u.parts_total, 0)}`, u.yield),
    kpiTile("Energy per unit", fmt(u.energy_kwh_per_good_unit, 2), "kWh", `${fmt(u.energy_kwh, 1)} kWh in total`),
    kpiTile("CO2", fmt(u.co2_kg, 1), "kg", u.parts_good ? `${fmt(u.co2_kg / u.parts_good, 3)} kg per good unit` : ""),
    kpiTile("Idle", pct(u.idle_fraction), "%", k.line ? `unit ${k.line}` : "", u.idle_fraction),
  );
}

/* ----- faceplates -------------------------------------------------------- */
function gauge(cls, v, lo, hi, marker) {
  const span = (hi - lo) || 1, f = (x) => Math.max(0, Math.min(100, ((x - lo) / span) * 100));
  const g = h("div", { class: "gauge " + cls }, h("i", { style: `width:${v === null ? 0 : f(v)}%` }));
  if (marker !== null && marker !== undefined) g.append(h("b", { style: `left:${f(marker)}%` }));
  return g;
}
function faceplate(lp) {
  const cv = lp.cv[0], mv = lp.mv[0], tcv = S.tags[cv.tag] || {}, tmv = S.tags[mv.tag] || {};
  const pv = S.latest[cv.tag] ? S.latest[cv.tag].v : cv.value;
  const mvv = S.latest[mv.tag] ? S.latest[mv.tag].v : mv.value;
  const lo = tcv.lo ?? Math.min(pv ?? 0, lp.sp[0] ?? 0), hi = tcv.hi ?? Math.max(pv ?? 1, lp.sp[0] ?? 1) * 1.2;
  const mlo = lp.limits ? lp.limits.mv_lo[0] : (tmv.lo ?? 0), mhi = lp.limits ? lp.limits.mv_hi[0] : (tmv.hi ?? 100);
  const last = lp.last_intervention;
  const modeBtn = (m, label) => h("button", { "data-mode": m, class: lp.mode === m ? "on" : "", disabled: !can("operator") || lp.mode === m,
    title: can("operator") ? `switch to ${m}` : "needs the operator role", onclick: () => setMode(lp.name, m) }, label);
  const spIn = h("input", { type: "number", step: "any", value: lp.sp[0] ?? "", disabled: !can("engineer"), "aria-label": "new setpoint" });
  return h("div", { class: "faceplate", "data-loop": lp.name },
    h("div", { class: "fp-head" }, h("span", { class: "fp-name" }, lp.name),
      h("span", { class: "muted small" }, `${lp.controller} · ${lp.period_s} s`),
      h("span", { class: "mode " + lp.mode, "data-testid": "mode" }, lp.mode)),
    h("div", { class: "fp-row" }, h("span", { class: "k" }, "PV"), gauge("pv", pv, lo, hi, lp.sp[0]),
      h("span", { class: "v pv" }, fmt(pv), h("small", {}, cv.unit))),
    h("div", { class: "fp-row" }, h("span", { class: "k" }, "SP"), gauge("", lp.sp[0], lo, hi),
      h("span", { class: "v sp" }, fmt(lp.sp[0]), h("small", {}, cv.unit))),
    h("div", { class: "fp-row" }, h("span", { class: "k" }, "MV"), gauge("", mvv, mlo, mhi, lp.mv_proposed[0]),
      h("span", { class: "v mv" }, fmt(mvv), h("small", {}, mv.unit))),
    h("div", { class: "muted small" }, `MV limits ${fmt(mlo)} – ${fmt(mhi)} ${mv.unit}` +
      (lp.limits && lp.limits.mv_rate[0] !== null ? `, rate ${fmt(lp.limits.mv_rate[0], 2)} ${mv.unit}/s` : "") +
      (lp.mv_proposed[0] !== null ? ` · proposed ${fmt(lp.mv_proposed[0])}` : "")),
    h("div", { class: "fp-actions" }, modeBtn("manual", "Manual"), modeBtn("advisory", "Advisory"), modeBtn("autonomous", "Auto")),
    h("div", { class: "fp-sp" }, spIn, h("button", { disabled: !can("engineer"), title: can("engineer") ? "" : "needs the engineer role",
      onclick: () => setSetpoint(lp.name, spIn.value) }, "Set SP")),
    h("div", { class: "fp-guard" }, `Guard: ${lp.interventions} interventions`,
      Object.keys(lp.interventions_by_kind).length ? " (" + Object.entries(lp.interventions_by_kind).map(([k, v]) => `${k} ${v}`).join(", ") + ")" : "",
      h("span", { class: "last", title: last ? last.reason : "" }, last ? `last: ${last.kind} — ${last.reason}` : "last: none")),
  );
}
function renderFaceplates() {
  const box = $("#faceplates");
  if (!S.loops.length) { box.replaceChildren(h("div", { class: "card muted" }, "No control loops on this site.")); return; }
  const focused = document.activeElement && box.contains(document.activeElement) && document.activeElement.tagName === "INPUT";
  if (focused) return;  // do not rebuild under the user's typing
  box.replaceChildren(...S.loops.map(faceplate));
}
async function setMode(name, mode) {
  try {
    await api(`/api/loops/${encodeURIComponent(name)}/mode`, { method: "PUT", body: { mode, reason: "set from the dashboard" } });
    toast(`${name}: mode ${mode}`); await refreshCore();
  } catch (e) { toast(e.message, true); }
}
async function setSetpoint(name, value) {
  try {
    await api(`/api/loops/${encodeURIComponent(name)}/setpoint`, { method: "PUT", body: { values: [Number(value)], reason: "set from the dashboard" } });
    toast(`${name}: setpoint ${value}`); document.activeElement.blur(); await refreshCore();
  } catch (e) { toast(e.message, true); }
}

/* ----- alarms ------------------------------------------------------------ */
function renderAlarms(list) {
  const active = list.filter((a) => !["normal", "cleared"].includes(a.state));
  $("#alarm-count").textContent = active.length;
  $("#alarm-count").className = "badge" + (active.some((a) => /unack/.test(a.state)) ? " bad" : "");
  $("#alarms-empty").hidden = active.length > 0;
  $("#alarms tbody").replaceChildren(...active.map((a) => h("tr", { "data-alarm": a.id, class: /unack/.test(a.state) ? "unack" : "" },
    h("td", {}, h("span", { class: "prio " + String(a.priority ?? "").toLowerCase() }, a.priority ?? "")),
    h("td", { class: "mono" }, a.id), h("td", { class: "mono" }, a.tag ? short(a.tag) : ""),
    h("td", {}, a.message || ""), h("td", {}, h("span", { class: "state " + a.state }, a.state)),
    h("td", {}, h("button", { class: "ack", disabled: !can("operator") || !/unack/.test(a.state), onclick: () => alarmAct(a.id, "ack", {}) }, "Ack"),
      h("button", { class: "ghost shelve", disabled: !can("operator") || a.state === "shelved", onclick: () => alarmAct(a.id, "shelve", { duration_s: 3600, reason: "shelved from the dashboard" }) }, "Shelve 1 h")),
  )));
}
async function alarmAct(id, what, body) {
  try { await api(`/api/alarms/${encodeURIComponent(id)}/${what}`, { method: "POST", body }); toast(`${id}: ${what === "ack" ? "acknowledged" : "shelved"}`); await refreshCore(); }
  catch (e) { toast(e.message, true); }
}

/* ----- trends ------------------------------------------------------------ */
function makePlot(el, tags, height) {
  const units = [...new Set(tags.map((t) => (S.tags[t] || {}).unit || ""))];
  const series = [{}].concat(tags.map((t, i) => {
    const u = (S.tags[t] || {}).unit || "";
    return { label: `${short(t)} [${u}]`, stroke: COLORS[i % COLORS.length], width: 1.6, scale: units.indexOf(u) === 1 ? "y2" : "y", spanGaps: true,
      value: (_, v) => v === null ? "--" : v.toFixed(2) };
  }));
  const axis = { stroke: "#8a96a5", grid: { stroke: "#262d36", width: 1 }, ticks: { stroke: "#2f3742" } };
  const hhmmss = (u, splits) => splits.map((v) => new Date(v * 1000).toISOString().slice(11, 19));
  const axes = [{ ...axis, values: hhmmss }, { ...axis, scale: "y", label: units[0] || "" }];
  if (units.length > 1) axes.push({ ...axis, scale: "y2", side: 1, grid: { show: false }, label: units[1] });
  series[0] = { label: "UTC", value: (u, v) => v === null ? "--" : new Date(v * 1000).toISOString().slice(11, 19) };
  const opts = { width: Math.max(300, el.clientWidth), height, series, axes, scales: { x: { time: true } },
    legend: { live: true }, cursor: { drag: { x: true, y: false } } };
  el.replaceChildren();
  const p = new uPlot(opts, aligned(tags, 900), el);
  p.tags = tags;
  return p;
}
function aligned(tags, windowS) {
  const now = S.status ? S.status.now : Date.now() / 1000;
  const xs = new Set();
  for (const t of tags) { const b = S.buf[t]; if (b) for (const ts of b.ts) if (ts >= now - windowS) xs.add(ts); }
  const x = [...xs].sort((a, b) => a - b), idx = new Map(x.map((v, i) => [v, i]));
  const ys = tags.map((t) => {
    const arr = new Array(x.length).fill(null), b = S.buf[t];
    if (b) for (let i = 0; i < b.ts.length; i++) { const j = idx.get(b.ts[i]); if (j !== undefined) arr[j] = b.v[i]; }
    return arr;
  });
  return [x, ...ys];
}
function drawTrends() {
  if (S.tab === "overview" && S.trendMain.length) {
    const el = $("#trend-main");
    let p = S.plots.main;
    if (!p || p.tags.join() !== S.trendMain.join()) p = S.plots.main = makePlot(el, S.trendMain, 300);
    p.setData(aligned(S.trendMain, 900));
  }
  if (S.tab === "trends" && S.trendBig.length) {
    const el = $("#trend-big");
    let p = S.plots.big;
    if (!p || p.tags.join() !== S.trendBig.join()) p = S.plots.big = makePlot(el, S.trendBig, 520);
    p.setData(aligned(S.trendBig, Number($("#trend-window").value)));
  }
  if (S.tab === "overview") renderFaceplatesLive();
}
function renderFaceplatesLive() {
  for (const lp of S.loops) {
    const el = document.querySelector(`.faceplate[data-loop="${CSS.escape(lp.name)}"]`);
    if (!el) continue;
    const pv = S.latest[lp.cv[0].tag], mv = S.latest[lp.mv[0].tag];
    if (pv) el.querySelector(".v.pv").firstChild.textContent = fmt(pv.v);
    if (mv) el.querySelector(".v.mv").firstChild.textContent = fmt(mv.v);
  }
}
async function backfill(tags) {
  const need = tags.filter((t) => !(S.buf[t] && S.buf[t].ts.length > 5));
  if (!need.length || !S.status) return;
  const q = new URLSearchParams(); need.forEach((t) => q.append("tag", t));
  q.set("start", S.status.now - 900); q.set("end", S.status.now + 1);
  try {
    const r = await api("/api/tags/history?" + q);
    for (const [t, s] of Object.entries(r.series)) {
      const b = S.buf[t] || { ts: [], v: [] }, first = b.ts.length ? b.ts[0] : Infinity;
      const keep = s.ts.map((ts, i) => [ts, s.value[i]]).filter(([ts]) => ts < first);
      S.buf[t] = { ts: keep.map((x) => x[0]).concat(b.ts), v: keep.map((x) => x[1]).concat(b.v) };
    }
    S.dirty = true;
  } catch (e) { /* history is optional */ }
}
function renderChips() {
  $("#trend-chips").replaceChildren(...S.trendBig.map((t, i) => h("span", { class: "chip" },
    h("i", { style: `background:${COLORS[i % COLORS.length]}` }), short(t),
    h("button", { title: "remove", onclick: () => { S.trendBig = S.trendBig.filter((x) => x !== t); renderChips(); S.dirty = true; } }, "×"))));
}
$("#tag-add").onclick = () => {
  const v = $("#tag-filter").value.trim();
  const hit = S.tags[v] ? v : Object.keys(S.tags).find((p) => p.includes(v));
  if (!hit) { toast(`no tag matches ${v}`, true); return; }
  if (!S.trendBig.includes(hit)) S.trendBig.push(hit);
  $("#tag-filter").value = ""; renderChips(); backfill([hit]); S.dirty = true;
};
$("#trend-window").onchange = () => { S.dirty = true; };

/* ----- schedule ---------------------------------------------------------- */
function renderGantt(s) {
  const box = $("#gantt");
  if (!s.bars.length) { box.replaceChildren(h("p", { class: "muted" }, "No schedule from the planner yet.")); $("#sched-info").textContent = ""; return; }
  const res = s.resources.length ? s.resources : [...new Set(s.bars.map((b) => b.resource))];
  const t0 = Math.min(...s.bars.map((b) => b.start)), t1 = Math.max(...s.bars.map((b) => b.end));
  const W = Math.max(600, box.clientWidth), L = 140, R = 20, row = 34, top = 26, H = top + res.length * row + 10;
  const x = (t) => L + ((t - t0) / ((t1 - t0) || 1)) * (W - L - R);
  const jobs = [...new Set(s.bars.map((b) => b.job))];
  const ns = "http://www.w3.org/2000/svg", el = (n, a, txt) => { const e = document.createElementNS(ns, n); for (const k in a) e.setAttribute(k, a[k]); if (txt !== undefined) e.textContent = txt; return e; };
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, height: H });
  const step = niceStep((t1 - t0) / 8);
  const g = el("g", { class: "grid axis" });
  for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) {
    g.append(el("line", { x1: x(t), x2: x(t), y1: top - 6, y2: H - 8 }));
    g.append(el("text", { x: x(t) + 3, y: 14 }, new Date(t * 1000).toISOString().slice(11, 16)));
  }
  svg.append(g);
  res.forEach((r, i) => svg.append(el("text", { x: 8, y: top + i * row + 21 }, r)));
  for (const b of s.bars) {
    const i = res.indexOf(b.resource), c = COLORS[jobs.indexOf(b.job) % COLORS.length];
    const rect = el("rect", { x: x(b.start), y: top + i * row + 5, width: Math.max(2, x(b.end) - x(b.start)), height: row - 10, rx: 3, fill: c, opacity: 0.85 });
    rect.append(el("title", {}, `${b.job} op ${b.op} on ${b.resource}\n${utc(b.start)} – ${utc(b.end)}`));
    svg.append(rect);
    if (x(b.end) - x(b.start) > 44) svg.append(el("text", { x: x(b.start) + 5, y: top + i * row + 21, fill: "#0f1216", style: "fill:#0f1216" }, `${b.job}·${b.op}`));
  }
  if (S.status && S.status.now >= t0 && S.status.now <= t1) svg.append(el("line", { class: "now", x1: x(S.status.now), x2: x(S.status.now), y1: top - 6, y2: H - 8 }));
  box.replaceChildren(svg);
  $("#sched-info").textContent = `${s.bars.length} operations on ${res.length} resources` + (s.makespan_s ? ` · makespan ${(s.makespan_s / 3600).toFixed(1)} h` : "") + (s.status ? ` · ${s.status}` : "");
}
function niceStep(raw) { const c = [60, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400]; return c.find((v) => v >= raw) || 86400; }

/* ----- models and audit ------------------------------------------------------ */
function metrics(v) {
  return Object.entries(v || {}).filter(([, x]) => typeof x === "number" || typeof x === "string").slice(0, 6)
    .map(([k, x]) => `${k} ${typeof x === "number" ? fmt(x, 3) : x}`).join(" · ");
}
function renderModels(list) {
  const rows = [];
  for (const m of list) for (const v of m.versions.slice().reverse()) rows.push(h("tr", {},
    h("td", { class: "mono" }, m.name), h("td", {}, "v" + v.version), h("td", {}, v.kind), h("td", { class: "mono" }, v.created.slice(0, 19)),
    h("td", {}, metrics(v.validation)), h("td", {}, v.active ? h("span", { class: "badge ok" }, "in use") : "")));
  $("#models tbody").replaceChildren(...rows);
  $("#models-empty").hidden = rows.length > 0;
}
const show = (v) => v === null || v === undefined ? "" : typeof v === "string" ? v : JSON.stringify(v);
async function loadAudit() {
  const [list, chain] = await Promise.all([api("/api/audit?limit=100"), api("/api/audit/verify")]);
  $("#chain").textContent = chain.ok ? `chain verified · ${chain.entries} entries` : `chain broken at #${chain.first_bad}`;
  $("#chain").className = "badge " + (chain.ok ? "ok" : "bad");
  $("#audit tbody").replaceChildren(...list.map((e) => h("tr", { "data-seq": e.seq },
    h("td", {}, e.seq), h("td", { class: "mono" }, utc(e.ts)), h("td", {}, e.user), h("td", {}, e.role),
    h("td", { class: "mono" + (e.ok ? "" : " ok-no") }, e.action + (e.ok ? "" : " (refused)")), h("td", { class: "mono" }, e.target),
    h("td", { class: "mono" }, show(e.old)), h("td", { class: "mono" }, show(e.new)), h("td", {}, e.reason))));
}

/* ----- refresh loop ------------------------------------------------------ */
async function refreshCore() {
  const [loops, alarms, kpis, status] = await Promise.all([api("/api/loops"), api("/api/alarms"), api("/api/kpis"), api("/api/status")]);
  S.loops = loops; S.status = status;
  $("#clock").textContent = utc(status.now) + " UTC" + (status.speed !== "1" && status.speed !== "1.0" ? ` ×${status.speed}` : "");
  renderKpis(kpis); renderAlarms(alarms); renderFaceplates();
  const main = loops.flatMap((l) => l.trend).filter((t) => S.tags[t]).slice(0, 6);
  if (main.join() !== S.trendMain.join()) { S.trendMain = main; backfill(main); }
  if (!S.trendBig.length) { S.trendBig = main.slice(); renderChips(); }
}
async function refreshTab() {
  try {
    if (S.tab === "schedule") renderGantt(await api("/api/schedule"));
    if (S.tab === "models") renderModels(await api("/api/models"));
    if (S.tab === "audit") await loadAudit();
    if (S.tab === "trends") backfill(S.trendBig);
  } catch (e) { if (e.message !== "signed out") toast(e.message, true); }
}
async function start() {
  try { S.me = await api("/api/auth/me"); } catch (e) { signedOut(); return; }
  $("#login").hidden = true; $("#app").hidden = false; $("#logout").hidden = false;
  $("#who").textContent = `${S.me.name} · ${S.me.role}`;
  const tags = await api("/api/tags");
  S.tags = Object.fromEntries(tags.map((t) => [t.path, t]));
  $("#tag-list").replaceChildren(...tags.map((t) => h("option", { value: t.path })));
  S.status = await api("/api/status");
  $("#site").textContent = S.status.site || "";
  document.title = `autofab · ${S.status.site || ""}`;
  await refreshCore();
  connect();
  S.timers.push(setInterval(() => refreshCore().catch(() => {}), 2000));
  S.timers.push(setInterval(() => { if (S.tab === "schedule" || S.tab === "models") refreshTab(); }, 10000));
  const tick = () => { if (S.dirty) { S.dirty = false; drawTrends(); } };
  S.timers.push(setInterval(tick, 500));
  refreshTab();
}
window.addEventListener("resize", () => { S.plots = {}; S.dirty = true; });
if (S.token) start(); else signedOut();
