// Charts of one need's monitoring dashboard, from the JSON the page embeds (#monitoring-data).
// Labels are shown by the tenant's own names (the global key is in the tooltip), each label keeps
// one colour on every chart (data.colors), lines are drawn above bars, and every axis has a title.
(function () {
  "use strict";
  const el = document.getElementById("monitoring-data");
  if (!el || typeof Chart === "undefined") return;
  const data = JSON.parse(el.textContent);
  if (!data.has_data) return;
  // Titles and series names in the reader's language, from the page (#monitoring-text).
  const textEl = document.getElementById("monitoring-text");
  const text = textEl ? JSON.parse(textEl.textContent) : {};
  const t = (key, fallback) => text[key] || fallback;

  const fallback = ["#1e88e5", "#e53935", "#43a047", "#fb8c00", "#8e24aa", "#00897b"];
  const colorOf = (key, i) => (data.colors && data.colors[key]) || fallback[i % fallback.length];
  const nameOf = (key) => (data.names && data.names[key]) || key;
  const pct = (v) => (v === null || v === undefined ? v : Math.round(v * 1000) / 10);
  const xAxis = { title: { display: true, text: t("x_axis", "day") } };
  // Tooltip: "Name (global.key): value".
  const tooltip = {
    callbacks: {
      label: (ctx) => {
        const ds = ctx.dataset;
        const who = ds.labelKey && ds.labelKey !== ds.label ? `${ds.label} (${ds.labelKey})` : ds.label;
        const v = ctx.parsed.y;
        return `${who}: ${v === null || v === undefined ? "—" : v}${ds.unit || ""}`;
      },
    },
  };
  const base = {
    responsive: true, maintainAspectRatio: false, animation: false, spanGaps: true,
    interaction: { mode: "index", intersect: false },
    plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } }, tooltip: tooltip },
  };
  const line = (label, values, color, extra) => Object.assign(
    { type: "line", label: label, data: values, borderColor: color, backgroundColor: color,
      pointRadius: 2, borderWidth: 2, tension: 0.2, order: 1 }, extra || {});
  const flat = (value, n) => Array(n).fill(value);
  const n = data.days.length;
  const dashed = { borderDash: [6, 4], pointRadius: 0, borderWidth: 1 };

  // 1. Label shares per day, with each label's baseline share as a dashed line of the same colour.
  const shareSets = [];
  data.labels.forEach((key, i) => {
    const color = colorOf(key, i);
    shareSets.push(line(nameOf(key), data.shares[key].map(pct), color, { labelKey: key, unit: " %" }));
    if (data.baseline[key] !== undefined) {
      shareSets.push(line(nameOf(key) + " " + t("baseline_suffix", "(baseline)"),
        flat(pct(data.baseline[key]), n), color,
        Object.assign({ labelKey: key, unit: " %", isBaseline: true }, dashed)));
    }
  });
  new Chart(document.getElementById("chart-shares"), {
    type: "line", data: { labels: data.days, datasets: shareSets },
    options: Object.assign({}, base, {
      scales: { x: xAxis, y: { min: 0, title: { display: true, text: t("share_axis", "% of predictions") } } },
      plugins: Object.assign({}, base.plugins, { legend: { position: "bottom", labels: { boxWidth: 12,
        filter: (item, chart) => !chart.datasets[item.datasetIndex].isBaseline } } }),
    }),
  });

  // 2. Drift scores with the alert thresholds.
  new Chart(document.getElementById("chart-drift"), {
    type: "line",
    data: { labels: data.days, datasets: [
      line("PSI", data.psi, "#1e88e5"),
      line(t("psi_threshold", "PSI threshold"), flat(data.psi_threshold, n), "#1e88e5", dashed),
      line(t("js", "JS distance"), data.js, "#e53935"),
      line(t("js_threshold", "JS threshold"), flat(data.js_threshold, n), "#e53935", dashed),
    ] },
    options: Object.assign({}, base, {
      scales: { x: xAxis, y: { min: 0, title: { display: true, text: t("drift_axis", "PSI / JS distance") } } },
    }),
  });

  // 3. Volume (bars, left axis) with mean confidence and low-confidence rate (lines, right axis).
  // Chart.js draws higher `order` first: bars get 2, lines 1, so the lines stay on top.
  new Chart(document.getElementById("chart-volume"), {
    data: { labels: data.days, datasets: [
      line(t("mean_confidence", "mean confidence"), data.mean_confidence, "#2e7d32", { yAxisID: "y1" }),
      line(t("low_confidence_rate", "low-confidence rate"), data.low_confidence_rate, "#ef6c00", { yAxisID: "y1" }),
      line(t("no_label_rate", "no label above threshold"), data.no_label_rate, "#6a1b9a", { yAxisID: "y1", hidden: true }),
      { type: "bar", label: t("predictions", "predictions"), data: data.volume, backgroundColor: "rgba(144, 202, 249, 0.7)",
        yAxisID: "y", order: 2 },
    ] },
    options: Object.assign({}, base, { scales: {
      x: xAxis,
      y: { beginAtZero: true, title: { display: true, text: t("volume_axis", "predictions per day") } },
      y1: { position: "right", min: 0, max: 1, grid: { drawOnChartArea: false },
        title: { display: true, text: t("rate_axis", "confidence / rate (0–1)") } },
    } }),
  });

  // 4 and 5. CTR and negative-feedback rate per label, in the labels' colours.
  const perLabel = (id, series, axisTitle) => new Chart(document.getElementById(id), {
    type: "line",
    data: { labels: data.days, datasets: data.feedback_labels.map(
      (key, i) => line(nameOf(key), series[key].map(pct), colorOf(key, i), { labelKey: key, unit: " %" })) },
    options: Object.assign({}, base, {
      scales: { x: xAxis, y: { min: 0, title: { display: true, text: axisTitle } } },
    }),
  });
  perLabel("chart-ctr", data.ctr, t("ctr_axis", "CTR, % of impressions"));
  perLabel("chart-negative", data.negative_rate, t("negative_axis", "negative, % of impressions"));
})();
