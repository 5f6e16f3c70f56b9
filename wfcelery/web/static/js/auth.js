// Signing in to the dashboard: the login form, the credentials it keeps for the browser tab, and the one
// fetch() every API call and event stream goes through.
//
// The page shells load without credentials (they hold no data). At start the page asks GET /api/me:
// 200 says who it is and its role (the page hides what the role cannot do; the server refuses it anyway),
// 401 shows the login form. The form takes a token (`wfcelery token create`) -- or the user and password
// of the server's --auth login -- checks it with GET /api/me, and keeps the Authorization header value in
// sessionStorage: it lives as long as the tab, is sent as a header on every request (never in a URL), and
// "Sign out" forgets it. Any later 401 (token revoked, session over) brings the form back.

const KEY = "wfcelery.auth";
const CONFIG = JSON.parse(document.body.dataset.config || "{}");
const ROOT = CONFIG.root || "";

// The stored Authorization header value ("Bearer wfc_..." or "Basic ..."), or null.
export const credentials = () => sessionStorage.getItem(KEY);

// fetch() with the stored credentials; a 401 answer shows the login form (and is still returned).
export async function authFetch(url, options = {}) {
  const headers = { ...(options.headers || {}) };
  const auth = credentials();
  if (auth) headers.Authorization = auth;
  const resp = await fetch(url, { ...options, headers });
  if (resp.status === 401) loginForm("Your session has ended (token revoked or expired): sign in again.");
  return resp;
}

// Who the page is, { name, role }, once signed in (or when the server needs no credentials); null while
// the login form is shown. A server that cannot answer (its Redis is down) leaves the page as a viewer:
// its API calls say why.
export async function signedIn() {
  let resp;
  try {
    resp = await fetch(`${ROOT}/api/me`, { headers: withAuth({ Accept: "application/json" }, credentials()) });
  } catch {
    return { name: "", role: "viewer" };
  }
  if (resp.status === 401) {
    loginForm(credentials() ? "Your session has ended (token revoked or expired): sign in again." : "");
    return null;
  }
  if (!resp.ok) return { name: "", role: "viewer" };
  const me = await resp.json();
  if (credentials()) signOutButton();
  return me;
}

function withAuth(headers, auth) {
  return auth ? { ...headers, Authorization: auth } : headers;
}

let shown = false;

// The login form, in place of the page (the page's timers and streams stop asking).
export function loginForm(message = "") {
  if (shown) return;
  shown = true;
  sessionStorage.removeItem(KEY);
  for (const el of document.querySelectorAll("#sign-out")) el.remove();
  const main = document.getElementById("main");
  const error = el("p", { id: "login-error", class: "login-error", role: "alert" }, message);
  error.hidden = !message;
  const token = el("input", { id: "login-token", name: "token", type: "password", autocomplete: "off", placeholder: "wfc_…" });
  const fields = [el("label", { for: "login-token" }, "Token"), token];
  let user = null, password = null;
  if (CONFIG.passwordLogin) {
    user = el("input", { id: "login-user", name: "user", type: "text", autocomplete: "username" });
    password = el("input", { id: "login-password", name: "password", type: "password", autocomplete: "current-password" });
    fields.push(el("p", { class: "muted" }, "or the server's admin login:"),
      el("label", { for: "login-user" }, "User"), user, el("label", { for: "login-password" }, "Password"), password);
  }
  const submit = el("button", { id: "login-submit", type: "submit", class: "btn primary" }, "Sign in");
  const form = el("form", { id: "login", class: "card login" }, el("h1", {}, "Sign in"), ...fields, error, submit);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const auth = token.value.trim() ? `Bearer ${token.value.trim()}`
      : user && user.value ? `Basic ${base64(`${user.value}:${password.value}`)}` : null;
    if (!auth) return say(error, "Enter a token.");
    submit.disabled = true;
    try {
      const resp = await fetch(`${ROOT}/api/me`, { headers: { Accept: "application/json", Authorization: auth } });
      if (resp.ok) {
        sessionStorage.setItem(KEY, auth);
        location.reload();
        return;
      }
      const body = await resp.json().catch(() => ({}));
      say(error, body.error || `HTTP ${resp.status}`);
    } catch (e) {
      say(error, `The server cannot be reached: ${e.message}`);
    } finally {
      submit.disabled = false;
    }
  });
  main.replaceChildren(form);
  token.focus();
}

export function signOut() {
  sessionStorage.removeItem(KEY);
  location.reload();
}

function signOutButton() {
  const bar = document.querySelector(".topbar");
  if (!bar || document.getElementById("sign-out")) return;
  const button = el("button", { id: "sign-out", type: "button", class: "btn" }, "Sign out");
  button.addEventListener("click", signOut);
  bar.append(button);
}

function say(error, message) {
  error.textContent = message;
  error.hidden = false;
}

// UTF-8 safe base64 (btoa takes Latin-1 only).
function base64(text) {
  return btoa(String.fromCharCode(...new TextEncoder().encode(text)));
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  node.append(...children);
  return node;
}
