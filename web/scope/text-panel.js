// The text as read, each token tinted by how much it leaned on memory (its memory
// share, for one head or the mean), segment starts marked; a selected token's
// recall map above it. Tokens are text nodes only: pasted HTML stays text.

import { el, legend, tint } from "./draw.js";
import { RecallStrip } from "./recall-strip.js";
import { mean } from "./stats.js";

/** Tokens kept in the text panel (the text may be any length). */
const SHOWN_TOKENS = 2048;
/**
 * Tokens per block of the text box, closed at a segment's end. Each block is a
 * paragraph of its own: a new segment lays out only the last one, the oldest goes
 * whole, and blocks out of view are neither laid out nor painted
 * (content-visibility); one paragraph of 2,000 spans took 70–90 ms a frame. The last
 * block, the one being written and followed, is never skipped: a new block skipped at
 * first is found in view after the frame's layout, and Blink laid the page out a
 * second time in that frame (20 ms on the first segment of a run).
 */
const BLOCK_TOKENS = 256;
/**
 * What the text box says before a reading: its font laid out at load, not in a
 * reading's first frame (where the first line of tokens took 28 ms of layout).
 */
const EMPTY = "Nothing read yet. The text appears here as the model reads it, each token tinted by how much it leaned on memory.";
const HINT = "Click a token (or focus the text and press ← →) to see which earlier segments its memory read draws on.";

export class TextPanel {
  static title = "Text, tinted by memory share";
  static help =
    "The text is read in segments (a thin mark starts each). For every token the memory share says how much of its attention came from memory: share = g·‖A_mem‖ / (g·‖A_mem‖ + (1 − g)·‖A_dot‖) per head, or the mean over heads. Darker = more memory. Hover a token for its loss and each head's share; click one (or use ← →) for its recall map: which earlier segments its memory read draws on: segment j's recall share w_j = σ(q)·Δz_j / σ(q)·z, what it wrote to the read's normaliser.";
  static css = `
  .text { height: 20em; contain: strict; overflow: auto; white-space: pre-wrap; word-break: break-word; font: 12.5px/1.6 var(--font); padding: .4em; border: 1px solid var(--line); border-radius: 6px; background: var(--bg); }
  .text .block:not(:last-child) { content-visibility: auto; contain-intrinsic-size: auto 8em; }
  .text .empty { color: var(--muted); }
  .text span.seg { box-shadow: inset 2px 0 0 var(--muted); }
  .text span.selected { outline: 2px solid var(--accent); }
  .text span { transition: background-color .6s ease-out; }
  .text span.flash { background: var(--flash) !important; transition: none; }
  figure.recall { margin: .3em 0; }
  figure.recall canvas { width: 100%; height: 28px; display: block; cursor: pointer; }
  .controls { display: flex; flex-wrap: wrap; gap: .5em 1em; align-items: center; }`;

  #select = el("select", "head");
  #tokenInfo = el("div", "info token-info", "Hover a token for its loss and per-head memory share; click one for its recall map.");
  #recallInfo = el("figcaption", "info recall-info", HINT);
  #recallTable = el("table", "recall-table");
  #box = el("div", "text");
  /** Every token span shown, in order, across the blocks. */
  #spans = [];
  #strip;
  #heads = 1;
  #palette;
  /**
   * Follows the reading: told of each block's size once a frame has laid it out, it
   * scrolls to the end if the view was at the end before the text grew (reading
   * sizes outside such a callback would lay the box out then and there: up to 30 ms).
   */
  #observer = new ResizeObserver((entries) => this.#follow(entries));
  /** Each block's height, as last observed. */
  #heights = new Map();
  /** The text's scrolled height when last followed, less the blocks dropped since. */
  #end = 0;
  #onSelect;

  /** `onSelect(token)`: a token was clicked or reached with the arrows; `onPick(j)`: a strip cell. */
  constructor(body, { onSelect, onPick, onHead }) {
    this.#onSelect = onSelect;
    const label = el("label", "", "head ");
    label.append(this.#select);
    this.#select.onchange = () => onHead(this.head);
    const controls = el("div", "controls");
    controls.append(label, legend("sequential", "0", "memory share 1"));
    const figure = el("figure", "recall");
    const canvas = el("canvas", "recall-strip");
    canvas.setAttribute("aria-label", "recall map of the selected token: one cell per earlier segment; the table below lists the largest");
    const table = el("details");
    table.append(el("summary", "", "table: the segments it recalls most"), this.#recallTable);
    figure.append(canvas, this.#recallInfo, table);
    this.#strip = new RecallStrip(canvas, onPick);
    this.#box.tabIndex = 0;
    this.#box.setAttribute("aria-label", "the text read, tinted by memory share; arrow keys select a token");
    this.#box.onkeydown = (e) => this.#key(e);
    body.append(controls, this.#tokenInfo, figure, this.#box);
    this.clear();
  }

  build({ n_layers: layers, n_heads: heads }) {
    this.#heads = heads;
    this.#select.replaceChildren(new Option("mean over heads", "mean"));
    for (let l = 0; l < layers; l++) for (let h = 0; h < heads; h++) this.#select.add(new Option(`layer ${l} head ${h}`, l * heads + h));
  }

  /** The head the text is tinted by (flat index), or null for the mean. */
  get head() {
    return this.#select.value === "mean" ? null : +this.#select.value;
  }
  set head(i) {
    this.#select.value = i === null ? "mean" : String(i);
    this.retint();
  }

  clear() {
    this.#box.replaceChildren(el("div", "empty", EMPTY));
    this.#spans = [];
    this.#observer.disconnect();
    this.#heights.clear();
    this.#end = 0;
    this.#strip.clear();
    this.#recallTable.replaceChildren();
    this.#recallInfo.textContent = HINT;
  }

  /** Adds a segment's tokens (a Run's SegmentDigest). */
  append({ index, first, pieces, loss, share }, layers, palette) {
    this.#palette = palette;
    const heads = this.#heads;
    const n = pieces.length;
    const box = this.#box;
    if (this.#spans.length === 0) box.replaceChildren();
    let block = box.lastElementChild;
    if (!block || block.childElementCount >= BLOCK_TOKENS) {
      block = box.appendChild(el("div", "block"));
      this.#observer.observe(block);
    }
    const fragment = document.createDocumentFragment();
    for (let t = 0; t < n; t++) {
      const span = document.createElement("span");
      span.textContent = pieces[t] ?? "";
      const shares = [];
      for (let l = 0; l < layers; l++) for (let h = 0; h < heads; h++) shares.push(share[(l * n + t) * heads + h]);
      Object.assign(span, { shares, loss: loss[t], token: first + t, segment: index });
      span.onclick = () => this.#onSelect(span.token);
      span.onmouseenter = () => this.#showToken(span);
      if (t === 0) span.className = "seg";
      tint(span, pick(shares, this.head), palette);
      fragment.append(span);
      this.#spans.push(span);
    }
    block.append(fragment);
    while (this.#spans.length - box.firstElementChild.childElementCount >= SHOWN_TOKENS) {
      const first = box.firstElementChild;
      this.#spans.splice(0, first.childElementCount);
      this.#end -= this.#heights.get(first) ?? 0;
      this.#heights.delete(first);
      this.#observer.unobserve(first);
      first.remove();
    }
  }

  #follow(entries) {
    for (const entry of entries) if (entry.target.isConnected) this.#heights.set(entry.target, entry.borderBoxSize[0].blockSize);
    const box = this.#box;
    if (box.scrollTop + box.clientHeight >= this.#end - 24) box.scrollTop = box.scrollHeight;
    this.#end = box.scrollHeight;
  }

  retint(palette = this.#palette) {
    this.#palette = palette;
    const head = this.head;
    for (const span of this.#spans) tint(span, pick(span.shares, head), palette);
  }

  /** Marks token `token` selected and scrolls it into view; returns its text (undefined when not shown). */
  select(token) {
    const box = this.#box;
    box.querySelector("span.selected")?.classList.remove("selected");
    const span = this.#spans[token - (this.#spans[0]?.token ?? 0)];
    if (!span) return undefined;
    span.classList.add("selected");
    // Into view inside the text panel only (scrollIntoView would move the page too).
    const top = this.#top(span);
    if (top < box.scrollTop || top > box.scrollTop + box.clientHeight - 20) box.scrollTop = top - box.clientHeight / 2;
    return span.textContent;
  }

  /** Draws a recall map for the tinting head (or the largest over heads); says why when there is none. */
  drawRecall(map, reason = null) {
    this.#recallTable.replaceChildren();
    if (!map) {
      this.#strip.clear();
      this.#recallInfo.textContent = reason ?? HINT;
      return;
    }
    const head = this.head;
    const who = head === null ? "any head" : `L${Math.floor(head / map.heads)}H${head % map.heads}`;
    const piece = this.#box.querySelector("span.selected")?.textContent;
    const token = `token ${map.token}${piece === undefined ? "" : ` ${JSON.stringify(piece)}`}`;
    if (map.segments === 0) {
      this.#strip.clear();
      this.#recallInfo.textContent = `${token} is in the first segment: memory is empty there, nothing to recall.`;
      return;
    }
    const { best, largest, top } = this.#strip.draw(map, { head, needle: map.needle, palette: this.#palette });
    const needle = map.needle === null ? "" : `; the needle starts in segment ${map.needle} (${best[map.needle]?.toFixed(3) ?? "–"})`;
    this.#recallInfo.textContent = `${token}: recall share over the ${map.segments} segments before its own (${who}); largest in segment ${largest} (${top.toFixed(3)})${needle}. Click the strip to see a segment.`;
    this.#recallTable.insertRow().append(el("th", "", "segment"), el("th", "", `recall share (${who})`));
    const order = [...best.keys()].sort((a, b) => best[b] - best[a]).slice(0, 10);
    for (const j of order) {
      const row = this.#recallTable.insertRow();
      row.append(el("td", "", String(j)), el("td", "", best[j].toFixed(4)));
    }
  }

  /** Scrolls to segment `j` and flashes it; false when it is no longer shown. */
  showSegment(j) {
    const box = this.#box;
    const spans = this.#spans.filter((span) => span.segment === j);
    if (!spans.length) return false;
    box.scrollTop = this.#top(spans[0]) - 8;
    spans.forEach((span) => span.classList.add("flash"));
    setTimeout(() => spans.forEach((span) => span.classList.remove("flash")), 1200);
    return true;
  }

  say(text) {
    this.#recallInfo.textContent = text;
  }

  /** Where `span` starts in the text box's scrolled content, in CSS pixels. */
  #top(span) {
    return span.getBoundingClientRect().top - this.#box.getBoundingClientRect().top + this.#box.scrollTop;
  }

  #showToken(span) {
    const heads = this.#heads;
    const shares = span.shares.map((s, i) => `L${Math.floor(i / heads)}H${i % heads} ${s.toFixed(3)}`).join(" · ");
    const loss = Number.isFinite(span.loss) ? span.loss.toFixed(3) : "–";
    this.#tokenInfo.textContent = `${JSON.stringify(span.textContent)} loss ${loss} nats · memory share ${shares}`;
  }

  /** ← → move the selected token through the text panel. */
  #key(e) {
    if (e.key !== "ArrowLeft" && e.key !== "ArrowRight") return;
    const spans = this.#spans;
    if (!spans.length) return;
    e.preventDefault();
    const first = spans[0].token;
    const current = this.#box.querySelector("span.selected")?.token ?? spans.at(-1).token;
    const next = Math.min(Math.max(current + (e.key === "ArrowLeft" ? -1 : 1), first), spans.at(-1).token);
    this.#onSelect(next);
  }
}

function pick(shares, head) {
  return head === null ? mean(shares) : shares[head];
}
