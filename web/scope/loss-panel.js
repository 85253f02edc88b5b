// Loss per segment, memory on (and off, when the run reads the text twice): a chart
// and the same numbers as a table.

import { el, lineChart } from "./draw.js";

/** Rows kept in the loss table (the chart keeps every segment). */
export const SHOWN_SEGMENTS = 2000;

export class LossPanel {
  static title = "Loss per segment (nats)";
  static help =
    "The mean cross-entropy of predicting each next token of a segment, in nats (lower is better). With memory the model can use everything before the segment; tick “also run with memory off” to read the text a second time with the memory read returning 0 (A = (1 − g)·A_dot): the gap between the lines is what memory buys on this text.";
  static css = `
  table.losses td { padding: 0 .6em; }`;

  #chart = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  #rows = el("tbody");
  #drawn = null;

  constructor(body) {
    this.#chart.classList.add("loss-chart");
    this.#chart.setAttribute("role", "img");
    this.#chart.setAttribute("aria-label", "loss per segment; the table below has the numbers");
    const table = el("table", "losses");
    const head = table.createTHead().insertRow();
    head.append(el("th", "", "segment"), el("th", "", "memory on"), el("th", "", "memory off"));
    table.append(this.#rows);
    const details = el("details");
    details.append(el("summary", "", "table"), table);
    body.append(this.#chart, details);
    lineChart(this.#chart, [{ values: [], label: "memory on" }], { yLabel: "memory on" });
  }

  clear() {
    this.#rows.replaceChildren();
  }

  /** Adds a segment's row (a Run's SegmentDigest). */
  add({ index, segmentLoss, baselineLoss }) {
    const row = this.#rows.insertRow();
    row.dataset.segment = index;
    for (const v of [index, segmentLoss.toFixed(4), Number.isFinite(baselineLoss) ? baselineLoss.toFixed(4) : ""]) row.insertCell().textContent = v;
    if (this.#rows.rows.length > SHOWN_SEGMENTS) this.#rows.deleteRow(0);
  }

  draw(run, palette) {
    // Only when a segment was added (or the run or theme changed).
    const key = [run, palette, run.losses.length];
    if (this.#drawn && key.every((x, i) => x === this.#drawn[i])) return;
    this.#drawn = key;
    const colour = (rgb) => `rgb(${rgb.join(",")})`;
    const series = [{ values: run.losses, colour: colour(palette.positive), label: "memory on" }];
    if (run.baseline) series.push({ values: run.baselineLosses, colour: colour(palette.negative), label: "memory off" });
    lineChart(this.#chart, series, { yLabel: run.baseline ? "memory on (orange), off (blue)" : "memory on" });
  }
}
