/* Quality page: the player follows the recorded call chosen in the scorecard form. */
(function () {
  "use strict";
  var select = document.getElementById("recording-select");
  var player = document.getElementById("recording-player");
  if (!select || !player) { return; }
  select.addEventListener("change", function () {
    var option = select.options[select.selectedIndex];
    var src = option ? option.getAttribute("data-src") : "";
    player.pause();
    if (src) { player.setAttribute("src", src); player.load(); } else { player.removeAttribute("src"); }
  });
}());
