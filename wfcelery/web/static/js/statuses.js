// Node and run statuses and their colours: the one place the dashboard and <wf-run-progress> read them
// from. The stylesheet's status classes (.b-*, .s-*, the DAG's .n-*) are generated here too
// (statusSheet), so app.css names no status and no status colour.

//: A node's statuses, in the order a node goes through them.
export const NODE_STATUSES = ["PENDING", "QUEUED", "RUNNING", "RETRYING", "WAITING", "SUCCEEDED", "FAILED", "SKIPPED", "REVOKED"];
//: A run's statuses.
//: QUEUED: waiting for its workflow's max_active_runs (none of its nodes has started).
export const RUN_STATUSES = ["QUEUED", "RUNNING", "PAUSED", "SUCCEEDED", "FAILED", "CANCELLED"];
//: Node statuses a node ends in (it is "done").
export const TERMINAL = new Set(["SUCCEEDED", "FAILED", "SKIPPED", "REVOKED"]);
//: Run statuses a run ends in.
export const FINISHED_RUN = new Set(["SUCCEEDED", "FAILED", "CANCELLED"]);
//: Segments of a progress bar, in order: what ended first, then what is under way.
export const PROGRESS_ORDER = ["SUCCEEDED", "FAILED", "REVOKED", "SKIPPED", "RUNNING", "RETRYING", "WAITING", "QUEUED"];
//: The node status whose colour paints a run's progress in the runs list (its done nodes).
export const RUN_TONE = { QUEUED: "QUEUED", RUNNING: "RUNNING", PAUSED: "RETRYING", SUCCEEDED: "SUCCEEDED", FAILED: "FAILED", CANCELLED: "SKIPPED" };

//: Colour of each status (bar segment, badge, grid square, timeline bar).
export const COLORS = {
  PENDING: "#cbd5e1", QUEUED: "#93c5fd", RUNNING: "#2563eb", RETRYING: "#f59e0b", SUCCEEDED: "#16a34a",
  FAILED: "#dc2626", SKIPPED: "#a8a29e", REVOKED: "#7c3aed", WAITING: "#db2777", PAUSED: "#d97706",
  CANCELLED: "#475569",
};
//: A node box's fill while in a status (white otherwise).
const TINTS = { RUNNING: "#eff6ff", RETRYING: "#fffbeb", SUCCEEDED: "#f0fdf4", FAILED: "#fef2f2", SKIPPED: "#fafaf9", REVOKED: "#f5f3ff", WAITING: "#fdf2f8" };
//: Text on a badge of a light colour (white otherwise).
const INKS = { PENDING: "#334155", QUEUED: "#1e3a8a" };
//: A status this page does not know (a newer server).
export const UNKNOWN_COLOR = "#94a3b8";

export const colorOf = (status) => COLORS[status] || UNKNOWN_COLOR;

// The status classes as CSS: badges (.b-*), bar segments and dots (.s-*), the DAG's nodes (.n-*).
export function statusRules() {
  const rules = [];
  for (const [s, c] of Object.entries(COLORS)) {
    rules.push(`.b-${s} { background: ${c}; color: ${INKS[s] || "#fff"}; }`, `.s-${s} { background: ${c}; }`);
  }
  for (const s of NODE_STATUSES) {
    const pulse = s === "RUNNING" ? " animation: pulse 1s ease-in-out infinite;" : "";
    rules.push(
      `svg.dag .n-${s} rect.box { stroke: ${COLORS[s]}; fill: ${TINTS[s] || "#fff"}; }`,
      `svg.dag .n-${s} .bar { fill: ${COLORS[s]};${pulse} }`,
    );
  }
  return rules.join("\n");
}

// The same rules as a constructed stylesheet (after `base`, so a status class wins over a base rule of
// the same weight): adopted by a document or a shadow root, it needs no inline <style>, which a
// Content-Security-Policy without 'unsafe-inline' (the dashboard's own) would block.
export function statusSheet(base = "") {
  const sheet = new CSSStyleSheet();
  sheet.replaceSync(`${base}\n${statusRules()}`);
  return sheet;
}
