// Building the page: elements, SVG, text that cannot reorder what is around it, the toast and the
// confirmation dialog. No innerHTML anywhere: every text goes in as text.

//: Bidirectional control characters (embeddings, overrides, isolates, marks): in a name they can make it
//: display as another ("invoice\u202Egpj.exe" reads "invoiceexe.jpg"), so they are shown as visible escapes.
const BIDI = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

export const safeText = (text) =>
  String(text).replace(BIDI, (c) => `\\u${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, "0")}`);

// h("a", { href, class, onclick, style: { width: "10%" } }, "text", child, [more]) -> an element.
// Styles are set through the CSSOM (el.style), never as a style="" attribute the CSP would refuse.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "style") Object.assign(el.style, v);
    else if (k === "title") el.title = safeText(v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined) continue;
    el.append(c instanceof Node ? c : safeText(c));
  }
  return el;
}

// svg("text", { x, y }, "label") -> an SVG element (its text, if given, shown safely).
export function svg(tag, attrs, text) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = safeText(text);
  return el;
}

const FOCUSABLE = "a, button, input, select, textarea, [tabindex]";

// The controls of a row (the row itself first, when it is one).
const controls = (row) => [row, ...row.querySelectorAll(FOCUSABLE)].filter((e) => e.matches(FOCUSABLE));

// Runs redraw() -- which replaces rows (or buttons) in container -- keeping the keyboard focus where it
// was: on the control at the same place in the element with the same key attribute (a list refreshed
// every 2 s, or buttons redrawn with every event, must not throw a keyboard user back to the page's start).
export function keepFocus(container, keyAttr, redraw) {
  const active = document.activeElement;
  const row = active && container.contains(active) ? active.closest(`[${keyAttr}]`) : null;
  const key = row && row.getAttribute(keyAttr);
  const at = row ? controls(row).indexOf(active) : -1;
  redraw();
  if (key === null || at < 0) return;
  const again = container.querySelector(`[${keyAttr}="${CSS.escape(key)}"]`);
  const target = again && controls(again)[at];
  if (target) target.focus({ preventScroll: true });
}

let toastTimer = 0;

export function toast(message, ok = false) {
  const t = document.getElementById("toast");
  t.textContent = safeText(message);
  t.className = ok ? "toast ok" : "toast";
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, 5000);
}

// The page's <dialog id="confirm">: resolves true when the user confirms.
export function confirmDialog(title, text, label) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-ok").textContent = label;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
  });
}
