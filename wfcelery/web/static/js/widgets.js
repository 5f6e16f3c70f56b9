// Small pieces several pages draw: a status badge, a progress bar, the colour legend, per-status counts.
import { h } from "./dom.js";
import { NODE_STATUSES, PROGRESS_ORDER } from "./statuses.js";

export const badge = (status, big) => h("span", { class: `badge b-${status}${big ? " big" : ""}`, "data-status": status }, status);

// counts: { STATUS: n }; one segment per status in PROGRESS_ORDER, its width its share of `total`.
export function progressBar(counts, total, big) {
  const bar = h("div", { class: big ? "progress big" : "progress", role: "progressbar" });
  for (const s of PROGRESS_ORDER) {
    const n = counts[s] || 0;
    if (n && total) bar.append(h("span", { class: `s-${s}`, style: { width: `${(100 * n) / total}%` }, title: `${n} ${s}` }));
  }
  return bar;
}

const dot = (status) => h("span", { class: `dot s-${status}` });

export const legend = () => h("div", { class: "legend" }, NODE_STATUSES.map((s) => h("span", {}, dot(s), s.toLowerCase())));

export const statusCounts = (counts) =>
  NODE_STATUSES.filter((s) => counts[s]).map((s) => h("span", {}, dot(s), h("b", {}, String(counts[s])), ` ${s.toLowerCase()}`));
