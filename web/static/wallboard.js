/* Plateau wallboard: applies the server-sent snapshots to the page, and sends one-click agent actions.
   The same script drives the TV board (data-tv: no controls). Vanilla JS, no framework: the
   appliance has no internet. */
(function () {
  "use strict";
  var root = document.getElementById("wallboard");
  if (!root) { return; }
  var tv = root.hasAttribute("data-tv");
  var meta = document.querySelector('meta[name="csrf-token"]');
  var csrf = meta ? meta.getAttribute("content") : "";
  var queues = document.getElementById("queues");
  var agents = document.querySelector("#agents tbody");
  var waiting = document.querySelector("#waiting tbody");
  var monitors = document.querySelector("#monitors tbody");
  var live = document.getElementById("live-indicator");
  var result = document.getElementById("action-result");
  var STALE_MS = 10000;  // no snapshot for this long: the board is not live, whatever it last said
  var lastSnapshot = Date.now();

  function dur(s) {
    if (s === null || s === undefined) { return "\u2014"; }  // no time in state (never logged in)
    s = Math.max(0, Math.floor(s));
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    var mm = h ? String(m).padStart(2, "0") : String(m);
    return (h ? h + ":" : "") + mm + ":" + String(r).padStart(2, "0");
  }
  function num(v) { return v === null || v === undefined ? "\u2014" : String(v); }
  function set(el, sel, text) { var n = el.querySelector(sel); if (n && n.textContent !== text) { n.textContent = text; } }
  function byData(parent, attr, value) {
    for (var i = 0; i < parent.children.length; i++) {
      if (parent.children[i].getAttribute(attr) === value) { return parent.children[i]; }
    }
    return null;
  }
  function fromTemplate(id, selector) {
    return document.getElementById(id).content.querySelector(selector).cloneNode(true);
  }

  // The indicator says "live" only while snapshots arrive and the last one found the engine up.
  function indicate(state) {
    var text = { up: "\u25cf live", down: "\u25cf engine not reachable", stale: "\u25cf not updating" }[state];
    live.textContent = text;
    live.classList.toggle("down", state === "down");
    live.classList.toggle("stale", state === "stale");
  }

  function renderQueue(q) {
    var card = byData(queues, "data-queue", q.name);
    if (!card) {
      card = fromTemplate(tv ? "tv-queue-template" : "queue-template", ".queue");
      card.setAttribute("data-queue", q.name);
      queues.appendChild(card);
    }
    set(card, ".queue-name", q.name);
    set(card, ".strategy", q.strategy);
    set(card, ".waiting", String(q.waiting));
    card.querySelector(".waiting").classList.toggle("alert", q.waiting > 0);
    set(card, ".longest-wait", dur(q.longest_wait));
    set(card, ".service-level", q.service_level === null || q.service_level === undefined ? "\u2014" : Math.round(q.service_level) + "%");
    set(card, ".answered", num(q.answered));
    set(card, ".abandoned", num(q.abandoned));
    set(card, ".agents-available", String(q.available));
    set(card, ".agents-on-call", String(q.on_call));
    set(card, ".agents-paused", String(q.paused));
    set(card, ".agents-wrap-up", String(q.wrap_up));
    set(card, ".agents-busy-elsewhere", String(q.busy_elsewhere || 0));
    return card;
  }

  function enableActions(row, state) {
    var can = {
      listen: state === "on-call", whisper: state === "on-call", barge: state === "on-call",
      pause: state === "available" || state === "wrap-up" || state === "paused",
      unpause: state === "paused" || state === "wrap-up",
      logout: state !== "logged-out" && state !== ""
    };
    var mine = root.getAttribute("data-my-extension");
    row.querySelectorAll("button[data-action]").forEach(function (b) {
      var action = b.getAttribute("data-action");
      var monitor = action === "listen" || action === "whisper" || action === "barge";
      b.disabled = !can[action] || (monitor && !mine);
    });
  }

  function renderAgent(a) {
    var row = byData(agents, "data-agent", a.agent);
    if (!row) {
      row = fromTemplate("agent-template", "tr");
      row.setAttribute("data-agent", a.agent);
      var form = row.querySelector("form");
      var id = encodeURIComponent(a.agent);
      form.action = form.getAttribute("action").replace("/agents/AGENT/", "/agents/" + id + "/");
      row.querySelectorAll("button[formaction]").forEach(function (b) {
        b.setAttribute("formaction", b.getAttribute("formaction").replace("/agents/AGENT/", "/agents/" + id + "/"));
      });
      agents.appendChild(row);
    }
    row.setAttribute("data-state", a.state);
    row.setAttribute("data-shown", a.shown);
    row.setAttribute("data-name", a.name || a.agent);
    var badge = row.querySelector(".state");
    badge.className = "state " + a.shown;
    badge.textContent = a.shown;
    set(row, ".agent-name", a.name || a.agent);
    set(row, ".agent-id", a.agent);
    set(row, ".pause-reason", a.pause_reason || "");
    set(row, ".since", dur(a.since));
    row.querySelector(".since").className = "since level-" + (a.level || "ok");
    set(row, ".working", a.campaign || a.queue || "");
    set(row, ".device-number", a.device || "");
    row.querySelector(".not-registered").hidden = a.reachable !== false;
    set(row, ".caller", a.caller || "");
    set(row, ".calls-today", String(a.calls_today));
    enableActions(row, a.state);
    return row;
  }

  function renderWaiting(w) {
    var key = w.queue + "/" + w.position;
    var row = byData(waiting, "data-caller", key);
    if (!row) {
      row = fromTemplate("waiting-template", "tr");
      row.setAttribute("data-caller", key);
    }
    waiting.appendChild(row);  // (re)appended in snapshot order: longest wait first
    set(row, ".w-name", w.name || w.caller);
    set(row, ".w-number", w.name ? w.caller : "");
    set(row, ".w-queue", w.queue);
    set(row, ".w-position", String(w.position));
    set(row, ".w-priority", String(w.priority));
    set(row, ".w-wait", dur(w.wait));
    return key;
  }

  function renderMonitor(m) {
    var key = m.call + "/" + m.supervisor;
    var row = byData(monitors, "data-monitor", key);
    if (!row) {
      row = fromTemplate("monitor-template", "tr");
      row.setAttribute("data-monitor", key);
      monitors.appendChild(row);
    }
    set(row, ".m-supervisor", m.supervisor);
    var badge = row.querySelector(".mode");
    badge.className = "badge mode " + m.mode;
    badge.textContent = m.mode;
    row.querySelector(".m-agent").firstChild.textContent = (m.agent_name || m.agent) + " ";
    set(row, ".m-agent-id", m.agent);
    return key;
  }

  function prune(parent, attr, keep) {
    if (!parent) { return; }
    Array.prototype.slice.call(parent.children).forEach(function (el) {
      if (!keep[el.getAttribute(attr)]) { parent.removeChild(el); }
    });
  }
  function shown(id, yes) { var el = document.getElementById(id); if (el) { el.hidden = !yes; } }

  function apply(snap) {
    var up = snap.engine === "up";
    root.setAttribute("data-engine", snap.engine);
    indicate(up ? "up" : "down");
    var down = document.getElementById("engine-down");
    down.hidden = up;
    down.querySelector(".message").textContent = snap.message || "";
    var seenQ = {}, seenA = {}, seenW = {}, seenM = {};
    snap.queues.forEach(function (q) { seenQ[q.name] = true; renderQueue(q); });
    prune(queues, "data-queue", seenQ);
    if (agents) {
      snap.agents.forEach(function (a) { seenA[a.agent] = true; renderAgent(a); });
      prune(agents, "data-agent", seenA);
    }
    if (waiting) {
      (snap.waiting || []).forEach(function (w) { seenW[renderWaiting(w)] = true; });
      prune(waiting, "data-caller", seenW);
    }
    if (monitors) {
      (snap.monitors || []).forEach(function (m) { seenM[renderMonitor(m)] = true; });
      prune(monitors, "data-monitor", seenM);
    }
    shown("no-queues", up && snap.queues.length === 0);
    shown("no-agents", up && snap.agents.length === 0);
    shown("no-waiting", (snap.waiting || []).length === 0);
    shown("no-monitors", (snap.monitors || []).length === 0);
  }

  function show(message, ok) {
    result.textContent = message;
    result.className = ok ? "flash" : "error";
    result.hidden = false;
    clearTimeout(show.timer);
    show.timer = setTimeout(function () { result.hidden = true; }, 6000);
  }

  // What a Pause or Log out click asks before it acts (issue 15: they acted with no confirmation).
  function confirmation(button, form) {
    var kind = button && button.getAttribute("data-confirm");
    if (!kind) { return true; }
    var name = form.closest("tr").getAttribute("data-name");
    if (kind === "pause") {
      var select = form.querySelector("select[name=reason]");
      var reason = select.options[select.selectedIndex].text;
      return window.confirm("Pause " + name + " (" + reason + ")? They will get no calls until unpaused.");
    }
    return window.confirm("Log " + name + " out of every queue?");
  }

  // One click, one POST (CSRF in the header); the next snapshot shows the new state.
  if (agents) {
    agents.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var form = ev.target, button = ev.submitter;
      if (!confirmation(button, form)) { return; }
      var data = new FormData(form);
      var url = form.action;
      if (button) {
        if (button.getAttribute("formaction")) { url = button.getAttribute("formaction"); }
        if (button.name) { data.set(button.name, button.value); }
      }
      fetch(url, { method: "POST", body: data, credentials: "same-origin",
                   headers: { "X-CSRF-Token": csrf, "Accept": "application/json" } })
        .then(function (r) { return r.json().catch(function () { return { ok: false, error: "HTTP " + r.status }; }); })
        .then(function (j) { show(j.ok ? j.message : j.error, j.ok); })
        .catch(function () { show("The web server did not answer.", false); });
    });
    agents.querySelectorAll("tr[data-agent]").forEach(function (row) { enableActions(row, row.getAttribute("data-state")); });
  }

  var source = null;
  function connect() {
    source = new EventSource(root.getAttribute("data-stream"));
    source.onmessage = function (ev) {
      var snap;
      try { snap = JSON.parse(ev.data); } catch (e) { return; }  // a malformed event: keep the last good board
      lastSnapshot = Date.now();
      apply(snap);
    };
    source.onerror = function () { indicate("stale"); };  // EventSource reconnects by itself
  }
  setInterval(function () {
    if (Date.now() - lastSnapshot > STALE_MS && root.getAttribute("data-engine") === "up") { indicate("stale"); }
  }, 2000);
  if (tv) {
    // The wall screen has no controls: a double click (or a kiosk browser) makes it full screen.
    document.addEventListener("dblclick", function () {
      if (document.fullscreenElement) { document.exitFullscreen(); } else if (document.documentElement.requestFullscreen) {
        document.documentElement.requestFullscreen().catch(function () { /* refused: stays in the window */ });
      }
    });
  }
  window.addEventListener("beforeunload", function () { if (source) { source.close(); } });
  connect();
})();
