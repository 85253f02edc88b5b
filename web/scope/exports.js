// Keeping what the element shows: a panel as a PNG (drawn as it is on screen, crisp
// at the screen's pixel ratio), and the run's numbers as JSON or CSV. Nothing here
// computes about the model: it copies.

/** Saves `blob` as a file named `name` (the browser's download). */
export function save(name, blob) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
}

/** What an SVG's nodes take from the stylesheet. */
const SVG_STYLE = ["fill", "stroke", "stroke-width", "stroke-dasharray", "font-size", "font-family", "font-weight", "marker-end"];

const TRANSPARENT = "rgba(0, 0, 0, 0)";

/**
 * A PNG of `section` as it is on screen, at the screen's pixel ratio: backgrounds
 * (gate cells, tinted tokens, bars), text, canvases and SVGs at their places, each
 * cut to what its scrolling boxes show.
 */
export async function panelPng(section) {
  const box = section.getBoundingClientRect();
  const scale = window.devicePixelRatio || 1;
  const canvas = document.createElement("canvas");
  canvas.width = Math.ceil(box.width * scale);
  canvas.height = Math.ceil(box.height * scale);
  const ctx = canvas.getContext("2d");
  ctx.scale(scale, scale);
  ctx.translate(-box.left, -box.top);
  const background = getComputedStyle(section).backgroundColor;
  ctx.fillStyle = background === TRANSPARENT ? "#fff" : background;
  ctx.fillRect(box.left, box.top, box.width, box.height);
  // Heatmaps are a few pixels per cell: no smoothing, as on screen.
  ctx.imageSmoothingEnabled = false;
  const draw = async (node, paint) => {
    ctx.save();
    const [l, t, r, b] = visibleBox(node, section);
    ctx.beginPath();
    ctx.rect(l, t, r - l, b - t);
    ctx.clip();
    await paint();
    ctx.restore();
  };
  for (const el of section.querySelectorAll("*")) {
    if (el.closest("svg") !== el && el.closest("svg") || !el.checkVisibility()) continue;
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) continue;
    const style = getComputedStyle(el);
    await draw(el, async () => {
      if (style.backgroundColor !== TRANSPARENT) {
        ctx.fillStyle = style.backgroundColor;
        ctx.fillRect(r.left, r.top, r.width, r.height);
      }
      if (el instanceof HTMLCanvasElement) ctx.drawImage(el, r.left, r.top, r.width, r.height);
      else if (el instanceof SVGSVGElement) ctx.drawImage(await svgImage(el), r.left, r.top, r.width, r.height);
    });
  }
  const texts = document.createTreeWalker(section, NodeFilter.SHOW_TEXT);
  for (let node = texts.nextNode(); node; node = texts.nextNode()) {
    const parent = node.parentElement;
    if (!node.textContent.trim() || parent.closest("svg, select, option") || !parent.checkVisibility()) continue;
    const style = getComputedStyle(parent);
    await draw(parent, () => {
      ctx.fillStyle = style.color;
      ctx.font = `${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
      ctx.textBaseline = "middle";
      for (const [text, r] of lines(node)) ctx.fillText(text, r.left, r.top + r.height / 2);
    });
  }
  return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
}

/** A text node's lines as on screen: [text, its box] for each, word by word when it wraps. */
function lines(node) {
  const range = document.createRange();
  range.selectNodeContents(node);
  const rects = range.getClientRects();
  if (rects.length <= 1) return rects.length ? [[node.textContent, rects[0]]] : [];
  const out = [];
  for (const match of node.textContent.matchAll(/\S+/g)) {
    range.setStart(node, match.index);
    range.setEnd(node, match.index + match[0].length);
    out.push([match[0], range.getBoundingClientRect()]);
  }
  return out;
}

/** The part of `node` its scrolling ancestors (up to `section`) let show: [left, top, right, bottom]. */
function visibleBox(node, section) {
  const s = section.getBoundingClientRect();
  const box = [s.left, s.top, s.right, s.bottom];
  for (let p = node.parentElement; p && p !== section; p = p.parentElement) {
    if (getComputedStyle(p).overflow === "visible") continue;
    const r = p.getBoundingClientRect();
    box[0] = Math.max(box[0], r.left);
    box[1] = Math.max(box[1], r.top);
    box[2] = Math.min(box[2], r.right);
    box[3] = Math.min(box[3], r.bottom);
  }
  return box;
}

/** An SVG chart or diagram as an image, styled as on screen. */
function svgImage(svg) {
  const copy = svg.cloneNode(true);
  copy.setAttribute("xmlns", "http://www.w3.org/2000/svg");
  // Its look comes from the element's stylesheet (the theme's colours), which an image
  // does not see: each node takes its computed style along.
  const copies = copy.querySelectorAll("*");
  svg.querySelectorAll("*").forEach((node, i) => {
    const style = getComputedStyle(node);
    for (const property of SVG_STYLE) copies[i].style.setProperty(property, style.getPropertyValue(property));
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
