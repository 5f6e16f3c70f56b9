// The timeline: one bar per started node (the first TIMELINE_ROWS by start), from its start to its end
// (or to now while it runs), on the run's clock.
import { h, svg } from "../dom.js";
import { clip, duration } from "../format.js";
import { colorOf, TERMINAL } from "../statuses.js";

//: Rows of the timeline.
const TIMELINE_ROWS = 150;
const LABEL = 180, ROW = 20;

export function runTimeline(model) {
  const el = h("div", { id: "timeline" });
  return {
    el,
    render() {
      const { times, statuses } = model;
      const rows = model.nodes.filter((n) => times[n.name] && times[n.name].started)
        .sort((a, b) => times[a.name].started - times[b.name].started);
      if (!rows.length) { el.replaceChildren(h("p", { class: "muted" }, "No node has started yet.")); return; }
      const shown = rows.slice(0, TIMELINE_ROWS);
      const now = Date.now() / 1000;
      const end = (name) => times[name].finished || (TERMINAL.has(statuses[name]) ? times[name].started : now);
      const t0 = model.state.created_at;
      const t1 = Math.max(...shown.map((n) => end(n.name)), t0 + 0.001);
      const width = Math.max(600, el.clientWidth || 900);
      const x = (t) => LABEL + ((t - t0) / (t1 - t0)) * (width - LABEL - 20);
      const chart = svg("svg", { class: "timeline", width, height: shown.length * ROW + 26 });
      chart.append(...axis(x, t0, t1, shown.length * ROW));
      shown.forEach((n, i) => {
        const { started } = times[n.name];
        const bar = svg("rect", { x: x(started), y: i * ROW + 4, width: Math.max(3, x(end(n.name)) - x(started)), height: 12, fill: colorOf(statuses[n.name]) });
        bar.append(svg("title", {}, `${n.name}: ${statuses[n.name]}, ${duration(end(n.name) - started)}`));
        chart.append(svg("text", { x: 0, y: i * ROW + 14 }, clip(n.name, 24)), bar);
      });
      const note = rows.length > TIMELINE_ROWS ? h("p", { class: "muted" }, `First ${TIMELINE_ROWS} of ${rows.length} started nodes.`) : "";
      el.replaceChildren(chart, note);
    },
  };
}

function axis(x, t0, t1, bottom) {
  const parts = [];
  for (let k = 0; k <= 4; k++) {
    const t = t0 + ((t1 - t0) * k) / 4;
    parts.push(
      svg("line", { x1: x(t), x2: x(t), y1: 0, y2: bottom + 6 }),
      svg("text", { class: "axis", x: x(t) - (k === 4 ? 30 : 0), y: bottom + 20 }, `+${duration(t - t0)}`),
    );
  }
  return parts;
}
