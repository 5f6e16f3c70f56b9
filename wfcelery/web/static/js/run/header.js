// The run's card: its status badge, progress bar and counts, and when it started, how long it took, its
// failure policy and params; a QUEUED run says what it waits for, a run failed as a whole (its deadline)
// its error, and a run with a deadline when it falls.
import { h } from "../dom.js";
import { clock, duration } from "../format.js";
import { badge, progressBar, statusCounts } from "../widgets.js";

export function runHeader(model) {
  const status = h("span", { id: "run-status" });
  const progress = h("div", { id: "run-progress" });
  const counts = h("div", { class: "counts" });
  const meta = h("div", { class: "meta" });
  const field = (label, value) => h("div", {}, h("span", {}, label), value);
  return {
    status, progress, counts, meta,
    render() {
      const c = model.counts();
      const total = model.nodes.length;
      status.replaceChildren(badge(model.status, true));
      progress.replaceChildren(h("div", { class: "progress-cell" }, progressBar(c, total, true), h("span", { class: "mono", id: "run-done" }, `${model.done(c)} / ${total} nodes done` + (model.instances() ? ` · ${model.instances()} instances` : ""))));
      counts.replaceChildren(...statusCounts(c));
      const { state } = model;
      const end = state.finished_at || Date.now() / 1000;
      meta.replaceChildren(
        field("Created", clock(state.created_at)),
        field("Duration", duration(end - state.created_at)),
        field("Failure policy", state.policy),
        ...(state.run_key ? [h("div", { id: "run-key" }, h("span", {}, "Run key"), h("code", {}, state.run_key))] : []),
        ...(model.status === "QUEUED" ? [h("div", { id: "run-queued" }, h("span", {}, "Queued"), "waiting for max_active_runs")] : []),
        ...(state.deadline_at ? [h("div", { id: "run-deadline" }, h("span", {}, "Deadline"), clock(state.deadline_at))] : []),
        ...(state.error ? [h("div", { id: "run-error" }, h("span", {}, "Error"), h("code", {}, `${state.error.type}: ${state.error.message}`))] : []),
        field("Params", h("code", {}, JSON.stringify(state.params))),
      );
    },
  };
}

