// A DAG as SVG, one box per node coloured by its status. Returns { el, set(name, status), select(name) }.
import { h, svg } from "./dom.js";
import { clip } from "./format.js";
import { layout } from "./layout.js";

const W = 156, H = 40, GX = 44, GY = 14, PAD = 16;

// statuses: { node: STATUS }; onSelect(name) on a click, Enter or Space; subtitle(node): the box's second line (default:
// its status).
export function drawGraph(nodes, statuses, onSelect, subtitle) {
  const { columns, layer, row } = layout(nodes);
  const tallest = Math.max(...columns.map((c) => c.length));
  const width = PAD * 2 + columns.length * W + (columns.length - 1) * GX;
  const height = PAD * 2 + tallest * H + (tallest - 1) * GY;
  const pos = (name) => {
    const col = columns[layer.get(name)];
    const offsetY = ((tallest - col.length) * (H + GY)) / 2;
    return { x: PAD + layer.get(name) * (W + GX), y: PAD + offsetY + row.get(name) * (H + GY) };
  };
  const root = svg("svg", { class: "dag", width, height, viewBox: `0 0 ${width} ${height}`, role: "group", "aria-label": "the workflow's graph" });
  const edges = svg("g");
  root.append(edges);
  const els = new Map();
  for (const n of nodes) {
    for (const p of n.parents) edges.append(edge(pos(p), pos(n.name)));
    const status = statuses[n.name] || "PENDING";
    const box = nodeBox(n, pos(n.name), status, subtitle ? subtitle(n) : status);
    box.g.addEventListener("click", () => onSelect(n.name));
    box.g.addEventListener("keydown", (e) => { // a node is a button: Tab reaches it, Enter or Space opens it
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); onSelect(n.name); }
    });
    root.append(box.g);
    els.set(n.name, box);
  }
  const wrap = h("div", { class: "graph-wrap", id: "graph" }, root);
  requestAnimationFrame(() => fitWidth(wrap, root, width, height));
  let selected = null;
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

function edge(a, b) {
  const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2, mx = (x1 + x2) / 2;
  return svg("path", { class: "edge", d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}` });
}

function nodeBox(n, at, status, subtitle) {
  const g = svg("g", { class: `node n-${status}`, transform: `translate(${at.x},${at.y})`, "data-node": n.name, "data-status": status,
    tabindex: 0, role: "button", "aria-label": n.name });
  g.append(svg("rect", { class: "box", width: W, height: H }), svg("rect", { class: "bar", x: 0, y: 0, width: 5, height: H, rx: 2 }));
  const sub = svg("text", { class: "sub", x: 14, y: 31 }, subtitle);
  g.append(svg("text", { x: 14, y: 17 }, clip(n.name, 19)), sub, svg("title", {}, `${n.name}\n${n.task}${n.queue ? ` · queue ${n.queue}` : ""}`));
  return { g, sub };
}

// Shrink a wide graph to its card's width (down to 60 %); wider still, it scrolls.
function fitWidth(wrap, root, width, height) {
  const room = wrap.clientWidth - 2;
  if (room > 0 && width > room) {
    const scale = Math.max(0.6, room / width);
    root.setAttribute("width", String(Math.floor(width * scale)));
    root.setAttribute("height", String(Math.floor(height * scale)));
  }
}
