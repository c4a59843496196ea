// Plotly charts drawn from server-built figures (apps/sentiment/charts.py). An element with
// data-figure="ID" is drawn from the JSON of <script type="application/json" id="ID"> (Django's
// json_script). Drawn on load and again after every htmx swap. A chart kept across a live refresh
// (hx-preserve) is redrawn in place with Plotly.react when its figure changed, keeping the reader's zoom.
(function () {
  "use strict";
  var CONFIG = { responsive: true, displaylogo: false };
  var X_AXES = ["xaxis", "xaxis2"];

  function followZoom(el) {
    el.on("plotly_relayout", function (change) {
      if (change["xaxis.autorange"] || change["xaxis2.autorange"]) el._zoomed = false;
      else if (change["xaxis.range[0]"] !== undefined || change["xaxis2.range[0]"] !== undefined ||
               change["xaxis.range"] || change["xaxis2.range"]) el._zoomed = true;
    });
  }

  function draw(el) {
    if (!window.Plotly) return;
    var source = document.getElementById(el.getAttribute("data-figure"));
    if (!source || source.textContent === el._figureText) return;
    var fig = JSON.parse(source.textContent);
    var first = !el._figureText;
    el._figureText = source.textContent;
    el.setAttribute("data-drawn", "1");
    if (first) {
      window.Plotly.newPlot(el, fig.data, fig.layout, CONFIG).then(function () { followZoom(el); });
      return;
    }
    if (el._zoomed && el.layout) {
      X_AXES.forEach(function (axis) {
        if (el.layout[axis] && fig.layout[axis]) fig.layout[axis].range = el.layout[axis].range.slice();
      });
    }
    window.Plotly.react(el, fig.data, fig.layout, CONFIG);
  }

  function drawAll(root) {
    var scope = root && root.querySelectorAll ? root : document;
    if (scope.matches && scope.matches("[data-figure]")) draw(scope);
    Array.prototype.forEach.call(scope.querySelectorAll("[data-figure]"), draw);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { drawAll(document); });
  } else {
    drawAll(document);
  }
  // After a swap the figure's JSON may be new while its chart was kept: look over the whole page.
  document.addEventListener("htmx:afterSettle", function () { drawAll(document); });
})();
