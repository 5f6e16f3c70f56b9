// Following a run's event stream (GET /api/runs/<id>/events), resumed from the last event id.
//
// Read with fetch() rather than EventSource: an EventSource cannot send the Authorization header, and the
// token must not go in a URL (servers and proxies log URLs). The Server-Sent Events text is parsed here
// (sse.js). A dropped stream or an error answer (503 while the tracker's Redis is down) is followed again
// every 2 s, with Last-Event-ID, until the server answers -- or says the run is gone (404: "run
// deleted", and it stops). A 401 (token revoked) brings the login form back (auth.js) and stops.
import { ROOT, path } from "../api.js";
import { authFetch } from "../auth.js";
import { readEvents } from "../sse.js";

const RETRY_MS = 2000;

// on: { node(e), run(e), end(e), live(state) } where state is "live", "connecting", "reconnecting",
// "ended" or "run deleted".
export function runStream(runId, on) {
  let active = false;
  let lastId = "";

  async function follow() {
    if (active) return;
    active = true;
    let again = true;
    try {
      again = await readOnce();
    } catch {
      again = true; // the connection dropped: follow again from the last id
    } finally {
      active = false;
    }
    if (again) {
      on.live("reconnecting");
      setTimeout(follow, RETRY_MS);
    }
  }

  // One connection; true when it should be followed again.
  async function readOnce() {
    on.live("connecting");
    const headers = { Accept: "text/event-stream", ...(lastId ? { "Last-Event-ID": lastId } : {}) };
    const resp = await authFetch(`${ROOT}${path`/api/runs/${runId}/events`}`, { headers, cache: "no-store" });
    if (resp.status === 401) return false;
    if (resp.status === 404) { on.live("run deleted"); return false; }
    if (!resp.ok || !resp.body) return true;
    on.live("live");
    let ended = false;
    await readEvents(resp.body, (ev) => {
      if (ev.id) lastId = ev.id;
      const data = JSON.parse(ev.data);
      if (ev.event === "node") on.node(data);
      else if (ev.event === "run") on.run(data);
      else if (ev.event === "end") {
        ended = true;
        on.live("ended");
        on.end(data);
        return false; // stop reading
      }
      return true;
    });
    return !ended;
  }

  return { follow, get open() { return active; } };
}
