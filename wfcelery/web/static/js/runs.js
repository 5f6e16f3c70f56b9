// The runs list (/): newest first, filtered by status and name, paged, refreshed every 2 s.
import { api, pageUrl, path } from "./api.js";
import { h, keepFocus } from "./dom.js";
import { ago, duration, shortId } from "./format.js";
import { setNav } from "./nav.js";
import { RUN_STATUSES, RUN_TONE } from "./statuses.js";
import { waitingCard } from "./signals.js";
import { badge, progressBar } from "./widgets.js";

const PAGE = 25;
const REFRESH_MS = 2000;

export function runsView(main) {
  setNav("runs");
  const params = new URLSearchParams(location.search);
  const filters = runFilters(params);
  const list = runList();
  let offset = Number(params.get("offset") || 0);
  let next = null;
  main.replaceChildren(
    h("div", { class: "page-head" }, h("h1", {}, "Runs"), list.live),
    h("div", { class: "card" }, h("div", { class: "toolbar" }, filters.status, filters.name), list.table,
      h("div", { class: "pager" }, list.newer, list.older)),
  );
  waitingCard(main);
  async function refresh() {
    const q = filters.query();
    q.set("limit", String(PAGE));
    q.set("offset", String(offset));
    try {
      const page = await api(`/api/runs?${q}`);
      next = page.next_offset;
      list.show(page.runs, offset === 0, next === null, filters.query().toString() !== "");
    } catch (e) {
      list.failed(e.message);
    }
  }
  const go = (to) => {
    offset = to;
    const q = filters.query();
    if (offset) q.set("offset", String(offset));
    history.replaceState(null, "", `${location.pathname}${q.toString() ? `?${q}` : ""}`);
    refresh();
  };
  filters.onChange(() => go(0));
  list.newer.addEventListener("click", () => go(Math.max(0, offset - PAGE)));
  list.older.addEventListener("click", () => { if (next !== null) go(next); });
  refresh();
  setInterval(refresh, REFRESH_MS);
}

function runFilters(params) {
  const status = h("select", { id: "filter-status", "aria-label": "Status" },
    h("option", { value: "" }, "All statuses"), RUN_STATUSES.map((s) => h("option", { value: s }, s)));
  status.value = params.get("status") || "";
  const name = h("input", { id: "filter-name", type: "text", placeholder: "Workflow name", value: params.get("name") || "" });
  let timer = 0;
  return {
    status,
    name,
    query() {
      const q = new URLSearchParams();
      if (status.value) q.set("status", status.value);
      if (name.value.trim()) q.set("name", name.value.trim());
      return q;
    },
    onChange(fn) {
      status.addEventListener("change", fn);
      name.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(fn, 250); });
    },
  };
}

function runList() {
  const live = h("span", { class: "live" }, "live");
  const body = h("tbody");
  const newer = h("button", { class: "btn", id: "newer" }, "← Newer");
  const older = h("button", { class: "btn", id: "older" }, "Older →");
  const table = h("table", { class: "list", id: "runs" },
    h("thead", {}, h("tr", {}, ["Status", "Workflow", "Run", "Progress", "Created", "Duration"].map((t) => h("th", {}, t)))), body);
  const message = (text) => h("tr", {}, h("td", { colspan: 6, class: "empty" }, text));
  return {
    live, table, newer, older,
    show(runs, first, last, filtered) {
      live.classList.add("on");
      keepFocus(body, "data-run", () => body.replaceChildren(...runs.map(runRow)));
      if (!runs.length && filtered) body.append(message("No runs match these filters (a workflow's name matches whole)."));
      else if (!runs.length) body.append(message("No runs yet. Start one from Definitions, the CLI or POST /api/runs."));
      newer.disabled = first;
      older.disabled = last;
    },
    failed(why) {
      live.classList.remove("on");
      body.replaceChildren(message(`Cannot load runs: ${why}`));
    },
  };
}

function runRow(r) {
  const counts = { [RUN_TONE[r.status]]: r.done };
  const end = r.finished_at || Date.now() / 1000;
  return h("tr", { "data-run": r.id },
    h("td", {}, badge(r.status)),
    h("td", {}, h("b", {}, r.name)),
    h("td", {}, h("a", { class: "mono", href: pageUrl(path`/runs/${r.id}`) }, shortId(r.id))),
    h("td", {}, h("div", { class: "progress-cell" }, progressBar(counts, r.total), h("span", { class: "muted mono", title: "nodes done / nodes (a mapped node counts once; its instances apart)" }, `${r.done}/${r.total}` + (r.instances ? ` +${r.instances} inst.` : "")))),
    h("td", { title: new Date(r.created_at * 1000).toLocaleString() }, ago(r.created_at)),
    h("td", {}, duration(end - r.created_at)),
  );
}
