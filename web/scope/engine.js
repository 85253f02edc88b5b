// The page's side of the engine's worker (scope/engine-worker.js): requests as
// promises, a reading's segments as a stream; the model files fetched here. One worker
// per page: every <infini-scope> showing the same model shares its weights and its
// WebGPU device there.

import init from "../infiniscope.js";
import { fetchModel, forgetModel } from "./loader.js";
import { Rpc } from "./rpc.js";
import { wasmFile } from "./wasm-build.js";

let engine = null;
/** Readings' segment streams by run id. */
const streams = new Map();
/** The models loaded or loading, by folder URL. */
const models = new Map();
/**
 * The page's own copy of the library: formatting (bytes) only, no model. The same
 * build as the worker's, so the browser downloads one file for both.
 */
export const wasmReady = init({ module_or_path: new URL(`../${wasmFile()}`, import.meta.url) });

/** Asks the worker to run `op` with `args`; resolves to its answer. */
export function call(op, args = {}, transfer = []) {
  engine ??= new Rpc(new Worker(new URL("./engine-worker.js", import.meta.url), { type: "module" }), (data) => streams.get(data.run)?.(data));
  return engine.call(op, args, transfer);
}

/** Hands a reading's streamed messages ({ segments, progress }) to `onMessage` until `close()`. */
export function listen(run, onMessage) {
  streams.set(run, onMessage);
  return { close: () => streams.delete(run) };
}

/**
 * A model loaded in the worker, as the page sees it: what it says once (device,
 * note, info, gates, head kinds), and requests for the rest.
 */
export class RemoteModel {
  #gates;
  #kinds;

  constructor(base, { device, note, info, gates, kinds, onGpu }) {
    this.base = base;
    this.device = device;
    /** Whether it reads on the GPU (else on the CPU reference, in the workers). */
    this.onGpu = onGpu;
    this.note = note;
    /** The model's config, parameter count and sizes, as JSON text. */
    this.info = info;
    this.#gates = gates;
    this.#kinds = kinds;
  }

  /** g = sigmoid(β) per head, layer·heads + head. */
  gates() {
    return this.#gates;
  }

  /** Each head's kind as the engine names it (src/gate.rs). */
  head_kinds() {
    return this.#kinds;
  }

  /** A passkey haystack: { tokens, pieces, key, answer_at, needle_at }. */
  passkey(length, depth, key) {
    return call("passkey", { base: this.base, length, depth, key });
  }

  decode(ids) {
    return call("decode", { base: this.base, ids });
  }

  /** Loses the WebGPU device on purpose (the fault tests). */
  lose_device() {
    return call("loseDevice", { base: this.base });
  }

  /** Tokenizes `text` once, filling the tokenizer's cache (the soak test). */
  warm(text) {
    return call("warm", { base: this.base, text });
  }

  /** { live, memory }: bytes the engine's allocator holds live, and the worker's wasm memory. */
  memory() {
    return call("memory");
  }
}

/**
 * Loads the model folder at `url` (once per page). Returns { loading (a promise of
 * { model, note, info, url }), progress (an EventTarget: "progress" events with
 * { stage: "download" | "prepare", loaded, total, cached, gpu }) }.
 */
export function loadModel(url) {
  const base = new URL(url.endsWith("/") ? url : `${url}/`, document.baseURI).href;
  if (!models.has(base)) {
    const progress = new EventTarget();
    const report = (detail) => progress.dispatchEvent(new CustomEvent("progress", { detail }));
    const loading = (async () => {
      await wasmReady;
      const files = await fetchModel(base, (p) => report({ stage: "download", ...p }));
      report({ stage: "prepare", gpu: Boolean(navigator.gpu) });
      let described;
      try {
        described = await call("load", { base, files }, files.map((f) => f.buffer));
      } catch (e) {
        // A broken copy is not kept: the next load fetches the files again.
        await forgetModel(base);
        throw e;
      }
      const model = new RemoteModel(base, described);
      const note = !described.gpu
        ? "This browser offers no WebGPU: running on the CPU reference (WebAssembly), slower but with the same numbers."
        : described.note && `No usable WebGPU device: ${described.note}.`;
      return { model, note, info: JSON.parse(described.info), url: base };
    })();
    // A failed load (a 404, say) may be retried later.
    loading.catch(() => models.delete(base));
    models.set(base, { loading, progress });
  }
  return models.get(base);
}
