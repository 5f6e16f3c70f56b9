// wfcelery dashboard: plain ES modules, no dependencies, no build step. Each page is drawn from the REST
// API and kept live by the run's Server-Sent Events stream. This module picks the page the path names.
import { CFG, ROOT } from "./api.js";
import { signedIn } from "./auth.js";
import { definitionsView, definitionView } from "./definitions.js";
import { runView } from "./run/page.js";
import { runsView } from "./runs.js";
import { statusSheet } from "./statuses.js";

document.adoptedStyleSheets = [...document.adoptedStyleSheets, statusSheet()];

const me = await signedIn(); // null: the login form is shown instead of the page
if (me) {
  CFG.user = me.name;
  CFG.role = me.role;
  draw(document.getElementById("main"), location.pathname.slice(ROOT.length) || "/");
}

function draw(main, where) {
  let m;
  if ((m = where.match(/^\/runs\/([^/]+)\/?$/))) runView(main, decodeURIComponent(m[1]));
  else if (where.replace(/\/$/, "") === "/definitions") definitionsView(main);
  else if ((m = where.match(/^\/definitions\/([^/]+)\/?$/))) definitionView(main, decodeURIComponent(m[1]));
  else if (where.replace(/\/$/, "") === "/schedules") import("../schedules.js"); // draws its own page
  else runsView(main);
}
