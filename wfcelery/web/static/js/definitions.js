// The definitions the engine knows (/definitions), and one of them with its graph and a form that starts
// a run (/definitions/<name>).
import { api, may, pageUrl, path, postJson } from "./api.js";
import { h, toast } from "./dom.js";
import { drawGraph } from "./graph.js";
import { drawGrid, GRAPH_LIMIT } from "./grid.js";
import { setNav } from "./nav.js";

export async function definitionsView(main) {
  setNav("definitions");
  let defs;
  try { defs = await api("/api/definitions"); } catch (e) { main.replaceChildren(h("div", { class: "card empty" }, e.message)); return; }
  const row = (d) => h("tr", {},
    h("td", {}, h("a", { href: pageUrl(path`/definitions/${d.name}`) }, h("b", {}, d.name))),
    h("td", {}, String(d.nodes)), h("td", {}, d.params.length ? h("code", {}, d.params.join(", ")) : "—"), h("td", {}, d.on_failure));
  const body = defs.length
    ? h("table", { class: "list", id: "definitions" },
      h("thead", {}, h("tr", {}, ["Definition", "Nodes", "Params", "On failure"].map((t) => h("th", {}, t)))),
      h("tbody", {}, defs.map(row)))
    : h("div", { class: "empty" }, "No definitions yet: engine.register(workflow) or set wfcelery_definitions to a folder of YAML/JSON files.");
  main.replaceChildren(h("div", { class: "page-head" }, h("h1", {}, "Definitions")), h("div", { class: "card" }, body));
}

export async function definitionView(main, name) {
  setNav("definitions");
  let d;
  try { d = await api(path`/api/definitions/${name}`); } catch (e) { main.replaceChildren(h("div", { class: "card empty" }, e.message)); return; }
  const nodes = d.graph.nodes;
  const subtitle = (n) => n.task + (n.queue ? ` · ${n.queue}` : "");
  const view = nodes.length > GRAPH_LIMIT ? drawGrid(nodes, {}, () => {}) : drawGraph(nodes, {}, () => {}, subtitle);
  main.replaceChildren(
    h("p", { class: "back" }, h("a", { href: pageUrl("/definitions") }, "← All definitions")),
    h("div", { class: "page-head" }, h("h1", {}, d.name), h("span", { class: "muted" }, `${d.nodes} nodes · on failure: ${d.on_failure}`)),
    h("div", { class: "grid2" }, h("div", { class: "card" }, h("h2", {}, "Graph"), view.el),
      h("div", { class: "card" }, h("h2", {}, may("operator") ? "Start a run" : "Params"), startForm(d))),
  );
}

// One input per param (its default filled in); submitting starts a run and opens its page.
function startForm(d) {
  const inputs = {};
  const form = h("form", { id: "start-form" });
  const names = [...new Set([...d.params, ...Object.keys(d.defaults)])].sort();
  for (const p of names) {
    const value = p in d.defaults ? (typeof d.defaults[p] === "string" ? d.defaults[p] : JSON.stringify(d.defaults[p])) : "";
    inputs[p] = h("input", { type: "text", name: p, id: `param-${p}`, value, placeholder: "value (JSON or text)" });
    form.append(h("div", { class: "form-row" }, h("label", { for: `param-${p}` }, p), inputs[p]));
  }
  if (!names.length) form.append(h("p", { class: "muted" }, "This workflow takes no params."));
  if (!may("operator")) return form;
  const start = h("button", { class: "btn primary", id: "start-run", type: "submit" }, "Start run");
  form.append(start);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const params = {};
    for (const [k, input] of Object.entries(inputs)) {
      if (input.value === "") continue;
      try { params[k] = JSON.parse(input.value); } catch { params[k] = input.value; }
    }
    start.disabled = true;
    try {
      const run = await postJson("/api/runs", { name: d.name, params });
      location.href = pageUrl(path`/runs/${run.id}`);
    } catch (e) { toast(e.message); start.disabled = false; }
  });
  return form;
}
