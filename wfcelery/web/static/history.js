// The history pages (/history, /history/<workflow>): searches and a workflow's record over the REST API
// (/api/history/...). An ES module on its own page shell (history.html), sharing app.css and the status
// list and colours of js/statuses.js.
import { authFetch, signedIn } from "./js/auth.js";
import { RUN_STATUSES, colorOf, statusSheet } from "./js/statuses.js";

document.adoptedStyleSheets = [...document.adoptedStyleSheets, statusSheet()];
{
  const CONFIG = JSON.parse(document.body.dataset.config || "{}");
  const ROOT = CONFIG.root || "";
  const main = document.getElementById("main");
  const STATUSES = ["", ...RUN_STATUSES];

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined) continue;
      if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v);
    }
    for (const c of children.flat()) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return node;
  }
  const svgEl = (tag, attrs = {}) => {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    return node;
  };
  async function api(path) {
    const resp = await authFetch(ROOT + path, { headers: { Accept: "application/json" } });
    const body = await resp.json().catch(() => ({}));
    if (!resp.ok) throw new Error(body.error || `${resp.status} ${resp.statusText}`);
    return body;
  }
  const when = (t) => (t ? new Date(t * 1000).toISOString().replace("T", " ").slice(0, 19) : "");
  const secs = (s) => (s === null || s === undefined ? "–" : s < 60 ? `${s.toFixed(2)} s` : `${(s / 60).toFixed(1)} min`);
  const badge = (status) => el("span", { class: `badge b-${status} s-${status}` }, status);
  const error = (e) => el("p", { class: "empty", role: "alert" }, `Error: ${e.message}`);

  // -- search -------------------------------------------------------------------------------------------
  function searchPage() {
    const q = new URLSearchParams(location.search);
    const field = (name, attrs = {}) => el("input", { name, value: q.get(name) || "", ...attrs });
    const status = el("select", { name: "status" }, STATUSES.map((s) => el("option", { value: s }, s || "any status")));
    status.value = q.get("status") || "";
    const form = el(
      "form", { class: "toolbar", id: "search" },
      field("workflow", { placeholder: "workflow" }), status,
      field("since", { type: "date", title: "created on or after (UTC)" }),
      field("until", { type: "date", title: "created before (UTC)" }),
      field("run_key", { placeholder: "run key" }), field("q", { placeholder: "text in params" }),
      el("button", { class: "btn primary", type: "submit" }, "Search"),
    );
    const rows = el("tbody");
    const more = el("button", { class: "btn", id: "more", hidden: "" }, "More");
    const info = el("p", { class: "muted", id: "found" });
    main.replaceChildren(
      el("div", { class: "page-head" }, el("h1", {}, "History")),
      el("div", { class: "card" }, form),
      el("div", { class: "card" },
        el("table", { class: "list", id: "history" },
          el("thead", {}, el("tr", {}, ["Run", "Workflow", "Status", "Created (UTC)", "Duration", "Params"].map((h) => el("th", {}, h)))),
          rows),
        info, el("div", { class: "pager" }, more)),
    );
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const next = new URLSearchParams();
      for (const [k, v] of new FormData(form)) if (v) next.set(k, v);
      history.replaceState(null, "", `${location.pathname}?${next}`);
      load(next, null, true);
    });
    let shown = 0;
    async function load(params, cursor, fresh) {
      const q = new URLSearchParams();
      for (const k of ["workflow", "status", "run_key", "q"]) if (params.get(k)) q.set(k, params.get(k));
      for (const k of ["since", "until"]) if (params.get(k)) q.set(k, Date.parse(params.get(k) + "T00:00:00Z") / 1000);
      if (cursor) q.set("cursor", cursor);
      q.set("limit", "50");
      if (fresh) { rows.replaceChildren(); shown = 0; }
      try {
        const page = await api(`/api/history/runs?${q}`);
        for (const r of page.runs) {
          rows.append(el("tr", { "data-run": r.id },
            el("td", {}, el("a", { href: `${ROOT}/runs/${encodeURIComponent(r.id)}`, class: "mono" }, r.id.slice(0, 12))),
            el("td", {}, el("a", { href: `${ROOT}/history/${encodeURIComponent(r.workflow)}` }, r.workflow)),
            el("td", {}, badge(r.status)), el("td", {}, when(r.created_at)), el("td", {}, secs(r.duration)),
            el("td", { class: "mono muted" }, JSON.stringify(r.params).slice(0, 80))));
        }
        shown += page.runs.length;
        info.textContent = `${shown} run(s)` + (page.next ? " so far" : "");
        more.hidden = !page.next;
        more.onclick = () => load(params, page.next, false);
      } catch (e) { info.replaceChildren(error(e)); }
    }
    load(q, null, true);
  }

  // -- a workflow's record ------------------------------------------------------------------------------
  function barChart(perDay) {
    const w = 640, h = 140, pad = 24, max = Math.max(1, ...perDay.map((d) => d.runs));
    const svg = svgEl("svg", { viewBox: `0 0 ${w} ${h}`, class: "timeline", id: "per-day", role: "img" });
    svg.style.maxWidth = "760px";
    const bw = (w - pad) / perDay.length;
    perDay.forEach((d, i) => {
      const bh = ((h - 2 * pad) * d.runs) / max;
      const rect = svgEl("rect", { x: pad + i * bw + 2, y: h - pad - bh, width: bw - 4, height: bh, fill: "#3b82f6", "data-runs": d.runs });
      rect.append(svgEl("title"));
      rect.firstChild.textContent = `${d.day}: ${d.runs} run(s)`;
      svg.append(rect);
      if (d.runs) {
        const n = svgEl("text", { x: pad + i * bw + bw / 2, y: h - pad - bh - 3, "text-anchor": "middle", "font-size": 9 });
        n.textContent = String(d.runs);
        svg.append(n);
      }
      if (i % Math.ceil(perDay.length / 7) === 0) {
        const t = svgEl("text", { x: pad + i * bw, y: h - 6, "font-size": 9 });
        t.textContent = d.day.slice(5);
        svg.append(t);
      }
    });
    return svg;
  }

  function trendChart(points) {
    const w = 640, h = 140, pad = 24;
    const vals = points.map((p) => p.duration ?? 0), max = Math.max(0.001, ...vals);
    const svg = svgEl("svg", { viewBox: `0 0 ${w} ${h}`, class: "timeline", id: "trend-chart", role: "img" });
    svg.style.maxWidth = "760px";
    const step = (w - 2 * pad) / Math.max(1, points.length - 1);
    const xy = vals.map((v, i) => [pad + i * step, h - pad - ((h - 2 * pad) * v) / max]);
    if (xy.length) svg.append(svgEl("polyline", { points: xy.map((p) => p.join(",")).join(" "), fill: "none", stroke: "#3b82f6", "stroke-width": 2 }));
    xy.forEach(([x, y], i) => svg.append(svgEl("circle", { cx: x, cy: y, r: 3, fill: colorOf(points[i].status) })));
    const label = svgEl("text", { x: pad, y: 14, "font-size": 9 });
    label.textContent = `max ${secs(max)}`;
    svg.append(label);
    return svg;
  }

  async function workflowPage(name) {
    main.replaceChildren(el("p", { class: "muted" }, "Loading…"));
    let rec;
    try { rec = await api(`/api/history/workflows/${encodeURIComponent(name)}`); }
    catch (e) { main.replaceChildren(error(e)); return; }
    const stat = (label, value, id) => el("div", {}, el("span", { class: "muted" }, label), " ", el("b", { id }, value));
    const rate = rec.success_rate === null ? "–" : `${(rec.success_rate * 100).toFixed(1)} %`;
    const failures = el("tbody", {}, rec.failures.map((f) => el("tr", {},
      el("td", {}, el("a", { href: `${ROOT}/runs/${encodeURIComponent(f.id)}`, class: "mono" }, f.id.slice(0, 12))),
      el("td", {}, when(f.finished_at)), el("td", {}, f.node || ""),
      el("td", { class: "mono" }, f.error ? `${f.error.type}: ${f.error.message}` : ""))));
    const select = el("select", { id: "trend-node" }, el("option", { value: "" }, "pick a node"));
    const trend = el("div", { id: "trend" });
    main.replaceChildren(
      el("div", { class: "page-head" }, el("h1", {}, name),
        el("a", { href: `${ROOT}/history?workflow=${encodeURIComponent(name)}` }, "all runs")),
      el("div", { class: "card meta", id: "record" },
        stat("success rate", rate, "rate"), stat("recent ended runs", rec.recent, "recent"),
        stat("failed", rec.failed, "failed"), stat("cancelled", rec.cancelled, "cancelled"),
        stat("p50", secs(rec.duration_p50), "p50"),
        stat("p95", secs(rec.duration_p95), "p95"), stat("active", rec.active, "active")),
      el("div", { class: "card" }, el("h2", {}, "Runs per day (UTC)"), barChart(rec.per_day)),
      el("div", { class: "card" }, el("h2", {}, "Last failures"),
        rec.failures.length ? el("table", { class: "list", id: "failures" },
          el("thead", {}, el("tr", {}, ["Run", "Finished", "Node", "Error"].map((h) => el("th", {}, h)))), failures)
          : el("p", { class: "empty" }, "No failure among the recent runs.")),
      el("div", { class: "card" }, el("h2", {}, "Node duration across runs"), select, trend),
    );
    try {  // node names: from the newest run of the workflow
      const page = await api(`/api/history/runs?workflow=${encodeURIComponent(name)}&limit=1`);
      if (page.runs.length) {
        const run = await api(`/api/runs/${encodeURIComponent(page.runs[0].id)}`);
        const names = Object.keys(run.nodes || {}).filter((n) => !n.includes("["));
        for (const n of names) select.append(el("option", { value: n }, n));
      }
    } catch (e) { trend.replaceChildren(error(e)); }
    select.addEventListener("change", async () => {
      if (!select.value) return trend.replaceChildren();
      try {
        const t = await api(`/api/history/workflows/${encodeURIComponent(name)}/nodes/${encodeURIComponent(select.value)}`);
        trend.replaceChildren(trendChart(t.runs), el("p", { class: "muted" }, `${t.runs.length} run(s), oldest first`));
      } catch (e) { trend.replaceChildren(error(e)); }
    });
  }

  const path = location.pathname.slice(ROOT.length);
  const m = path.match(/^\/history\/(.+)$/);
  if (!(await signedIn())) { /* the login form is shown */ }
  else if (m) workflowPage(decodeURIComponent(m[1]));
  else searchPage();
}
