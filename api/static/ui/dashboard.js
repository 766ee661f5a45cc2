// Dashboard charts (Chart.js, vendored). Data comes from /ui/dashboard/data.json.
(function () {
  "use strict";
  var palette = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563"];
  function colour(sets) {
    sets.forEach(function (s, i) { s.backgroundColor = palette[i % palette.length]; s.borderColor = palette[i % palette.length]; });
    return sets;
  }
  function bar(id, data, stacked, horizontal) {
    var el = document.getElementById(id);
    if (!el) return;
    new Chart(el, {
      type: "bar",
      data: { labels: data.labels, datasets: colour(data.datasets) },
      options: {
        animation: false, responsive: true, maintainAspectRatio: false,
        indexAxis: horizontal ? "y" : "x",
        scales: { x: { stacked: stacked }, y: { stacked: stacked, beginAtZero: true } }
      }
    });
  }
  var root = document.getElementById("dashboard");
  if (!root) return;
  fetch(root.getAttribute("data-src"), { credentials: "same-origin", headers: { "Accept": "application/json" } })
    .then(function (r) { return r.json(); })
    .then(function (d) {
      bar("chart-cases", d.cases_per_day, true);
      bar("chart-decisions", d.decisions_per_day, true);
      bar("chart-outcomes", d.outcomes, true);
      bar("chart-precision", {
        labels: d.rule_precision.map(function (r) { return r.rule + " (" + r.judged + ")"; }),
        datasets: [{ label: "precision", data: d.rule_precision.map(function (r) { return r.precision; }) }]
      }, false, true);
      root.setAttribute("data-ready", "1");
    });
})();
