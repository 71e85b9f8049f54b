// Draws every Plotly figure on the page from its JSON data block (no inline scripts: the CSP forbids them).
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var nodes = document.querySelectorAll("div.plot[data-figure]");
  for (var i = 0; i < nodes.length; i++) {
    var div = nodes[i];
    var block = document.getElementById(div.getAttribute("data-figure"));
    if (!block || typeof Plotly === "undefined") { continue; }
    var fig = JSON.parse(block.textContent);
    Plotly.newPlot(div, fig.data, fig.layout, { displaylogo: false, responsive: true });
    div.setAttribute("data-drawn", "1");
  }
});
