// The need's reviewed accuracy per round: the estimate (points) with its 95 % interval (floating
// bars), the accuracy target and the model version's offline test accuracy (dashed lines).
// Same approach as monitoring's charts: data from a json_script element, Chart.js from static.
(function () {
  "use strict";
  const el = document.getElementById("review-trend");
  const canvas = document.getElementById("chart-trend");
  if (!el || !canvas || typeof Chart === "undefined") return;
  const data = JSON.parse(el.textContent);
  if (!data.has_data) return;
  const pts = data.points;
  const pct = (v) => (v === null || v === undefined ? null : Math.round(v * 1000) / 10);
  const labels = pts.map((p) => p.label);
  const dashed = { borderDash: [6, 4], pointRadius: 0, borderWidth: 1.5, type: "line", fill: false };
  new Chart(canvas, {
    data: {
      labels: labels,
      datasets: [
        { type: "bar", label: "95 % interval", order: 2,
          data: pts.map((p) => (p.low === null ? null : [pct(p.low), pct(p.high)])),
          backgroundColor: "rgba(30, 136, 229, 0.25)", borderColor: "#1e88e5", borderWidth: 1,
          barPercentage: 0.25, maxBarThickness: 28 },
        { type: "line", label: "reviewed accuracy", order: 1, data: pts.map((p) => pct(p.estimate)),
          borderColor: "#1e88e5", backgroundColor: "#1e88e5", pointRadius: 4, showLine: false },
        Object.assign({ label: "target", order: 0, data: pts.map((p) => pct(p.target)),
          borderColor: "#c62828" }, dashed),
        Object.assign({ label: "offline test accuracy", order: 0, data: pts.map((p) => pct(p.offline)),
          borderColor: "#2e7d32" }, dashed),
      ],
    },
    options: {
      responsive: true, maintainAspectRatio: false, animation: false,
      plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } },
      scales: {
        x: { title: { display: true, text: "review round" } },
        y: { min: 0, max: 100, title: { display: true, text: "% correct" } },
      },
    },
  });
})();
