// Admin area: confirm before delete, filter tables, generate secrets, and an ordered member list
// (up/down/remove) over the queue's textarea. Every form still works without JavaScript.
(function () {
  "use strict";

  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { ev.preventDefault(); }
  });

  function filterTables() {
    document.querySelectorAll("input[data-filter]").forEach(function (input) {
      var table = document.getElementById(input.getAttribute("data-filter"));
      if (!table) { return; }
      input.addEventListener("input", function () {
        var needle = input.value.toLowerCase();
        table.querySelectorAll("tbody tr").forEach(function (row) {
          row.hidden = needle !== "" && row.textContent.toLowerCase().indexOf(needle) < 0;
        });
      });
    });
  }

  function generators() {
    document.querySelectorAll("button[data-generate]").forEach(function (button) {
      button.addEventListener("click", function () {
        var input = document.getElementById(button.getAttribute("data-generate"));
        var digitsOnly = input.name === "pin";
        var alphabet = digitsOnly ? "0123456789" : "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
        var bytes = new Uint8Array(digitsOnly ? 6 : 20);
        window.crypto.getRandomValues(bytes);
        var out = "";
        bytes.forEach(function (b) { out += alphabet[b % alphabet.length]; });
        input.type = "text";
        input.value = out;
        input.select();
      });
    });
  }

  function orderedLists() {
    document.querySelectorAll("textarea[data-ordered]").forEach(function (area) {
      var choices = JSON.parse(area.getAttribute("data-choices") || "[]");
      var names = {};
      choices.forEach(function (c) { names[c[0]] = c[1]; });
      var list = document.createElement("ol");
      list.className = "ordered";
      var add = document.createElement("div");
      add.className = "ordered-add";
      var select = document.createElement("select");
      var addButton = document.createElement("button");
      addButton.type = "button";
      addButton.textContent = "Add";
      add.appendChild(select);
      add.appendChild(addButton);
      area.hidden = true;
      area.parentNode.insertBefore(list, area);
      area.parentNode.insertBefore(add, area);

      function items() { return area.value.split(/\s+/).filter(function (s) { return s !== ""; }); }
      function button(label, title, fn) {
        var b = document.createElement("button");
        b.type = "button"; b.textContent = label; b.title = title;
        b.addEventListener("click", fn);
        return b;
      }
      function render() {
        var current = items();
        list.innerHTML = "";
        current.forEach(function (id, i) {
          var li = document.createElement("li");
          var pos = document.createElement("span"); pos.className = "pos"; pos.textContent = (i + 1) + ".";
          var who = document.createElement("span"); who.className = "who";
          who.textContent = id + (names[id] ? " · " + names[id] : "");
          li.appendChild(pos); li.appendChild(who);
          li.appendChild(button("↑", "Move up", function () { move(i, -1); }));
          li.appendChild(button("↓", "Move down", function () { move(i, 1); }));
          li.appendChild(button("✕", "Remove", function () { current.splice(i, 1); save(current); }));
          list.appendChild(li);
        });
        if (!current.length) {
          var empty = document.createElement("li"); empty.className = "muted";
          empty.textContent = "No member: every agent with the required skills serves this queue.";
          list.appendChild(empty);
        }
        select.innerHTML = "";
        choices.filter(function (c) { return current.indexOf(c[0]) < 0; }).forEach(function (c) {
          var o = document.createElement("option"); o.value = c[0]; o.textContent = c[0] + " · " + c[1];
          select.appendChild(o);
        });
        add.hidden = select.options.length === 0;
      }
      function save(list_) { area.value = list_.join("\n"); render(); }
      function move(i, step) {
        var current = items(), j = i + step;
        if (j < 0 || j >= current.length) { return; }
        var t = current[i]; current[i] = current[j]; current[j] = t;
        save(current);
      }
      addButton.addEventListener("click", function () {
        if (select.value) { var current = items(); current.push(select.value); save(current); }
      });
      render();
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    filterTables();
    generators();
    orderedLists();
  });
})();
