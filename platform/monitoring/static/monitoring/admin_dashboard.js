// The admin's all-needs dashboard: PSI per need per day, from the JSON the page embeds (#psi-data).
(function () {
  "use strict";
  const el = document.getElementById("psi-data");
  const canvas = document.getElementById("chart-all-psi");
  if (!el || !canvas || typeof Chart === "undefined") return;
  const data = JSON.parse(el.textContent);
  const palette = ["#1e88e5", "#e53935", "#43a047", "#fb8c00", "#8e24aa", "#00897b", "#6d4c41"];
  new Chart(canvas, {
    type: "line",
    data: {
      labels: data.days,
      datasets: Object.entries(data.series).map(([name, values], i) => ({
        label: name, data: values, borderColor: palette[i % palette.length],
        backgroundColor: palette[i % palette.length], spanGaps: true, pointRadius: 2,
      })),
    },
    options: { responsive: true, maintainAspectRatio: false, animation: false,
      scales: { y: { min: 0, title: { display: true, text: "PSI" } } } },
  });
})();
