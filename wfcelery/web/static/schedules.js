// wfcelery dashboard: the Schedules page (/schedules). An ES module on its own: it draws the page only when
// the path is /schedules, from the REST API (GET /api/schedules, GET /api/schedules/{name}), and refreshes
// every 5 s. Pause / resume buttons for an admin (unless the dashboard is read-only).

import { ROOT, may } from "./js/api.js";
import { authFetch } from "./js/auth.js";

const REFRESH_MS = 5000;
const RECENT = 10;

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) if (c !== null && c !== undefined) el.append(c);
  return el;
}

async function api(path, options = {}) {
  const resp = await authFetch(ROOT + path, { headers: { Accept: "application/json" }, ...options });
  const body = resp.status === 204 ? null : await resp.json().catch(() => ({}));
  if (!resp.ok) throw new Error((body && body.error) || `HTTP ${resp.status}`);
  return body;
}

const when = (iso) => (iso ? new Date(iso).toLocaleString([], { hour12: false }) : "—");
const timing = (s) => (s.cron ? `cron ${s.cron}${s.timezone !== "UTC" ? ` (${s.timezone})` : ""}` : `every ${s.every} s`);
const badge = (status) => h("span", { class: `badge b-${status}`, "data-status": status }, status);

function recentRuns(runs) {
  if (!runs.length) return h("span", { class: "muted" }, "no runs yet");
  return h("div", { class: "recent" }, runs.slice(0, RECENT).map(({ slot, run }) =>
    run
      ? h("a", { href: `${ROOT}/runs/${encodeURIComponent(run.id)}`, title: `${slot} ${run.status}`, "data-run": run.id }, badge(run.status), " ", slot)
      : h("span", { class: "muted", title: "cleaned up or expired" }, slot)));
}

function row(s, refresh) {
  const toggle = !may("admin") ? null : h("button", {
    class: "btn", "data-action": s.paused ? "resume" : "pause",
    onclick: async () => {
      try { await api(`/api/schedules/${encodeURIComponent(s.name)}/${encodeURIComponent(s.paused ? "resume" : "pause")}`, { method: "POST" }); }
      catch (e) { alert(e.message); }
      refresh();
    },
  }, s.paused ? "Resume" : "Pause");
  return h("tr", { "data-schedule": s.name },
    h("td", {}, h("b", {}, s.name), h("div", { class: "muted" }, s.source === "api" ? "" : s.source)),
    h("td", {}, h("a", { href: `${ROOT}/definitions/${encodeURIComponent(s.workflow)}` }, s.workflow)),
    h("td", { class: "mono" }, timing(s)),
    h("td", { class: "next" }, s.paused ? h("span", { class: "muted" }, "paused") : when(s.next_at)),
    h("td", {}, when(s.last_at)),
    h("td", {}, recentRuns(s.runs || [])),
    h("td", {}, toggle));
}

async function schedulesView(main) {
  for (const a of document.querySelectorAll("[data-nav]")) a.classList.toggle("active", a.dataset.nav === "schedules");
  const body = h("tbody");
  const card = h("div", { class: "card" }, h("h2", {}, "Schedules"),
    h("table", { class: "list", id: "schedules" },
      h("thead", {}, h("tr", {}, ["Name", "Workflow", "When", "Next fire", "Last fire", "Recent runs", ""].map((t) => h("th", {}, t)))),
      body));
  main.replaceChildren(card);
  async function refresh() {
    try {
      const list = await api("/api/schedules");
      const full = await Promise.all(list.map((s) => api(`/api/schedules/${encodeURIComponent(s.name)}?limit=${encodeURIComponent(RECENT)}`).catch(() => s)));
      body.replaceChildren(...(full.length ? full.map((s) => row(s, refresh))
        : [h("tr", {}, h("td", { colspan: 7, class: "empty" }, "No schedules yet: engine.schedule(...), `wfcelery schedule add`, or a definition file with schedule:."))]));
    } catch (e) {
      body.replaceChildren(h("tr", {}, h("td", { colspan: 7, class: "empty" }, e.message)));
    }
  }
  await refresh();
  setInterval(refresh, REFRESH_MS);
}

const path = location.pathname.slice(ROOT.length).replace(/\/$/, "");
if (path === "/schedules") schedulesView(document.getElementById("main"));
