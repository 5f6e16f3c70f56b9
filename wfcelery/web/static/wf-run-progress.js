// <wf-run-progress run="RUN_ID"></wf-run-progress>: one run's live progress on any web page.
//
//   <script src="http://wfcelery-host:8555/static/wf-run-progress.js"></script>
//   <wf-run-progress run="3f2c9a0e6b7d4c1e8f5a2b3c4d5e6f70"></wf-run-progress>
//
// The element talks to the server it was loaded from (or to the one its `server` attribute names), reads the
// run once and then follows the run's Server-Sent Events stream. The host element mirrors the run for
// styling and scripts: data-status (the run's status), data-done and data-total (nodes finished / all).
"use strict";
(() => {
  const script = document.currentScript;
  const defaultServer = script ? new URL("..", script.src).href.replace(/\/$/, "") : "";
  const COLORS = { SUCCEEDED: "#16a34a", FAILED: "#dc2626", REVOKED: "#7c3aed", SKIPPED: "#a8a29e", RUNNING: "#2563eb", RETRYING: "#f59e0b" };
  const RUN_COLORS = { RUNNING: "#2563eb", PAUSED: "#d97706", SUCCEEDED: "#16a34a", FAILED: "#dc2626", CANCELLED: "#475569" };
  const TERMINAL = new Set(["SUCCEEDED", "FAILED", "SKIPPED", "REVOKED"]);

  class WfRunProgress extends HTMLElement {
    static get observedAttributes() { return ["run", "server"]; }

    constructor() {
      super();
      this.attachShadow({ mode: "open" }).innerHTML = `
        <style>
          :host { display: block; font: 13px/1.4 -apple-system, BlinkMacSystemFont, "Segoe UI", Roboto, sans-serif; color: #1e293b; }
          .card { border: 1px solid #e2e8f0; border-radius: 9px; padding: 10px 12px; background: #fff; }
          .top { display: flex; align-items: center; gap: 8px; margin-bottom: 7px; }
          .name { font-weight: 650; }
          .status { margin-left: auto; font-size: 11px; font-weight: 700; letter-spacing: .03em; color: #fff; padding: 1px 8px; border-radius: 99px; background: #94a3b8; }
          .bar { display: flex; height: 8px; border-radius: 99px; background: #e2e8f0; overflow: hidden; }
          .bar span { height: 100%; transition: width .2s; }
          .count { margin-top: 5px; font-size: 12px; color: #64748b; }
        </style>
        <div class="card" part="card"><div class="top"><span class="name" part="name">…</span><span class="status" part="status"></span></div>
        <div class="bar" part="bar"></div><div class="count" part="count">connecting…</div></div>`;
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
      try {
        const resp = await fetch(`${server}/api/runs/${encodeURIComponent(run)}`);
        const state = await resp.json();
        if (!resp.ok) throw Object.assign(new Error(state.error || `HTTP ${resp.status}`), { status: resp.status });
        this.name = state.name;
        this.runStatus = state.status;
        this.statuses = Object.fromEntries(Object.entries(state.nodes).map(([k, n]) => [k, n.status]));
      } catch (e) {
        this.shadowRoot.querySelector(".count").textContent = `cannot load run: ${e.message}`;
        this.dataset.status = "ERROR";
        // the server or its Redis is down (5xx, or no answer): try again; an unknown run (4xx) stays an error
        if (!(e.status < 500) && this.isConnected) this.timer = setTimeout(() => this.start(), 2000);
        return;
      }
      this.render();
      const source = (this.source = new EventSource(`${server}/api/runs/${encodeURIComponent(run)}/events`));
      source.addEventListener("node", (ev) => { const e = JSON.parse(ev.data); if (e.node) this.statuses[e.node] = e.status; this.schedule(); });
      source.addEventListener("run", (ev) => { this.runStatus = JSON.parse(ev.data).status; this.schedule(); });
      // A refused reconnect (503 while the tracker's Redis is down) closes an EventSource for good: start
      // over (state, then stream) until the server answers again.
      source.onerror = () => {
        if (source.readyState === EventSource.CLOSED && this.source === source) this.timer = setTimeout(() => this.start(), 2000);
      };
      source.addEventListener("end", (ev) => { const e = JSON.parse(ev.data); if (e.status) this.runStatus = e.status; source.close(); this.schedule(); });
    }

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
      const root = this.shadowRoot;
      root.querySelector(".name").textContent = this.name;
      const status = root.querySelector(".status");
      status.textContent = this.runStatus;
      status.style.background = RUN_COLORS[this.runStatus] || "#94a3b8";
      root.querySelector(".bar").replaceChildren(...Object.keys(COLORS).filter((s) => counts[s]).map((s) => {
        const span = document.createElement("span");
        span.style.width = `${(100 * counts[s]) / total}%`;
        span.style.background = COLORS[s];
        return span;
      }));
      root.querySelector(".count").textContent = `${done} / ${total} nodes done${counts.RUNNING ? ` · ${counts.RUNNING} running` : ""}`;
      Object.assign(this.dataset, { status: this.runStatus, done: String(done), total: String(total) });
    }
  }

  if (!customElements.get("wf-run-progress")) customElements.define("wf-run-progress", WfRunProgress);
})();
