/* Plateau wallboard: applies the server-sent snapshots to the page, and sends one-click agent actions.
   Vanilla JS, no framework: the appliance has no internet. */
(function () {
  "use strict";
  var root = document.getElementById("wallboard");
  if (!root) { return; }
  var csrf = document.querySelector('meta[name="csrf-token"]').getAttribute("content");
  var queues = document.getElementById("queues");
  var agents = document.querySelector("#agents tbody");
  var live = document.getElementById("live-indicator");
  var result = document.getElementById("action-result");

  function dur(s) {
    s = Math.max(0, Math.floor(s || 0));
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

  function renderQueue(q) {
    var card = byData(queues, "data-queue", q.name);
    if (!card) {
      card = fromTemplate("queue-template", ".queue");
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
    return card;
  }

  function enableActions(row, state) {
    var can = {
      listen: state === "on-call", whisper: state === "on-call", barge: state === "on-call",
      pause: state === "available" || state === "wrap-up" || state === "paused",
      unpause: state === "paused" || state === "wrap-up",
      logout: state !== "logged-out" && state !== ""
    };
    row.querySelectorAll("button[data-action]").forEach(function (b) {
      b.disabled = !can[b.getAttribute("data-action")];
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
    var badge = row.querySelector(".state");
    badge.className = "state " + a.state;
    badge.textContent = a.state;
    set(row, ".agent-name", a.name || a.agent);
    set(row, ".agent-id", a.agent);
    set(row, ".pause-reason", a.pause_reason || "");
    set(row, ".since", dur(a.since));
    set(row, ".device", a.device || "");
    set(row, ".caller", a.caller || "");
    set(row, ".calls-today", String(a.calls_today));
    enableActions(row, a.state);
    return row;
  }

  function prune(parent, attr, keep) {
    Array.prototype.slice.call(parent.children).forEach(function (el) {
      if (!keep[el.getAttribute(attr)]) { parent.removeChild(el); }
    });
  }

  function apply(snap) {
    root.setAttribute("data-engine", snap.engine);
    var down = document.getElementById("engine-down");
    down.hidden = snap.engine === "up";
    down.querySelector(".message").textContent = snap.message || "";
    var seenQ = {}, seenA = {};
    snap.queues.forEach(function (q) { seenQ[q.name] = true; renderQueue(q); });
    snap.agents.forEach(function (a) { seenA[a.agent] = true; renderAgent(a); });
    prune(queues, "data-queue", seenQ);
    prune(agents, "data-agent", seenA);
    document.getElementById("no-queues").hidden = snap.queues.length > 0;
    document.getElementById("no-agents").hidden = snap.agents.length > 0;
  }

  function show(message, ok) {
    result.textContent = message;
    result.className = ok ? "flash" : "error";
    result.hidden = false;
    clearTimeout(show.timer);
    show.timer = setTimeout(function () { result.hidden = true; }, 6000);
  }

  // One click, one POST (CSRF in the header); the next snapshot shows the new state.
  agents.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var form = ev.target, button = ev.submitter;
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

  var source = null;
  function connect() {
    source = new EventSource(root.getAttribute("data-stream"));
    source.onmessage = function (ev) {
      live.classList.remove("stale");
      try { apply(JSON.parse(ev.data)); } catch (e) { /* a malformed event: keep the last good board */ }
    };
    source.onerror = function () { live.classList.add("stale"); };  // EventSource reconnects by itself
  }
  window.addEventListener("beforeunload", function () { if (source) { source.close(); } });
  connect();
})();
