// What the run page knows of one run: its record, every node's status and start/end times. Changed only
// through these methods, by a snapshot (GET /api/runs/<id>) or an event of the run's stream.
import { FINISHED_RUN, NODE_STATUSES, TERMINAL } from "../statuses.js";

export class RunModel {
  constructor(state, nodes) {
    this.id = state.id;
    this.nodes = nodes; // the DAG's nodes, in definition order
    this.statuses = {}; // node -> status
    this.times = {}; // node -> { started, finished }
    this.snapshot(state);
  }

  // A whole state read from the API; returns the names of the nodes it names.
  snapshot(state) {
    this.state = state;
    this.status = state.status;
    for (const [name, n] of Object.entries(state.nodes)) {
      this.statuses[name] = n.status;
      this.times[name] = { started: n.started_at, finished: n.finished_at };
    }
    return Object.keys(state.nodes);
  }

  // An `event: node` of the stream: { node, status, at }.
  nodeEvent(e) {
    this.statuses[e.node] = e.status;
    const tm = (this.times[e.node] ||= {});
    if (e.status === "RUNNING") { tm.started = e.at; tm.finished = null; }
    else if (e.status === "QUEUED") { tm.started = null; tm.finished = null; }
    else if (TERMINAL.has(e.status)) tm.finished = e.at;
  }

  // An `event: run` of the stream: { status, at }.
  runEvent(e) {
    this.status = e.status;
    this.state.finished_at = FINISHED_RUN.has(e.status) ? e.at : null;
  }

  get live() { return this.status === "QUEUED" || this.status === "RUNNING" || this.status === "PAUSED"; }

  // Nodes are the definition's (a mapped node counts once, as status does); its instances (name[i]) apart.
  counts() {
    const counts = Object.fromEntries(NODE_STATUSES.map((s) => [s, 0]));
    for (const [name, s] of Object.entries(this.statuses)) if (!name.includes("[")) counts[s] = (counts[s] || 0) + 1;
    return counts;
  }

  instances() {
    return Object.keys(this.statuses).filter((name) => name.includes("[")).length;
  }

  done(counts = this.counts()) {
    return [...TERMINAL].reduce((a, s) => a + (counts[s] || 0), 0);
  }
}
