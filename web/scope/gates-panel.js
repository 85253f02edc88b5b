// The gate grid: one cell per layer × head, g = sigmoid(β) and the head's kind as the
// engine names it (src/gate.rs), coloured by the sequential scale (how much the head
// leans on memory). A keyboard moves through it like a grid (one tab stop, arrows,
// Home/End), Enter or Space locks a head.

import { el, legend, tint } from "./draw.js";

export class GatesPanel {
  static title = "Gates g = sigmoid(β) per layer × head";
  static help =
    "Each head mixes two readings of the past: ordinary attention inside the segment (A_dot) and the compressive memory's answer (A_mem), as A = g·A_mem + (1 − g)·A_dot with g = sigmoid(β), one learned scalar per head. The paper found heads that specialise (g near 0: local only; near 1: memory only) and mixers in between. Colour = g. Hover a head for its numbers; click (or Enter) to lock it: the text, the recall map, the layer diagram and the memory panel follow it.";
  static css = `
  table.gates { border-collapse: separate; border-spacing: 3px; }
  table.gates th { font-weight: 500; color: var(--muted); font-size: 11px; }
  table.gates td.gate { border: 1px solid var(--line); border-radius: 4px; min-width: 4.8em; padding: 3px 4px; text-align: center; cursor: pointer; }
  td.gate .value { font-weight: 600; }
  td.gate .kind { font-size: 10px; opacity: .85; }
  td.gate.focus { outline: 2px solid var(--ink); outline-offset: 1px; }
  .counts { color: var(--muted); }`;

  #table = el("table", "gates");
  #counts = el("span", "counts");
  #info = el("div", "info gate-info", "Hover a head for its gate and mean memory share.");
  #cells = [];
  #heads = 1;
  #callbacks;

  /** `onFocus(i, lock)`: a head hovered (lock false; i null when left) or clicked (lock true). */
  constructor(body, { onFocus }) {
    this.#callbacks = { onFocus };
    this.#table.setAttribute("aria-label", "gates g per layer and head; arrow keys move, Enter locks a head");
    const scale = legend("sequential", "0 local", "1 memory");
    scale.append("·", this.#counts);
    body.append(this.#table, scale, this.#info);
  }

  /** Builds the grid for a model: `gates[i]`, `kinds[i]` for head i = layer·heads + head. */
  build({ n_layers: layers, n_heads: heads }, gates, kinds, thresholds, palette) {
    this.#heads = heads;
    this.#table.replaceChildren();
    const top = this.#table.insertRow();
    top.append(el("th"));
    for (let h = 0; h < heads; h++) top.append(el("th", "", `head ${h}`));
    this.#cells = [];
    for (let l = 0; l < layers; l++) {
      const row = this.#table.insertRow();
      row.append(el("th", "", `layer ${l}`));
      for (let h = 0; h < heads; h++) {
        const i = l * heads + h;
        const cell = row.insertCell();
        cell.className = "gate";
        Object.assign(cell.dataset, { layer: l, head: h, gate: gates[i], kind: kinds[i] });
        cell.append(el("div", "value", gates[i].toFixed(4)), el("div", "kind", kinds[i]));
        cell.tabIndex = i === 0 ? 0 : -1;
        cell.setAttribute("aria-label", `layer ${l} head ${h}: g ${gates[i].toFixed(4)}, ${kinds[i]}`);
        cell.onmouseenter = () => this.#callbacks.onFocus(i, false);
        cell.onmouseleave = () => this.#callbacks.onFocus(null, false);
        cell.onclick = () => this.#callbacks.onFocus(i, true);
        cell.onkeydown = (e) => this.#key(e, i, layers);
        this.#cells.push(cell);
      }
    }
    const count = (kind) => kinds.filter((k) => k === kind).length;
    // f32 thresholds reach JSON as 0.10000000149011612: shown as the 0.1 they are.
    const [below, above] = [thresholds.local_below, thresholds.memory_above].map((x) => +x.toPrecision(6));
    this.#counts.textContent = `${count("specialized-local")} specialized-local (g < ${below}), ${count("mixer")} mixer, ${count("specialized-memory")} specialized-memory (g > ${above}) heads`;
    this.recolour(palette);
  }

  recolour(palette) {
    for (const cell of this.#cells) tint(cell, +cell.dataset.gate, palette);
  }

  /** Each head's mean memory share so far (`share(i)`), in the cells' data and titles. */
  update(share) {
    this.#cells.forEach((cell, i) => {
      cell.dataset.share = share(i);
      cell.title = `g = ${(+cell.dataset.gate).toFixed(6)}, mean memory share ${share(i).toFixed(4)}`;
    });
  }

  /** Outlines head i (null: none). */
  focus(i) {
    this.#cells.forEach((cell, j) => cell.classList.toggle("focus", j === i));
  }

  describe(text) {
    this.#info.textContent = text;
  }

  /** Roving focus: arrows move by one cell, Home/End to the row's ends; Enter/Space lock. */
  #key(e, i, layers) {
    const heads = this.#heads;
    const [l, h] = [Math.floor(i / heads), i % heads];
    const to = {
      ArrowLeft: [l, Math.max(0, h - 1)],
      ArrowRight: [l, Math.min(heads - 1, h + 1)],
      ArrowUp: [Math.max(0, l - 1), h],
      ArrowDown: [Math.min(layers - 1, l + 1), h],
      Home: [l, 0],
      End: [l, heads - 1],
    }[e.key];
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      this.#callbacks.onFocus(i, true);
      return;
    }
    if (!to) return;
    e.preventDefault();
    const next = this.#cells[to[0] * heads + to[1]];
    this.#cells[i].tabIndex = -1;
    next.tabIndex = 0;
    next.focus();
    this.#callbacks.onFocus(to[0] * heads + to[1], false);
  }
}
