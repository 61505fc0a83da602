/* System › Hardware: re-renders the page body from hardware.json every few seconds.
   Vanilla JS, no framework: the appliance has no internet. The JSON carries the server-rendered
   (escaped) fragment, so the page and its refresh cannot drift apart. */
(function () {
  "use strict";
  var body = document.getElementById("hw-body");
  var live = document.getElementById("hw-live");
  if (!body) { return; }
  var src = body.getAttribute("data-src");
  var every = parseInt(body.getAttribute("data-interval"), 10) || 5000;
  var timer = null;

  function say(text, stale) {
    if (!live) { return; }
    live.textContent = text;
    live.classList.toggle("stale", !!stale);
  }
  function clock(seconds) {
    return new Date(seconds * 1000).toLocaleTimeString();
  }
  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(refresh, every);
  }
  function refresh() {
    if (document.hidden) { schedule(); return; }  // no polling from a background tab
    fetch(src, { credentials: "same-origin", headers: { "Accept": "application/json" }, cache: "no-store" })
      .then(function (resp) {
        var json = (resp.headers.get("Content-Type") || "").indexOf("application/json") === 0;
        if (!resp.ok || !json) {
          // A login page (session expired) or an error page: stop, the user must reload.
          throw new Error(resp.status === 403 || !json ? "signed out" : "HTTP " + resp.status);
        }
        return resp.json();
      })
      .then(function (data) {
        body.innerHTML = data.html;
        say("Updated " + clock(data.updated_at), false);
        schedule();
      })
      .catch(function (err) {
        if (err && err.message === "signed out") {
          say("Refresh stopped: reload the page to sign in again", true);
          return;
        }
        say("Web server not answering: retrying", true);
        schedule();
      });
  }
  document.addEventListener("visibilitychange", function () { if (!document.hidden) { refresh(); } });
  schedule();
})();
