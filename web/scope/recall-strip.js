// The recall strip: a minimap of every segment read before a token's own, each
// coloured by the recall share the token's memory read gives it (docs/DESIGN.md §6),
// for one head or the largest any head gives, relative to the strip's largest. A mark
// below the strip: the needle's segment in the passkey test.
// Click a cell to pick that segment.

import { LIGHT, sequential } from "./draw.js";

const HEIGHT = 28;
const BAR = 18;

export class RecallStrip {
  #canvas;
  #map = null;

  /** `onPick(segment)` is called when a segment of the strip is clicked. */
  constructor(canvas, onPick) {
    this.#canvas = canvas;
    canvas.onclick = (event) => {
      const j = this.#segmentAt(event);
      if (j !== null) onPick(j);
    };
    canvas.onmousemove = (event) => {
      const j = this.#segmentAt(event);
      canvas.title = j === null ? "" : `segment ${j}: recall share ${this.#map.best[j].toFixed(4)}`;
    };
  }

  /**
   * `map` = { shares `[layer][head][j]`, layers, heads, segments }; `head` = the flat
   * index layer·heads + head, or null for the largest share over heads; `palette` the
   * theme's colours. Returns each
   * segment's share as drawn and the largest.
   */
  draw(map, { head = null, needle = null, palette = LIGHT } = {}) {
    const { shares, layers, heads, segments } = map;
    const best = new Float32Array(segments);
    for (let lh = 0; lh < layers * heads; lh++) {
      if (head !== null && lh !== head) continue;
      for (let j = 0; j < segments; j++) best[j] = Math.max(best[j], shares[lh * segments + j]);
    }
    let largest = 0;
    for (let j = 1; j < segments; j++) if (best[j] > best[largest]) largest = j;
    const top = best[largest] ?? 0;
    this.#map = { segments, best };

    const canvas = this.#canvas;
    const scale = window.devicePixelRatio || 1;
    const width = canvas.clientWidth || 600;
    Object.assign(canvas, { width: Math.round(width * scale), height: HEIGHT * scale });
    const ctx = canvas.getContext("2d");
    ctx.scale(scale, scale);
    // A long text has more segments than pixels: each column shows its largest share.
    const columns = Math.max(1, Math.min(segments, Math.floor(width)));
    const per = segments / columns;
    const cell = width / columns;
    for (let c = 0; c < columns; c++) {
      let v = 0;
      const end = Math.min(segments, Math.max(Math.floor((c + 1) * per), Math.floor(c * per) + 1));
      for (let j = Math.floor(c * per); j < end; j++) v = Math.max(v, best[j]);
      ctx.fillStyle = sequential(top > 0 ? v / top : 0, palette);
      ctx.fillRect(c * cell, 0, Math.ceil(cell), BAR);
    }
    if (needle !== null && needle < segments) {
      ctx.fillStyle = palette.ink;
      ctx.fillRect(needle * (width / segments), BAR + 3, Math.max(width / segments, 2), HEIGHT - BAR - 3);
    }
    return { best, largest, top };
  }

  clear() {
    this.#map = null;
    this.#canvas.getContext("2d").clearRect(0, 0, this.#canvas.width, this.#canvas.height);
  }

  #segmentAt(event) {
    if (!this.#map || this.#map.segments === 0) return null;
    const rect = this.#canvas.getBoundingClientRect();
    const j = Math.floor(((event.clientX - rect.left) / rect.width) * this.#map.segments);
    return Math.max(0, Math.min(this.#map.segments - 1, j));
  }
}
