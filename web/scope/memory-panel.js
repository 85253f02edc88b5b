// The compressive memory: each head's M (d×d) and z (1×d) as heatmaps, a scrubber
// over the snapshots the run kept, ‖M‖ and ‖z‖ over the reading as a chart and as a
// table, and one head enlarged on click.

import { el, heatmap, legend, lineChart } from "./draw.js";
import { mean } from "./stats.js";

export class MemoryPanel {
  static title = "Compressive memory M and z per head";
  static help =
    "After each segment every head writes its keys and values into a fixed-size memory: M (d×d, d the head dimension) and z (d), with σ = ELU + 1. The linear rule adds σ(K)ᵀV; the delta rule (infini-tiny's) writes only what M does not already return: M ← M + σ(K)ᵀ(V − σ(K)M / σ(K)z), z ← z + Σ σ(K). The next segments read it as A_mem = σ(Q)M / σ(Q)z. Blue cells are negative, orange positive, each head clipped at the 98th percentile of its |M|. The memory never grows: compare its size with a KV cache in the footprint panel. Drag the slider to see M as it was after an earlier segment; click a head to enlarge it.";
  static css = `
  .heads { display: grid; gap: 6px; }
  .heads figure { margin: 0; text-align: center; font-size: 11px; cursor: zoom-in; color: var(--muted); }
  .heads figure canvas, dialog canvas { image-rendering: pixelated; display: block; margin: auto; border: 1px solid var(--line); }
  /* Up to 96 px a heatmap, smaller when the model's heads do not fit the panel's width. */
  .heads canvas { width: 100%; max-width: 96px; aspect-ratio: 1; box-sizing: border-box; }
  .heads canvas.z { aspect-ratio: auto; height: 6px; margin-top: 2px; }
  .heads figure.focus canvas.m { outline: 2px solid var(--ink); }
  dialog { background: var(--surface); color: var(--ink); border: 1px solid var(--line); border-radius: 8px; }
  dialog canvas { width: min(384px, 80vw); height: min(384px, 80vw); }
  dialog canvas.z { height: 16px; }
  .scrubber { display: flex; gap: .5em; align-items: center; font-size: 12px; }
  .scrubber input { flex: 1; min-width: 0; accent-color: var(--accent); }`;

  #heads = el("div", "heads");
  #scrub = el("input", "scrub");
  #info = el("div", "info memory-info");
  #chart = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  #table = el("table", "norms-table");
  #dialog = el("dialog");
  #enlarged = null;
  #config = null;
  /** When the norms chart was drawn last (performance.now()), and whether the run had ended. */
  #charted = -Infinity;
  #chartedEnd = false;
  /** What is being drawn, in pieces: its key (as #drawn's) and the next head to draw. */
  #partial = null;
  /** What was drawn last: run, palette, snapshot, scrubbed segment, enlarged head, ended. */
  #drawn = null;

  /** `onScrub(segment)`: the slider moved. */
  constructor(body, { onScrub }) {
    const scrubber = el("div", "scrubber");
    const label = el("label", "", "segment");
    label.htmlFor = this.#scrub.id = "scrub";
    Object.assign(this.#scrub, { type: "range", min: 0, max: 0, value: 0, disabled: true });
    this.#info.id = "scrub-info";
    this.#scrub.setAttribute("aria-describedby", "scrub-info");
    this.#scrub.oninput = () => onScrub(+this.#scrub.value);
    scrubber.append(label, this.#scrub);
    this.#chart.classList.add("norms");
    this.#chart.setAttribute("role", "img");
    this.#chart.setAttribute("aria-label", "‖M‖ and ‖z‖ per head over the reading; the table below has the latest numbers");
    const table = el("details");
    table.append(el("summary", "", "table: ‖M‖ and ‖z‖ per head"), this.#table);
    const figure = el("figure", "big");
    figure.append(el("canvas", "m"), el("canvas", "z"), el("figcaption"));
    const close = el("button", "close", "close");
    close.onclick = () => {
      this.#enlarged = null;
      this.#dialog.close();
    };
    this.#dialog.append(figure, close);
    body.append(this.#heads, legend("diverging", "− M", "+ M"), scrubber, this.#info, this.#chart, table, this.#dialog);
  }

  /**
   * Builds the heads' heatmaps for a model's shape, painted with the empty memory (M = 0,
   * z = 0: nothing read yet), so that a reading's first frame neither resizes sixteen
   * canvases nor makes their first 2-D contexts (measured 10–24 ms in that frame).
   */
  build({ n_layers: layers, n_heads: heads, head_dim: d }, palette) {
    this.#config = { layers, heads };
    this.#heads.style.gridTemplateColumns = `repeat(${heads}, minmax(0, 96px))`;
    this.#heads.replaceChildren();
    this.#table.replaceChildren();
    this.#table.insertRow().append(el("th", "", "head"), el("th", "", "‖M‖"), el("th", "", "‖z‖"));
    for (let l = 0; l < layers; l++) {
      for (let h = 0; h < heads; h++) {
        const figure = el("figure");
        figure.append(el("canvas", "m"), el("canvas", "z"), el("figcaption", "", `L${l} H${h}`));
        figure.querySelector("canvas.m").setAttribute("aria-label", `memory M of layer ${l} head ${h}`);
        figure.onclick = () => this.#enlarge(l * heads + h);
        this.#heads.append(figure);
        const row = this.#table.insertRow();
        row.append(el("th", "", `L${l}H${h}`), el("td", "", "–"), el("td", "", "–"));
      }
    }
    this.#drawn = this.#partial = null;
    this.paintEmpty(palette, d);
    this.#drawChart([], []);
  }

  /** Paints every head as the empty memory (before a reading, or after a theme change). */
  paintEmpty(palette, d = this.#config.d) {
    this.#config.d = d;
    const empty = { m: new Float32Array(d * d), z: new Float32Array(d), mScales: [0], zScales: [0] };
    for (const figure of this.#heads.children) {
      const [mCanvas, zCanvas] = figure.querySelectorAll("canvas");
      drawHead(mCanvas, zCanvas, empty, 0, d, palette);
    }
  }

  /** Outlines head i's heatmap (null: none). */
  focus(i) {
    [...this.#heads.children].forEach((figure, j) => figure.classList.toggle("focus", j === i));
  }

  /** Keeps the slider's range on the snapshots kept; at its end it follows the reading. */
  follow(run) {
    const { snapshots } = run;
    if (!snapshots.length) return;
    this.#scrub.disabled = false;
    this.#scrub.min = snapshots[0].index;
    this.#scrub.max = snapshots.at(-1).index;
    if (run.scrubbed === null) this.#scrub.value = this.#scrub.max;
  }

  /**
   * Draws the memory the run's view shows (the latest or the scrubbed snapshot): heads'
   * heatmaps until `deadline` (performance.now()), one at least; returns whether all is
   * drawn (else the next call goes on where this one stopped). A deadline rather than
   * a count: the first heatmaps of a run cost several times the later ones (canvases'
   * first contexts, code not yet optimised), so a fixed count made the first frame long.
   */
  draw(run, palette, deadline = Infinity) {
    const view = run.memoryView();
    // Sixteen heatmaps are the costliest drawing here: only when what they
    // show changed (a new snapshot, a scrub, another theme, a head enlarged, the end).
    const key = view && [run, palette, view, run.scrubbed, this.#enlarged, run.done || run.cancelled];
    const same = (drawn) => drawn && key.every((x, i) => x === drawn[i]);
    if (!view || same(this.#drawn)) return true;
    if (!same(this.#partial?.key)) this.#partial = { key, next: 0 };
    const { n_heads: heads, n_layers: layers, head_dim: d } = run.info.config;
    const figures = this.#heads.children;
    do {
      const i = this.#partial.next++;
      const [mCanvas, zCanvas] = figures[i].querySelectorAll("canvas");
      const scale = drawHead(mCanvas, zCanvas, view, i, d, palette);
      mCanvas.title = `‖M‖ = ${view.mNorms[i].toFixed(3)}, colour scale ±${scale.toPrecision(3)} (98th percentile of |M|)`;
    } while (this.#partial.next < layers * heads && performance.now() < deadline);
    if (this.#partial.next < layers * heads) return false;
    this.#drawn = key;
    this.#partial = null;
    if (this.#enlarged !== null) this.#drawEnlarged(run, view, palette);
    this.#info.textContent = scrubNote(run, view);
    this.#scrub.value = run.scrubbed ?? this.#scrub.max;
    for (let i = 0; i < layers * heads; i++) {
      const [, m, z] = this.#table.rows[i + 1].cells;
      m.textContent = view.mNorms[i].toFixed(3);
      z.textContent = view.zNorms[i].toFixed(3);
    }
    return true;
  }

  /** The chart of every head's ‖M‖ and ‖z‖: redrawn once a second at most while reading. */
  chart(run) {
    const now = performance.now();
    const ended = run.done || run.cancelled;
    if (now - this.#charted < 1000 && this.#chartedEnd === ended) return;
    [this.#charted, this.#chartedEnd] = [now, ended];
    this.#drawChart(run.mNorms, run.zNorms);
  }

  /** `mNorms`, `zNorms`: per report, each head's ‖M‖ and ‖z‖ (none: the empty chart). */
  #drawChart(mNorms, zNorms) {
    const { layers, heads } = this.#config;
    const series = [];
    for (let i = 0; i < layers * heads; i++) {
      const hue = (360 * Math.floor(i / heads)) / layers;
      series.push({ values: mNorms.map((v) => v[i]), colour: `hsl(${hue} 70% 45%)`, label: `‖M‖ L${Math.floor(i / heads)}H${i % heads}` });
      series.push({ values: zNorms.map((v) => v[i]), colour: `hsl(${hue} 70% 70%)`, label: `‖z‖ L${Math.floor(i / heads)}H${i % heads}` });
    }
    lineChart(this.#chart, series, { yLabel: "‖M‖ (dark), ‖z‖ (light)", xUnit: "chunks read" });
  }

  #enlarge(i) {
    this.#enlarged = i;
    this.#dialog.showModal();
    if (this.#drawn) this.draw(this.#drawn[0], this.#drawn[1]);
    else this.#dialog.querySelector("figcaption").textContent = "nothing read yet";
  }

  #drawEnlarged(run, view, palette) {
    const i = this.#enlarged;
    const { heads } = this.#config;
    const [mCanvas, zCanvas] = this.#dialog.querySelectorAll("canvas");
    const scale = drawHead(mCanvas, zCanvas, view, i, run.info.config.head_dim, palette);
    this.#dialog.querySelector("figcaption").textContent =
      `layer ${Math.floor(i / heads)} head ${i % heads}, after segment ${view.index}: ‖M‖ = ${view.mNorms[i].toFixed(3)}, ‖z‖ = ${view.zNorms[i].toFixed(3)}, colours ±${scale.toPrecision(3)}`;
  }
}

/**
 * Paints head i's M (d×d) and z (1×d) of a snapshot, each clipped at the 98th
 * percentile of its |values| (robust: a few large cells do not wash out the rest;
 * the worker found them: scope/stats.js); returns M's scale.
 */
function drawHead(mCanvas, zCanvas, { m, z, mScales, zScales }, i, d, palette) {
  heatmap(mCanvas, m, i * d * d, d, d, mScales[i], palette);
  heatmap(zCanvas, z, i * d, 1, d, zScales[i], palette);
  return mScales[i];
}

function scrubNote(run, view) {
  const kept = `${run.snapshots.length} snapshots kept (segments ${run.snapshots[0].index}–${run.snapshots.at(-1).index})`;
  const wanted = run.scrubbed ?? view.index;
  const where = run.scrubbed === null ? `live: after segment ${view.index}` : `after segment ${view.index}${wanted !== view.index ? ` (the nearest snapshot before segment ${wanted})` : ""}`;
  const loss = run.losses[wanted];
  const share = wanted < run.headShares.length ? mean(run.headShares.row(wanted)) : undefined;
  return `${where} · segment ${wanted}: loss ${Number.isFinite(loss) ? loss.toFixed(3) : "–"}, mean memory share ${share?.toFixed(3) ?? "–"} · ${kept}; colours clipped at the 98th percentile of |M| per head`;
}
