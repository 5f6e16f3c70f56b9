// wfcelery dashboard: nodes that wait for the world. Self-contained (no globals of app.js are used): the
// pages announce themselves with DOM events and this file adds to them.
//   "wf:runs"       (document)   the runs list: a "Waiting for you" card of the nodes waiting for a signal
//   "wf:run"        (document)   a run's page: sub-workflow nodes drawn as links to their child runs;
//                                ?node=NAME opens that node's panel
//   "wf:node-panel" (the panel)  a node's panel: what a WAITING node waits for; a wait node's signal
//                                control -- a JSON field and "Approve" (empty field: {"approved": true})
//                                or "Send" (the field's JSON) -> POST /api/runs/{id}/nodes/{node}/signal
"use strict";

(function () {
  const config = JSON.parse(document.body.dataset.config || "{}");
  const root = config.root || "";

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else if (k === "class") e.className = v;
      else e.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) if (c !== null && c !== undefined) e.append(c);
    return e;
  }

  async function call(path, options = {}) {
    const resp = await fetch(root + path, { headers: { Accept: "application/json", "Content-Type": "application/json" }, ...options });
    const body = await resp.json().catch(() => ({}));
    if (!resp.ok) throw new Error(body.error || `HTTP ${resp.status}`);
    return body;
  }

  function say(message, ok) {
    const t = document.getElementById("toast");
    if (!t) return;
    t.textContent = message;
    t.className = ok ? "toast ok" : "toast";
    t.hidden = false;
    clearTimeout(say.timer);
    say.timer = setTimeout(() => { t.hidden = true; }, 5000);
  }

  function span(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
    return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  }

  const runLink = (id, node) => el("a", { class: "mono", href: `${root}/runs/${id}${node ? "?node=" + encodeURIComponent(node) : ""}` }, id.slice(0, 8) + "…" + id.slice(-4));

  // What a WAITING node waits for, in words.
  function waitingText(w) {
    const left = w.until ? w.until - Date.now() / 1000 : null;
    if (w.for === "signal") return "a signal" + (left === null ? "" : ` (times out in ${span(left)})`);
    if (w.for === "time") return `time: ${span(left)} left`;
    return "its child run";
  }

  // -- the runs list: "Waiting for you" -------------------------------------------------------------------

  document.addEventListener("wf:runs", (ev) => {
    const card = el("div", { class: "card waiting-card", id: "waiting", hidden: true });
    const main = ev.detail.main;
    main.insertBefore(card, main.children[1] || null);
    async function refresh() {
      let found;
      try { found = await call("/api/waiting?limit=20"); } catch (e) { return; }
      card.hidden = !found.length;
      const now = Date.now() / 1000;
      card.replaceChildren(
        el("h2", {}, `Waiting for you (${found.length})`),
        el("table", { class: "list" },
          el("thead", {}, el("tr", {}, ["Workflow", "Node", "Run", "Waiting", "Times out in"].map((t) => el("th", {}, t)))),
          el("tbody", {}, found.map((w) => el("tr", { "data-waiting": `${w.run}/${w.node}` },
            el("td", {}, el("b", {}, w.workflow)), el("td", {}, w.node), el("td", {}, runLink(w.run, w.node)),
            el("td", {}, span(now - w.since)), el("td", {}, w.until ? span(w.until - now) : "—"))))));
    }
    refresh();
    setInterval(refresh, 2000);
  });

  // -- a run's page: sub-workflow nodes as links ----------------------------------------------------------

  document.addEventListener("wf:run", (ev) => {
    const { runId, state, graph, select } = ev.detail;
    const subflows = graph.nodes.filter((n) => n.kind === "workflow").map((n) => n.name);
    const linked = new Set();
    function decorate(nodes) {
      for (const name of subflows) {
        const g = document.querySelector(`svg.dag [data-node="${CSS.escape(name)}"]`);
        const child = nodes[name] && nodes[name].child_run;
        if (!g || linked.has(name)) continue;
        g.classList.add("subflow");
        if (!child) continue;
        const a = document.createElementNS("http://www.w3.org/2000/svg", "a");
        a.setAttribute("href", `${root}/runs/${child}`);
        a.setAttribute("class", "subflow-link");
        a.setAttribute("data-child-run", child);
        const label = document.createElementNS("http://www.w3.org/2000/svg", "text");
        label.setAttribute("x", "138");
        label.setAttribute("y", "17");
        label.textContent = "↗";
        a.append(label);
        a.addEventListener("click", (e) => e.stopPropagation());
        g.append(a);
        linked.add(name);
      }
    }
    decorate(state.nodes);
    if (subflows.length) {
      const timer = setInterval(async () => {
        if (linked.size === subflows.length) { clearInterval(timer); return; }
        try { decorate((await call(`/api/runs/${runId}`)).nodes); } catch (e) { /* the next tick tries again */ }
      }, 1500);
    }
    const wanted = new URLSearchParams(location.search).get("node");
    if (wanted && state.nodes[wanted]) select(wanted);
  });

  // -- a node's panel: what it waits for, and the signal control ------------------------------------------

  document.addEventListener("wf:node-panel", (ev) => {
    const { runId, node } = ev.detail;
    const panel = ev.target;
    const parts = [];
    if (node.child_run) parts.push(el("div", { class: "section-label" }, "Child run"), el("p", {}, runLink(node.child_run), " ", el("span", { class: "muted" }, "(a run of its own: open it to follow it)")));
    if (node.status === "WAITING" && node.waiting) parts.push(el("p", { class: "waiting-for", id: "waiting-for" }, "Waiting for ", waitingText(node.waiting)));
    if (node.kind === "wait" && node.status === "WAITING" && !config.readOnly) parts.push(signalForm(runId, node.name));
    if (parts.length) panel.append(el("div", { class: "signal-box" }, parts));
  });

  function signalForm(runId, name) {
    const field = el("textarea", { id: "signal-data", rows: "4", placeholder: '{"by": "ops"}  (empty: approve)', spellcheck: "false", "aria-label": "Payload (JSON)" });
    const problem = el("div", { class: "signal-problem", id: "signal-problem" });
    const send = el("button", { class: "btn primary", id: "signal-send", type: "submit" }, "Approve");
    function payload() {
      const text = field.value.trim();
      if (!text) return { ok: true, value: { approved: true } };
      try { return { ok: true, value: JSON.parse(text) }; } catch (e) { return { ok: false, error: `not JSON: ${e.message}` }; }
    }
    field.addEventListener("input", () => {
      const p = payload();
      send.textContent = field.value.trim() ? "Send" : "Approve";
      send.disabled = !p.ok;
      problem.textContent = p.ok ? "" : p.error;
    });
    const form = el("form", { class: "signal-form", id: "signal-form" },
      el("div", { class: "section-label" }, "Signal"), field, problem, el("div", { class: "signal-buttons" }, send));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const p = payload();
      if (!p.ok) return;
      send.disabled = true;
      try {
        await call(`/api/runs/${runId}/nodes/${encodeURIComponent(name)}/signal`, { method: "POST", body: JSON.stringify(p.value) });
        say(`Signal sent to ${name}.`, true);
        form.remove();
      } catch (err) {
        say(err.message);
        send.disabled = false;
      }
    });
    return form;
  }
})();
