// Following a run's event stream (GET /api/runs/<id>/events), resumed from the last event id.
//
// A browser retries a dropped stream by itself, but an error answer (503 while the tracker's Redis is
// down) closes an EventSource for good: then this follows again every 2 s, from the last id, until the
// server answers -- or says the run is gone (404: "run deleted", and it stops).
import { ROOT, path } from "../api.js";

const RETRY_MS = 2000;

// on: { node(e), run(e), end(e), live(state) } where state is "live", "reconnecting", "ended" or
// "run deleted".
export function runStream(runId, on) {
  let source = null;
  let lastId = "";
  const seen = (ev) => { lastId = ev.lastEventId || lastId; return JSON.parse(ev.data); };

  function follow() {
    if (source && source.readyState !== EventSource.CLOSED) return;
    const q = lastId ? `?last_event_id=${encodeURIComponent(lastId)}` : "";
    const es = (source = new EventSource(`${ROOT}${path`/api/runs/${runId}/events`}${q}`));
    es.onopen = () => on.live("live");
    es.onerror = () => {
      if (es.readyState !== EventSource.CLOSED) { on.live("connecting"); return; }
      on.live("reconnecting");
      setTimeout(retry, RETRY_MS);
    };
    es.addEventListener("node", (ev) => on.node(seen(ev)));
    es.addEventListener("run", (ev) => on.run(seen(ev)));
    es.addEventListener("end", (ev) => {
      const e = seen(ev);
      es.close();
      on.live("ended");
      on.end(e);
    });
  }

  async function retry() {
    try {
      if ((await fetch(ROOT + path`/api/runs/${runId}`)).status === 404) { on.live("run deleted"); return; }
    } catch { /* the server is down: keep trying */ }
    follow();
  }

  return { follow, get open() { return source !== null && source.readyState !== EventSource.CLOSED; } };
}
