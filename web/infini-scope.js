// <infini-scope>: an Infini-Transformer reads a text on the visitor's GPU (WebGPU,
// or the CPU reference compiled to WebAssembly), and the element draws, segment by
// segment, what the engine reports: gates, memory M and z, memory shares, loss,
// and the memory footprint beside a full-attention KV cache.
//
// Data flows one way: text → WebEncoder (tokens) → Session (segments, layers) →
// SegmentResult (taps) → the panels. One script tag includes everything:
//   <script type="module" src="infini-scope.js"></script>
//   <infini-scope model="models/infini-tiny/" autorun></infini-scope>

import init, { Session, WebModel, bytes } from "./infiniscope.js";
import { absQuantile, gateColour, heatmap, lineChart, norm, shareColour } from "./panels.js";
import { numbersCsv, panelPng, Rows, save } from "./exports.js";
import { fetchModel, forgetModel } from "./loader.js";
import { RecallStrip } from "./recall-strip.js";

const DEFAULT_MODEL = new URL("models/infini-tiny/", import.meta.url).href;
const PANELS = ["gates", "memory", "text", "footprint", "loss"];
/** Characters handed to the tokenizer per step: a few milliseconds of work. */
const CHUNK_CHARS = 16384;
/** Tokens kept in the text panel and rows in the loss table (the text may be any length). */
const SHOWN_TOKENS = 2000;
const SHOWN_SEGMENTS = 2000;
/** Aimed-for length of one reading step (a chunk of segments on the GPU). */
const STEP_MS = 250;
/** Memory snapshots (M and z after a segment) kept for scrubbing back. */
const SNAPSHOTS = 64;

const wasmReady = init();
const models = new Map();

/**
 * Loads a model folder once per page: every element showing the same model shares
 * its weights and its WebGPU device. Returns { loading (a promise of the model),
 * progress (an EventTarget: "progress" events with { stage: "download" | "prepare",
 * loaded, total, cached }) }.
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

/** Yields to the event loop without the throttling setTimeout gets in hidden tabs. */
function nextTask() {
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => resolve();
    channel.port2.postMessage(null);
  });
}

const TEMPLATE = `
<style>
  :host { display: block; font: 13px/1.4 system-ui, sans-serif; color: #222; }
  header { display: flex; flex-wrap: wrap; gap: .5em 1em; align-items: center; margin-bottom: .5em; }
  .device { color: #555; }
  .note, .error { padding: .3em .6em; border-radius: 4px; }
  .note { background: #fff6d8; }
  .error { background: #fde2e1; color: #8a1c14; }
  .note:empty, .error:empty { display: none; }
  progress { width: 12em; }
  .grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(300px, 1fr)); gap: 1em; }
  section { border: 1px solid #ddd; border-radius: 6px; padding: .6em; min-width: 0; position: relative; }
  button.png { position: absolute; top: .4em; right: .4em; font-size: 11px; }
  section[hidden] { display: none; }
  h3 { margin: 0 0 .4em; font-size: 13px; }
  table.gates { border-collapse: collapse; }
  table.gates td, table.gates th { padding: 2px 4px; text-align: center; font-variant-numeric: tabular-nums; }
  table.gates td.gate { border: 1px solid #ccc; min-width: 5.5em; cursor: default; }
  .kind { font-size: 11px; color: #444; }
  .legend { display: flex; align-items: center; gap: .4em; font-size: 11px; margin-top: .3em; }
  .legend .bar { width: 120px; height: 10px; background: linear-gradient(to right, rgb(33,102,172), rgb(246,246,246), rgb(214,96,26)); }
  .heads { display: grid; gap: 6px; }
  figure { margin: 0; text-align: center; font-size: 11px; cursor: zoom-in; }
  figure canvas { image-rendering: pixelated; display: block; margin: auto; border: 1px solid #ccc; }
  /* Up to 96 px a heatmap, smaller when the model's heads do not fit the panel's width. */
  .heads canvas { width: 100%; max-width: 96px; aspect-ratio: 1; box-sizing: border-box; }
  .heads canvas.z { aspect-ratio: auto; height: 6px; margin-top: 2px; }
  dialog canvas { width: 384px; height: 384px; image-rendering: pixelated; }
  dialog canvas.z { height: 16px; }
  .text { max-height: 18em; overflow: auto; white-space: pre-wrap; word-break: break-word; font: 12px/1.5 ui-monospace, monospace; }
  .text span.seg { box-shadow: inset 2px 0 0 #888; }
  .info { min-height: 1.4em; color: #333; font-size: 12px; }
  svg { width: 100%; height: auto; display: block; }
  svg .axis { font-size: 9px; fill: #666; }
  .footprint .bar { height: 12px; background: #d6601a; margin: 2px 0 6px; min-width: 1px; }
  .footprint .bar.memory { background: #2166ac; }
  table.losses td { padding: 0 .6em; font-variant-numeric: tabular-nums; }
  button { font: inherit; }
  .text:focus-visible { outline: 2px solid #2166ac; }
  .text span.selected { outline: 2px solid #2166ac; }
  .text span.flash { background: #fde2e1 !important; }
  figure.recall { cursor: default; text-align: left; margin-bottom: .3em; }
  figure.recall canvas { width: 100%; height: 28px; cursor: pointer; border: 0; }
  .heads figure.focus canvas.m, td.gate.focus { outline: 2px solid #222; }
  .scrubber { display: flex; gap: .5em; align-items: center; font-size: 12px; }
  .scrubber input { flex: 1; }
</style>
<header>
  <strong>infini-scope</strong>
  <span class="device">loading model…</span>
  <button class="run" disabled>Run</button>
  <button class="pause" disabled>Pause</button>
  <button class="cancel" disabled>Cancel</button>
  <label><input type="checkbox" class="baseline"> also run with memory off</label>
  <progress class="progress" max="1" value="0" aria-label="progress"></progress>
  <span class="status" role="status"></span>
  <span class="exports">numbers: <button class="export" data-format="json">JSON</button> <button class="export" data-format="csv">CSV</button></span>
</header>
<div class="note"></div>
<div class="error" role="alert"></div>
<div class="grid">
  <section data-panel="gates"><h3>Gates g = sigmoid(β) per layer × head</h3>
    <table class="gates"></table>
    <div class="legend">local <span class="bar"></span> memory · <span class="counts"></span></div>
    <div class="info gate-info">Hover a head for its gate and mean memory share.</div>
  </section>
  <section data-panel="memory"><h3>Compressive memory M (d×d) and z per head</h3>
    <div class="heads"></div>
    <div class="scrubber"><label for="scrub">segment</label><input type="range" id="scrub" class="scrub" min="0" max="0" value="0" disabled aria-describedby="scrub-info"></div>
    <div class="info memory-info" id="scrub-info"></div>
    <svg class="norms"></svg>
  </section>
  <section data-panel="text"><h3>Text, tinted by memory share</h3>
    <label>head <select class="head"><option value="mean">mean over heads</option></select></label>
    <div class="info token-info">Hover a token for its loss and per-head memory share; click one for its recall map.</div>
    <figure class="recall"><canvas class="recall-strip" aria-label="recall map of the selected token: one cell per earlier segment"></canvas>
      <figcaption class="info recall-info">Click a token (or focus the text and press ← →) to see which earlier segments its memory read draws on.</figcaption></figure>
    <div class="text" tabindex="0" aria-label="the text read, tinted by memory share; arrow keys select a token"></div>
  </section>
  <section data-panel="footprint" class="footprint"><h3>Footprint</h3>
    <div>compressive memory (constant): <b class="memory-bytes"></b></div><div class="bar memory"></div>
    <div>a full-attention KV cache for the tokens read: <b class="kv-bytes"></b></div><div class="bar kv"></div>
    <div class="ratio"></div>
  </section>
  <section data-panel="loss"><h3>Loss per segment (nats)</h3>
    <svg class="loss-chart"></svg>
    <details><summary>table</summary><table class="losses"><thead><tr><th>segment</th><th>memory on</th><th>memory off</th></tr></thead><tbody></tbody></table></details>
  </section>
</div>
<dialog><figure class="big"><canvas></canvas><canvas class="z"></canvas><figcaption></figcaption></figure><button class="close">close</button></dialog>
`;

export class InfiniScope extends HTMLElement {
  static observedAttributes = ["model", "panels", "segment-limit", "autorun"];

  #text = "";
  /** The model once loaded ({ model, info, note }); `#loading` is the load in flight. */
  #loaded = null;
  #loading = null;
  #run = null;
  /** Whether any of the element is on screen; its observer reports it as soon as it is attached. */
  #visible = false;
  #drawPending = false;
  #enlarged = null;
  #observer = null;
  #strip = null;
  /** The head clicked in the gate grid (layer·heads + head), or null. */
  #lockedHead = null;

  constructor() {
    super();
    this.attachShadow({ mode: "open" }).innerHTML = TEMPLATE;
    const $ = (s) => this.shadowRoot.querySelector(s);
    $(".run").onclick = () => this.run();
    $(".pause").onclick = () => (this.#run?.paused ? this.resume() : this.pause());
    $(".cancel").onclick = () => this.cancel();
    $(".head").onchange = () => {
      this.#retint();
      this.#drawRecall();
    };
    this.#strip = new RecallStrip($("canvas.recall-strip"), (j) => this.showSegment(j));
    $("input.scrub").oninput = (e) => this.scrub(+e.target.value);
    for (const button of this.shadowRoot.querySelectorAll("button.export")) {
      const format = button.dataset.format;
      button.onclick = () => this.#run && save(`infiniscope-numbers.${format}`, new Blob([this.exportNumbers(format)], { type: format === "csv" ? "text/csv" : "application/json" }));
    }
    for (const section of this.shadowRoot.querySelectorAll("section[data-panel]")) {
      const button = document.createElement("button");
      button.className = "png";
      button.textContent = "PNG";
      button.setAttribute("aria-label", `save the ${section.dataset.panel} panel as PNG`);
      button.onclick = async () => save(`infiniscope-${section.dataset.panel}.png`, await this.panelPng(section.dataset.panel));
      section.append(button);
    }
    $(".text").onkeydown = (e) => this.#textKey(e);
    // Esc unlocks the head clicked in the gate grid, wherever focus is in the element.
    this.shadowRoot.addEventListener("keydown", (e) => {
      if (e.key === "Escape") this.#focusHead(null, true);
    });
    $("dialog .close").onclick = () => {
      this.#enlarged = null;
      $("dialog").close();
    };
  }

  connectedCallback() {
    this.#observer = new IntersectionObserver((entries) => {
      this.#visible = entries.some((e) => e.isIntersecting);
      if (this.#visible) this.#scheduleDraw();
    });
    this.#observer.observe(this);
    this.#showPanels();
    if (!this.#loaded && !this.#loading) this.#load();
  }

  disconnectedCallback() {
    this.#observer?.disconnect();
    const run = this.#run;
    this.cancel().then(() => {
      // Still detached once the run has stopped: its sessions' memory and GPU buffers go.
      if (!this.isConnected && this.#run === run) this.#release();
    });
  }

  /**
   * Frees the current run's sessions (wasm memory, GPU buffers: wasm-bindgen objects
   * are not garbage-collected); the panels keep what they show.
   */
  #release() {
    const run = this.#run;
    if (!run || run.released) return;
    run.released = true;
    run.session.free();
    run.baseline?.free();
  }

  attributeChangedCallback(name, old, value) {
    if (old === value || !this.isConnected) return;
    if (name === "model") this.#load();
    if (name === "panels") this.#showPanels();
  }

  /** The text to read; with `autorun` setting it starts reading. */
  get text() {
    return this.#text;
  }
  set text(value) {
    this.#text = String(value ?? "");
    // Before the model is ready, `ready` starts the run instead.
    if (this.hasAttribute("autorun") && this.#loaded) this.run();
  }

  /** The loaded model ({ model, info, note }) once `ready` has fired. */
  get model() {
    return this.#loaded;
  }

  get #segmentLimit() {
    const limit = parseInt(this.getAttribute("segment-limit") ?? "", 10);
    return Number.isFinite(limit) && limit > 0 ? limit : Infinity;
  }

  #$(selector) {
    return this.shadowRoot.querySelector(selector);
  }

  #showPanels() {
    const wanted = (this.getAttribute("panels") || PANELS.join(",")).split(/[\s,]+/);
    for (const section of this.shadowRoot.querySelectorAll("section[data-panel]")) {
      section.hidden = !wanted.includes(section.dataset.panel);
    }
  }

  async #load() {
    this.cancel();
    const url = this.getAttribute("model") || DEFAULT_MODEL;
    this.#$(".device").textContent = "loading model…";
    this.#$(".run").disabled = true;
    const { loading, progress } = loadModel(url);
    this.#loaded = null;
    this.#loading = loading;
    const onProgress = (e) => this.#loadProgress(e.detail);
    progress.addEventListener("progress", onProgress);
    try {
      const loaded = await loading;
      if (this.#loading !== loading) return;
      this.#loading = null;
      this.#loaded = loaded;
      this.#$(".device").textContent = `${loaded.model.device} · ${(loaded.info.parameters / 1e6).toFixed(2)}M parameters`;
      this.#$(".progress").value = 0;
      this.#$(".note").textContent = loaded.note ?? "";
      this.#$(".error").textContent = "";
      this.#$(".run").disabled = false;
      this.#buildPanels(loaded);
      this.#emit("ready", { device: loaded.model.device, note: loaded.note, config: loaded.info.config });
      if (this.hasAttribute("autorun") && this.#text) this.run();
    } catch (e) {
      if (this.#loading !== loading) return;
      this.#loading = null;
      this.#$(".device").textContent = "no model";
      this.#fail(`The model at ${url} could not be loaded: ${message(e)}`);
    } finally {
      progress.removeEventListener("progress", onProgress);
    }
  }

  /** Loading stages in the header: bytes of the weights downloaded, then the GPU. */
  #loadProgress(detail) {
    const { stage, loaded, total, cached } = detail;
    const bar = this.#$(".progress");
    if (stage === "download") {
      this.#$(".device").textContent = cached
        ? `model from the browser's cache (${bytes(loaded)})`
        : `downloading the model: ${bytes(loaded)}${total ? ` of ${bytes(total)}` : ""}`;
      bar.value = total ? loaded / total : 0;
    } else {
      this.#$(".device").textContent = detail.gpu ? "preparing the GPU…" : "preparing the CPU reference…";
      bar.value = 1;
    }
    this.#emit("progress", detail);
  }

  #fail(text) {
    this.#$(".error").textContent = text;
    this.#emit("error", { message: text });
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail, bubbles: true, composed: true }));
  }

  /** Builds the panels whose shape depends on the model: the gate table and the head grid. */
  #buildPanels({ model, info }) {
    const { n_layers: layers, n_heads: heads } = info.config;
    const gates = model.gates();
    const kinds = model.head_kinds();
    const table = this.#$("table.gates");
    table.replaceChildren();
    const head = table.insertRow();
    head.append(document.createElement("th"));
    for (let h = 0; h < heads; h++) head.insertCell().outerHTML = `<th>head ${h}</th>`;
    const select = this.#$("select.head");
    select.length = 1;
    const grid = this.#$(".heads");
    grid.style.gridTemplateColumns = `repeat(${heads}, minmax(0, 96px))`;
    grid.replaceChildren();
    for (let l = 0; l < layers; l++) {
      const row = table.insertRow();
      row.insertCell().outerHTML = `<th>layer ${l}</th>`;
      for (let h = 0; h < heads; h++) {
        const i = l * heads + h;
        const cell = row.insertCell();
        cell.className = "gate";
        cell.dataset.layer = l;
        cell.dataset.head = h;
        cell.dataset.gate = gates[i];
        cell.dataset.kind = kinds[i];
        cell.style.background = gateColour(gates[i]);
        cell.innerHTML = `<div class="value"></div><div class="kind"></div>`;
        cell.querySelector(".value").textContent = gates[i].toFixed(4);
        cell.querySelector(".kind").textContent = kinds[i];
        cell.tabIndex = 0;
        cell.onmouseenter = () => this.#focusHead(i, false);
        cell.onmouseleave = () => this.#focusHead(this.#lockedHead, false);
        cell.onclick = () => this.#focusHead(this.#lockedHead === i ? null : i, true);
        cell.onkeydown = (e) => e.key === "Enter" && cell.onclick();
        select.add(new Option(`layer ${l} head ${h}`, i));
        const figure = document.createElement("figure");
        figure.innerHTML = `<canvas class="m"></canvas><canvas class="z"></canvas><figcaption></figcaption>`;
        figure.querySelector("figcaption").textContent = `L${l} H${h}`;
        figure.onclick = () => this.#enlarge(l, h);
        grid.append(figure);
      }
    }
    // Kinds and thresholds are the engine's (src/gate.rs), never repeated here.
    const count = (kind) => kinds.filter((k) => k === kind).length;
    // f32 thresholds reach JSON as 0.10000000149011612: shown as the 0.1 they are.
    const [below, above] = [info.thresholds.local_below, info.thresholds.memory_above].map((x) => +x.toPrecision(6));
    this.#$(".counts").textContent = `${count("specialized-local")} specialized-local (g < ${below}), ${count("mixer")} mixer, ${count("specialized-memory")} specialized-memory (g > ${above}) heads`;
    this.#$(".memory-bytes").textContent = bytes(info.memory_bytes);
  }

  /**
   * Linked focus on head i (null: none): its gate cell and heatmap are outlined and
   * the gate line says its numbers; `lock` (a click) also tints the text by that head
   * and draws its recall map, until Esc or a second click.
   */
  #focusHead(i, lock) {
    if (lock) this.#lockedHead = i;
    const root = this.shadowRoot;
    root.querySelectorAll(".focus").forEach((e) => e.classList.remove("focus"));
    if (i !== null) {
      root.querySelectorAll("td.gate")[i]?.classList.add("focus");
      root.querySelectorAll(".heads figure")[i]?.classList.add("focus");
      const heads = this.#loaded.info.config.n_heads;
      this.#showGate(Math.floor(i / heads), i % heads);
    }
    if (lock) {
      this.#$("select.head").value = i === null ? "mean" : String(i);
      this.#retint();
      this.#drawRecall();
      this.#emit("select", { head: i });
    }
  }

  /** The head locked in the gate grid (layer·heads + head), or null; setting it locks it. */
  get head() {
    return this.#lockedHead;
  }
  set head(i) {
    const count = this.#loaded ? this.#loaded.info.config.n_layers * this.#loaded.info.config.n_heads : 0;
    this.#focusHead(Number.isInteger(i) && i >= 0 && i < count ? i : null, true);
  }

  #showGate(l, h) {
    const { info, model } = this.#loaded;
    const i = l * info.config.n_heads + h;
    const g = model.gates()[i];
    const run = this.#run;
    const share = run && run.tokensDone > 0 ? (run.shareSum[i] / run.tokensDone).toFixed(4) : "–";
    this.#$(".gate-info").textContent = `layer ${l} head ${h}: g = ${g.toFixed(6)} (${model.head_kinds()[i]}), mean memory share on the text so far ${share}`;
  }

  /** Reads `this.text` (or, for the passkey test, a prepared token sequence). */
  async run(tokens = null) {
    await this.cancel();
    this.#release();
    if (!this.#loaded) {
      this.#fail("The model is not loaded yet.");
      return;
    }
    if (!tokens && this.#text.length === 0) {
      this.#fail("Nothing to read: the text is empty.");
      return;
    }
    const { model, info } = this.#loaded;
    const session = new Session(model, true);
    // Recall maps: Δz of every segment (d floats per head) and σ(Q) of recent ones.
    session.keep_recall();
    const run = {
      session,
      baseline: this.#$(".baseline").checked ? new Session(model, false) : null,
      info,
      tokensDone: 0,
      charsDone: 0,
      totalChars: tokens ? 0 : this.#text.length,
      totalTokens: tokens ? tokens.ids.length : 0,
      tokensFed: 0,
      shareSum: new Float64Array(info.config.n_layers * info.config.n_heads),
      losses: [],
      baselineLosses: [],
      mNorms: [],
      zNorms: [],
      // Memory after the last SNAPSHOTS segments that reported it: { index, m, z, mNorms, zNorms }.
      snapshots: [],
      // The segment the memory panel shows (null: the latest, live).
      scrubbed: null,
      // Every segment's token count and each head's mean memory share over its tokens
      // (for the scrubber and the exports), and token ids for jumps.
      segmentTokens: [],
      headShares: new Rows(info.config.n_layers * info.config.n_heads),
      segmentIds: [],
      // The selected token's recall map, and the passkey needle's segment.
      recall: null,
      needle: tokens?.needle ?? null,
      // Token texts not yet shown; `piecesBase` is the token index of pieces[0].
      pieces: [],
      piecesBase: 0,
      last: null,
      paused: false,
      cancelled: false,
      done: false,
      perStep: 1,
      resume: null,
      started: performance.now(),
      pausedFor: 0,
    };
    this.#run = run;
    this.#$(".error").textContent = "";
    this.#$(".text").replaceChildren();
    this.#$("table.losses tbody").replaceChildren();
    this.#strip.clear();
    this.#$(".recall-info").textContent = "Click a token (or focus the text and press ← →) to see which earlier segments its memory read draws on.";
    this.#controls(true);
    run.finished = this.#read(run, tokens);
    return run.finished;
  }

  async #read(run, tokens) {
    const text = this.#text;
    const encoder = tokens ? null : this.#loaded.model.encoder();
    let offset = 0;
    let ended = false;
    const feed = (t) => {
      run.pieces.push(...t.pieces);
      const ids = t.ids;
      t.free?.();
      run.tokensFed += ids.length;
      run.session.feed(ids);
      run.baseline?.feed(ids);
    };
    try {
      if (tokens) feed(tokens);
      let segments = 0;
      while (!run.cancelled && segments < this.#segmentLimit) {
        if (run.paused) {
          const began = performance.now();
          await new Promise((resolve) => (run.resume = resolve));
          run.pausedFor += performance.now() - began;
          continue;
        }
        if (run.session.pending === 0) {
          if (encoder && offset < text.length) {
            let end = Math.min(text.length, offset + CHUNK_CHARS);
            // Never split a surrogate pair (an emoji) between two pieces.
            if (end < text.length && /[\uD800-\uDBFF]/.test(text[end - 1])) end--;
            feed(encoder.push(text.slice(offset, end)));
            run.charsDone = offset = end;
            if (offset === text.length) feed(encoder.finish());
            await nextTask();
            continue;
          }
          if (ended) break;
          run.session.end_text();
          run.baseline?.end_text();
          ended = true;
          continue;
        }
        // As many segments per step as the engine takes at once (a GPU chunk), sized
        // so a step lasts about STEP_MS: fast devices read in big chunks, slow ones
        // still redraw often. Each result is still one segment.
        const most = Math.min(run.perStep, this.#segmentLimit - segments);
        const began = performance.now();
        const results = await run.session.step(most);
        const baselines = run.baseline ? await run.baseline.step(most) : [];
        if (run.cancelled) break;
        const took = performance.now() - began;
        run.perStep = Math.max(1, Math.min(32, Math.round((run.perStep * STEP_MS) / Math.max(took, 1))));
        results.forEach((result, i) => this.#record(run, result, baselines[i] ?? null));
        // What the panels keep was copied out: the results' wasm memory goes now.
        for (const result of [...results, ...baselines]) result.free();
        segments += results.length;
        await nextTask();
      }
      if (!run.cancelled) {
        run.done = ended;
        const meanLoss = mean(run.losses.filter(Number.isFinite));
        this.#$(".status").textContent += run.tokensDone > 0 ? " · done" : "";
        this.#emit("done", { segments: run.losses.length, tokens: run.tokensDone, loss: meanLoss });
      }
    } catch (e) {
      this.#fail(`Reading stopped: ${message(e)}`);
    } finally {
      encoder?.free();
      if (this.#run === run) this.#controls(false);
      this.#scheduleDraw();
    }
    return run;
  }

  #record(run, result, baseline) {
    const { n_layers: layers, n_heads: heads, head_dim: d } = run.info.config;
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
      run.shareSum[i] += headShares[i];
      headShares[i] /= Math.max(n, 1);
    }
    run.headShares.push(headShares);
    run.segmentTokens.push(n);
    // M and z come with the last segment of each chunk.
    const hasMemory = m.length > 0;
    const mNorms = [];
    const zNorms = [];
    for (let i = 0; hasMemory && i < layers * heads; i++) {
      mNorms.push(norm(m, i * d * d, d * d));
      zNorms.push(norm(z, i * d, d));
    }
    if (hasMemory) {
      run.mNorms.push(mNorms);
      run.zNorms.push(zNorms);
      run.snapshots.push({ index: result.index, m, z, mNorms, zNorms });
      if (run.snapshots.length > SNAPSHOTS) run.snapshots.shift();
    }
    if (run.segmentIds.length < run.session.recall_segments) run.segmentIds.push(result.tokens);

    const segmentLoss = loss.length ? mean(loss) : NaN;
    run.losses.push(segmentLoss);
    const baselineLoss = baseline && baseline.loss.length ? mean(baseline.loss) : NaN;
    run.baselineLosses.push(baselineLoss);
    const first = run.tokensDone;
    run.tokensDone += n;
    if (result.recovered) {
      this.#$(".note").textContent = `The GPU was lost: ${result.recovered}.`;
      this.#$(".device").textContent = result.device;
    }
    this.#appendText(run, first, result.index, n, loss, share, layers, heads);
    this.#updateScrubber(run);
    const rows = this.#$("table.losses tbody");
    const row = rows.insertRow();
    row.dataset.segment = result.index;
    for (const v of [result.index, segmentLoss.toFixed(4), Number.isFinite(baselineLoss) ? baselineLoss.toFixed(4) : ""]) {
      row.insertCell().textContent = v;
    }
    if (rows.rows.length > SHOWN_SEGMENTS) rows.deleteRow(0);
    this.#scheduleDraw();
    this.#emit("segment", {
      index: result.index,
      tokens: n,
      loss: segmentLoss,
      baselineLoss,
      gates: this.#loaded.model.gates(),
      memoryNorms: hasMemory ? { m: mNorms, z: zNorms } : null,
      device: result.device,
    });
  }

  /** Adds a segment's tokens to the text panel (textContent only: pasted HTML stays text). */
  #appendText(run, first, index, n, loss, share, layers, heads) {
    const box = this.#$(".text");
    const selected = this.#$("select.head").value;
    const fragment = document.createDocumentFragment();
    for (let t = 0; t < n; t++) {
      const span = document.createElement("span");
      span.textContent = run.pieces[first + t - run.piecesBase] ?? "";
      const shares = [];
      for (let l = 0; l < layers; l++) for (let h = 0; h < heads; h++) shares.push(share[(l * n + t) * heads + h]);
      span.shares = shares;
      span.loss = loss[t];
      span.token = first + t;
      span.segment = index;
      span.onclick = () => this.selectToken(span.token);
      if (t === 0) span.className = "seg";
      span.style.background = shareColour(pick(shares, selected));
      span.onmouseenter = () => this.#showToken(span);
      fragment.append(span);
    }
    box.append(fragment);
    // Forget the texts of tokens already shown: a long text is never held twice.
    const shownUpTo = first + n - run.piecesBase;
    if (shownUpTo > 8192) {
      run.pieces.splice(0, shownUpTo);
      run.piecesBase += shownUpTo;
    }
    while (box.childElementCount > SHOWN_TOKENS) box.firstElementChild.remove();
    if (run.tokensDone % 512 < n) box.scrollTop = box.scrollHeight;
  }

  #retint() {
    const selected = this.#$("select.head").value;
    for (const span of this.#$(".text").children) span.style.background = shareColour(pick(span.shares, selected));
  }

  #showToken(span) {
    const heads = this.#loaded.info.config.n_heads;
    const shares = span.shares.map((s, i) => `L${Math.floor(i / heads)}H${i % heads} ${s.toFixed(3)}`).join(" · ");
    const loss = Number.isFinite(span.loss) ? span.loss.toFixed(3) : "–";
    this.#$(".token-info").textContent = `${JSON.stringify(span.textContent)} loss ${loss} nats · memory share ${shares}`;
  }

  #scheduleDraw() {
    if (this.#drawPending || !this.#visible) return;
    this.#drawPending = true;
    requestAnimationFrame(() => {
      this.#drawPending = false;
      this.#draw();
    });
  }

  #draw() {
    const run = this.#run;
    if (!run) return;
    const { info } = run;
    const { n_layers: layers, n_heads: heads, head_dim: d } = info.config;
    // Progress: tokens are known only as the text is tokenized, so the total is
    // estimated from the characters read so far.
    const estimate = run.totalTokens || (run.charsDone > 0 ? Math.round((run.tokensFed / run.charsDone) * run.totalChars) : 0);
    const seconds = Math.max(1e-3, (performance.now() - run.started - run.pausedFor) / 1000);
    const rate = run.tokensDone / seconds;
    const left = estimate > run.tokensDone && rate > 0 ? (estimate - run.tokensDone) / rate : 0;
    this.#$(".progress").value = estimate ? Math.min(1, run.tokensDone / estimate) : 0;
    this.#$(".status").textContent =
      `${run.tokensDone.toLocaleString("en")} / ~${estimate.toLocaleString("en")} tokens · ${rate.toFixed(1)} tokens/s · ETA ${formatTime(left)}` +
      (run.paused ? " · paused" : "");

    const view = memoryView(run);
    if (view) {
      const { m, z } = view;
      const figures = this.#$(".heads").children;
      for (let i = 0; i < layers * heads; i++) {
        const [mCanvas, zCanvas] = figures[i].querySelectorAll("canvas");
        const scale = drawHead(mCanvas, zCanvas, m, z, i, d);
        mCanvas.title = `‖M‖ = ${view.mNorms[i].toFixed(3)}, colour scale ±${scale.toPrecision(3)} (98th percentile of |M|)`;
      }
      if (this.#enlarged) this.#drawEnlarged();
      this.#$(".memory-info").textContent = this.#scrubNote(run, view);
      const series = [];
      for (let i = 0; i < layers * heads; i++) {
        const hue = (360 * Math.floor(i / heads)) / layers;
        series.push({ values: run.mNorms.map((v) => v[i]), colour: `hsl(${hue} 70% 40%)`, label: `‖M‖ L${Math.floor(i / heads)}H${i % heads}` });
        series.push({ values: run.zNorms.map((v) => v[i]), colour: `hsl(${hue} 70% 70%)`, label: `‖z‖ L${Math.floor(i / heads)}H${i % heads}` });
      }
      lineChart(this.#$("svg.norms"), series, { yLabel: "‖M‖ (dark), ‖z‖ (light)", xUnit: "chunks read" });
    }
    const kv = info.kv_bytes_per_token * run.tokensDone;
    this.#$(".kv-bytes").textContent = bytes(kv);
    const widest = Math.max(kv, info.memory_bytes);
    this.#$(".bar.memory").style.width = `${(100 * info.memory_bytes) / widest}%`;
    this.#$(".bar.kv").style.width = `${(100 * kv) / widest}%`;
    this.#$(".ratio").textContent = kv > 0 ? `the KV cache would be ${(kv / info.memory_bytes).toFixed(1)}× the memory` : "";
    const series = [{ values: run.losses, colour: "#d6601a", label: "memory on" }];
    if (run.baseline) series.push({ values: run.baselineLosses, colour: "#2166ac", label: "memory off" });
    lineChart(this.#$("svg.loss-chart"), series, { yLabel: run.baseline ? "memory on (orange), off (blue)" : "memory on" });
    for (let i = 0; i < layers * heads; i++) {
      const cell = this.#$(`td.gate[data-layer="${Math.floor(i / heads)}"][data-head="${i % heads}"]`);
      const share = run.tokensDone ? run.shareSum[i] / run.tokensDone : 0;
      cell.dataset.share = share;
      cell.title = `g = ${(+cell.dataset.gate).toFixed(6)}, mean memory share ${share.toFixed(4)}`;
    }
  }

  #enlarge(l, h) {
    this.#enlarged = { l, h };
    this.#$("dialog").showModal();
    this.#drawEnlarged();
  }

  #drawEnlarged() {
    const run = this.#run;
    const { l, h } = this.#enlarged;
    const caption = this.#$("dialog figcaption");
    const view = run && memoryView(run);
    if (!view) {
      caption.textContent = `layer ${l} head ${h}: nothing read yet`;
      return;
    }
    const { n_heads: heads, head_dim: d } = run.info.config;
    const i = l * heads + h;
    const [mCanvas, zCanvas] = this.#$("dialog").querySelectorAll("canvas");
    const scale = drawHead(mCanvas, zCanvas, view.m, view.z, i, d);
    caption.textContent = `layer ${l} head ${h}, after segment ${view.index}: ‖M‖ = ${view.mNorms[i].toFixed(3)}, ‖z‖ = ${view.zNorms[i].toFixed(3)}, colours ±${scale.toPrecision(3)}`;
  }

  /** Keeps the scrubber's range on the snapshots kept; at its end it follows the reading. */
  #updateScrubber(run) {
    const input = this.#$("input.scrub");
    const { snapshots } = run;
    if (!snapshots.length) return;
    const live = run.scrubbed === null;
    input.disabled = false;
    input.min = snapshots[0].index;
    input.max = snapshots.at(-1).index;
    if (live) input.value = input.max;
  }

  /**
   * Shows the memory as it was after segment `segment` (the nearest snapshot at or
   * before it: the GPU reports M once per chunk), with that segment's loss and mean
   * memory share; the latest segment resumes live drawing. Returns what is shown.
   */
  scrub(segment) {
    const run = this.#run;
    if (!run?.snapshots.length) return null;
    const latest = run.snapshots.at(-1).index;
    run.scrubbed = segment >= latest ? null : Math.max(run.snapshots[0].index, segment);
    this.#$("input.scrub").value = run.scrubbed ?? latest;
    this.#draw();
    this.#emit("scrub", { segment: run.scrubbed });
    const view = memoryView(run);
    return { segment: run.scrubbed ?? latest, snapshot: view.index, mNorms: view.mNorms, zNorms: view.zNorms, loss: run.losses[view.index] };
  }

  #scrubNote(run, view) {
    const kept = `${run.snapshots.length} snapshots kept (segments ${run.snapshots[0].index}–${run.snapshots.at(-1).index})`;
    const wanted = run.scrubbed ?? view.index;
    const where = run.scrubbed === null ? `live: after segment ${view.index}` : `after segment ${view.index}${wanted !== view.index ? ` (the nearest snapshot before segment ${wanted})` : ""}`;
    const loss = run.losses[wanted];
    const share = wanted < run.headShares.length ? mean(run.headShares.row(wanted)) : undefined;
    return `${where} · segment ${wanted}: loss ${Number.isFinite(loss) ? loss.toFixed(3) : "–"}, mean memory share ${share?.toFixed(3) ?? "–"} · ${kept}; colours clipped at the 98th percentile of |M| per head`;
  }

  /**
   * Selects token `token` of the text (0 = first) and draws its recall map: which
   * earlier segments its memory read draws on (docs/DESIGN.md §6), for the head
   * chosen in the text panel (or the largest share over heads). Returns the map
   * ({ token, shares `[layer][head][j]`, layers, heads, segments, needle }), or null
   * with the reason shown when the token has none.
   */
  selectToken(token) {
    const run = this.#run;
    if (!run) return null;
    const { n_layers: layers, n_heads: heads } = run.info.config;
    const box = this.#$(".text");
    box.querySelector("span.selected")?.classList.remove("selected");
    const first = box.firstElementChild?.token ?? 0;
    const span = box.children[token - first];
    if (span) {
      span.classList.add("selected");
      // Into view inside the text panel only (scrollIntoView would move the page too).
      if (span.offsetTop < box.scrollTop + box.offsetTop || span.offsetTop > box.scrollTop + box.offsetTop + box.clientHeight - 20) {
        box.scrollTop = span.offsetTop - box.offsetTop - box.clientHeight / 2;
      }
    }
    try {
      const shares = run.session.token_recall(token);
      run.recall = { token, shares, layers, heads, segments: shares.length / (layers * heads), needle: run.needle };
    } catch (e) {
      run.recall = null;
      this.#strip.clear();
      this.#$(".recall-info").textContent = `No recall map: ${message(e)}.`;
      return null;
    }
    this.#drawRecall();
    this.#emit("select", { token, segments: run.recall.segments });
    return run.recall;
  }

  #drawRecall() {
    const map = this.#run?.recall;
    if (!map) return;
    const selected = this.#$("select.head").value;
    const head = selected === "mean" ? null : +selected;
    const who = head === null ? "any head" : `L${Math.floor(head / map.heads)}H${head % map.heads}`;
    const info = this.#$(".recall-info");
    const piece = this.#$(".text span.selected")?.textContent;
    const token = `token ${map.token}${piece === undefined ? "" : ` ${JSON.stringify(piece)}`}`;
    if (map.segments === 0) {
      this.#strip.clear();
      info.textContent = `${token} is in the first segment: memory is empty there, nothing to recall.`;
      return;
    }
    const { best, largest, top } = this.#strip.draw(map, { head, needle: map.needle });
    const needle = map.needle === null ? "" : `; the needle starts in segment ${map.needle} (${best[map.needle]?.toFixed(3) ?? "–"})`;
    info.textContent = `${token}: recall share over the ${map.segments} segments before its own (${who}); largest in segment ${largest} (${top.toFixed(3)})${needle}. Click the strip to see a segment.`;
  }

  /** Shows segment `j` of the text: scrolls to it when it is in the text panel, else quotes it. */
  showSegment(j) {
    const run = this.#run;
    if (!run) return;
    const box = this.#$(".text");
    const spans = [...box.children].filter((span) => span.segment === j);
    if (spans.length) {
      box.scrollTop = spans[0].offsetTop - box.offsetTop - 8;
      spans.forEach((span) => span.classList.add("flash"));
      setTimeout(() => spans.forEach((span) => span.classList.remove("flash")), 1200);
      return;
    }
    const ids = run.segmentIds[j];
    const text = ids ? this.#loaded.model.decode(ids) : null;
    this.#$(".recall-info").textContent = text === null ? `Segment ${j} is no longer kept.` : `Segment ${j} (no longer in the text panel): ${JSON.stringify(text)}`;
  }

  /** ← → move the selected token through the text panel. */
  #textKey(e) {
    if (e.key !== "ArrowLeft" && e.key !== "ArrowRight") return;
    const box = this.#$(".text");
    if (!box.firstElementChild) return;
    e.preventDefault();
    const current = box.querySelector("span.selected") ?? box.lastElementChild;
    const next = (e.key === "ArrowLeft" ? current.previousElementSibling : current.nextElementSibling) ?? current;
    this.selectToken(next.token);
  }

  /**
   * The run's numbers: the model, the device, the gates with each head's kind and mean
   * memory share, and per segment its tokens, loss (memory on and off) and each head's
   * mean memory share.
   */
  numbers() {
    const run = this.#run;
    if (!run || !this.#loaded) return null;
    const { model, info, url } = this.#loaded;
    const { n_heads: heads } = info.config;
    const kinds = model.head_kinds();
    return {
      model: url,
      config: info.config,
      device: this.#$(".device").textContent,
      tokens: run.tokensDone,
      gates: [...model.gates()].map((g, i) => ({ layer: Math.floor(i / heads), head: i % heads, g, kind: kinds[i], meanShare: run.tokensDone ? run.shareSum[i] / run.tokensDone : null })),
      segments: run.losses.map((loss, j) => ({ index: j, tokens: run.segmentTokens[j], loss, lossMemoryOff: run.baselineLosses[j], shares: [...run.headShares.row(j)] })),
    };
  }

  /** The run's numbers as "json" or "csv" text. */
  exportNumbers(format) {
    const numbers = this.numbers();
    if (!numbers) throw new Error("Read a text first: there are no numbers yet.");
    return format === "csv" ? numbersCsv(numbers) : JSON.stringify(numbers, null, 1);
  }

  /** The panel named `name` (gates, memory, text, footprint, loss) as a PNG blob. */
  panelPng(name) {
    const section = this.#$(`section[data-panel="${name}"]`);
    if (!section) throw new Error(`no panel named ${name}`);
    return panelPng(section);
  }

  #controls(running) {
    this.#$(".run").disabled = running || !this.#loaded;
    this.#$(".pause").disabled = !running;
    this.#$(".cancel").disabled = !running;
    this.#$(".pause").textContent = "Pause";
  }

  pause() {
    if (!this.#run) return;
    this.#run.paused = true;
    this.#$(".pause").textContent = "Resume";
    this.#scheduleDraw();
  }

  resume() {
    const run = this.#run;
    if (!run) return;
    run.paused = false;
    run.resume?.();
    this.#$(".pause").textContent = "Pause";
  }

  /** Stops the current run (its panels stay as they are). */
  async cancel() {
    const run = this.#run;
    if (!run || !run.finished) return;
    run.cancelled = true;
    run.resume?.();
    await run.finished;
  }

  /**
   * The paper's passkey test: a haystack of `length` tokens with a five-digit key at
   * `depth`, read like any text up to the question, then five tokens of greedy
   * generation (as `infiniscope passkey` does). The key counts only when the answer
   * is all five digits. `recall` is the recall map of the question's last token (the
   * one that predicts the first digit): `shares` `[layer][head][segment]` over the
   * segments before its own, and the segment the needle starts in.
   */
  async passkey(length, depth, key = Math.floor(Math.random() * 100000)) {
    if (!this.#loaded) throw new Error("The model is not loaded yet.");
    const { model, info } = this.#loaded;
    const haystack = model.passkey(length, depth, key);
    const at = haystack.answer_at;
    const needle = Math.floor(haystack.needle_at / info.config.segment_len);
    const [ids, pieces, hidden] = [haystack.tokens.slice(0, at), haystack.pieces.slice(0, at), haystack.key];
    haystack.free();
    const run = await this.run({ ids, pieces, needle });
    if (!run || run.cancelled) throw new Error("The passkey run was cancelled.");
    const recall = this.selectToken(at - 1);
    const answer = await this.generate(5, { temperature: 0 });
    return { length, depth, key: hidden, answer, correct: answer === hidden, recall };
  }

  /** Continues the text read so far by `count` tokens, calling `onPiece(text)` as each arrives. */
  async generate(count, { temperature = 0, onPiece = () => {} } = {}) {
    const run = this.#run;
    if (!run?.done) {
      throw new Error(run ? "Continue-writing starts where a text ends: let the reading finish first (or read a shorter text)." : "Read a text first: there is nothing to continue.");
    }
    let text = "";
    for (let i = 0; i < count; i++) {
      const piece = await run.session.generate(temperature);
      text += piece;
      onPiece(piece);
      await nextTask();
    }
    return text;
  }
}

/**
 * Paints head i's M (d×d) and z (1×d), each clipped at the 98th percentile of its
 * |values| (robust: a few large cells do not wash out the rest); returns M's scale.
 */
function drawHead(mCanvas, zCanvas, m, z, i, d) {
  const scale = absQuantile(m.subarray(i * d * d, (i + 1) * d * d), 0.98);
  heatmap(mCanvas, m, i * d * d, d, d, scale);
  heatmap(zCanvas, z, i * d, 1, d, absQuantile(z.subarray(i * d, (i + 1) * d), 0.98));
  return scale;
}

/** The memory snapshot the panel shows: the scrubbed one, or the latest. */
function memoryView(run) {
  const { snapshots, scrubbed } = run;
  if (!snapshots.length) return null;
  if (scrubbed === null) return snapshots.at(-1);
  return snapshots.findLast((s) => s.index <= scrubbed) ?? snapshots[0];
}

function pick(shares, selected) {
  return selected === "mean" ? mean(shares) : shares[+selected];
}

function mean(values) {
  let s = 0;
  for (const v of values) s += v;
  return values.length ? s / values.length : NaN;
}

function formatTime(seconds) {
  if (!Number.isFinite(seconds) || seconds <= 0) return "–";
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

function message(e) {
  return e instanceof Error ? e.message : String(e);
}

if (!customElements.get("infini-scope")) customElements.define("infini-scope", InfiniScope);
