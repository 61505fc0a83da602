// Every page: the menu button opens and closes the sidebar at phone width (plateau.css, max-width 760px).
(function () {
  "use strict";
  const button = document.getElementById("menu-button");
  if (!button) return;
  function set(open) {
    document.body.classList.toggle("nav-open", open);
    button.setAttribute("aria-expanded", open ? "true" : "false");
  }
  button.addEventListener("click", function (ev) {
    ev.stopPropagation();
    set(!document.body.classList.contains("nav-open"));
  });
  // A tap outside the open sidebar, or Escape, closes it.
  document.addEventListener("click", function (ev) {
    if (document.body.classList.contains("nav-open") && !ev.target.closest("#sidebar")) set(false);
  });
  document.addEventListener("keydown", function (ev) {
    if (ev.key === "Escape") set(false);
  });
})();
