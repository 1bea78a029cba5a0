// The comparison page's charts: per-label F1 of champion and challenger, one chart per set,
// from the JSON the page embeds (#comparison-data). Same approach as monitoring's dashboard.
(function () {
  "use strict";
  const el = document.getElementById("comparison-data");
  if (!el || typeof Chart === "undefined") return;
  const data = JSON.parse(el.textContent);
  const nameOf = (key) => (data.names && data.names[key]) || key;
  ["test", "fresh"].forEach(function (setName) {
    const canvas = document.getElementById("chart-" + setName);
    const set = data.sets[setName];
    if (!canvas || !set || !set.n) return;
    new Chart(canvas, {
      type: "bar",
      data: {
        labels: data.labels.map(nameOf),
        datasets: [
          { label: "champion", data: set.champion, backgroundColor: "#90a4ae" },
          { label: "challenger", data: set.challenger, backgroundColor: "#1e88e5" },
        ],
      },
      options: {
        responsive: true, maintainAspectRatio: false, animation: false,
        plugins: { legend: { position: "bottom" },
          tooltip: { callbacks: { afterLabel: (ctx) => "support " + set.support[ctx.dataIndex] } } },
        scales: {
          x: { title: { display: true, text: "label" } },
          y: { min: 0, max: 1, title: { display: true, text: "F1" } },
        },
      },
    });
  });
})();
