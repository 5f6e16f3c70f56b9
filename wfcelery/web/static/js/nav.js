// The top bar: which page is active, and whether the dashboard is read-only.
import { CFG } from "./api.js";

export function setNav(name) {
  for (const a of document.querySelectorAll("[data-nav]")) a.classList.toggle("active", a.dataset.nav === name);
  const mode = [CFG.readOnly ? "read-only" : "", CFG.user && CFG.user !== "anonymous" ? `${CFG.user} (${CFG.role})` : ""];
  document.getElementById("mode").textContent = mode.filter(Boolean).join(" · ");
}
