// Keeping what the element shows: a panel as a PNG (its canvases and charts, drawn
// where they sit in the panel, crisp at the screen's pixel ratio), and the run's
// numbers as JSON or CSV. Nothing here computes about the model: it copies.

/** Saves `blob` as a file named `name` (the browser's download). */
export function save(name, blob) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
}

/** A PNG of `section`: its background, title, canvases and SVG charts at their places. */
export async function panelPng(section) {
  const box = section.getBoundingClientRect();
  const scale = window.devicePixelRatio || 1;
  const canvas = document.createElement("canvas");
  canvas.width = Math.ceil(box.width * scale);
  canvas.height = Math.ceil(box.height * scale);
  const ctx = canvas.getContext("2d");
  ctx.scale(scale, scale);
  const style = getComputedStyle(section);
  ctx.fillStyle = style.backgroundColor === "rgba(0, 0, 0, 0)" ? "#fff" : style.backgroundColor;
  ctx.fillRect(0, 0, box.width, box.height);
  const title = section.querySelector("h3");
  if (title) {
    ctx.fillStyle = style.color;
    ctx.font = `bold 13px ${style.fontFamily}`;
    ctx.fillText(title.textContent, 8, 18);
  }
  const at = (el) => {
    const r = el.getBoundingClientRect();
    return [r.left - box.left, r.top - box.top, r.width, r.height];
  };
  for (const el of section.querySelectorAll("canvas, svg")) {
    const [x, y, w, h] = at(el);
    if (w === 0 || h === 0) continue;
    // Heatmaps are a few pixels per cell: no smoothing, as on screen.
    ctx.imageSmoothingEnabled = false;
    if (el instanceof HTMLCanvasElement) ctx.drawImage(el, x, y, w, h);
    else ctx.drawImage(await svgImage(el), x, y, w, h);
  }
  return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
}

/** An SVG chart as an image, its text styled as on screen. */
function svgImage(svg) {
  const copy = svg.cloneNode(true);
  copy.setAttribute("xmlns", "http://www.w3.org/2000/svg");
  copy.querySelectorAll("text").forEach((t) => {
    t.setAttribute("font-size", "9");
    t.setAttribute("fill", "#666");
    t.setAttribute("font-family", "sans-serif");
  });
  const url = URL.createObjectURL(new Blob([new XMLSerializer().serializeToString(copy)], { type: "image/svg+xml" }));
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => (URL.revokeObjectURL(url), resolve(image));
    image.onerror = () => (URL.revokeObjectURL(url), reject(new Error("the chart could not be drawn")));
    image.src = url;
  });
}

/**
 * The run's numbers as CSV: one row per segment (index, tokens, loss with memory on
 * and off, then each head's mean memory share over the segment's tokens).
 */
export function numbersCsv(numbers) {
  const heads = numbers.gates.map((g) => `share_L${g.layer}H${g.head}`);
  const rows = [["segment", "tokens", "loss", "loss_memory_off", ...heads].join(",")];
  for (const s of numbers.segments) {
    rows.push([s.index, s.tokens, csvNumber(s.loss), csvNumber(s.lossMemoryOff), ...s.shares.map(csvNumber)].join(","));
  }
  return `${rows.join("\n")}\n`;
}

function csvNumber(x) {
  return Number.isFinite(x) ? String(x) : "";
}

/** A growing table of float rows of one width (per-segment numbers of a long text). */
export class Rows {
  #data;
  width;
  length = 0;

  constructor(width) {
    this.width = width;
    this.#data = new Float32Array(width * 256);
  }

  push(row) {
    if ((this.length + 1) * this.width > this.#data.length) {
      const grown = new Float32Array(this.#data.length * 2);
      grown.set(this.#data);
      this.#data = grown;
    }
    this.#data.set(row, this.length * this.width);
    this.length++;
  }

  row(i) {
    return this.#data.subarray(i * this.width, (i + 1) * this.width);
  }
}
