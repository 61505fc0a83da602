/* Plateau agent desk: polls my state every 2 s, swaps in the screen pop when the caller changes,
   and sends the desk's forms with fetch (CSRF header). Vanilla JS, no framework. */
(function () {
  "use strict";
  var root = document.getElementById("desk");
  if (!root) { return; }
  var csrf = document.querySelector('meta[name="csrf-token"]').getAttribute("content");
  var pop = document.getElementById("pop");
  var result = document.getElementById("desk-result");
  var POLL_MS = 2000;

  function dur(s) {
    if (s === null || s === undefined) { return "\u2014"; }  // no time in state (never logged in)
    s = Math.max(0, Math.floor(s));
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    return (h ? h + ":" + String(m).padStart(2, "0") : String(m)) + ":" + String(r).padStart(2, "0");
  }
  function text(id, value) { var el = document.getElementById(id); if (el && el.textContent !== value) { el.textContent = value; } }

  function show(message, ok) {
    result.textContent = message;
    result.className = ok ? "flash" : "error";
    result.hidden = false;
    clearTimeout(show.timer);
    show.timer = setTimeout(function () { result.hidden = true; }, 6000);
  }

  function enable(state) {
    root.querySelectorAll("button[data-when]").forEach(function (b) {
      b.disabled = b.getAttribute("data-when").split(" ").indexOf(state || "logged-out") < 0;
    });
  }

  function loadPop(id) {
    pop.setAttribute("data-interaction", id === null || id === undefined ? "" : String(id));
    if (id === null || id === undefined) { return; }
    fetch(root.getAttribute("data-pop-url") + "?id=" + encodeURIComponent(id), { credentials: "same-origin" })
      .then(function (r) { return r.text(); })
      .then(function (html) { pop.innerHTML = html; })  // server-rendered, escaped by Jinja
      .catch(function () { /* next poll tries again */ pop.setAttribute("data-interaction", ""); });
  }

  function apply(st) {
    root.setAttribute("data-engine", st.engine);
    var down = document.getElementById("engine-down");
    down.hidden = st.engine === "up";
    down.querySelector(".message").textContent = st.message || "";
    var a = st.agent;
    if (a) {
      var badge = document.getElementById("my-state");
      if (badge) {
        badge.className = "state " + (a.shown || a.state);
        badge.textContent = a.shown || a.state;
        badge.setAttribute("data-state", a.state);
      }
      text("my-pause-reason", a.pause_reason || "");
      text("my-since", dur(a.since));
      text("my-device", a.device || "\u2014");
      text("my-calls-today", String(a.calls_today));
      text("my-caller", a.caller || "\u2014");
      enable(a.state);
    }
    if (pop && st.interaction !== null && String(st.interaction) !== pop.getAttribute("data-interaction")) {
      loadPop(st.interaction);
    }
  }

  var timer = null;
  function poll() {
    clearTimeout(timer);
    fetch(root.getAttribute("data-state-url"), { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.json(); })
      .then(apply)
      .catch(function () { /* web server restarting: keep the last view */ })
      .then(function () { timer = setTimeout(poll, POLL_MS); });
  }

  function clearErrors(form) {
    root.querySelectorAll(".field-error").forEach(function (e) { e.hidden = true; e.textContent = ""; });
  }

  // Pause and Log out ask first (issue 15: they acted with no confirmation).
  function confirmed(form) {
    var kind = form.getAttribute("data-confirm");
    if (kind === "pause") {
      var select = form.querySelector("select[name=reason]");
      var reason = select ? select.options[select.selectedIndex].text : "";
      return window.confirm("Pause (" + reason + ")? You get no calls until you are ready again.");
    }
    if (kind === "logout") { return window.confirm("Log out of every queue?"); }
    return true;
  }

  root.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (!form.classList.contains("desk-action")) { return; }
    ev.preventDefault();
    if (!confirmed(form)) { return; }
    clearErrors(form);
    fetch(form.action, { method: "POST", body: new FormData(form), credentials: "same-origin",
                         headers: { "X-CSRF-Token": csrf, "Accept": "application/json" } })
      .then(function (r) { return r.json().catch(function () { return { ok: false, error: "HTTP " + r.status }; }); })
      .then(function (j) {
        if (!j.ok && j.field) {
          // Every bad field at once, each beside its input (j.errors: field -> message).
          var errors = j.errors || {};
          if (!j.errors) { errors[j.field] = j.error; }
          var shown = 0;
          Object.keys(errors).forEach(function (name) {
            var slot = root.querySelector('.field-error[data-for="' + name + '"]');
            if (slot) { slot.textContent = errors[name]; slot.hidden = false; shown += 1; }
          });
          if (shown) { return; }
        }
        show(j.ok ? j.message : j.error, j.ok);
        poll();
      })
      .catch(function () { show("The web server did not answer.", false); });
  });

  var first = document.getElementById("my-state");
  enable(first ? first.getAttribute("data-state") : "");
  timer = setTimeout(poll, POLL_MS);
})();
