/* Outbound campaigns: live figures (polls the stats route every 3 s and updates the tiles in place),
   the column mapping highlight, and the upload size check before sending 20 MiB for nothing.
   Every page works without JavaScript; this only keeps it live. */
(function () {
  "use strict";
  var POLL_MS = 3000;

  function liveFigures() {
    var root = document.getElementById("campaigns");
    if (!root) { return; }
    var url = root.getAttribute("data-stats-url");
    var indicator = document.getElementById("live-indicator");
    var down = document.getElementById("engine-down");

    function apply(data) {
      var up = data.engine === "up";
      if (indicator) { indicator.classList.toggle("stale", !up); }
      if (down) {
        down.hidden = up;
        down.querySelector(".message").textContent = data.message || "";
      }
      root.querySelectorAll("[data-campaign]").forEach(function (card) {
        var s = data.campaigns[card.getAttribute("data-campaign")];
        if (!s) { return; }
        s.agents_total = s.agents_busy + s.agents_free;
        card.querySelectorAll("[data-stat]").forEach(function (el) {
          var key = el.getAttribute("data-stat");
          if (!(key in s)) { return; }
          var value = String(s[key]);
          if (el.textContent !== value) { el.textContent = value; }
          if (key === "state") { el.className = "camp-state " + value; }
        });
        var abandon = card.querySelector(".camp-tile.abandon");
        if (abandon) { abandon.classList.toggle("over", !!s.over_cap); }
        if (s.state) {
          card.setAttribute("data-state", s.state);
          var start = card.querySelector('[data-run="start"]'), pause = card.querySelector('[data-run="pause"]');
          if (start) { start.hidden = s.state === "running"; }
          if (pause) { pause.hidden = s.state !== "running"; }
        }
      });
      var badge = document.querySelector(".toolbar > [data-stat=state]");
      var one = badge && data.campaigns[root.querySelector("[data-campaign]").getAttribute("data-campaign")];
      if (one && one.state) { badge.textContent = one.state; badge.className = "camp-state " + one.state; }
    }

    function poll() {
      fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (r) { return r.json(); })
        .then(apply)
        .catch(function () { if (indicator) { indicator.classList.add("stale"); } })
        .then(function () { setTimeout(poll, POLL_MS); });
    }
    setTimeout(poll, POLL_MS);
  }

  function mappingHighlight() {
    var table = document.getElementById("mapping");
    if (!table) { return; }
    function mark() {
      var picked = table.querySelector('input[name="number_col"]:checked');
      var col = picked ? Number(picked.value) : -1;
      table.querySelectorAll("tr").forEach(function (row) {
        Array.prototype.forEach.call(row.children, function (cell, i) { cell.classList.toggle("is-number", i === col); });
      });
      table.querySelectorAll(".col-name input").forEach(function (input, i) {
        // The number column is the number: its name is not asked (a disabled input is not sent).
        if (i === col && !input.disabled) {
          input.setAttribute("data-was", input.value);
          input.value = "number";
          input.disabled = true;
        } else if (i !== col && input.disabled) {
          var was = input.getAttribute("data-was");
          input.value = was && was !== "number" ? was : input.placeholder;
          input.disabled = false;
        }
      });
    }
    table.addEventListener("change", mark);
    mark();
  }

  function uploadSize() {
    document.querySelectorAll("input[type=file][data-max-bytes]").forEach(function (input) {
      var max = Number(input.getAttribute("data-max-bytes"));
      input.addEventListener("change", function () {
        var big = input.files.length && input.files[0].size > max;
        input.setCustomValidity(big ? "The file is larger than " + Math.round(max / 1048576) + " MiB: split it." : "");
        var note = document.getElementById("file-too-big");
        if (note) { note.hidden = !big; }
        if (big) { input.reportValidity(); }
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    liveFigures();
    mappingHighlight();
    uploadSize();
  });
})();
