// Evaluation viewer: per-image figures worst first; ground truth and detections drawn by match state.
import { api, drawImage, el, encodePath, fixed, legendEntry, markNav, polygon, showError } from "/static/common.js";

markNav("eval");

const GT_LABEL = { matched: "matched word", missed: "missed word", ignore: "don't care" };
const DET_LABEL = { matched: "matching detection", false_positive: "false positive", ignore: "don't-care detection" };

async function showImage(source, name, row) {
  document.querySelectorAll("tr.item.selected").forEach((r) => r.classList.remove("selected"));
  row.classList.add("selected");
  try {
    const item = await api(`/api/eval/${encodePath(name)}?source=${source}`);
    const polys = [
      ...item.gt.map((g) => polygon(g.points, `gt ${g.state}`, GT_LABEL[g.state])),
      ...item.det.map((d) => polygon(d.points, `det ${d.state}`, DET_LABEL[d.state])),
    ];
    const f = item.figures;
    document.getElementById("image-name").textContent = name;
    document.getElementById("figures").textContent =
      `precision ${fixed(f.precision)} · recall ${fixed(f.recall)} · H-mean ${fixed(f.hmean)} · ` +
      `${f.matched} matched of ${f.gt_care} words and ${f.det_care} detections`;
    drawImage(document.getElementById("view"), item.image, item.width, item.height, polys);
    showError(null);
  } catch (error) {
    showError(error);
  }
}

async function load(source) {
  const tbody = document.getElementById("images");
  tbody.replaceChildren();
  document.getElementById("summary").textContent = "evaluating…";
  let result;
  try {
    result = await api(`/api/eval?source=${source}`);
  } catch (error) {
    document.getElementById("summary").textContent = "";
    return showError(error);
  }
  const s = result.summary;
  document.getElementById("summary").replaceChildren(
    ...[["precision", s.precision], ["recall", s.recall], ["H-mean", s.hmean]].map(([label, value]) =>
      el("span", {}, `${label} `, el("b", {}, fixed(value)))));
  document.getElementById("summary-counts").textContent =
    `${result.images.length} images · ${s.matched} matched · ${s.gt_care} words · ${s.det_care} detections`;
  const rows = result.images.map((image) => {
    const row = el("tr", { class: "item" }, el("td", {}, image.name),
      ...[image.precision, image.recall, image.hmean].map((v) => el("td", { class: "num" }, fixed(v))));
    row.addEventListener("click", () => showImage(source, image.name, row));
    return row;
  });
  tbody.append(...rows);
  if (rows.length) showImage(source, result.images[0].name, rows[0]);
}

async function main() {
  document.getElementById("legend").append(
    legendEntry("gt matched", GT_LABEL.matched), legendEntry("det matched", DET_LABEL.matched),
    legendEntry("gt missed", GT_LABEL.missed), legendEntry("det false_positive", DET_LABEL.false_positive),
    legendEntry("gt ignore", GT_LABEL.ignore));
  const info = await api("/api/info");
  const select = document.getElementById("source");
  if (info.sources.length === 0) {
    return showError(new Error("nothing to evaluate: start `ocrdet serve` with --pred FILE, --checkpoint CKPT or --run RUN_DIR"));
  }
  const labels = { predictions: `predictions ${info.predictions}`, checkpoint: "model checkpoint (runs over the split)" };
  select.append(...info.sources.map((s) => el("option", { value: s }, labels[s])));
  select.addEventListener("change", () => load(select.value));
  load(select.value);
}

main();
