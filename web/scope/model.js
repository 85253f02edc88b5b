// A model folder, loaded once per page: every <infini-scope> showing the same model
// shares its weights and its WebGPU device.

import init, { WebModel } from "../infiniscope.js";
import { fetchModel, forgetModel } from "./loader.js";

const wasmReady = init();
const models = new Map();

/**
 * Loads the model folder at `url` (once). Returns { loading (a promise of { model,
 * note, info, url }), progress (an EventTarget: "progress" events with { stage:
 * "download" | "prepare", loaded, total, cached, gpu }) }.
 */
export function loadModel(url) {
  const base = new URL(url.endsWith("/") ? url : `${url}/`, document.baseURI).href;
  if (!models.has(base)) {
    const progress = new EventTarget();
    const report = (detail) => progress.dispatchEvent(new CustomEvent("progress", { detail }));
    const loading = (async () => {
      await wasmReady;
      const files = await fetchModel(base, (p) => report({ stage: "download", ...p }));
      const hasWebGpu = "gpu" in navigator && navigator.gpu;
      report({ stage: "prepare", gpu: Boolean(hasWebGpu) });
      let model;
      try {
        model = await WebModel.load(files[0], files[1], files[2], Boolean(hasWebGpu));
      } catch (e) {
        // A broken copy is not kept: the next load fetches the files again.
        await forgetModel(base);
        throw e;
      }
      const note = !hasWebGpu
        ? "This browser offers no WebGPU: running on the CPU reference (WebAssembly), slower but with the same numbers."
        : model.note && `No usable WebGPU device: ${model.note}.`;
      return { model, note, info: JSON.parse(model.info), url: base };
    })();
    // A failed load (a 404, say) may be retried later.
    loading.catch(() => models.delete(base));
    models.set(base, { loading, progress });
  }
  return models.get(base);
}
