// Data browser: the split's images with their word counts, the problems loading found, ground truth drawn.
import { api, drawImage, el, encodePath, legendEntry, markNav, polygon, showError } from "/static/common.js";

markNav("data");

async function showImage(name, row) {
  document.querySelectorAll("tr.item.selected").forEach((r) => r.classList.remove("selected"));
  row.classList.add("selected");
  try {
    const item = await api(`/api/data/${encodePath(name)}`);
    const polys = item.polygons.map((p, i) => polygon(p, item.ignore[i] ? "ignore" : "care"));
    document.getElementById("image-name").textContent = `${name} · ${polys.length} polygons`;
    drawImage(document.getElementById("view"), item.image, item.width, item.height, polys);
    showError(null);
  } catch (error) {
    showError(error);
  }
}

function filterRows(rows, text) {
  for (const row of rows) row.hidden = !row.dataset.name.toLowerCase().includes(text.toLowerCase());
}

async function main() {
  document.getElementById("legend").append(legendEntry("care", "word"), legendEntry("ignore", "don't care"));
  let data;
  try {
    data = await api("/api/data");
  } catch (error) {
    return showError(error);
  }
  document.getElementById("title").textContent = `${data.root} · ${data.split}`;
  const words = data.images.reduce((n, image) => n + image.words, 0);
  document.getElementById("counts").textContent =
    `${data.images.length} images annotated, ${data.on_disk} on disk, ${words} words, ${data.problems.length} problems`;
  const problems = document.getElementById("problems");
  if (data.problems.length === 0) problems.append(el("li", { class: "muted" }, "none found"));
  for (const p of data.problems) {
    problems.append(el("li", {}, el("span", { class: "kind" }, p.kind), ` ${p.name}: ${p.message}`));
  }
  const flagged = new Set(data.problems.map((p) => p.name));
  const rows = data.images.map((image) => {
    const label = flagged.has(image.name) ? el("td", { class: "flagged", title: "see Problems" }, `⚠ ${image.name}`)
      : el("td", {}, image.name);
    const row = el("tr", { class: "item", "data-name": image.name }, label, el("td", { class: "num" }, `${image.words}`),
      el("td", { class: "num" }, `${image.dont_care}`));
    row.addEventListener("click", () => showImage(image.name, row));
    return row;
  });
  document.getElementById("images").append(...rows);
  document.getElementById("filter").addEventListener("input", (e) => filterRows(rows, e.target.value));
  if (rows.length) showImage(data.images[0].name, rows[0]);
}

main();
