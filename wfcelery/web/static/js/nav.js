// The top bar: which page is active, and whether the dashboard is read-only.
import { CFG } from "./api.js";

export function setNav(name) {
  for (const a of document.querySelectorAll("[data-nav]")) a.classList.toggle("active", a.dataset.nav === name);
  if (CFG.readOnly) document.getElementById("mode").textContent = "read-only";
}
