// The engine's thread: a dedicated worker that holds the models (WebGPU is available
// in workers) and reads texts, so the page's main thread only draws. It answers the
// requests of scope/engine.js ({ id, op, ...args } → { id, value } or { id, error })
// and streams a reading's segments as they come ({ run, segments, progress }). The page
// fetches the model files (its Content-Security-Policy governs where from) and hands
// their bytes over.
//
// Data flows one way: text → WebEncoder (tokens) → Session (segments, layers) →
// SegmentResult (taps) → a digest posted to the page.

import init, { live_bytes, Session, WebModel } from "../infiniscope.js";
import { summarise } from "./stats.js";
import { nextTask } from "./tasks.js";
import { wasmFile } from "./wasm-build.js";

/** Characters handed to the tokenizer per step: a few milliseconds of work. */
const CHUNK_CHARS = 16384;
/** Aimed-for length of one reading step (a chunk of segments on the GPU). */
const STEP_MS = 250;
/** Steps posted and not yet drawn before the reader waits for the page. */
const AHEAD = 3;

const ready = init({ module_or_path: new URL(`../${wasmFile()}`, import.meta.url) });
/** Models by folder URL. */
const models = new Map();
/** Readings by run id, and the pieces of texts on their way to one. */
const runs = new Map();
const texts = new Map();

/** One reading: the sessions (memory on, and off when asked), the tokenizer and the loop. */
class Reader {
  constructor(model, { text, tokens, baseline }) {
    this.model = model;
    this.config = JSON.parse(model.info).config;
    this.text = text;
    this.tokens = tokens;
    this.session = new Session(model, true);
    // Recall maps: Δz of every segment (d floats per head) and σ(Q) of recent ones.
    this.session.keep_recall();
    this.baseline = baseline ? new Session(model, false) : null;
    /** Token texts not yet posted. */
    this.pieces = [];
    this.tokensFed = 0;
    this.charsDone = 0;
    this.perStep = 1;
    this.paused = false;
    this.cancelled = false;
    this.ahead = 0;
    this.wake = null;
  }

  /** Reads to the end or `segmentLimit` segments, posting each step's segments. */
  async read(run, segmentLimit) {
    const encoder = this.tokens ? null : this.model.encoder();
    const text = this.text;
    let offset = 0;
    let ended = false;
    const feed = (t) => {
      this.pieces.push(...t.pieces);
      const ids = t.ids;
      t.free?.();
      this.tokensFed += ids.length;
      this.session.feed(ids);
      this.baseline?.feed(ids);
    };
    try {
      if (this.tokens) feed(this.tokens);
      let segments = 0;
      while (!this.cancelled && segments < segmentLimit) {
        if (this.paused || this.ahead >= AHEAD) {
          await new Promise((resolve) => (this.wake = resolve));
          continue;
        }
        if (this.session.pending === 0) {
          if (encoder && offset < text.length) {
            let end = Math.min(text.length, offset + CHUNK_CHARS);
            // Never split a surrogate pair (an emoji) between two pieces.
            if (end < text.length && /[\uD800-\uDBFF]/.test(text[end - 1])) end--;
            feed(encoder.push(text.slice(offset, end)));
            this.charsDone = offset = end;
            if (offset === text.length) feed(encoder.finish());
            await nextTask();
            continue;
          }
          if (ended) break;
          this.session.end_text();
          this.baseline?.end_text();
          ended = true;
          continue;
        }
        // As many segments per step as the engine takes at once (a GPU chunk), sized
        // so a step lasts about STEP_MS: fast devices read in big chunks, slow ones
        // still redraw often. Each result is still one segment.
        const most = Math.min(this.perStep, segmentLimit - segments);
        const began = performance.now();
        const results = await this.session.step(most);
        const baselines = this.baseline ? await this.baseline.step(most) : [];
        if (this.cancelled) {
          for (const result of [...results, ...baselines]) result.free();
          break;
        }
        const took = performance.now() - began;
        this.perStep = Math.max(1, Math.min(32, Math.round((this.perStep * STEP_MS) / Math.max(took, 1))));
        const digests = results.map((result, i) => this.#digest(result, baselines[i] ?? null));
        for (const result of [...results, ...baselines]) result.free();
        segments += results.length;
        this.ahead++;
        const transfer = digests.flatMap((d) => [d.loss.buffer, d.share.buffer, d.m.buffer, d.z.buffer, d.ids.buffer, d.shareSums.buffer, d.headShares.buffer]);
        const progress = { tokensFed: this.tokensFed, charsDone: this.charsDone, recallSegments: this.session.recall_segments };
        postMessage({ run, segments: digests, progress }, transfer);
        await nextTask();
      }
      return { done: !this.cancelled && ended, cancelled: this.cancelled };
    } finally {
      encoder?.free();
    }
  }

  /**
   * What the page keeps of a segment: the getters' arrays (each already a copy out of
   * wasm memory, owning its buffer), moved to the page without a second copy, and
   * what the panels show of them (scope/stats.js), summed up here rather than on the
   * page's main thread.
   */
  #digest(result, baseline) {
    const ids = result.tokens;
    const pieces = this.pieces.splice(0, ids.length);
    const [share, m, z] = [result.share, result.m, result.z];
    return {
      index: result.index,
      ids,
      pieces,
      loss: result.loss,
      baselineLoss: baseline ? baseline.loss : null,
      share,
      m,
      z,
      ...summarise({ share, m, z }, ids.length, this.config),
      device: result.device,
      recovered: result.recovered,
    };
  }

  resume() {
    this.wake?.();
    this.wake = null;
  }

  free() {
    this.session.free();
    this.baseline?.free();
  }
}

/**
 * Makes the model of folder `base` from its files' bytes (fetched by the page, where
 * its Content-Security-Policy applies); later requests name it by `base`.
 */
async function load(base, files) {
  await ready;
  const model = await WebModel.load(files[0], files[1], files[2], Boolean(self.navigator.gpu));
  models.set(base, model);
  return model;
}

function loaded(base) {
  const model = models.get(base);
  if (!model) throw new Error(`the model at ${base} is not loaded`);
  return model;
}

/** What a loaded model tells the page once: its device, info, gates and head kinds. */
function describe(model) {
  return { device: model.device, note: model.note ?? null, info: model.info, gates: model.gates(), kinds: model.head_kinds(), gpu: Boolean(self.navigator.gpu) };
}

function reader(run) {
  const r = runs.get(run);
  if (!r) throw new Error("this reading has ended");
  return r;
}

const OPS = {
  load: async ({ base, files }) => describe(await load(base, files)),
  passkey: ({ base, length, depth, key }) => {
    const hay = loaded(base).passkey(length, depth, key);
    const value = { tokens: hay.tokens, pieces: hay.pieces, key: hay.key, answer_at: hay.answer_at, needle_at: hay.needle_at };
    hay.free();
    return value;
  },
  decode: ({ base, ids }) => loaded(base).decode(ids),
  loseDevice: ({ base }) => loaded(base).lose_device(),
  /** Tokenizes a text once and forgets it (fills the tokenizer's cache: the soak test). */
  warm: ({ base, text }) => {
    const encoder = loaded(base).encoder();
    for (let at = 0; at < text.length; at += CHUNK_CHARS) encoder.push(text.slice(at, at + CHUNK_CHARS)).free();
    encoder.finish().free();
    encoder.free();
  },
  /** The engine allocator's live bytes and the wasm memory's size (the soak test). */
  memory: async () => {
    const wasm = await ready;
    return { live: live_bytes(), memory: wasm.memory.buffer.byteLength };
  },
  text: ({ run, piece }) => {
    if (!texts.has(run)) texts.set(run, []);
    texts.get(run).push(piece);
  },
  read: async ({ base, run, tokens, baseline, segmentLimit }) => {
    const text = (texts.get(run) ?? []).join("");
    texts.delete(run);
    const r = new Reader(loaded(base), { text, tokens, baseline });
    runs.set(run, r);
    return r.read(run, segmentLimit ?? Infinity);
  },
  drawn: ({ run }) => {
    const r = runs.get(run);
    if (!r) return;
    r.ahead = Math.max(0, r.ahead - 1);
    r.resume();
  },
  // Pause, resume and cancel of a reading that has ended (freed) do nothing.
  pause: ({ run }) => {
    const r = runs.get(run);
    if (r) r.paused = true;
  },
  resume: ({ run }) => {
    const r = runs.get(run);
    if (!r) return;
    r.paused = false;
    r.resume();
  },
  cancel: ({ run }) => {
    const r = runs.get(run);
    if (!r) return;
    r.cancelled = true;
    r.resume();
  },
  free: ({ run }) => {
    runs.get(run)?.free();
    runs.delete(run);
  },
  recall: ({ run, token }) => reader(run).session.token_recall(token),
  generate: ({ run, temperature }) => reader(run).session.generate(temperature),
};

self.onmessage = async ({ data }) => {
  const { id, op, ...args } = data;
  try {
    const value = await OPS[op](args);
    postMessage({ id, value });
  } catch (e) {
    postMessage({ id, error: e instanceof Error ? e.message : String(e) });
  }
};
