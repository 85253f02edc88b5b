// One reading of a text, as the page keeps it: the worker's reader streams segments
// (scope/engine-worker.js), and this keeps everything the panels draw from, as
// numbers: per-segment losses and memory shares, memory snapshots for scrubbing.
// It touches no DOM: the element hands each segment it records to its panels.
//
// Data flows one way: text → worker (tokens → segments → layers → taps) → Run.record
// → the panels.

import { mean } from "./stats.js";
import { call, listen } from "./engine.js";
import { Rows } from "./exports.js";
import { nextTask } from "./tasks.js";

/** Memory snapshots (M and z after a segment) kept for scrubbing back. */
export const SNAPSHOTS = 64;
/** Characters per message when a text goes to the worker: no long task on either side. */
const TEXT_CHUNK = 1 << 20;
/** Milliseconds of segment handling before the main thread is let go for a task. */
const TASK_MS = 12;
let runs = 0;

/**
 * @typedef {object} SegmentDigest what one segment adds to the panels
 * @property {number} index the segment's index in the text
 * @property {number} first the index of its first token
 * @property {string[]} pieces its tokens' texts
 * @property {Float32Array} loss per token, nats (NaN where nothing is predicted)
 * @property {Float32Array} share memory share [layer][token][head]
 * @property {number} segmentLoss mean loss over its tokens
 * @property {number} baselineLoss the same with memory off (NaN without a baseline)
 * @property {boolean} hasMemory whether M and z came with it (the last segment of a chunk)
 * @property {string} device where it ran
 * @property {string | undefined} recovered why the GPU was given up, when it was during this segment
 */

export class Run {
  /**
   * `loaded` = { model, info } (a RemoteModel and its parsed info); reads `text`, or
   * the prepared `tokens` ({ ids, pieces, needle }: the passkey test) when given.
   */
  constructor({ model, info }, { text = "", tokens = null, baseline = false }) {
    const { n_layers: layers, n_heads: heads } = info.config;
    this.id = runs++;
    this.model = model;
    this.info = info;
    this.text = text;
    this.tokens = tokens;
    this.baseline = baseline;
    this.tokensDone = 0;
    this.charsDone = 0;
    this.totalChars = tokens ? 0 : text.length;
    this.totalTokens = tokens ? tokens.ids.length : 0;
    this.tokensFed = 0;
    /** Workers reading it: 2 where the CPU path split it, else 1 (the worker says with each step). */
    this.workers = 0;
    /** Segments whose recall maps the worker keeps (it says with each step). */
    this.recallSegments = 0;
    /** Sum over tokens of each head's memory share. */
    this.shareSum = new Float64Array(layers * heads);
    this.losses = [];
    this.baselineLosses = [];
    /** ‖M‖ and ‖z‖ per head, each time the engine reported the memory. */
    this.mNorms = [];
    this.zNorms = [];
    /** Memory after the last SNAPSHOTS segments that reported it: { index, m, z, mNorms, zNorms, mScales, zScales }. */
    this.snapshots = [];
    /** The segment the memory panel shows (null: the latest, live). */
    this.scrubbed = null;
    /** Every segment's token count and each head's mean memory share over its tokens. */
    this.segmentTokens = [];
    this.headShares = new Rows(layers * heads);
    /** Token ids of each segment (for quoting a segment no longer shown). */
    this.segmentIds = [];
    /** The token whose recall map was asked for last. */
    this.selecting = null;
    /** The selected token's recall map, and the passkey needle's segment. */
    this.recall = null;
    this.needle = tokens?.needle ?? null;
    this.paused = false;
    this.cancelled = false;
    this.done = false;
    this.released = false;
    this.started = performance.now();
    this.pausedFor = 0;
    this.pausedAt = 0;
    this.finished = null;
  }

  /**
   * Reads to the end (or `segmentLimit` segments), calling `onSegment(digest)` for
   * each segment as it comes and `onStep()` after each step. Resolves to this run.
   */
  read({ segmentLimit = Infinity, workers = 2, onSegment, onStep = () => {} }) {
    this.finished ??= this.#read(segmentLimit, workers, onSegment, onStep);
    return this.finished;
  }

  async #read(segmentLimit, workers, onSegment, onStep) {
    // A step's segments (up to 32 on a fast device) are handed on a few per task, in
    // order: one task for all of them would hold the main thread for a long while.
    const queue = [];
    let pumping = null;
    const pump = async () => {
      while (queue.length) {
        const { segments, progress } = queue.shift();
        let began = performance.now();
        for (const segment of segments) {
          if (this.cancelled) break;
          onSegment(this.#record(segment));
          if (performance.now() - began > TASK_MS) {
            await nextTask();
            began = performance.now();
          }
        }
        Object.assign(this, progress);
        onStep();
        call("drawn", { run: this.id });
      }
      pumping = null;
    };
    const stream = listen(this.id, (message) => {
      if (this.cancelled) return;
      queue.push(message);
      // Started a microtask later, so that `pumping` is set before the pump can clear it.
      pumping ??= Promise.resolve().then(pump);
    });
    try {
      // A long text goes over in pieces, a task each.
      const text = this.tokens ? "" : this.text;
      for (let at = 0; at < text.length; at += TEXT_CHUNK) {
        await call("text", { run: this.id, piece: text.slice(at, at + TEXT_CHUNK) });
      }
      const tokens = this.tokens && { ids: this.tokens.ids, pieces: this.tokens.pieces };
      const { done } = await call("read", { base: this.model.base, run: this.id, tokens, baseline: this.baseline, segmentLimit: Number.isFinite(segmentLimit) ? segmentLimit : null, workers });
      await pumping;
      this.done = done && !this.cancelled;
    } finally {
      stream.close();
    }
    return this;
  }

  /** @returns {SegmentDigest} */
  #record({ index, ids, pieces, loss, baselineLoss, share, m, z, shareSums, headShares, memory, device, recovered }) {
    const n = ids.length;
    shareSums.forEach((s, i) => (this.shareSum[i] += s));
    this.headShares.push(headShares);
    this.segmentTokens.push(n);
    // M and z come with the last segment of each chunk, summed up by the worker.
    const hasMemory = memory !== null;
    if (hasMemory) {
      this.mNorms.push(memory.mNorms);
      this.zNorms.push(memory.zNorms);
      this.snapshots.push({ index, m, z, ...memory });
      if (this.snapshots.length > SNAPSHOTS) this.snapshots.shift();
    }
    // Only segments that still have recall maps (the engine's cap) are kept to quote.
    if (this.segmentIds.length < this.recallSegments) this.segmentIds.push(ids);
    const segmentLoss = loss.length ? mean(loss) : NaN;
    const baseline = baselineLoss && baselineLoss.length ? mean(baselineLoss) : NaN;
    this.losses.push(segmentLoss);
    this.baselineLosses.push(baseline);
    const first = this.tokensDone;
    this.tokensDone += n;
    return { index, first, pieces, loss, share, segmentLoss, baselineLoss: baseline, hasMemory, device, recovered };
  }

  pause() {
    this.paused = true;
    this.pausedAt = performance.now();
    call("pause", { run: this.id });
  }

  resume() {
    if (!this.paused) return;
    this.paused = false;
    this.pausedFor += performance.now() - this.pausedAt;
    call("resume", { run: this.id });
  }

  /** Stops reading; resolves once the step in flight has ended. */
  async cancel() {
    if (!this.finished) return;
    this.cancelled = true;
    call("cancel", { run: this.id });
    await this.finished.catch(() => {});
  }

  /**
   * Frees the worker's sessions (wasm memory, GPU buffers: wasm-bindgen objects are
   * not garbage-collected); the numbers stay.
   */
  free() {
    if (this.released) return;
    this.released = true;
    call("free", { run: this.id });
  }

  /** Each head's mean memory share over the tokens read so far (0 before any). */
  meanShare(i) {
    return this.tokensDone ? this.shareSum[i] / this.tokensDone : 0;
  }

  /**
   * Tokens read, the estimated total (tokens are known only as the text is
   * tokenized, so it is estimated from the characters read so far), tokens/s and
   * seconds left.
   */
  progress() {
    const estimate = this.totalTokens || (this.charsDone > 0 ? Math.round((this.tokensFed / this.charsDone) * this.totalChars) : 0);
    const seconds = Math.max(1e-3, (performance.now() - this.started - this.pausedFor) / 1000);
    const rate = this.tokensDone / seconds;
    const left = estimate > this.tokensDone && rate > 0 ? (estimate - this.tokensDone) / rate : 0;
    return { done: this.tokensDone, estimate, rate, left };
  }

  /** The memory snapshot the memory panel shows: the scrubbed one, or the latest. */
  memoryView() {
    const { snapshots, scrubbed } = this;
    if (!snapshots.length) return null;
    if (scrubbed === null) return snapshots.at(-1);
    return snapshots.findLast((s) => s.index <= scrubbed) ?? snapshots[0];
  }

  /**
   * Shows the memory as it was after segment `segment` (the nearest snapshot at or
   * before it); the latest segment resumes following the reading. Returns what is shown.
   */
  scrub(segment) {
    if (!this.snapshots.length) return null;
    const latest = this.snapshots.at(-1).index;
    this.scrubbed = segment >= latest ? null : Math.max(this.snapshots[0].index, segment);
    const view = this.memoryView();
    return { segment: this.scrubbed ?? latest, snapshot: view.index, mNorms: view.mNorms, zNorms: view.zNorms, loss: this.losses[view.index] };
  }

  /**
   * The recall map of token `token` ({ token, shares `[layer][head][j]`, layers,
   * heads, segments, needle }); rejects with the engine's reason when it has none.
   */
  async tokenRecall(token) {
    const { n_layers: layers, n_heads: heads } = this.info.config;
    const shares = await call("recall", { run: this.id, token });
    return { token, shares, layers, heads, segments: shares.length / (layers * heads), needle: this.needle };
  }

  /** Continues the text read by `count` tokens, calling `onPiece(text)` as each arrives. */
  async generate(count, temperature, onPiece) {
    let text = "";
    for (let i = 0; i < count; i++) {
      const piece = await call("generate", { run: this.id, temperature });
      text += piece;
      onPiece(piece);
    }
    return text;
  }

  /**
   * The run's numbers: the gates with each head's kind and mean memory share, and per
   * segment its tokens, loss (memory on and off) and each head's mean memory share.
   */
  numbers({ url, device }) {
    const { n_heads: heads } = this.info.config;
    const kinds = this.model.head_kinds();
    return {
      model: url,
      config: this.info.config,
      device,
      tokens: this.tokensDone,
      gates: [...this.model.gates()].map((g, i) => ({ layer: Math.floor(i / heads), head: i % heads, g, kind: kinds[i], meanShare: this.tokensDone ? this.meanShare(i) : null })),
      segments: this.losses.map((loss, j) => ({ index: j, tokens: this.segmentTokens[j], loss, lossMemoryOff: this.baselineLosses[j], shares: [...this.headShares.row(j)] })),
    };
  }
}
