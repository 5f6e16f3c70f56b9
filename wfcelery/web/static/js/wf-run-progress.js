// <wf-run-progress run="RUN_ID"></wf-run-progress>: one run's live progress on any web page.
//
//   <script type="module" src="http://wfcelery-host:8555/static/js/wf-run-progress.js"></script>
//   <wf-run-progress run="3f2c9a0e6b7d4c1e8f5a2b3c4d5e6f70"></wf-run-progress>
//
// The element talks to the server it was loaded from (or to the one its `server` attribute names), reads the
// run once and then follows the run's Server-Sent Events stream. The host element mirrors the run for
// styling and scripts: data-status (the run's status), data-done and data-total (nodes finished / all).
// The server lets the page's origin read it only when told to (--cors-origin, wfcelery_web_cors_origins).
// Its styles are a constructed stylesheet, so a page whose CSP refuses inline styles can embed it.
import { safeText } from "./dom.js";
import { FINISHED_RUN, PROGRESS_ORDER, statusSheet, TERMINAL } from "./statuses.js";

const defaultServer = new URL("../..", import.meta.url).href.replace(/\/$/, "");
const RETRY_MS = 2000;

const STYLE = `
  :host { display: block; font: 13px/1.4 -apple-system, BlinkMacSystemFont, "Segoe UI", Roboto, sans-serif; color: #1e293b; }
  .card { border: 1px solid #e2e8f0; border-radius: 9px; padding: 10px 12px; background: #fff; }
  .top { display: flex; align-items: center; gap: 8px; margin-bottom: 7px; }
  .name { font-weight: 650; }
  .status { margin-left: auto; font-size: 11px; font-weight: 700; letter-spacing: .03em; color: #fff; padding: 1px 8px; border-radius: 99px; background: #94a3b8; }
  .bar { display: flex; height: 8px; border-radius: 99px; background: #e2e8f0; overflow: hidden; }
  .bar span { height: 100%; transition: width .2s; }
  .count { margin-top: 5px; font-size: 12px; color: #64748b; }`;
let sheet = null; // one stylesheet shared by every element of the page

const MARKUP = `<div class="card" part="card"><div class="top"><span class="name" part="name">…</span><span class="status" part="status"></span></div>
  <div class="bar" part="bar"></div><div class="count" part="count">connecting…</div></div>`;

class WfRunProgress extends HTMLElement {
  static get observedAttributes() { return ["run", "server"]; }

  constructor() {
    super();
    const root = this.attachShadow({ mode: "open" });
    root.adoptedStyleSheets = [(sheet ||= statusSheet(STYLE))];
    root.innerHTML = MARKUP;
    this.statuses = {};
  }

  connectedCallback() { this.start(); }
  disconnectedCallback() { this.stop(); }
  attributeChangedCallback() { if (this.isConnected) this.start(); }

  stop() { clearTimeout(this.timer); if (this.source) this.source.close(); this.source = null; }

  async start() {
    this.stop();
    const run = this.getAttribute("run");
    if (!run) return;
    const server = (this.getAttribute("server") || defaultServer).replace(/\/$/, "");
    const url = `${server}/api/runs/${encodeURIComponent(run)}`;
    try {
      const resp = await fetch(url);
      const state = await resp.json();
      if (!resp.ok) throw Object.assign(new Error(state.error || `HTTP ${resp.status}`), { status: resp.status });
      this.name = state.name;
      this.runStatus = state.status;
      this.statuses = Object.fromEntries(Object.entries(state.nodes).map(([k, n]) => [k, n.status]));
    } catch (e) {
      this.find(".count").textContent = safeText(`cannot load run: ${e.message}`);
      this.dataset.status = "ERROR";
      // the server or its Redis is down (5xx, or no answer): try again; an unknown run (4xx) stays an error
      if (!(e.status < 500) && this.isConnected) this.timer = setTimeout(() => this.start(), RETRY_MS);
      return;
    }
    this.render();
    // A finished run's state is final: its stream would only replay its history over it (the page would
    // step back through earlier counts before it ended again).
    if (!FINISHED_RUN.has(this.runStatus)) this.follow(`${url}/events`);
  }

  follow(url) {
    const source = (this.source = new EventSource(url));
    source.addEventListener("node", (ev) => { const e = JSON.parse(ev.data); if (e.node) this.statuses[e.node] = e.status; this.schedule(); });
    source.addEventListener("run", (ev) => { this.runStatus = JSON.parse(ev.data).status; this.schedule(); });
    // A refused reconnect (503 while the tracker's Redis is down) closes an EventSource for good: start
    // over (state, then stream) until the server answers again.
    source.onerror = () => {
      if (source.readyState === EventSource.CLOSED && this.source === source) this.timer = setTimeout(() => this.start(), RETRY_MS);
    };
    source.addEventListener("end", (ev) => { const e = JSON.parse(ev.data); if (e.status) this.runStatus = e.status; source.close(); this.schedule(); });
  }

  find(selector) { return this.shadowRoot.querySelector(selector); }

  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => { this.frame = 0; this.render(); });
  }

  render() {
    // nodes are the definition's (a mapped node counts once); its instances (name[i]) are not nodes
    const counts = {};
    let total = 0;
    for (const [name, s] of Object.entries(this.statuses)) if (!name.includes("[")) { counts[s] = (counts[s] || 0) + 1; total += 1; }
    const done = [...TERMINAL].reduce((a, s) => a + (counts[s] || 0), 0);
    this.find(".name").textContent = safeText(this.name);
    const status = this.find(".status");
    status.textContent = this.runStatus;
    status.className = `status b-${this.runStatus}`;
    this.find(".bar").replaceChildren(...PROGRESS_ORDER.filter((s) => counts[s]).map((s) => {
      const span = document.createElement("span");
      span.className = `s-${s}`;
      span.style.width = `${(100 * counts[s]) / total}%`;
      return span;
    }));
    this.find(".count").textContent = `${done} / ${total} nodes done${counts.RUNNING ? ` · ${counts.RUNNING} running` : ""}`;
    Object.assign(this.dataset, { status: this.runStatus, done: String(done), total: String(total) });
  }
}

if (!customElements.get("wf-run-progress")) customElements.define("wf-run-progress", WfRunProgress);
