// Charts of one need's monitoring dashboard, from the JSON the page embeds (#monitoring-data).
(function () {
  "use strict";
  const el = document.getElementById("monitoring-data");
  if (!el || typeof Chart === "undefined") return;
  const data = JSON.parse(el.textContent);
  if (!data.has_data) return;

  const palette = ["#1e88e5", "#e53935", "#43a047", "#fb8c00", "#8e24aa", "#00897b",
                   "#6d4c41", "#3949ab", "#c0ca33", "#d81b60", "#546e7a", "#fdd835"];
  const color = (i) => palette[i % palette.length];
  const pct = (v) => (v === null || v === undefined ? v : Math.round(v * 1000) / 10);
  const base = {
    responsive: true, maintainAspectRatio: false, animation: false, spanGaps: true,
    interaction: { mode: "index", intersect: false },
    plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } },
  };
  const line = (label, values, i, extra) => Object.assign(
    { label: label, data: values, borderColor: color(i), backgroundColor: color(i),
      pointRadius: 2, borderWidth: 2, tension: 0.2 }, extra || {});
  const flat = (value, n) => Array(n).fill(value);
  const n = data.days.length;

  // 1. Label shares per day, with each label's baseline share as a dashed line of the same colour.
  const shareSets = [];
  data.labels.forEach((label, i) => {
    shareSets.push(line(label, data.shares[label].map(pct), i));
    if (data.baseline[label] !== undefined) {
      shareSets.push(line(label + " (baseline)", flat(pct(data.baseline[label]), n), i,
        { borderDash: [6, 4], pointRadius: 0, borderWidth: 1 }));
    }
  });
  new Chart(document.getElementById("chart-shares"), {
    type: "line", data: { labels: data.days, datasets: shareSets },
    options: Object.assign({}, base, { scales: { y: { min: 0, title: { display: true, text: "% of predictions" } } },
      plugins: Object.assign({}, base.plugins, { legend: { position: "bottom", labels: { boxWidth: 12,
        filter: (item) => !item.text.endsWith("(baseline)") } } }) }),
  });

  // 2. Drift scores with the alert thresholds.
  new Chart(document.getElementById("chart-drift"), {
    type: "line",
    data: { labels: data.days, datasets: [
      line("PSI", data.psi, 0),
      line("PSI threshold", flat(data.psi_threshold, n), 0, { borderDash: [6, 4], pointRadius: 0, borderWidth: 1 }),
      line("JS distance", data.js, 1),
      line("JS threshold", flat(data.js_threshold, n), 1, { borderDash: [6, 4], pointRadius: 0, borderWidth: 1 }),
    ] },
    options: Object.assign({}, base, { scales: { y: { min: 0 } } }),
  });

  // 3. Volume (bars) with mean confidence and low-confidence rate (lines, right axis).
  new Chart(document.getElementById("chart-volume"), {
    data: { labels: data.days, datasets: [
      { type: "bar", label: "predictions", data: data.volume, backgroundColor: "#90caf9", yAxisID: "y" },
      Object.assign(line("mean confidence", data.mean_confidence, 2), { type: "line", yAxisID: "y1" }),
      Object.assign(line("low-confidence rate", data.low_confidence_rate, 3), { type: "line", yAxisID: "y1" }),
      Object.assign(line("no label above threshold", data.no_label_rate, 4), { type: "line", yAxisID: "y1", hidden: true }),
    ] },
    options: Object.assign({}, base, { scales: {
      y: { beginAtZero: true, title: { display: true, text: "predictions" } },
      y1: { position: "right", min: 0, max: 1, grid: { drawOnChartArea: false } },
    } }),
  });

  // 4 and 5. CTR and negative-feedback rate per label.
  const perLabel = (id, series, axisTitle) => new Chart(document.getElementById(id), {
    type: "line",
    data: { labels: data.days, datasets: data.feedback_labels.map(
      (label, i) => line(label, series[label].map(pct), data.labels.indexOf(label) >= 0 ? data.labels.indexOf(label) : i)) },
    options: Object.assign({}, base, { scales: { y: { min: 0, title: { display: true, text: axisTitle } } } }),
  });
  perLabel("chart-ctr", data.ctr, "CTR %");
  perLabel("chart-negative", data.negative_rate, "negative feedback %");
})();
