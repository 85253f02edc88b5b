// One reading of a text: the engine's sessions (memory on, and optionally off) and
// everything the panels draw from, kept as numbers: per-segment losses and memory
// shares, memory snapshots for scrubbing, token texts not yet shown. It touches no
// DOM: the element hands each segment it records to its panels.
//
// Data flows one way: text → WebEncoder (tokens) → Session (segments, layers) →
// SegmentResult (taps) → Run.record → the panels.

import { Session } from "../infiniscope.js";
import { mean, norm } from "./draw.js";
import { Rows } from "./exports.js";

/** Characters handed to the tokenizer per step: a few milliseconds of work. */
const CHUNK_CHARS = 16384;
/** Aimed-for length of one reading step (a chunk of segments on the GPU). */
const STEP_MS = 250;
/** Memory snapshots (M and z after a segment) kept for scrubbing back. */
export const SNAPSHOTS = 64;
/** Token texts kept for the text panel before the oldest are forgotten. */
const PIECES_KEPT = 8192;

/** Yields to the event loop without the throttling setTimeout gets in hidden tabs. */
export function nextTask() {
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => resolve();
    channel.port2.postMessage(null);
  });
}

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
   * `loaded` = { model, info } (a WebModel and its parsed info); reads `text`, or the
   * prepared `tokens` ({ ids, pieces, needle }: the passkey test) when given.
   */
  constructor({ model, info }, { text = "", tokens = null, baseline = false }) {
    const { n_layers: layers, n_heads: heads } = info.config;
    this.model = model;
    this.info = info;
    this.text = text;
    this.tokens = tokens;
    this.session = new Session(model, true);
    // Recall maps: Δz of every segment (d floats per head) and σ(Q) of recent ones.
    this.session.keep_recall();
    this.baseline = baseline ? new Session(model, false) : null;
    this.tokensDone = 0;
    this.charsDone = 0;
    this.totalChars = tokens ? 0 : text.length;
    this.totalTokens = tokens ? tokens.ids.length : 0;
    this.tokensFed = 0;
    /** Sum over tokens of each head's memory share. */
    this.shareSum = new Float64Array(layers * heads);
    this.losses = [];
    this.baselineLosses = [];
    /** ‖M‖ and ‖z‖ per head, each time the engine reported the memory. */
    this.mNorms = [];
    this.zNorms = [];
    /** Memory after the last SNAPSHOTS segments that reported it: { index, m, z, mNorms, zNorms }. */
    this.snapshots = [];
    /** The segment the memory panel shows (null: the latest, live). */
    this.scrubbed = null;
    /** Every segment's token count and each head's mean memory share over its tokens. */
    this.segmentTokens = [];
    this.headShares = new Rows(layers * heads);
    /** Token ids of each segment (for quoting a segment no longer shown). */
    this.segmentIds = [];
    /** The selected token's recall map, and the passkey needle's segment. */
    this.recall = null;
    this.needle = tokens?.needle ?? null;
    /** Token texts not yet handed to the panels; `piecesBase` is the token index of pieces[0]. */
    this.pieces = [];
    this.piecesBase = 0;
    this.paused = false;
    this.cancelled = false;
    this.done = false;
    this.released = false;
    this.perStep = 1;
    this.wake = null;
    this.started = performance.now();
    this.pausedFor = 0;
    this.finished = null;
  }

  /**
   * Reads to the end (or `segmentLimit` segments), calling `onSegment(digest)` for
   * each segment as it comes and `onStep()` after each step. Resolves to this run.
   */
  read({ segmentLimit = Infinity, onSegment, onStep = () => {} }) {
    this.finished ??= this.#read(segmentLimit, onSegment, onStep);
    return this.finished;
  }

  async #read(segmentLimit, onSegment, onStep) {
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
        if (this.paused) {
          const began = performance.now();
          await new Promise((resolve) => (this.wake = resolve));
          this.pausedFor += performance.now() - began;
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
        if (this.cancelled) break;
        const took = performance.now() - began;
        this.perStep = Math.max(1, Math.min(32, Math.round((this.perStep * STEP_MS) / Math.max(took, 1))));
        results.forEach((result, i) => onSegment(this.#record(result, baselines[i] ?? null)));
        // What the panels keep was copied out: the results' wasm memory goes now.
        for (const result of [...results, ...baselines]) result.free();
        segments += results.length;
        onStep();
        await nextTask();
      }
      if (!this.cancelled) this.done = ended;
    } finally {
      encoder?.free();
    }
    return this;
  }

  /** @returns {SegmentDigest} */
  #record(result, baseline) {
    const { n_layers: layers, n_heads: heads, head_dim: d } = this.info.config;
    const loss = result.loss;
    const share = result.share;
    const n = result.tokens.length;
    const m = result.m;
    const z = result.z;
    const headShares = new Float32Array(layers * heads);
    for (let l = 0; l < layers; l++) {
      for (let t = 0; t < n; t++) {
        for (let h = 0; h < heads; h++) headShares[l * heads + h] += share[(l * n + t) * heads + h];
      }
    }
    for (let i = 0; i < layers * heads; i++) {
      this.shareSum[i] += headShares[i];
      headShares[i] /= Math.max(n, 1);
    }
    this.headShares.push(headShares);
    this.segmentTokens.push(n);
    // M and z come with the last segment of each chunk.
    const hasMemory = m.length > 0;
    if (hasMemory) {
      const mNorms = [];
      const zNorms = [];
      for (let i = 0; i < layers * heads; i++) {
        mNorms.push(norm(m, i * d * d, d * d));
        zNorms.push(norm(z, i * d, d));
      }
      this.mNorms.push(mNorms);
      this.zNorms.push(zNorms);
      this.snapshots.push({ index: result.index, m, z, mNorms, zNorms });
      if (this.snapshots.length > SNAPSHOTS) this.snapshots.shift();
    }
    if (this.segmentIds.length < this.session.recall_segments) this.segmentIds.push(result.tokens);
    const segmentLoss = loss.length ? mean(loss) : NaN;
    const baselineLoss = baseline && baseline.loss.length ? mean(baseline.loss) : NaN;
    this.losses.push(segmentLoss);
    this.baselineLosses.push(baselineLoss);
    const first = this.tokensDone;
    this.tokensDone += n;
    const pieces = this.pieces.slice(first - this.piecesBase, first + n - this.piecesBase);
    // Forget the texts of tokens handed on: a long text is never held twice.
    const handed = first + n - this.piecesBase;
    if (handed > PIECES_KEPT) {
      this.pieces.splice(0, handed);
      this.piecesBase += handed;
    }
    return { index: result.index, first, pieces, loss, share, segmentLoss, baselineLoss, hasMemory, device: result.device, recovered: result.recovered };
  }

  pause() {
    this.paused = true;
  }

  resume() {
    this.paused = false;
    this.wake?.();
  }

  /** Stops reading; resolves once the step in flight has ended. */
  async cancel() {
    if (!this.finished) return;
    this.cancelled = true;
    this.wake?.();
    await this.finished.catch(() => {});
  }

  /**
   * Frees the sessions (wasm memory, GPU buffers: wasm-bindgen objects are not
   * garbage-collected); the numbers stay.
   */
  free() {
    if (this.released) return;
    this.released = true;
    this.session.free();
    this.baseline?.free();
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
   * heads, segments, needle }); throws the engine's reason when it has none.
   */
  tokenRecall(token) {
    const { n_layers: layers, n_heads: heads } = this.info.config;
    const shares = this.session.token_recall(token);
    return { token, shares, layers, heads, segments: shares.length / (layers * heads), needle: this.needle };
  }

  /** Continues the text read by `count` tokens, calling `onPiece(text)` as each arrives. */
  async generate(count, temperature, onPiece) {
    let text = "";
    for (let i = 0; i < count; i++) {
      const piece = await this.session.generate(temperature);
      text += piece;
      onPiece(piece);
      await nextTask();
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
