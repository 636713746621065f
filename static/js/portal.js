// Small enhancements on top of htmx; every page works without this file.
(function () {
  "use strict";
  // Controls that only matter without JavaScript (e.g. "Check for answers", which htmx does
  // live) are hidden once this runs: CSS keys on the class.
  document.documentElement.classList.add("js");

  // After a boosted navigation, move focus to the main region so screen readers announce it.
  document.addEventListener("htmx:afterSettle", function (event) {
    if (event.detail.boosted) {
      var main = document.getElementById("main");
      if (main) { main.focus({ preventScroll: true }); }
    }
  });
})();
