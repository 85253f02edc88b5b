// One layer of the model as a live diagram (the README's figure, interactive): each
// box says its formula in the paper's notation on hover or focus, and the boxes of
// the selected head show its numbers as the reading goes (g, memory share, ‖M‖, ‖z‖).

import { el } from "./draw.js";

const SVG_NS = "http://www.w3.org/2000/svg";

/**
 * The boxes: x, y, width, height in the 360×300 view, the label, the formula (the
 * paper's notation, docs/DESIGN.md §1.3) and, for `live` boxes, which number they show.
 */
const BOXES = [
  { id: "input", x: 110, y: 4, w: 140, h: 26, label: "segment s: x (n × d_model)", formula: "The segment's n tokens (N at most) enter the layer: x, one row per token. Each layer reads the segments in order." },
  { id: "qkv", x: 70, y: 44, w: 220, h: 26, label: "Q, K, V = RMSNorm(x) W_Q, W_K, W_V", formula: "Q, K, V ∈ R^{n×d} per head: the head's columns of RMSNorm(x)·W_Q, ·W_K, ·W_V." },
  { id: "dot", x: 10, y: 92, w: 150, h: 40, label: "A_dot: local attention", formula: "A_dot = softmax(mask(RoPE(Q) RoPE(K)ᵀ / √d)) V — causal, within the segment only.", live: "local" },
  { id: "mem", x: 200, y: 92, w: 150, h: 40, label: "A_mem: read the memory", formula: "A_mem = σ(Q) M_{s−1} / σ(Q) z_{s−1}, σ = ELU + 1; no position on Q. The first segment reads nothing (A_mem = 0).", live: "share" },
  { id: "memory", x: 220, y: 166, w: 130, h: 40, label: "memory M (d×d), z (d)", formula: "M and z of this head: fixed size, f32, whatever the text's length. M_0 = 0, z_0 = 0.", live: "norms" },
  { id: "gate", x: 30, y: 160, w: 170, h: 40, label: "A = g·A_mem + (1 − g)·A_dot", formula: "The gate g = sigmoid(β): one learned scalar per head. g → 1: the head reads memory; g → 0: only the segment.", live: "gate" },
  { id: "out", x: 30, y: 218, w: 170, h: 26, label: "x ← x + [A_1 … A_H] W_O", formula: "The heads' outputs are joined and projected: O = [A_1 … A_H] W_O, added to x (residual)." },
  { id: "mlp", x: 30, y: 262, w: 170, h: 26, label: "x ← x + MLP(RMSNorm(x))", formula: "A SwiGLU MLP per token, added to x: the layer's second residual line. Then the next layer." },
  { id: "write", x: 220, y: 240, w: 130, h: 40, label: "write M_s, z_s", formula: "After the read: delta rule M_s = M_{s−1} + σ(K)ᵀ(V − σ(K) M_{s−1} / σ(K) z_{s−1}) (linear rule: + σ(K)ᵀV); z_s = z_{s−1} + Σ_t σ(K_t).", live: "segment" },
];

/** Arrows between boxes as SVG paths, dashed when they happen after the segment's read. */
const ARROWS = [
  ["M180,30 V44"],
  ["M130,70 L85,92"],
  ["M230,70 L275,92"],
  ["M85,132 L100,160"],
  ["M240,132 L175,160"],
  ["M285,166 V132"],
  ["M115,200 V218"],
  ["M115,244 V262"],
  ["M290,57 H354 V260 H350", "later"],
  ["M285,240 V206", "later"],
];

export class LayerPanel {
  static title = "One layer, live";
  static help =
    "What every layer does with a segment, in the paper's notation. Hover or focus a box for its formula. The numbers are those of the head locked in the gate grid (or the first head): its gate g, its mean memory share on the text so far, and the norms of its memory after the latest segment. The dashed arrows happen after the segment is read: the next segment reads what this one wrote.";
  static css = `
  svg.layer { max-width: 420px; margin: auto; }
  svg.layer g.box rect { fill: var(--bg); stroke: var(--line); rx: 5; }
  svg.layer g.box:hover rect, svg.layer g.box:focus rect { stroke: var(--accent); stroke-width: 2; }
  svg.layer g.box:focus { outline: none; }
  svg.layer g.box#box-mem rect, svg.layer g.box#box-memory rect, svg.layer g.box#box-write rect { fill: color-mix(in srgb, var(--scale-negative) 14%, var(--bg)); }
  svg.layer g.box#box-gate rect { fill: color-mix(in srgb, var(--scale-positive) 16%, var(--bg)); }
  svg.layer text { font-size: 9.5px; fill: var(--ink); }
  svg.layer text.live { font-size: 9px; fill: var(--accent); font-variant-numeric: tabular-nums; }
  svg.layer > path { fill: none; stroke: var(--muted); stroke-width: 1.2; marker-end: url(#arrow); }
  svg.layer > path.later { stroke-dasharray: 3 3; }
  svg.layer marker path { fill: var(--muted); }
  .formula { min-height: 2.8em; }`;

  #svg = document.createElementNS(SVG_NS, "svg");
  #live = new Map();
  #formula = el("div", "info formula", "Hover or focus a box for its formula.");

  constructor(body) {
    const svg = this.#svg;
    svg.classList.add("layer");
    svg.setAttribute("viewBox", "0 0 360 300");
    svg.setAttribute("role", "group");
    svg.setAttribute("aria-label", "one layer of the model: tab through its boxes for their formulas");
    const defs = node("defs");
    const marker = node("marker", { id: "arrow", viewBox: "0 0 6 6", refX: 5, refY: 3, markerWidth: 6, markerHeight: 6, orient: "auto" });
    marker.append(node("path", { d: "M0,0 L6,3 L0,6 z" }));
    defs.append(marker);
    svg.append(defs);
    for (const [d, later] of ARROWS) svg.append(node("path", { d, class: later ?? "" }));
    for (const box of BOXES) {
      const g = node("g", { class: "box", id: `box-${box.id}`, tabindex: 0, role: "img", "aria-label": `${box.label}: ${box.formula}` });
      g.append(node("rect", { x: box.x, y: box.y, width: box.w, height: box.h }));
      g.append(text(box.label, box.x + box.w / 2, box.y + (box.live ? 15 : 16)));
      if (box.live) {
        const live = text("", box.x + box.w / 2, box.y + 31, "live");
        g.append(live);
        this.#live.set(box.live, live);
      }
      const show = () => (this.#formula.textContent = `${box.label} — ${box.formula}`);
      g.addEventListener("mouseenter", show);
      g.addEventListener("focus", show);
      svg.append(g);
    }
    body.append(svg, this.#formula);
  }

  /**
   * The numbers of one head: `{ layer, head, g, kind, share, mNorm, zNorm, segment }`
   * (share, norms and segment undefined before any reading).
   */
  show({ layer, head, g, kind, share, mNorm, zNorm, segment }) {
    const fixed = (x, digits) => (Number.isFinite(x) ? x.toFixed(digits) : "–");
    const who = `L${layer}H${head}`;
    this.#live.get("gate").textContent = `${who} g = ${fixed(g, 3)}, ${kind.replace("specialized-", "")}`;
    this.#live.get("local").textContent = `weight 1 − g = ${fixed(1 - g, 3)}`;
    this.#live.get("share").textContent = `${who} memory share ${fixed(share, 3)}`;
    this.#live.get("norms").textContent = `‖M‖ ${fixed(mNorm, 1)} · ‖z‖ ${fixed(zNorm, 1)}`;
    this.#live.get("segment").textContent = segment === undefined ? "nothing written yet" : `last written: segment ${segment}`;
  }
}

function node(tag, attrs = {}) {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== "") e.setAttribute(k, v);
  return e;
}

function text(content, x, y, className = "") {
  const t = node("text", { x, y, "text-anchor": "middle", class: className });
  t.textContent = content;
  return t;
}
