// The memory's constant footprint beside the KV cache a full-attention transformer
// would hold for the tokens read so far.

import { bytes } from "../infiniscope.js";
import { el } from "./draw.js";

export class FootprintPanel {
  static title = "Footprint: memory against a KV cache";
  static help =
    "Infini-attention keeps, per layer and head, one d×d matrix M and one vector z, whatever the length of the text. A transformer attending to everything keeps the keys and values of every token read, in every layer: its cache grows with the text. Both bars are in bytes of f32.";
  static css = `
  .footprint .bar { height: 12px; background: var(--scale-positive); margin: 2px 0 6px; min-width: 1px; border-radius: 2px; }
  .footprint .bar.memory { background: var(--scale-negative); }`;

  #memory = el("b", "memory-bytes");
  #kv = el("b", "kv-bytes");
  #memoryBar = el("div", "bar memory");
  #kvBar = el("div", "bar kv");
  #ratio = el("div", "ratio");

  constructor(body) {
    body.classList.add("footprint");
    const line = (text, value) => {
      const div = el("div", "", text);
      div.append(value);
      return div;
    };
    body.append(line("compressive memory (constant): ", this.#memory), this.#memoryBar, line("a full-attention KV cache for the tokens read: ", this.#kv), this.#kvBar, this.#ratio);
  }

  build(info) {
    this.#memory.textContent = bytes(info.memory_bytes);
  }

  draw(info, tokens) {
    const kv = info.kv_bytes_per_token * tokens;
    this.#kv.textContent = bytes(kv);
    const widest = Math.max(kv, info.memory_bytes);
    this.#memoryBar.style.width = `${(100 * info.memory_bytes) / widest}%`;
    this.#kvBar.style.width = `${(100 * kv) / widest}%`;
    this.#ratio.textContent = kv > 0 ? `the KV cache would be ${(kv / info.memory_bytes).toFixed(1)}× the memory` : "";
  }
}
