// Pause / Resume / Cancel / Retry / Delete, each behind a confirmation, enabled where the run's status
// allows it. Each is shown only to a role that may do it, none in read-only mode (the server refuses the
// writes anyway).
import { api, may, pageUrl, path } from "../api.js";
import { confirmDialog, h, keepFocus, toast } from "../dom.js";

//: op -> [dialog title, dialog text, confirm button]
const TEXTS = {
  pause: ["Pause this run?", "Nodes that have not started will wait; running nodes finish. Resume continues the run.", "Pause"],
  resume: ["Resume this run?", "What did not succeed is queued again.", "Resume"],
  cancel: ["Cancel this run?", "Queued nodes are revoked and the run ends CANCELLED; running nodes finish (the API's terminate=true stops them). Retry can re-run it later.", "Cancel run"],
  retry: ["Retry this run?", "Every node that did not succeed runs again; results that succeeded are reused.", "Retry"],
  cleanup: ["Delete this run?", "Every Redis key of the run is deleted (a live run is cancelled first). This cannot be undone.", "Delete"],
};
const DONE = { pause: "paused", resume: "resumed", cancel: "cancelled", retry: "retried" };
const LABELS = { pause: "Pause", resume: "Resume", cancel: "Cancel", retry: "Retry", cleanup: "Delete" };

//: op -> the least role that may do it (wfcelery/web/roles.py)
const ROLES = { pause: "operator", resume: "operator", cancel: "operator", retry: "operator", cleanup: "admin" };

const allowed = (status) => ({
  pause: status === "RUNNING",
  resume: status === "PAUSED",
  cancel: status === "QUEUED" || status === "RUNNING" || status === "PAUSED",
  retry: status === "FAILED" || status === "CANCELLED",
  cleanup: true,
});

// afterControl(freshState): called once an operation (not a delete) succeeded.
export function runActions(model, afterControl) {
  const el = h("div", { class: "actions" });
  async function perform(op) {
    if (!(await confirmDialog(...TEXTS[op]))) return;
    try {
      if (op === "cleanup") {
        await api(`${path`/api/runs/${model.id}`}?force=true`, { method: "DELETE" });
        location.href = pageUrl("/");
        return;
      }
      const fresh = await api(path`/api/runs/${model.id}/${op}`, { method: "POST" });
      toast(`Run ${DONE[op]}.`, true);
      afterControl(fresh);
    } catch (e) { toast(e.message); }
  }
  return {
    el,
    render() {
      const can = allowed(model.status);
      keepFocus(el, "id", () => el.replaceChildren(...Object.keys(LABELS).filter((op) => may(ROLES[op])).map((op) => h("button", {
        class: op === "cancel" || op === "cleanup" ? "btn danger" : "btn", id: `btn-${op}`, disabled: !can[op], onclick: () => perform(op),
      }, LABELS[op]))));
    },
  };
}
