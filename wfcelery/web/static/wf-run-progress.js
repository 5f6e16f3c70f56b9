// <wf-run-progress> for a page that loads it as a classic script:
//
//   <script src="http://wfcelery-host:8555/static/wf-run-progress.js"></script>
//   <wf-run-progress run="3f2c9a0e6b7d4c1e8f5a2b3c4d5e6f70"></wf-run-progress>
//
// It loads the element's module (static/js/wf-run-progress.js) from the same server; the module is the
// documented form: <script type="module" src=".../static/js/wf-run-progress.js"></script>.
(function () {
  "use strict";
  var script = document.currentScript;
  if (script) import(new URL("js/wf-run-progress.js", script.src).href);
})();
