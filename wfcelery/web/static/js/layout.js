// Layered layout of a DAG: a node's column is its longest path from a root; rows within a column are
// ordered by the mean row of their parents (two sweeps), which keeps most edges short and uncrossed.

export function layout(nodes) {
  const byName = new Map(nodes.map((n) => [n.name, n]));
  const layer = new Map();
  const order = topo(nodes, byName);
  for (const n of order) layer.set(n.name, Math.max(-1, ...n.parents.map((p) => layer.get(p))) + 1);
  const columns = [];
  for (const n of order) (columns[layer.get(n.name)] ||= []).push(n);
  const row = new Map();
  columns.forEach((col) => col.forEach((n, i) => row.set(n.name, i)));
  const key = (n) => (n.parents.length ? n.parents.reduce((a, p) => a + row.get(p), 0) / n.parents.length : row.get(n.name));
  for (let sweep = 0; sweep < 2; sweep++) {
    for (const col of columns.slice(1)) {
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
  for (let i = 0; i < queue.length; i++) {
    const n = queue[i];
    out.push(n);
    for (const c of children.get(n.name)) {
      indeg.set(c, indeg.get(c) - 1);
      if (indeg.get(c) === 0) queue.push(byName.get(c));
    }
  }
  return out;
}
