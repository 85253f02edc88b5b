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
import { Rpc } from "./rpc.js";
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
/** Second parts of split readings (in the second worker), by run id. */
const parts = new Map();
/** The files of each model that runs on the CPU, kept for the second worker. */
const cpuFiles = new Map();
/** The CPU path's second worker, made when a reading first splits, and its models by folder. */
let second = null;
const secondModels = new Map();

/**
 * The second worker with the model of folder `base` loaded, or null where a reading
 * stays in one worker: the model is on the GPU, the machine has one core or says it
 * has under 4 GB of memory (the second worker holds ≈ 60 MiB more at its peak,
 * RELIABILITY.md), or the second worker could not start (the reading then runs here
 * alone).
 */
async function secondWorker(base) {
  const files = cpuFiles.get(base);
  const { hardwareConcurrency: cores = 1, deviceMemory: gigabytes = 4 } = self.navigator;
  if (!files || cores < 2 || gigabytes < 4 || typeof Worker === "undefined") return null;
  try {
    second ??= new Rpc(new Worker(new URL("./engine-worker.js", import.meta.url), { type: "module" }));
    if (!secondModels.has(base)) secondModels.set(base, second.call("load", { base, files, gpu: false, part: true }));
    await secondModels.get(base);
    return second;
  } catch {
    secondModels.delete(base);
    return null;
  }
}

/** A segment's result as plain arrays (each getter a copy out of wasm memory); frees it. */
function plain(result) {
  const fields = { index: result.index, tokens: result.tokens, loss: result.loss, share: result.share, m: result.m, z: result.z, x: result.x, device: result.device, recovered: result.recovered };
  result.free();
  return fields;
}

function concat(arrays) {
  const out = new Float32Array(arrays.reduce((n, a) => n + a.length, 0));
  let at = 0;
  for (const a of arrays) {
    out.set(a, at);
    at += a.length;
  }
  return out;
}

/** One segment from its two parts: the loss from the rest, taps layer-major, the first part's layers first. */
function joinParts(first, rest) {
  const [share, m, z] = ["share", "m", "z"].map((k) => concat([first[k], rest[k]]));
  return { ...first, loss: rest.loss, share, m, z, device: `${first.device} · two workers` };
}

/** One reading: the sessions (memory on, and off when asked), the tokenizer and the loop. */
class Reader {
  constructor(model, { text, tokens, baseline }, split = null) {
    this.model = model;
    this.config = JSON.parse(model.info).config;
    this.text = text;
    this.tokens = tokens;
    this.session = new Session(model, true);
    // Recall maps: Δz of every segment (d floats per head) and σ(Q) of recent ones.
    this.session.keep_recall();
    /**
     * On the CPU with a second core: the model's first part runs here and the rest in
     * the second worker, the rest of one step beside the first part of the next:
     * { rpc, base, run }. The rest's last memory (M, z) is kept for generation.
     */
    this.split = split;
    /** The first error of a request to the second worker that nothing awaits. */
    this.splitError = null;
    if (split) this.#tell("openPart", { base: split.base, cut: this.session.split_front(0) });
    this.restMemory = null;
    this.joined = false;
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
      if (this.split) this.#tell("feedPart", { ids });
      this.baseline?.feed(ids);
    };
    // A split step's rest runs in the second worker while the next step's first part
    // runs here: a step is posted once its rest is back.
    let inFlight = null;
    const flush = async () => {
      const step = inFlight;
      inFlight = null;
      if (step) await this.#post(run, step);
    };
    try {
      if (this.tokens) feed(this.tokens);
      let segments = 0;
      while (!this.cancelled && segments < segmentLimit) {
        if (this.paused || this.ahead >= AHEAD) {
          await flush();
          if (this.paused || this.ahead >= AHEAD) await new Promise((resolve) => (this.wake = resolve));
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
          if (this.split) this.#tell("endPart");
          this.baseline?.end_text();
          ended = true;
          continue;
        }
        // As many segments per step as the engine takes at once (a GPU chunk), sized
        // so a step lasts about STEP_MS: fast devices read in big chunks, slow ones
        // still redraw often. Each result is still one segment.
        const most = Math.min(this.perStep, segmentLimit - segments);
        const began = performance.now();
        const results = (await this.session.step(most)).map(plain);
        const baselines = this.baseline ? (await this.baseline.step(most)).map(plain) : [];
        if (this.cancelled) break;
        let rest = null;
        if (this.split) {
          const x = concat(results.map((r) => r.x));
          rest = this.split.rpc.call("stepPart", { run: this.split.run, x, segments: results.length }, [x.buffer]);
        }
        await flush();
        inFlight = { results, baselines, rest };
        if (!this.split) await flush();
        const took = performance.now() - began;
        this.perStep = Math.max(1, Math.min(32, Math.round((this.perStep * STEP_MS) / Math.max(took, 1))));
        segments += results.length;
        await nextTask();
      }
      if (!this.cancelled) await flush();
      return { done: !this.cancelled && ended, cancelled: this.cancelled };
    } finally {
      encoder?.free();
    }
  }

  /** Asks the second worker for `op` on this reading's part without waiting; a failure surfaces at the next step. */
  #tell(op, args = {}) {
    this.split.rpc.call(op, { run: this.split.run, ...args }).catch((e) => (this.splitError ??= e));
  }

  /** Posts a step's segments, once the rest of a split step is back. */
  async #post(run, { results, baselines, rest }) {
    let segments = results;
    if (rest) {
      const rests = await rest;
      if (this.splitError) throw this.splitError;
      segments = results.map((r, i) => joinParts(r, rests[i]));
      const last = rests.findLast((r) => r.m.length > 0);
      if (last) this.restMemory = { m: last.m, z: last.z };
    }
    if (this.cancelled) return;
    const digests = segments.map((result, i) => this.#digest(result, baselines[i] ?? null));
    this.ahead++;
    const transfer = digests.flatMap((d) => [d.loss.buffer, d.share.buffer, d.m.buffer, d.z.buffer, d.ids.buffer, d.shareSums.buffer, d.headShares.buffer]);
    const progress = { tokensFed: this.tokensFed, charsDone: this.charsDone, recallSegments: this.session.recall_segments, workers: this.split ? 2 : 1 };
    postMessage({ run, segments: digests, progress }, transfer);
  }

  /** The recall shares of token `token`, [layer][head][j], from both parts when split. */
  async recall(token) {
    const first = this.session.token_recall(token);
    if (!this.split) return first;
    return concat([first, await this.split.rpc.call("recallPart", { run: this.split.run, token })]);
  }

  /** One token more after the text; a split reading first takes the rest's memory. */
  generate(temperature) {
    if (this.split && !this.joined && this.restMemory) {
      this.session.join(this.restMemory.m, this.restMemory.z);
      this.joined = true;
    }
    return this.session.generate(temperature);
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
    if (this.split) this.#tell("freePart");
    this.baseline?.free();
  }
}

/**
 * Makes the model of folder `base` from its files' bytes (fetched by the page, where
 * its Content-Security-Policy applies); later requests name it by `base`.
 */
async function load(base, files, { gpu, part }) {
  await ready;
  const model = await WebModel.load(files[0], files[1], files[2], gpu);
  models.set(base, model);
  if (!model.on_gpu && !part) {
    cpuFiles.set(base, files);
    // The second worker loads its copy now, not when the first reading starts.
    secondWorker(base);
  }
  return model;
}

function loaded(base) {
  const model = models.get(base);
  if (!model) throw new Error(`the model at ${base} is not loaded`);
  return model;
}

/** What a loaded model tells the page once: its device, info, gates and head kinds. */
function describe(model) {
  return { device: model.device, note: model.note ?? null, info: model.info, gates: model.gates(), kinds: model.head_kinds(), gpu: Boolean(self.navigator.gpu), onGpu: model.on_gpu };
}

function reader(run) {
  const r = runs.get(run);
  if (!r) throw new Error("this reading has ended");
  return r;
}

const OPS = {
  // `part`: this is the second worker, loading the model for the rest of split readings.
  load: async ({ base, files, gpu = Boolean(self.navigator.gpu), part = false }) => describe(await load(base, files, { gpu, part })),
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
  /**
   * The engine allocator's live bytes and the wasm memory's size (the soak test), the
   * CPU path's second worker's included: what the engine holds in all.
   */
  memory: async () => {
    const wasm = await ready;
    const own = { live: live_bytes(), memory: wasm.memory.buffer.byteLength };
    const rest = second && (await second.call("memory"));
    return rest ? { live: own.live + rest.live, memory: own.memory + rest.memory } : own;
  },
  text: ({ run, piece }) => {
    if (!texts.has(run)) texts.set(run, []);
    texts.get(run).push(piece);
  },
  read: async ({ base, run, tokens, baseline, segmentLimit, workers = 2 }) => {
    const text = (texts.get(run) ?? []).join("");
    texts.delete(run);
    const rpc = workers > 1 ? await secondWorker(base) : null;
    const r = new Reader(loaded(base), { text, tokens, baseline }, rpc && { rpc, base, run });
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
  recall: ({ run, token }) => reader(run).recall(token),
  generate: ({ run, temperature }) => reader(run).generate(temperature),
  // The second worker's side of a split reading: the rest of the model, fed the same
  // tokens, run on the first part's residual stream.
  openPart: ({ base, run, cut }) => {
    const session = new Session(loaded(base), true);
    session.keep_recall();
    session.split_back(cut);
    parts.set(run, session);
  },
  feedPart: ({ run, ids }) => part(run).feed(ids),
  endPart: ({ run }) => part(run).end_text(),
  stepPart: async ({ run, x, segments }) => (await part(run).step_from(x, segments)).map(plain),
  recallPart: ({ run, token }) => part(run).token_recall(token),
  freePart: ({ run }) => {
    parts.get(run)?.free();
    parts.delete(run);
  },
};

function part(run) {
  const session = parts.get(run);
  if (!session) throw new Error("this reading's second part has ended");
  return session;
}

self.onmessage = async ({ data }) => {
  const { id, op, ...args } = data;
  try {
    const value = await OPS[op](args);
    postMessage({ id, value });
  } catch (e) {
    postMessage({ id, error: e instanceof Error ? e.message : String(e) });
  }
};
