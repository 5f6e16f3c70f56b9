// A run's page (/runs/<id>): the header card, the DAG (or the grid for a large run), the node panel and
// the timeline, kept live by the run's event stream.
import { api, pageUrl, path } from "../api.js";
import { h, toast } from "../dom.js";
import { drawGraph } from "../graph.js";
import { drawGrid, GRAPH_LIMIT } from "../grid.js";
import { setNav } from "../nav.js";
import { FINISHED_RUN } from "../statuses.js";
import { linkSubflows } from "../signals.js";
import { legend } from "../widgets.js";
import { runActions } from "./actions.js";
import { runHeader } from "./header.js";
import { RunModel } from "./model.js";
import { nodePanel } from "./panel.js";
import { runStream } from "./stream.js";
import { runTimeline } from "./timeline.js";

const SETTLE_MS = 2000;

export async function runView(main, runId) {
  setNav("runs");
  let state, graph;
  try {
    [state, graph] = await Promise.all([api(path`/api/runs/${runId}`), api(path`/api/runs/${runId}/graph`)]);
  } catch (e) {
    const why = e.status === 404 ? `No run ${runId} (wrong id, cleaned up, or expired).` : `Cannot load the run: ${e.message}`;
    main.replaceChildren(h("div", { class: "card empty" }, why), h("p", {}, h("a", { href: pageUrl("/") }, "← All runs")));
    return;
  }
  const model = new RunModel(state, graph.nodes);
  const parts = runParts(model, select, onControl);
  const { view, panel, live } = parts;
  main.replaceChildren(...layoutOf(model, parts));

  function select(name) {
    view.select(name);
    if (parts.finder) parts.finder.input.value = name;
    panel.show(name);
  }
  function onControl(fresh) {
    // The operation's transitions reach the page through the event stream, in order. Its response is a
    // snapshot taken a moment ago: applied over a live stream it could roll back newer events.
    if (!stream.open) applySnapshot(fresh);
    stream.follow();
  }
  const redraw = redrawer(parts, panel);
  const stream = runStream(model.id, {
    live(what) { live.classList.toggle("on", what === "live"); live.textContent = what === "connecting" ? "live" : what; },
    node(e) {
      if (!e.node) return;
      model.nodeEvent(e);
      view.set(e.node, e.status);
      redraw.schedule(e.node === panel.shown);
    },
    run(e) { model.runEvent(e); redraw.schedule(); },
    end(e) {
      if (e.deleted) toast("This run was deleted.");
      else settle();
    },
  });
  // A run can end while bodies still run (a cancel lets them finish, fail-fast its running siblings):
  // their transitions come after the stream's end, so the page reads the run every 2 s while one runs,
  // and follows the stream again if the run is live again (a retry from elsewhere).
  async function settle() {
    let fresh;
    try { fresh = await api(path`/api/runs/${model.id}`); } catch { return; } // gone: what is shown stays
    applySnapshot(fresh);
    if (!FINISHED_RUN.has(fresh.status)) stream.follow();
    else if (Object.values(fresh.nodes).some((n) => n.status === "RUNNING")) setTimeout(settle, SETTLE_MS);
  }
  function applySnapshot(fresh) {
    for (const name of model.snapshot(fresh)) view.set(name, model.statuses[name]);
    redraw.schedule();
  }
  setInterval(() => { if (model.live) redraw.timeline(); }, 1000);
  parts.header.render();
  parts.actions.render();
  parts.timeline.render();
  stream.follow();
  linkSubflows(model.id, graph.nodes, state.nodes, select);
}

// The page's pieces, each drawing itself from the model.
function runParts(model, onSelect, onControl) {
  const large = model.nodes.length > GRAPH_LIMIT;
  return {
    view: (large ? drawGrid : drawGraph)(model.nodes, model.statuses, onSelect),
    finder: large ? nodeFinder(model, onSelect) : null,
    header: runHeader(model),
    actions: runActions(model, onControl),
    panel: nodePanel(model.id),
    timeline: runTimeline(model),
    live: h("span", { class: "live", id: "live" }, "live"),
  };
}

// A large run's find-by-name box (its list of names is built on first focus).
function nodeFinder(model, onSelect) {
  const list = h("datalist", { id: "node-names" });
  const input = h("input", { type: "text", id: "find-node", placeholder: "Find node by name", list: "node-names" });
  input.addEventListener("change", () => { if (model.statuses[input.value] !== undefined) onSelect(input.value); });
  input.addEventListener("focus", () => list.append(...model.nodes.slice(0, 20000).map((n) => h("option", { value: n.name }))), { once: true });
  return { input, list };
}

function layoutOf(model, { view, finder, header, actions, panel, timeline, live }) {
  const graphBar = h("div", { class: "toolbar tight" }, h("h2", {}, "Graph"), h("span", { class: "spacer" }), finder && [finder.input, finder.list]);
  return [
    h("p", { class: "back" }, h("a", { href: pageUrl("/") }, "← All runs")),
    h("div", { class: "card" },
      h("div", { class: "page-head tight" }, h("h1", {}, model.state.name), header.status, live, actions.el),
      h("div", { class: "mono muted" }, model.id),
      h("div", { class: "spaced" }, header.progress),
      header.counts, header.meta),
    h("div", { class: "grid2" }, h("div", { class: "card" }, graphBar, view.el, legend()), panel.el),
    h("div", { class: "card" }, h("h2", {}, "Timeline"), timeline.el),
  ];
}

// Live updates: a node event recolours its node at once; the header, the actions, the timeline and the
// panel are redrawn at most once per animation frame (the timeline at most every 500 ms) however many
// events arrive.
function redrawer({ header, actions, timeline }, panel) {
  let frame = 0, lastTimeline = 0, trailing = 0, panelDirty = false;
  function schedule(panelToo = false) {
    panelDirty ||= panelToo;
    if (frame) return;
    frame = requestAnimationFrame(() => {
      frame = 0;
      header.render();
      actions.render();
      if (performance.now() - lastTimeline > 500) { lastTimeline = performance.now(); timeline.render(); }
      else if (!trailing) trailing = setTimeout(() => { trailing = 0; lastTimeline = 0; schedule(); }, 500);
      if (panelDirty) { panelDirty = false; panel.refresh(); }
    });
  }
  return { schedule, timeline() { lastTimeline = 0; schedule(); } };
}
