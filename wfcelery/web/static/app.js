// wfcelery dashboard. Plain JavaScript, no dependencies, no build step: each page is drawn from the REST API
// and kept live by the run's Server-Sent Events stream.
"use strict";

const CFG = JSON.parse(document.body.dataset.config || "{}");
const ROOT = CFG.root || "";
const NODE_STATUSES = ["PENDING", "QUEUED", "RUNNING", "RETRYING", "WAITING", "SUCCEEDED", "FAILED", "SKIPPED", "REVOKED"];
const RUN_STATUSES = ["RUNNING", "PAUSED", "SUCCEEDED", "FAILED", "CANCELLED"];
const COLORS = {
  PENDING: "#cbd5e1", QUEUED: "#93c5fd", RUNNING: "#2563eb", RETRYING: "#f59e0b", SUCCEEDED: "#16a34a",
  FAILED: "#dc2626", SKIPPED: "#a8a29e", REVOKED: "#7c3aed", WAITING: "#db2777",
};
const TERMINAL = new Set(["SUCCEEDED", "FAILED", "SKIPPED", "REVOKED"]);
//: Runs with more nodes than this are drawn as a grid (one square per node) instead of a graph.
const GRAPH_LIMIT = 400;
//: Rows of the timeline.
const TIMELINE_ROWS = 150;

// -- helpers ---------------------------------------------------------------------------------------------

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

function svg(tag, attrs) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  return el;
}

async function api(path, options = {}) {
  const resp = await fetch(ROOT + path, { headers: { Accept: "application/json" }, ...options });
  if (resp.status === 204) return null;
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) {
    const err = new Error(body.error || `HTTP ${resp.status}`);
    err.status = resp.status;
    throw err;
  }
  return body;
}

function toast(message, ok = false) {
  const t = document.getElementById("toast");
  t.textContent = message;
  t.className = ok ? "toast ok" : "toast";
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 5000);
}

function confirmDialog(title, text, label) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-ok").textContent = label;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
  });
}

const badge = (status, big) => h("span", { class: `badge b-${status}${big ? " big" : ""}`, "data-status": status }, status);
const shortId = (id) => id.slice(0, 8) + "…" + id.slice(-4);

function ago(ts) {
  if (!ts) return "—";
  const s = Date.now() / 1000 - ts;
  if (s < 60) return `${Math.max(0, Math.round(s))} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return new Date(ts * 1000).toLocaleString();
}

function duration(seconds) {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) return "—";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 2 : 1)} s`;
  const m = Math.floor(seconds / 60);
  return m < 60 ? `${m} min ${Math.round(seconds % 60)} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

const clock = (ts) => (ts ? new Date(ts * 1000).toLocaleTimeString([], { hour12: false }) + "." + String(Math.floor((ts % 1) * 1000)).padStart(3, "0") : "—");

function progressBar(counts, total, big) {
  const bar = h("div", { class: big ? "progress big" : "progress", role: "progressbar" });
  for (const s of ["SUCCEEDED", "FAILED", "REVOKED", "SKIPPED", "RUNNING", "RETRYING", "WAITING", "QUEUED"]) {
    const n = counts[s] || 0;
    if (n && total) bar.append(h("span", { class: `s-${s}`, style: `width:${(100 * n) / total}%`, title: `${n} ${s}` }));
  }
  return bar;
}

function setNav(name) {
  for (const a of document.querySelectorAll("[data-nav]")) a.classList.toggle("active", a.dataset.nav === name);
  if (CFG.readOnly) document.getElementById("mode").textContent = "read-only";
}

// -- runs list -------------------------------------------------------------------------------------------

function runsView(main) {
  setNav("runs");
  const params = new URLSearchParams(location.search);
  let offset = Number(params.get("offset") || 0);
  const status = h("select", { id: "filter-status", "aria-label": "Status" },
    h("option", { value: "" }, "All statuses"), RUN_STATUSES.map((s) => h("option", { value: s }, s)));
  status.value = params.get("status") || "";
  const name = h("input", { id: "filter-name", type: "text", placeholder: "Workflow name", value: params.get("name") || "" });
  const live = h("span", { class: "live" }, "live");
  const body = h("tbody");
  const newer = h("button", { class: "btn", id: "newer" }, "← Newer");
  const older = h("button", { class: "btn", id: "older" }, "Older →");
  const table = h("table", { class: "list", id: "runs" },
    h("thead", {}, h("tr", {}, ["Status", "Workflow", "Run", "Progress", "Created", "Duration"].map((t) => h("th", {}, t)))), body);
  main.replaceChildren(
    h("div", { class: "page-head" }, h("h1", {}, "Runs"), live),
    h("div", { class: "card" }, h("div", { class: "toolbar" }, status, name), table, h("div", { class: "pager" }, newer, older)),
  );

  let next = null;
  async function refresh() {
    const q = new URLSearchParams({ limit: "25", offset: String(offset) });
    if (status.value) q.set("status", status.value);
    if (name.value.trim()) q.set("name", name.value.trim());
    try {
      const page = await api(`/api/runs?${q}`);
      next = page.next_offset;
      live.classList.add("on");
      body.replaceChildren(...page.runs.map(runRow));
      if (!page.runs.length) body.append(h("tr", {}, h("td", { colspan: 6, class: "empty" }, "No runs match. Start one from Definitions, the CLI or POST /api/runs.")));
      newer.disabled = offset === 0;
      older.disabled = next === null;
    } catch (e) {
      live.classList.remove("on");
      body.replaceChildren(h("tr", {}, h("td", { colspan: 6, class: "empty" }, `Cannot load runs: ${e.message}`)));
    }
  }
  const restart = () => { offset = 0; syncUrl(); refresh(); };
  function syncUrl() {
    const q = new URLSearchParams();
    if (status.value) q.set("status", status.value);
    if (name.value.trim()) q.set("name", name.value.trim());
    if (offset) q.set("offset", String(offset));
    history.replaceState(null, "", `${location.pathname}${q.toString() ? "?" + q : ""}`);
  }
  status.addEventListener("change", restart);
  name.addEventListener("input", () => { clearTimeout(name.timer); name.timer = setTimeout(restart, 250); });
  newer.addEventListener("click", () => { offset = Math.max(0, offset - 25); syncUrl(); refresh(); });
  older.addEventListener("click", () => { if (next !== null) { offset = next; syncUrl(); refresh(); } });
  refresh();
  setInterval(refresh, 2000);
  document.dispatchEvent(new CustomEvent("wf:runs", { detail: { main } }));  // wf-signals.js: "Waiting for you"
}

function runRow(r) {
  const tone = { RUNNING: "RUNNING", PAUSED: "RETRYING", SUCCEEDED: "SUCCEEDED", FAILED: "FAILED", CANCELLED: "SKIPPED" };
  const counts = { [tone[r.status]]: r.done };
  const end = r.finished_at || Date.now() / 1000;
  return h("tr", { "data-run": r.id },
    h("td", {}, badge(r.status)),
    h("td", {}, h("b", {}, r.name)),
    h("td", {}, h("a", { class: "mono", href: `${ROOT}/runs/${r.id}` }, shortId(r.id))),
    h("td", {}, h("div", { class: "progress-cell" }, progressBar(counts, r.total), h("span", { class: "muted mono" }, `${r.done}/${r.total}`))),
    h("td", { title: new Date(r.created_at * 1000).toLocaleString() }, ago(r.created_at)),
    h("td", {}, duration(end - r.created_at)),
  );
}

// -- DAG drawing -----------------------------------------------------------------------------------------

// Layered layout: a node's column is its longest path from a root; rows within a column are ordered by the
// mean row of their parents (two sweeps), which keeps most edges short and uncrossed.
function layout(nodes) {
  const byName = new Map(nodes.map((n) => [n.name, n]));
  const layer = new Map();
  const order = topo(nodes, byName);
  for (const n of order) layer.set(n.name, Math.max(-1, ...n.parents.map((p) => layer.get(p))) + 1);
  const columns = [];
  for (const n of order) (columns[layer.get(n.name)] ||= []).push(n);
  const row = new Map();
  columns.forEach((col) => col.forEach((n, i) => row.set(n.name, i)));
  for (let sweep = 0; sweep < 2; sweep++) {
    for (const col of columns.slice(1)) {
      const key = (n) => (n.parents.length ? n.parents.reduce((a, p) => a + row.get(p), 0) / n.parents.length : row.get(n.name));
      col.sort((a, b) => key(a) - key(b));
      col.forEach((n, i) => row.set(n.name, i));
    }
  }
  return { columns, layer, row };
}

function topo(nodes, byName) {
  const indeg = new Map(nodes.map((n) => [n.name, n.parents.length]));
  const children = new Map(nodes.map((n) => [n.name, []]));
  for (const n of nodes) for (const p of n.parents) children.get(p).push(n.name);
  const queue = nodes.filter((n) => !n.parents.length);
  const out = [];
  while (queue.length) {
    const n = queue.shift();
    out.push(n);
    for (const c of children.get(n.name)) {
      indeg.set(c, indeg.get(c) - 1);
      if (indeg.get(c) === 0) queue.push(byName.get(c));
    }
  }
  return out;
}

// A DAG as SVG. Returns { el, set(name, status), select(name) }.
function drawGraph(nodes, statuses, onSelect, subtitle) {
  const W = 156, H = 40, GX = 44, GY = 14, PAD = 16;
  const { columns, layer, row } = layout(nodes);
  const tallest = Math.max(...columns.map((c) => c.length));
  const width = PAD * 2 + columns.length * W + (columns.length - 1) * GX;
  const height = PAD * 2 + tallest * H + (tallest - 1) * GY;
  const pos = (name) => {
    const col = columns[layer.get(name)];
    const offsetY = ((tallest - col.length) * (H + GY)) / 2;
    return { x: PAD + layer.get(name) * (W + GX), y: PAD + offsetY + row.get(name) * (H + GY) };
  };
  const root = svg("svg", { class: "dag", width, height, viewBox: `0 0 ${width} ${height}`, role: "img" });
  const edges = svg("g");
  root.append(edges);
  const els = new Map();
  for (const n of nodes) {
    const b = pos(n.name);
    for (const p of n.parents) {
      const a = pos(p);
      const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2, mx = (x1 + x2) / 2;
      edges.append(svg("path", { class: "edge", d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}` }));
    }
    const g = svg("g", { class: `node n-${statuses[n.name] || "PENDING"}`, transform: `translate(${b.x},${b.y})`, "data-node": n.name, "data-status": statuses[n.name] || "PENDING" });
    g.append(svg("rect", { class: "box", width: W, height: H }), svg("rect", { class: "bar", x: 0, y: 0, width: 5, height: H, rx: 2 }));
    const label = svg("text", { x: 14, y: 17 });
    label.textContent = n.name.length > 19 ? n.name.slice(0, 18) + "…" : n.name;
    const sub = svg("text", { class: "sub", x: 14, y: 31 });
    sub.textContent = subtitle ? subtitle(n) : statuses[n.name] || "PENDING";
    const title = svg("title");
    title.textContent = `${n.name}\n${n.task}${n.queue ? " · queue " + n.queue : ""}`;
    g.append(label, sub, title);
    g.addEventListener("click", () => onSelect(n.name));
    root.append(g);
    els.set(n.name, { g, sub });
  }
  let selected = null;
  const wrap = h("div", { class: "graph-wrap", id: "graph" }, root);
  // Shrink a wide graph to the card's width (down to 60 %); wider still, it scrolls.
  requestAnimationFrame(() => {
    const room = wrap.clientWidth - 2;
    if (room > 0 && width > room) {
      const scale = Math.max(0.6, room / width);
      root.setAttribute("width", String(Math.floor(width * scale)));
      root.setAttribute("height", String(Math.floor(height * scale)));
    }
  });
  return {
    el: wrap,
    set(name, status) {
      const e = els.get(name);
      if (!e) return;
      e.g.setAttribute("class", `node n-${status}${selected === name ? " sel" : ""}`);
      e.g.dataset.status = status;
      if (!subtitle) e.sub.textContent = status;
    },
    select(name) {
      if (selected && els.get(selected)) els.get(selected).g.classList.remove("sel");
      selected = name;
      if (els.get(name)) els.get(name).g.classList.add("sel");
    },
  };
}

// A large run as a canvas grid: one square per node, in definition order; O(1) to repaint a node.
function drawGrid(nodes, statuses, onSelect) {
  const CELL = 9, GAP = 2, STEP = CELL + GAP;
  const wrap = h("div", { class: "graph-wrap", id: "graph", style: "padding:12px" });
  const canvas = h("canvas", { class: "grid", id: "grid" });
  const info = h("div", { class: "muted", style: "margin-top:8px" }, `${nodes.length.toLocaleString()} nodes, one square each (definition order). Click a square, or find a node by name.`);
  wrap.append(canvas);
  const index = new Map(nodes.map((n, i) => [n.name, i]));
  const dpr = window.devicePixelRatio || 1;
  let cols = 100;
  let selected = -1;
  const ctx = canvas.getContext("2d");
  function paint(i) {
    const x = (i % cols) * STEP, y = Math.floor(i / cols) * STEP;
    ctx.fillStyle = COLORS[statuses[nodes[i].name] || "PENDING"];
    ctx.fillRect(x, y, CELL, CELL);
    if (i === selected) { ctx.strokeStyle = "#0f172a"; ctx.lineWidth = 2; ctx.strokeRect(x + 1, y + 1, CELL - 2, CELL - 2); }
  }
  function paintAll() {
    cols = Math.max(20, Math.floor(((wrap.clientWidth || 900) - 24) / STEP));
    const rows = Math.ceil(nodes.length / cols);
    canvas.width = cols * STEP * dpr;
    canvas.height = rows * STEP * dpr;
    canvas.style.width = `${cols * STEP}px`;
    canvas.style.height = `${rows * STEP}px`;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    for (let i = 0; i < nodes.length; i++) paint(i);
  }
  canvas.addEventListener("click", (ev) => {
    const r = canvas.getBoundingClientRect();
    const i = Math.floor((ev.clientY - r.top) / STEP) * cols + Math.floor((ev.clientX - r.left) / STEP);
    if (i >= 0 && i < nodes.length) onSelect(nodes[i].name);
  });
  canvas.addEventListener("mousemove", (ev) => {
    const r = canvas.getBoundingClientRect();
    const i = Math.floor((ev.clientY - r.top) / STEP) * cols + Math.floor((ev.clientX - r.left) / STEP);
    canvas.title = i >= 0 && i < nodes.length ? `${nodes[i].name}: ${statuses[nodes[i].name] || "PENDING"}` : "";
  });
  requestAnimationFrame(paintAll);
  window.addEventListener("resize", () => requestAnimationFrame(paintAll));
  return {
    el: h("div", {}, wrap, info),
    set(name) { const i = index.get(name); if (i !== undefined) paint(i); },
    select(name) {
      const old = selected;
      selected = index.has(name) ? index.get(name) : -1;
      if (old >= 0) paint(old);
      if (selected >= 0) paint(selected);
    },
  };
}

function legend() {
  return h("div", { class: "legend" }, NODE_STATUSES.map((s) => h("span", {}, h("span", { class: "dot", style: `background:${COLORS[s]}` }), s.toLowerCase())));
}

// -- run page --------------------------------------------------------------------------------------------

async function runView(main, runId) {
  setNav("runs");
  let state, graph;
  try {
    [state, graph] = await Promise.all([api(`/api/runs/${runId}`), api(`/api/runs/${runId}/graph`)]);
  } catch (e) {
    main.replaceChildren(h("div", { class: "card empty" }, e.status === 404 ? `No run ${runId} (wrong id, cleaned up, or expired).` : `Cannot load the run: ${e.message}`), h("p", {}, h("a", { href: `${ROOT}/` }, "← All runs")));
    return;
  }
  const nodes = graph.nodes;
  const statuses = {};
  const times = {};
  for (const [name, n] of Object.entries(state.nodes)) {
    statuses[name] = n.status;
    times[name] = { started: n.started_at, finished: n.finished_at };
  }
  let runStatus = state.status;
  let selectedNode = null;
  const live = h("span", { class: "live", id: "live" }, "live");
  const statusSlot = h("span", { id: "run-status" });
  const progressSlot = h("div", { id: "run-progress" });
  const countsSlot = h("div", { class: "counts" });
  const actions = h("div", { class: "actions" });
  const meta = h("div", { class: "meta" });
  const panel = h("div", { class: "card panel", id: "node-panel" }, h("h2", {}, "Node"), h("p", { class: "muted" }, "Select a node in the graph to see its status, attempts, worker, times, error and result."));
  const timeline = h("div", { id: "timeline" });
  const view = (nodes.length > GRAPH_LIMIT ? drawGrid : drawGraph)(nodes, statuses, select);
  const finder = nodes.length > GRAPH_LIMIT ? h("input", { type: "text", id: "find-node", placeholder: "Find node by name", list: "node-names" }) : null;
  const findList = finder ? h("datalist", { id: "node-names" }) : null;
  if (finder) {
    finder.addEventListener("change", () => { if (statuses[finder.value] !== undefined) select(finder.value); });
    finder.addEventListener("focus", () => { if (!findList.childElementCount) findList.append(...nodes.slice(0, 20000).map((n) => h("option", { value: n.name }))); }, { once: true });
  }

  main.replaceChildren(
    h("p", { style: "margin:0 0 10px" }, h("a", { href: `${ROOT}/` }, "← All runs")),
    h("div", { class: "card" },
      h("div", { class: "page-head", style: "margin-bottom:6px" }, h("h1", {}, state.name), statusSlot, live, actions),
      h("div", { class: "mono muted" }, runId),
      h("div", { style: "margin-top:14px" }, progressSlot),
      countsSlot, meta),
    h("div", { class: "grid2" },
      h("div", { class: "card" }, h("div", { class: "toolbar", style: "margin-bottom:10px" }, h("h2", { style: "margin:0" }, "Graph"), h("span", { class: "spacer" }), finder, findList), view.el, legend()),
      panel),
    h("div", { class: "card" }, h("h2", {}, "Timeline"), timeline),
  );

  function renderHeader() {
    const counts = Object.fromEntries(NODE_STATUSES.map((s) => [s, 0]));
    for (const s of Object.values(statuses)) counts[s] += 1;
    const total = nodes.length;
    const done = counts.SUCCEEDED + counts.FAILED + counts.SKIPPED + counts.REVOKED;
    statusSlot.replaceChildren(badge(runStatus, true));
    progressSlot.replaceChildren(h("div", { class: "progress-cell" }, progressBar(counts, total, true), h("span", { class: "mono", id: "run-done" }, `${done} / ${total} done`)));
    countsSlot.replaceChildren(...NODE_STATUSES.filter((s) => counts[s]).map((s) => h("span", {}, h("span", { class: "dot", style: `background:${COLORS[s]}` }), h("b", {}, String(counts[s])), " " + s.toLowerCase())));
    const end = state.finished_at || Date.now() / 1000;
    meta.replaceChildren(
      h("div", {}, h("span", {}, "Created"), clock(state.created_at)),
      h("div", {}, h("span", {}, "Duration"), duration(end - state.created_at)),
      h("div", {}, h("span", {}, "Failure policy"), state.policy),
      h("div", {}, h("span", {}, "Params"), h("code", {}, JSON.stringify(state.params))),
    );
    renderActions();
  }

  function renderActions() {
    if (CFG.readOnly) { actions.replaceChildren(); return; }
    const can = {
      pause: runStatus === "RUNNING", resume: runStatus === "PAUSED", cancel: runStatus === "RUNNING" || runStatus === "PAUSED",
      retry: runStatus === "FAILED" || runStatus === "CANCELLED", cleanup: true,
    };
    const texts = {
      pause: ["Pause this run?", "Nodes that have not started will wait; running nodes finish. Resume continues the run.", "Pause"],
      resume: ["Resume this run?", "What did not succeed is queued again.", "Resume"],
      cancel: ["Cancel this run?", "Queued nodes are revoked and the run ends CANCELLED. Retry can re-run it later.", "Cancel run"],
      retry: ["Retry this run?", "Every node that did not succeed runs again; results that succeeded are reused.", "Retry"],
      cleanup: ["Delete this run?", "Every Redis key of the run is deleted (a live run is cancelled first). This cannot be undone.", "Delete"],
    };
    actions.replaceChildren(...Object.keys(can).map((op) => h("button", {
      class: op === "cancel" || op === "cleanup" ? "btn danger" : "btn", id: `btn-${op}`, disabled: !can[op],
      onclick: async () => {
        const [title, text, label] = texts[op];
        if (!(await confirmDialog(title, text, label))) return;
        try {
          if (op === "cleanup") {
            await api(`/api/runs/${runId}?force=true`, { method: "DELETE" });
            location.href = `${ROOT}/`;
            return;
          }
          const fresh = await api(`/api/runs/${runId}/${op}`, { method: "POST" });
          // The operation's transitions reach the page through the event stream, in order. Its response is
          // a snapshot taken a moment ago: applied over a live stream it could roll back newer events.
          if (!source || source.readyState === EventSource.CLOSED) applyState(fresh);
          toast(`Run ${op === "pause" ? "paused" : op === "cancel" ? "cancelled" : op === "resume" ? "resumed" : "retried"}.`, true);
          follow();
        } catch (e) { toast(e.message); }
      },
    }, op === "cleanup" ? "Delete" : op[0].toUpperCase() + op.slice(1))));
  }

  function applyState(fresh) {
    state = fresh;
    runStatus = fresh.status;
    for (const [name, n] of Object.entries(fresh.nodes)) {
      statuses[name] = n.status;
      times[name] = { started: n.started_at, finished: n.finished_at };
      view.set(name, n.status);
    }
    schedule();
  }

  async function select(name) {
    selectedNode = name;
    view.select(name);
    if (finder) finder.value = name;
    await renderPanel();
  }

  async function renderPanel() {
    const name = selectedNode;
    if (!name) return;
    let n;
    try { n = await api(`/api/runs/${runId}/nodes/${encodeURIComponent(name)}`); } catch (e) { panel.replaceChildren(h("h2", {}, name), h("p", { class: "muted" }, e.message)); return; }
    if (name !== selectedNode) return;
    const dur = n.started_at && n.finished_at ? n.finished_at - n.started_at : null;
    const rows = [
      ["Status", badge(n.status)], ["Task", h("code", {}, n.task)], ["Attempts", String(n.attempts)],
      ["Queue", n.queue || "default"], ["Worker", n.worker || "—"], ["Started", clock(n.started_at)],
      ["Finished", clock(n.finished_at)], ["Duration", duration(dur)], ["Task id", h("code", {}, n.task_id)],
      ["Parents", n.parents.length ? n.parents.join(", ") : "—"],
    ];
    if (n.flower_url) rows.push(["Flower", h("a", { href: n.flower_url, target: "_blank", rel: "noopener", id: "flower-link" }, "Open task in Flower ↗")]);
    const parts = [h("h2", { id: "panel-name" }, name), h("dl", {}, rows.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]))];
    if (n.error) {
      parts.push(h("div", { class: "section-label" }, "Error"), h("pre", { class: "box err", id: "node-error" }, `${n.error.type}: ${n.error.message}${n.error.traceback ? "\n\n" + n.error.traceback : ""}`));
    }
    if (n.result_preview !== null) {
      parts.push(h("div", { class: "section-label" }, n.result_truncated ? "Result (first 4 KB)" : "Result"), h("pre", { class: "box", id: "node-result" }, n.result_preview));
    }
    panel.replaceChildren(...parts);
    // wf-signals.js adds what a waiting node waits for, and the signal control of a wait node
    panel.dispatchEvent(new CustomEvent("wf:node-panel", { bubbles: true, detail: { runId, node: n } }));
  }

  function renderTimeline() {
    const rows = nodes.filter((n) => times[n.name] && times[n.name].started)
      .sort((a, b) => times[a.name].started - times[b.name].started);
    if (!rows.length) { timeline.replaceChildren(h("p", { class: "muted" }, "No node has started yet.")); return; }
    const shown = rows.slice(0, TIMELINE_ROWS);
    const now = Date.now() / 1000;
    const t0 = state.created_at;
    const t1 = Math.max(...shown.map((n) => times[n.name].finished || (TERMINAL.has(statuses[n.name]) ? times[n.name].started : now)), t0 + 0.001);
    const LABEL = 180, ROW = 20, width = Math.max(600, timeline.clientWidth || 900), plot = width - LABEL - 20;
    const x = (t) => LABEL + ((t - t0) / (t1 - t0)) * plot;
    const s = svg("svg", { class: "timeline", width, height: shown.length * ROW + 26 });
    for (let k = 0; k <= 4; k++) {
      const t = t0 + ((t1 - t0) * k) / 4;
      s.append(svg("line", { x1: x(t), x2: x(t), y1: 0, y2: shown.length * ROW + 6 }));
      const label = svg("text", { class: "axis", x: x(t) - (k === 4 ? 30 : 0), y: shown.length * ROW + 20 });
      label.textContent = "+" + duration(t - t0);
      s.append(label);
    }
    shown.forEach((n, i) => {
      const tm = times[n.name];
      const end = tm.finished || (TERMINAL.has(statuses[n.name]) ? tm.started : now);
      const label = svg("text", { x: 0, y: i * ROW + 14 });
      label.textContent = n.name.length > 24 ? n.name.slice(0, 23) + "…" : n.name;
      const bar = svg("rect", { x: x(tm.started), y: i * ROW + 4, width: Math.max(3, x(end) - x(tm.started)), height: 12, fill: COLORS[statuses[n.name]] || COLORS.PENDING });
      const title = svg("title");
      title.textContent = `${n.name}: ${statuses[n.name]}, ${duration(end - tm.started)}`;
      bar.append(title);
      s.append(label, bar);
    });
    const note = rows.length > TIMELINE_ROWS ? h("p", { class: "muted" }, `First ${TIMELINE_ROWS} of ${rows.length} started nodes.`) : null;
    timeline.replaceChildren(s, note || "");
  }

  // Live updates: node events recolour their node at once; the header, timeline and panel are redrawn at
  // most once per animation frame (timeline: every 500 ms) however many events arrive.
  let frame = 0, lastTimeline = 0, trailing = 0, panelDirty = false;
  function schedule() {
    if (frame) return;
    frame = requestAnimationFrame(() => {
      frame = 0;
      renderHeader();
      if (performance.now() - lastTimeline > 500) { lastTimeline = performance.now(); renderTimeline(); }
      else if (!trailing) trailing = setTimeout(() => { trailing = 0; lastTimeline = 0; schedule(); }, 500);
      if (panelDirty) { panelDirty = false; renderPanel(); }
    });
  }
  setInterval(() => { if (runStatus === "RUNNING" || runStatus === "PAUSED") { lastTimeline = 0; schedule(); } }, 1000);

  let source = null, lastId = "";
  function follow() {
    if (source && source.readyState !== EventSource.CLOSED) return;
    const q = lastId ? `?last_event_id=${encodeURIComponent(lastId)}` : "";
    source = new EventSource(`${ROOT}/api/runs/${runId}/events${q}`);
    source.onopen = () => { live.classList.add("on"); live.textContent = "live"; };
    source.onerror = (ev) => {
      live.classList.remove("on");
      // A refused reconnect (503 while the tracker's Redis is down) closes an EventSource for good, where a
      // dropped connection is retried by the browser: follow again, from the last id, until it answers.
      if (ev.target.readyState !== EventSource.CLOSED) return;
      live.textContent = "reconnecting";
      setTimeout(async () => {
        // a run deleted meanwhile answers 404: say so and stop; anything else (503, no answer): follow again
        try {
          if ((await fetch(`${ROOT}/api/runs/${runId}`)).status === 404) { live.textContent = "run deleted"; return; }
        } catch (e) { /* the server is down: keep trying */ }
        follow();
      }, 2000);
    };
    source.addEventListener("node", (ev) => {
      lastId = ev.lastEventId || lastId;
      const e = JSON.parse(ev.data);
      if (!e.node) return;
      statuses[e.node] = e.status;
      const tm = (times[e.node] ||= {});
      if (e.status === "RUNNING") { tm.started = e.at; tm.finished = null; }
      else if (e.status === "QUEUED") { tm.started = null; tm.finished = null; }
      else if (TERMINAL.has(e.status)) tm.finished = e.at;
      view.set(e.node, e.status);
      if (e.node === selectedNode) panelDirty = true;
      schedule();
    });
    source.addEventListener("run", (ev) => {
      lastId = ev.lastEventId || lastId;
      const e = JSON.parse(ev.data);
      runStatus = e.status;
      if (RUN_STATUSES.indexOf(e.status) >= 2) state.finished_at = e.at; else state.finished_at = null;
      schedule();
    });
    source.addEventListener("end", (ev) => {
      lastId = ev.lastEventId || lastId;
      source.close();
      live.classList.remove("on");
      live.textContent = "ended";
      const e = JSON.parse(ev.data);
      if (e.deleted) toast("This run was deleted.");
      else api(`/api/runs/${runId}`).then(applyState).catch(() => {});
    });
  }
  renderHeader();
  renderTimeline();
  follow();
  // wf-signals.js draws sub-workflow nodes as links to their child runs
  document.dispatchEvent(new CustomEvent("wf:run", { detail: { runId, state, graph, select } }));
}

// -- definitions -----------------------------------------------------------------------------------------

async function definitionsView(main) {
  setNav("definitions");
  let defs;
  try { defs = await api("/api/definitions"); } catch (e) { main.replaceChildren(h("div", { class: "card empty" }, e.message)); return; }
  const body = defs.length
    ? h("table", { class: "list", id: "definitions" },
      h("thead", {}, h("tr", {}, ["Definition", "Nodes", "Params", "On failure"].map((t) => h("th", {}, t)))),
      h("tbody", {}, defs.map((d) => h("tr", {},
        h("td", {}, h("a", { href: `${ROOT}/definitions/${encodeURIComponent(d.name)}` }, h("b", {}, d.name))),
        h("td", {}, String(d.nodes)), h("td", {}, d.params.length ? h("code", {}, d.params.join(", ")) : "—"), h("td", {}, d.on_failure)))))
    : h("div", { class: "empty" }, "No definitions yet: engine.register(workflow) or set wfcelery_definitions to a folder of YAML/JSON files.");
  main.replaceChildren(h("div", { class: "page-head" }, h("h1", {}, "Definitions")), h("div", { class: "card" }, body));
}

async function definitionView(main, name) {
  setNav("definitions");
  let d;
  try { d = await api(`/api/definitions/${encodeURIComponent(name)}`); } catch (e) { main.replaceChildren(h("div", { class: "card empty" }, e.message)); return; }
  const statuses = {};
  const view = (d.graph.nodes.length > GRAPH_LIMIT ? drawGrid : drawGraph)(d.graph.nodes, statuses, () => {}, (n) => n.task + (n.queue ? ` · ${n.queue}` : ""));
  const inputs = {};
  const form = h("form", { id: "start-form" });
  const names = [...new Set([...d.params, ...Object.keys(d.defaults)])].sort();
  for (const p of names) {
    const value = p in d.defaults ? (typeof d.defaults[p] === "string" ? d.defaults[p] : JSON.stringify(d.defaults[p])) : "";
    inputs[p] = h("input", { type: "text", name: p, id: `param-${p}`, value, placeholder: "value (JSON or text)" });
    form.append(h("div", { class: "form-row" }, h("label", { for: `param-${p}` }, p), inputs[p]));
  }
  if (!names.length) form.append(h("p", { class: "muted" }, "This workflow takes no params."));
  const start = h("button", { class: "btn primary", id: "start-run", type: "submit" }, "Start run");
  if (!CFG.readOnly) form.append(start);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const params = {};
    for (const [k, input] of Object.entries(inputs)) {
      if (input.value === "") continue;
      try { params[k] = JSON.parse(input.value); } catch { params[k] = input.value; }
    }
    start.disabled = true;
    try {
      const run = await api("/api/runs", { method: "POST", headers: { "Content-Type": "application/json", Accept: "application/json" }, body: JSON.stringify({ name: d.name, params }) });
      location.href = `${ROOT}/runs/${run.id}`;
    } catch (e) { toast(e.message); start.disabled = false; }
  });
  main.replaceChildren(
    h("p", { style: "margin:0 0 10px" }, h("a", { href: `${ROOT}/definitions` }, "← All definitions")),
    h("div", { class: "page-head" }, h("h1", {}, d.name), h("span", { class: "muted" }, `${d.nodes} nodes · on failure: ${d.on_failure}`)),
    h("div", { class: "grid2" }, h("div", { class: "card" }, h("h2", {}, "Graph"), view.el),
      h("div", { class: "card" }, h("h2", {}, CFG.readOnly ? "Params" : "Start a run"), form)),
  );
}

// -- routing ---------------------------------------------------------------------------------------------

(function route() {
  const main = document.getElementById("main");
  const path = location.pathname.slice(ROOT.length) || "/";
  let m;
  if ((m = path.match(/^\/runs\/([^/]+)\/?$/))) runView(main, decodeURIComponent(m[1]));
  else if (path.replace(/\/$/, "") === "/definitions") definitionsView(main);
  else if ((m = path.match(/^\/definitions\/([^/]+)\/?$/))) definitionView(main, decodeURIComponent(m[1]));
  else runsView(main);
})();
