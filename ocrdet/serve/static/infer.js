// Inference: upload or pick an image, run the model, draw its polygons, download them as CSV or JSON.
import { api, drawImage, el, encodePath, markNav, polygon, showError } from "/static/common.js";

markNav("infer");

function download(text, type, filename) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  return el("a", { href: url, download: filename }, filename);
}

function show(result) {
  const polys = result.polygons.map((p, i) => polygon(p, "detected", `score ${result.scores[i].toFixed(3)}`));
  document.getElementById("image-name").textContent = result.name;
  document.getElementById("result").textContent = `${polys.length} text regions`;
  const stem = result.name.replace(/\.[^./]*$/, "").split("/").pop();
  document.getElementById("downloads").replaceChildren(
    download(result.csv, "text/csv", `${stem}.csv`), download(result.json, "application/json", `${stem}.json`));
  drawImage(document.getElementById("view"), result.image, result.width, result.height, polys);
  showError(null);
}

async function run(request) {
  document.getElementById("result").textContent = "running…";
  document.getElementById("downloads").replaceChildren();
  try {
    show(await request());
  } catch (error) {
    document.getElementById("result").textContent = "no result";
    document.getElementById("view").replaceChildren();
    document.getElementById("image-name").textContent = "";
    showError(error);
  }
}

async function main() {
  const upload = document.getElementById("upload");
  upload.addEventListener("change", () => {
    const body = new FormData();
    body.append("file", upload.files[0]);
    run(() => api("/api/detect", { method: "POST", body }));
  });
  const pick = document.getElementById("pick");
  pick.addEventListener("change", () => pick.value && run(() => api(`/api/detect/${encodePath(pick.value)}`)));
  try {
    const data = await api("/api/data");
    pick.append(...data.images.map((image) => el("option", { value: image.name }, image.name)));
  } catch {
    pick.disabled = true;
  }
}

main();
