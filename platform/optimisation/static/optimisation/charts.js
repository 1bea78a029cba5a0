// Trade-off charts of one optimisation run, from the JSON the page embeds (#optimisation-data):
// every measured trial, the run's Pareto front (over F1, p99 and size), this chart's own 2-D front
// as a step line, the budget as a dashed line, the default model and the chosen variant marked.
(function () {
  "use strict";
  const el = document.getElementById("optimisation-data");
  if (!el || typeof Chart === "undefined") return;
  const data = JSON.parse(el.textContent);
  if (!data.has_data) return;
  const points = data.points;

  // The 2-D front of (x smaller is better, F1 larger is better), as a step line left to right.
  function front2d(xKey) {
    const sorted = points.slice().sort((a, b) => a[xKey] - b[xKey] || b.f1 - a.f1);
    const out = [];
    let best = -Infinity;
    sorted.forEach((p) => { if (p.f1 > best) { out.push({ x: p[xKey], y: p.f1 }); best = p.f1; } });
    return out;
  }

  function chart(canvasId, xKey, xTitle, budget) {
    const xy = (p) => ({ x: p[xKey], y: p.f1, trial: p.trial, path: p.path });
    const ys = points.map((p) => p.f1);
    const yMin = Math.max(0, Math.min.apply(null, ys) - 0.02);
    // Headroom above the best F1 so markers at 1.0 are not cut off.
    const yMax = Math.max.apply(null, ys) + 0.04;
    const datasets = [
      { type: "scatter", label: "trial (outside the budgets)", order: 5,
        data: points.filter((p) => !p.fits && !p.pareto).map(xy),
        backgroundColor: "rgba(120,120,120,0.55)", pointRadius: 4 },
      { type: "scatter", label: "trial within both budgets", order: 4,
        data: points.filter((p) => p.fits && !p.pareto).map(xy),
        backgroundColor: "rgba(46,125,50,0.7)", pointRadius: 4 },
      { type: "scatter", label: "Pareto front (F1, p99, size)", order: 3,
        data: points.filter((p) => p.pareto).map(xy),
        backgroundColor: "#1e88e5", borderColor: "#0d47a1", pointRadius: 6 },
      { type: "line", label: "front on this chart", order: 6, data: front2d(xKey),
        borderColor: "rgba(30,136,229,0.6)", borderWidth: 1.5, stepped: "before", pointRadius: 0,
        fill: false },
      { type: "line", label: "budget", order: 7,
        data: [{ x: budget, y: yMin }, { x: budget, y: yMax }],
        borderColor: "#c62828", borderDash: [6, 4], borderWidth: 2, pointRadius: 0 },
      { type: "scatter", label: "default model", order: 2, data: points.filter((p) => p.default).map(xy),
        backgroundColor: "#fb8c00", pointStyle: "triangle", pointRadius: 13 },
      { type: "scatter", label: "chosen variant", order: 1, data: points.filter((p) => p.chosen).map(xy),
        backgroundColor: "#fdd835", borderColor: "#000", borderWidth: 1.5, pointStyle: "star",
        pointRadius: 9 },
    ];
    const xs = points.map((p) => p[xKey]).concat([budget]);
    new Chart(document.getElementById(canvasId), {
      type: "scatter",
      data: { datasets: datasets },
      options: {
        responsive: true, maintainAspectRatio: false, animation: false,
        scales: {
          x: { type: "logarithmic", title: { display: true, text: xTitle },
               ticks: { autoSkip: true, maxTicksLimit: 8, maxRotation: 0 },
               min: Math.min.apply(null, xs) / 1.3, max: Math.max.apply(null, xs) * 1.3 },
          y: { min: yMin, max: yMax, title: { display: true, text: "macro-F1 (held-out split)" },
               ticks: { callback: (v) => (v > 1 ? "" : Math.round(v * 100) / 100) } },
        },
        plugins: {
          legend: { position: "bottom", labels: { boxWidth: 10,
            filter: (item) => item.text !== "front on this chart" } },
          tooltip: { callbacks: { label: (ctx) => {
            const r = ctx.raw;
            if (r.trial === undefined) return `${ctx.dataset.label}: ${r.x}`;
            return `trial ${r.trial}: F1 ${r.y.toFixed(4)}, ${xTitle} ${r.x} (${r.path})`;
          } } },
        },
      },
    });
  }

  chart("chart-latency", "p99_ms", "p99 latency, ms (log scale)", data.latency_budget_ms);
  chart("chart-size", "size_kb", "artifact size, KB (log scale)", data.size_budget_kb);
})();
