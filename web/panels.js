// Drawing only: every function here takes numbers the engine produced (gates,
// memory M and z, memory shares, losses) and paints them. Nothing is computed
// about the model here beyond colour scales and norms for display.

const SVG_NS = "http://www.w3.org/2000/svg";

const WHITE = [246, 246, 246];
const NEGATIVE = [33, 102, 172];
const POSITIVE = [214, 96, 26];

/** [r, g, b] of a value in [-1, 1]: blue (−) through near-white (0) to orange (+). */
function divergingRgb(t, out = [0, 0, 0]) {
  const x = Math.max(-1, Math.min(1, t || 0));
  const end = x < 0 ? NEGATIVE : POSITIVE;
  const a = Math.abs(x);
  for (let i = 0; i < 3; i++) out[i] = Math.round(WHITE[i] + (end[i] - WHITE[i]) * a);
  return out;
}

function diverging(t) {
  const [r, g, b] = divergingRgb(t);
  return `rgb(${r},${g},${b})`;
}

/** Colour of a gate g = sigmoid(β): local (blue, 0) ↔ mixer (white, 0.5) ↔ memory (orange, 1). */
export function gateColour(g) {
  return diverging(2 * g - 1);
}

/** Colour of a memory share in [0, 1] for tinting text: white → orange. */
export function shareColour(s) {
  return diverging(Math.max(0, Math.min(1, s)));
}

/** The q-quantile of |values| (robust colour scale: a few large entries do not wash the rest out). */
export function absQuantile(values, q) {
  const step = Math.max(1, Math.floor(values.length / 4096));
  const sample = [];
  for (let i = 0; i < values.length; i += step) sample.push(Math.abs(values[i]));
  sample.sort((a, b) => a - b);
  return sample[Math.min(sample.length - 1, Math.floor(q * sample.length))] || 0;
}

/**
 * Paints a rows×cols matrix (row-major `values` from `offset`) into `canvas`,
 * symmetric diverging scale clipped at ±`scale`.
 */
export function heatmap(canvas, values, offset, rows, cols, scale) {
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(cols, rows);
  const inv = scale > 0 ? 1 / scale : 0;
  const rgb = [0, 0, 0];
  for (let i = 0; i < rows * cols; i++) {
    divergingRgb(values[offset + i] * inv, rgb);
    image.data.set(rgb, i * 4);
    image.data[i * 4 + 3] = 255;
  }
  if (canvas.width !== cols || canvas.height !== rows) {
    canvas.width = cols;
    canvas.height = rows;
  }
  ctx.putImageData(image, 0, 0);
}

/**
 * A small line chart of several series (arrays of numbers, NaN = gap) in an SVG.
 * `series` = [{ values, colour, label }].
 */
export function lineChart(svg, series, { width = 360, height = 120, yLabel = "", xUnit = "segments" } = {}) {
  svg.replaceChildren();
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const all = series.flatMap((s) => s.values.filter(Number.isFinite));
  if (all.length === 0) return;
  const pad = { l: 40, r: 6, t: 6, b: 16 };
  let lo = Math.min(...all);
  let hi = Math.max(...all);
  if (hi - lo < 1e-9) hi = lo + 1;
  // A long text has tens of thousands of segments: draw at most ~600 points per line.
  const total = Math.max(...series.map((s) => s.values.length));
  const stride = Math.ceil(total / 600);
  if (stride > 1) series = series.map((s) => ({ ...s, values: s.values.filter((_, i) => i % stride === 0) }));
  const n = Math.max(...series.map((s) => s.values.length));
  const x = (i) => pad.l + ((width - pad.l - pad.r) * i) / Math.max(1, n - 1);
  const y = (v) => pad.t + (height - pad.t - pad.b) * (1 - (v - lo) / (hi - lo));
  const text = (content, attrs) => {
    const t = document.createElementNS(SVG_NS, "text");
    t.textContent = content;
    for (const [k, v] of Object.entries(attrs)) t.setAttribute(k, v);
    svg.append(t);
  };
  text(hi.toPrecision(3), { x: 2, y: pad.t + 8, class: "axis" });
  text(lo.toPrecision(3), { x: 2, y: height - pad.b, class: "axis" });
  text(yLabel, { x: pad.l, y: height - 2, class: "axis" });
  text(`${total} ${xUnit}`, { x: width - pad.r, y: height - 2, class: "axis", "text-anchor": "end" });
  for (const s of series) {
    let d = "";
    s.values.forEach((v, i) => {
      if (Number.isFinite(v)) d += `${d && Number.isFinite(s.values[i - 1]) ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
    });
    const path = document.createElementNS(SVG_NS, "path");
    path.setAttribute("d", d);
    path.setAttribute("stroke", s.colour);
    path.setAttribute("fill", "none");
    path.setAttribute("stroke-width", "1.5");
    const title = document.createElementNS(SVG_NS, "title");
    title.textContent = s.label;
    path.append(title);
    svg.append(path);
  }
}

/** Frobenius norm of `len` values from `offset`. */
export function norm(values, offset, len) {
  let s = 0;
  for (let i = offset; i < offset + len; i++) s += values[i] * values[i];
  return Math.sqrt(s);
}
