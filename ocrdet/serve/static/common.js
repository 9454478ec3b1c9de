// Shared by the four pages: JSON requests with readable errors, polygons drawn as SVG over an image.

const SVG = "http://www.w3.org/2000/svg";

/** GET (or POST with `options`) a JSON endpoint; a failure throws an Error with the server's message. */
export async function api(url, options) {
  const response = await fetch(url, options);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
    throw new Error(detail || `${response.status} ${response.statusText}`);
  }
  return body;
}

/** Show `error` (or clear with null) in the page's error box. */
export function showError(error) {
  document.getElementById("error").textContent = error ? error.message : "";
}

/** Highlight this page's link in the top bar. */
export function markNav(page) {
  document.querySelector(`nav a[href="/${page}"]`).classList.add("active");
}

/** An element with attributes and children. */
export function el(tag, attrs = {}, ...children) {
  const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  node.append(...children);
  return node;
}

/** A polygon element; `points` are [[x, y], ...] in the image's pixels. */
export function polygon(points, className, title) {
  const node = el("svg:polygon", { points: points.map((p) => p.join(",")).join(" "), class: className });
  if (title) node.append(el("svg:title", {}, title));
  return node;
}

/**
 * Replace the content of `container` with the image `src` (`width` x `height` pixels) and an SVG layer of
 * `polygons` (elements from `polygon`) in the same pixel frame, scaled with the image.
 */
export function drawImage(container, src, width, height, polygons) {
  const svg = el("svg:svg", { viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none" }, ...polygons);
  container.replaceChildren(el("div", { class: "stage" }, el("img", { src, alt: "", width, height }), svg));
}

/** A legend entry: a small swatch drawn with the same class as the polygons, and a label. */
export function legendEntry(className, label) {
  const swatch = el("svg:svg", { viewBox: "0 0 14 14" }, polygon([[1, 1], [13, 1], [13, 13], [1, 13]], className));
  return el("span", {}, swatch, label);
}

/** A number as shown in tables. */
export function fixed(value, digits = 3) {
  return Number(value).toFixed(digits);
}

/** A file name (may contain "/") as a URL path, each part escaped. */
export function encodePath(name) {
  return name.split("/").map(encodeURIComponent).join("/");
}
