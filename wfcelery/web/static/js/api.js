// The dashboard's server: its mount path, its settings, and every URL the page builds on it.
import { authFetch } from "./auth.js";

//: What the page shell says (wfcelery/web/pages.py): the mount path, read-only mode; main.js adds who is
//: signed in and the role (GET /api/me) before the page is drawn.
export const CFG = JSON.parse(document.body.dataset.config || "{}");
export const ROOT = CFG.root || "";
// What the caller's role may do (the server refuses the rest anyway): viewer < operator < admin.
const RANK = { viewer: 0, operator: 1, admin: 2 };
export const may = (role) => !CFG.readOnly && RANK[CFG.role || "admin"] >= RANK[role];

// path`/api/runs/${id}/nodes/${node}`: each value is percent-encoded, so an id or a name with "/", "?",
// "#" or "%" in it stays one path segment. Every URL with an id in it is built with this tag.
export function path(strings, ...values) {
  return strings.reduce((out, s, i) => out + encodeURIComponent(String(values[i - 1])) + s);
}

// A page of the dashboard (a link): the mount path + a path built with `path`.
export const pageUrl = (p) => ROOT + p;

// A JSON request to the API; an error answer (the {"error", "type"} shape) becomes a thrown Error whose
// message is the server's and whose .status is the HTTP status.
export async function api(p, options = {}) {
  const resp = await authFetch(ROOT + p, { ...options, headers: { Accept: "application/json", ...(options.headers || {}) } });
  if (resp.status === 204) return null;
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) {
    const err = new Error(body.error || `HTTP ${resp.status}`);
    err.status = resp.status;
    throw err;
  }
  return body;
}

export const postJson = (p, body) =>
  api(p, { method: "POST", headers: { "Content-Type": "application/json", Accept: "application/json" }, body: JSON.stringify(body) });
