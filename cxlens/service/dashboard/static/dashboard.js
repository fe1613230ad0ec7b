// Draws every figure the page embeds as JSON (<script type="application/json" data-plot="id">).
// Served from the package, like Plotly itself: the dashboard needs no inline script and no CDN.
(function () {
  "use strict";
  var CONFIG = {displaylogo: false, responsive: true, displayModeBar: "hover",
                modeBarButtonsToRemove: ["select2d", "lasso2d", "autoScale2d"]};
  function draw() {
    document.querySelectorAll("script[data-plot]").forEach(function (block) {
      var target = document.getElementById(block.getAttribute("data-plot"));
      if (!target) { return; }
      var figure = JSON.parse(block.textContent);
      window.Plotly.newPlot(target, figure.data || [], figure.layout || {}, CONFIG);
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
