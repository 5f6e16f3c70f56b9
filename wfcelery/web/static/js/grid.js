// A large run as a canvas grid: one square per node, in definition order; O(1) to repaint a node.
// Returns { el, set(name), select(name) }, like drawGraph.
import { h, safeText } from "./dom.js";
import { colorOf } from "./statuses.js";

const CELL = 9, GAP = 2, STEP = CELL + GAP;

export function drawGrid(nodes, statuses, onSelect) {
  const wrap = h("div", { class: "graph-wrap padded", id: "graph" });
  const canvas = h("canvas", { class: "grid", id: "grid" });
  const info = h("div", { class: "muted note" }, `${nodes.length.toLocaleString()} nodes, one square each (definition order). Click a square, or find a node by name.`);
  wrap.append(canvas);
  const index = new Map(nodes.map((n, i) => [n.name, i]));
  const dpr = window.devicePixelRatio || 1;
  const ctx = canvas.getContext("2d");
  let cols = 100;
  let selected = -1;
  const statusAt = (i) => statuses[nodes[i].name] || "PENDING";
  function paint(i) {
    const x = (i % cols) * STEP, y = Math.floor(i / cols) * STEP;
    ctx.fillStyle = colorOf(statusAt(i));
    ctx.fillRect(x, y, CELL, CELL);
    if (i === selected) { ctx.strokeStyle = "#0f172a"; ctx.lineWidth = 2; ctx.strokeRect(x + 1, y + 1, CELL - 2, CELL - 2); }
  }
  function paintAll() {
    cols = Math.max(20, Math.floor(((wrap.clientWidth || 900) - 24) / STEP));
    const rows = Math.ceil(nodes.length / cols);
    canvas.width = cols * STEP * dpr;
    canvas.height = rows * STEP * dpr;
    Object.assign(canvas.style, { width: `${cols * STEP}px`, height: `${rows * STEP}px` });
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    for (let i = 0; i < nodes.length; i++) paint(i);
  }
  const at = (ev) => {
    const r = canvas.getBoundingClientRect();
    const i = Math.floor((ev.clientY - r.top) / STEP) * cols + Math.floor((ev.clientX - r.left) / STEP);
    return i >= 0 && i < nodes.length ? i : -1;
  };
  canvas.addEventListener("click", (ev) => { const i = at(ev); if (i >= 0) onSelect(nodes[i].name); });
  canvas.addEventListener("mousemove", (ev) => { const i = at(ev); canvas.title = i >= 0 ? safeText(`${nodes[i].name}: ${statusAt(i)}`) : ""; });
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

// The graph for a few hundred nodes, the grid beyond.
export const GRAPH_LIMIT = 400;
