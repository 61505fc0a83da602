/* Agent desk, outbound campaigns: keeps the lead panel in step with the dialer. Polls /agent/lead
   every 3 s and swaps the panel only when the lead on the line (or the preview) changes, so a
   half-typed outcome is never wiped. The forms themselves are sent by agent_desk.js. */
(function () {
  "use strict";
  var panel = document.getElementById("lead-panel");
  if (!panel) { return; }
  var POLL_MS = 3000;
  var timer = null;

  function refresh() {
    clearTimeout(timer);
    fetch(panel.getAttribute("data-url"), { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.json(); })
      .then(function (p) {
        if (p.key === panel.getAttribute("data-key")) { return null; }
        return fetch(panel.getAttribute("data-url"), { credentials: "same-origin" })
          .then(function (r) { return r.text(); })
          .then(function (html) { panel.innerHTML = html; panel.setAttribute("data-key", p.key); });  // escaped by Jinja
      })
      .catch(function () { /* next poll tries again */ })
      .then(function () { timer = setTimeout(refresh, POLL_MS); });
  }

  // Confirm before a do-not-call (agent_desk.js sends desk-action forms), then look again soon after any action.
  panel.addEventListener("submit", function (ev) {
    var question = ev.target.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { ev.preventDefault(); ev.stopImmediatePropagation(); return; }
    setTimeout(refresh, 800);
  }, true);
  timer = setTimeout(refresh, POLL_MS);
})();
