// Drawing only: every function here takes numbers the engine produced (gates,
// memory M and z, memory shares, losses) and paints them. Nothing is computed
// about the model here beyond colour scales and norms for display.
//
// Two colour scales, both safe for the common colour-vision deficiencies (blue and
// orange differ in lightness and in the blue–yellow axis that deuteranopes and
// protanopes keep): a diverging one for signed values (M, z) and a sequential one
// for amounts in [0, 1] (memory shares, gates g = sigmoid(β)). Their colours are the
// theme's (CSS custom properties --scale-negative, --scale-mid, --scale-positive),
// so the canvases follow light and dark like the rest.

const SVG_NS = "http://www.w3.org/2000/svg";

/** The light theme's scale, used until a theme's colours have been read. */
export const LIGHT = { negative: [33, 102, 172], mid: [246, 246, 246], positive: [214, 96, 26], ink: "#222", muted: "#666" };

/**
 * The colour scales of the theme in effect where `probe` (an element inside the
 * themed tree) sits: its CSS custom properties, whatever colour syntax they use
 * (light-dark(), hex, rgb()), resolved by the browser on the probe.
 */
export function readPalette(probe) {
  const resolve = (name) => {
    probe.style.color = `var(${name})`;
    return getComputedStyle(probe).color;
  };
  const rgb = (name, fallback) => {
    const v = (resolve(name).match(/[\d.]+/g) ?? []).slice(0, 3).map(Number);
    return v.length === 3 && v.every(Number.isFinite) ? v : fallback;
  };
  return {
    negative: rgb("--scale-negative", LIGHT.negative),
    mid: rgb("--scale-mid", LIGHT.mid),
    positive: rgb("--scale-positive", LIGHT.positive),
    ink: resolve("--ink") || LIGHT.ink,
    muted: resolve("--muted") || LIGHT.muted,
  };
}

/** [r, g, b] of a value in [-1, 1]: negative through mid (0) to positive. */
function divergingRgb(t, palette, out = [0, 0, 0]) {
  const x = Math.max(-1, Math.min(1, t || 0));
  const end = x < 0 ? palette.negative : palette.positive;
  const a = Math.abs(x);
  for (let i = 0; i < 3; i++) out[i] = Math.round(palette.mid[i] + (end[i] - palette.mid[i]) * a);
  return out;
}

function css([r, g, b]) {
  return `rgb(${r},${g},${b})`;
}

/** Colour of an amount in [0, 1] (a memory share, a gate g = sigmoid(β)): mid → positive. */
export function sequential(s, palette = LIGHT) {
  return css(divergingRgb(Math.max(0, Math.min(1, s || 0)), palette));
}

/**
 * Tints `element` by an amount in [0, 1] on the sequential scale, its text dark or
 * light, whichever reads better on that colour.
 */
export function tint(element, s, palette = LIGHT) {
  const rgb = divergingRgb(Math.max(0, Math.min(1, s || 0)), palette);
  element.style.background = css(rgb);
  // Relative luminance (sRGB approximated by a 2.2 power): the WCAG crossover is ≈ 0.18.
  const [r, g, b] = rgb.map((c) => (c / 255) ** 2.2);
  element.style.color = 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.18 ? "#111" : "#f2f2f2";
}

/** 257 colours of the diverging scale from −1 to 1 as RGBA words, per palette. */
const ramps = new WeakMap();
function ramp(palette) {
  if (!ramps.has(palette)) {
    const words = new Uint32Array(257);
    const bytes = new Uint8Array(words.buffer);
    const rgb = [0, 0, 0];
    for (let i = 0; i <= 256; i++) {
      divergingRgb(i / 128 - 1, palette, rgb);
      bytes.set([...rgb, 255], i * 4);
    }
    ramps.set(palette, words);
  }
  return ramps.get(palette);
}

/**
 * Paints a rows×cols matrix (row-major `values` from `offset`) into `canvas`, one
 * pixel per cell (CSS scales it up, pixelated: crisp at any device-pixel ratio),
 * symmetric diverging scale clipped at ±`scale`.
 */
export function heatmap(canvas, values, offset, rows, cols, scale, palette = LIGHT) {
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(cols, rows);
  const pixels = new Uint32Array(image.data.buffer);
  const colours = ramp(palette);
  const inv = scale > 0 ? 128 / scale : 0;
  for (let i = 0; i < rows * cols; i++) {
    const x = Math.round(values[offset + i] * inv) + 128;
    // Clipped to the ends; NaN (never expected) shows as the middle.
    pixels[i] = colours[x >= 0 ? (x <= 256 ? x : 256) : x < 0 ? 0 : 128];
  }
  if (canvas.width !== cols || canvas.height !== rows) {
    canvas.width = cols;
    canvas.height = rows;
  }
  ctx.putImageData(image, 0, 0);
}

/** Each chart's SVG elements, reused from one drawing to the next. */
const charts = new WeakMap();

/**
 * A small line chart of several series (arrays of numbers, NaN = gap) in an SVG.
 * `series` = [{ values, colour, label }]. Text takes its colour from the theme (CSS).
 * A redraw changes only what differs: new SVG text is laid out again, which took
 * 10–19 ms a frame when the chart was rebuilt for each segment.
 */
export function lineChart(svg, series, { width = 360, height = 120, yLabel = "", xUnit = "segments" } = {}) {
  const all = series.flatMap((s) => s.values.filter(Number.isFinite));
  let chart = charts.get(svg);
  if (chart?.paths.length !== series.length) {
    svg.replaceChildren();
    chart = null;
  }
  // Built even with nothing to draw yet (a panel's empty chart: its axes, its lines'
  // elements), so that a reading's first frame only moves what is already laid out.
  if (!chart) {
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    const text = (attrs) => {
      const t = document.createElementNS(SVG_NS, "text");
      for (const [k, v] of Object.entries({ class: "axis", ...attrs })) t.setAttribute(k, v);
      return svg.appendChild(t);
    };
    const pad = { l: 40, r: 6, t: 6, b: 16 };
    chart = {
      pad,
      texts: [text({ x: 2, y: pad.t + 8 }), text({ x: 2, y: height - pad.b }), text({ x: pad.l, y: height - 2 }), text({ x: width - pad.r, y: height - 2, "text-anchor": "end" })],
      paths: series.map(() => {
        const path = svg.appendChild(document.createElementNS(SVG_NS, "path"));
        path.setAttribute("fill", "none");
        path.setAttribute("stroke-width", "1.5");
        path.append(document.createElementNS(SVG_NS, "title"));
        return path;
      }),
    };
    charts.set(svg, chart);
  }
  const { pad } = chart;
  let lo = all.length ? Math.min(...all) : 0;
  let hi = all.length ? Math.max(...all) : 1;
  if (hi - lo < 1e-9) hi = lo + 1;
  // A long text has tens of thousands of segments: draw at most ~600 points per line.
  const total = Math.max(...series.map((s) => s.values.length));
  const stride = Math.ceil(total / 600);
  if (stride > 1) series = series.map((s) => ({ ...s, values: s.values.filter((_, i) => i % stride === 0) }));
  const n = Math.max(...series.map((s) => s.values.length));
  const x = (i) => pad.l + ((width - pad.l - pad.r) * i) / Math.max(1, n - 1);
  const y = (v) => pad.t + (height - pad.t - pad.b) * (1 - (v - lo) / (hi - lo));
  const labels = all.length ? [hi.toPrecision(3), lo.toPrecision(3), yLabel, `${total} ${xUnit}`] : ["", "", yLabel, `0 ${xUnit}`];
  chart.texts.forEach((t, i) => t.textContent !== labels[i] && (t.textContent = labels[i]));
  series.forEach((s, k) => {
    let d = "";
    s.values.forEach((v, i) => {
      if (Number.isFinite(v)) d += `${d && Number.isFinite(s.values[i - 1]) ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
    });
    const path = chart.paths[k];
    path.setAttribute("d", d);
    if (path.getAttribute("stroke") !== s.colour) path.setAttribute("stroke", s.colour);
    if (path.firstChild.textContent !== s.label) path.firstChild.textContent = s.label;
  });
}

/** An element with a class and optional text: panels build their DOM from these. */
export function el(tag, className = "", text = "") {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text) e.textContent = text;
  return e;
}

/** A legend: a scale's gradient between its two ends' labels. */
export function legend(kind, low, high) {
  const box = el("div", "legend");
  const bar = el("span", `bar ${kind}`);
  bar.setAttribute("aria-hidden", "true");
  box.append(el("span", "", low), bar, el("span", "", high));
  return box;
}
