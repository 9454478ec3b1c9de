// Run page: training curves from the run's CSV logs, the latest `ocrdet bench` table and chart.
import { api, el, markNav, showError } from "/static/common.js";

markNav("run");

const TITLES = {
  "train/loss": "training loss",
  "val/hmean": "validation H-mean",
  "perf/samples_per_s": "samples / s",
  "perf/data_wait": "data-wait fraction of step time",
  "sys/process_cpu_pct": "main process CPU % (100 = one core)",
  "sys/workers_cpu_pct": "DataLoader workers CPU % (all together)",
  "sys/rss_mb": "main process memory (RSS, MiB)",
  "sys/gpu_util_pct": "GPU utilisation %",
};
const FRACTIONS = new Set(["val/hmean", "perf/data_wait"]);  // plotted on a fixed 0..1 axis
const W = 420, H = 220, PAD = { left: 48, right: 12, top: 24, bottom: 28 };

/** A line chart of [[step, value], ...] as an SVG element, axes labelled with their ranges (0..1 for fractions). */
function lineChart(title, points, fraction) {
  const svg = el("svg:svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title });
  svg.append(el("svg:text", { x: PAD.left, y: 15, "font-weight": "600" }, title));
  if (points.length === 0) {
    svg.append(el("svg:text", { x: PAD.left, y: H / 2 }, "not logged in this run"));
    return el("div", { class: "chart" }, svg);
  }
  const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  const [y0, y1] = fraction ? [0, 1] : [Math.min(...ys), Math.max(...ys)];
  const sx = (x) => PAD.left + ((x - x0) / (x1 - x0 || 1)) * (W - PAD.left - PAD.right);
  const sy = (y) => H - PAD.bottom - ((y - y0) / (y1 - y0 || 1)) * (H - PAD.top - PAD.bottom);
  const fmt = (v) => (Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(3));
  svg.append(
    el("svg:line", { x1: PAD.left, y1: H - PAD.bottom, x2: W - PAD.right, y2: H - PAD.bottom }),
    el("svg:line", { x1: PAD.left, y1: PAD.top, x2: PAD.left, y2: H - PAD.bottom }),
    el("svg:text", { x: 4, y: PAD.top + 4 }, fmt(y1)),
    el("svg:text", { x: 4, y: H - PAD.bottom }, fmt(y0)),
    el("svg:text", { x: PAD.left, y: H - 8 }, `step ${x0}`),
    el("svg:text", { x: W - PAD.right, y: H - 8, "text-anchor": "end" }, `step ${x1}`),
    el("svg:polyline", { points: points.map(([x, y]) => `${sx(x)},${sy(y)}`).join(" ") }),
  );
  if (points.length <= 30) svg.append(...points.map(([x, y]) => el("svg:circle", { cx: sx(x), cy: sy(y), r: 2.5 })));
  return el("div", { class: "chart" }, svg);
}

async function main() {
  let run;
  try {
    run = await api("/api/run");
  } catch (error) {
    return showError(error);
  }
  document.getElementById("title").textContent = `Run ${run.run}`;
  const charts = Object.entries(run.curves).map(([name, points]) =>
    lineChart(TITLES[name] || name, points, FRACTIONS.has(name)));
  document.getElementById("charts").append(...charts);
  const bench = document.getElementById("bench");
  if (!run.bench_table && !run.bench_chart) {
    bench.append(el("p", { class: "muted" },
      "none: write one with e.g. `ocrdet bench data --plot RUN_DIR/bench/data.png > RUN_DIR/bench/data.txt`"));
  }
  if (run.bench_table) bench.append(el("h2", {}, run.bench_table_name), el("pre", {}, run.bench_table));
  if (run.bench_chart) bench.append(el("img", { src: run.bench_chart, alt: "benchmark chart" }));
}

main();
