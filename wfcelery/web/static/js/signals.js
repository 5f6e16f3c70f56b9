// Nodes that wait for the world (docs: waiting for the world). Wired in by three calls:
//   runs.js      waitingCard(main)              "Waiting for you": the nodes waiting for a signal
//   run/page.js  linkSubflows(...)              a sub-workflow node links to its child run; ?node=NAME
//                                               opens that node's panel
//   run/panel.js waitingParts(runId, node)      what a WAITING node waits for; a wait node's signal
//                                               control: a JSON field and "Approve" (empty field:
//                                               {"approved": true}) or "Send" (the field's JSON)
import { api, may, pageUrl, path, postJson } from "./api.js";
import { h, keepFocus, svg, toast } from "./dom.js";
import { shortId } from "./format.js";

const REFRESH_MS = 2000;

function span(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

// What a WAITING node waits for, in words.
function waitingText(w) {
  const left = w.until ? w.until - Date.now() / 1000 : null;
  if (w.for === "signal") return `a signal${left === null ? "" : ` (times out in ${span(left)})`}`;
  if (w.for === "time") return `time: ${span(left)} left`;
  if (w.for === "pool") return `pool ${w.pool}`;
  return "its child run";
}

const runLink = (id, node) =>
  h("a", { class: "mono", href: pageUrl(path`/runs/${id}`) + (node ? `?node=${encodeURIComponent(node)}` : "") }, shortId(id));

// -- the runs list ---------------------------------------------------------------------------------------

export function waitingCard(main) {
  const card = h("div", { class: "card waiting-card", id: "waiting", hidden: true });
  main.insertBefore(card, main.children[1] || null);
  async function refresh() {
    let found;
    try { found = await api("/api/waiting?limit=20"); } catch (e) { return; }
    card.hidden = !found.length;
    const now = Date.now() / 1000;
    keepFocus(card, "data-waiting", () => card.replaceChildren(
      h("h2", {}, `Waiting for you (${found.length})`),
      h("table", { class: "list" },
        h("thead", {}, h("tr", {}, ["Workflow", "Node", "Run", "Waiting", "Times out in"].map((t) => h("th", {}, t)))),
        h("tbody", {}, found.map((w) => h("tr", { "data-waiting": `${w.run}/${w.node}` },
          h("td", {}, h("b", {}, w.workflow)), h("td", {}, w.node), h("td", {}, runLink(w.run, w.node)),
          h("td", {}, span(now - w.since)), h("td", {}, w.until ? span(w.until - now) : "—")))))));
  }
  refresh();
  setInterval(refresh, REFRESH_MS);
}

// -- a run's page ----------------------------------------------------------------------------------------

// nodes: the graph's nodes ({name, kind}); children: { node: child run id } as known now.
export function linkSubflows(runId, nodes, children, select) {
  const subflows = nodes.filter((n) => n.kind === "workflow").map((n) => n.name);
  const linked = new Set();
  function decorate(known) {
    for (const name of subflows) {
      const box = document.querySelector(`svg.dag [data-node="${CSS.escape(name)}"]`);
      const child = known[name] && known[name].child_run;
      if (!box || !child || linked.has(name)) continue;
      const link = svg("a", { href: pageUrl(path`/runs/${child}`), class: "subflow-link", "data-child-run": child });
      link.append(svg("text", { x: 138, y: 17 }, "↗"), svg("title", {}, `child run ${child}`));
      link.addEventListener("click", (e) => e.stopPropagation());
      box.append(link);
      linked.add(name);
    }
  }
  decorate(children);
  if (subflows.length) {
    const timer = setInterval(async () => {
      if (linked.size === subflows.length) { clearInterval(timer); return; }
      try { decorate((await api(path`/api/runs/${runId}`)).nodes); } catch (e) { /* the next tick tries again */ }
    }, REFRESH_MS);
  }
  const wanted = new URLSearchParams(location.search).get("node");
  if (wanted && nodes.some((n) => n.name === wanted)) select(wanted);
}

// -- a node's panel --------------------------------------------------------------------------------------

export function waitingParts(runId, node) {
  const parts = [];
  if (node.child_run) {
    parts.push(h("div", { class: "section-label" }, "Child run"),
      h("p", { class: "child-run" }, runLink(node.child_run), " ", h("span", { class: "muted" }, "a run of its own")));
  }
  if (node.status === "WAITING" && node.waiting) {
    parts.push(h("p", { class: "waiting-for", id: "waiting-for" }, `Waiting for ${waitingText(node.waiting)}`));
  }
  if (node.kind === "wait" && node.status === "WAITING" && may("operator")) parts.push(signalForm(runId, node.name));
  return parts;
}

function signalForm(runId, name) {
  const field = h("textarea", { id: "signal-data", rows: "4", placeholder: '{"by": "ops"}  (empty: approve)', spellcheck: "false", "aria-label": "Payload (JSON)" });
  const problem = h("div", { class: "signal-problem", id: "signal-problem" });
  const send = h("button", { class: "btn primary", id: "signal-send", type: "submit" }, "Approve");
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
  const form = h("form", { class: "signal-form", id: "signal-form" },
    h("div", { class: "section-label" }, "Signal"), field, problem, h("div", { class: "signal-buttons" }, send));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const p = payload();
    if (!p.ok) return;
    send.disabled = true;
    try {
      await postJson(path`/api/runs/${runId}/nodes/${name}/signal`, p.value);
      toast(`Signal sent to ${name}.`, true);
      form.remove();
    } catch (err) {
      toast(err.message);
      send.disabled = false;
    }
  });
  return form;
}
