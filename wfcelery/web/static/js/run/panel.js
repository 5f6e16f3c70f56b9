// The node panel: one node's status, task, attempts, queue, worker, times, parents, Flower link, error
// with traceback and result preview, read from GET /api/runs/<id>/nodes/<node>.
import { api, path } from "../api.js";
import { h, keepFocus } from "../dom.js";
import { clock, duration } from "../format.js";
import { waitingParts } from "../signals.js";
import { badge } from "../widgets.js";

export function nodePanel(runId) {
  const el = h("div", { class: "card panel", id: "node-panel" }, h("h2", {}, "Node"),
    h("p", { class: "muted" }, "Select a node in the graph to see its status, attempts, worker, times, error and result."));
  let shown = null, rendered = null;
  async function show(name) {
    shown = name;
    if (!name) return;
    let n;
    try { n = await api(path`/api/runs/${runId}/nodes/${name}`); } catch (e) { el.replaceChildren(h("h2", {}, name), h("p", { class: "muted" }, e.message)); return; }
    if (name !== shown) return; // a later selection wins
    const draft = rendered === name ? signalDraft(el) : null;
    keepFocus(el, "id", () => el.replaceChildren(...details(name, n), ...waitingParts(runId, n)));
    rendered = name;
    if (draft) restoreDraft(el, draft);
  }
  return { el, show, get shown() { return shown; }, refresh: () => show(shown) };
}

// A refresh of the same node (its events arrive: the stream's replay at connect, a transition) keeps what
// was typed in its signal field, its caret and the problem it shows (keepFocus keeps the focus).
function signalDraft(el) {
  const field = el.querySelector("#signal-data");
  return field && field.value ? { value: field.value, start: field.selectionStart, end: field.selectionEnd } : null;
}

function restoreDraft(el, draft) {
  const field = el.querySelector("#signal-data");
  if (!field) return; // the node no longer waits for a signal
  field.value = draft.value;
  field.dispatchEvent(new Event("input")); // the button's label and the JSON check follow the text
  if (document.activeElement === field) field.setSelectionRange(draft.start, draft.end);
}

function details(name, n) {
  const dur = n.started_at && n.finished_at ? n.finished_at - n.started_at : null;
  const task = !n.kind || n.kind === "task"; // a wait, sleep or sub-workflow node has no task, queue or worker
  const rows = [
    ["Status", badge(n.status)], [task ? "Task" : "Node", h("code", {}, n.task)],
    ...(task ? [["Attempts", String(n.attempts)], ["Queue", n.queue || "default"], ["Worker", n.worker || "—"]] : []),
    ["Started", clock(n.started_at)], ["Finished", clock(n.finished_at)], ["Duration", duration(dur)],
    ...(task ? [["Task id", h("code", {}, n.task_id)]] : []),
    ["Parents", n.parents.length ? n.parents.join(", ") : "—"],
  ];
  if (n.flower_url) rows.push(["Flower", h("a", { href: n.flower_url, target: "_blank", rel: "noopener", id: "flower-link" }, "Open task in Flower ↗")]);
  const parts = [h("h2", { id: "panel-name" }, name), h("dl", {}, rows.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]))];
  if (n.error) {
    const text = `${n.error.type}: ${n.error.message}${n.error.traceback ? `\n\n${n.error.traceback}` : ""}`;
    parts.push(h("div", { class: "section-label" }, "Error"), h("pre", { class: "box err", id: "node-error" }, text));
  }
  if (n.errors && n.errors.length) {  // every attempt's error, also after a later attempt succeeded
    const lines = n.errors.map((e) => `attempt ${e.attempt}  ${clock(e.at)}  ${e.type}: ${e.message}`);
    parts.push(h("div", { class: "section-label" }, "Errors by attempt"), h("pre", { class: "box", id: "node-errors" }, lines.join("\n")));
  }
  if (n.result_preview !== null) {
    parts.push(h("div", { class: "section-label" }, n.result_truncated ? "Result (first 4 KB)" : "Result"), h("pre", { class: "box", id: "node-result" }, n.result_preview));
  }
  return parts;
}
