// <infini-scope>: an Infini-Transformer reads a text on the visitor's GPU (WebGPU,
// or the CPU reference compiled to WebAssembly), and the element draws, segment by
// segment, what the engine reports: gates, memory M and z, memory shares, loss,
// and the memory footprint beside a full-attention KV cache.
//
// Data flows one way: text → tokens → segments → layers → taps (in a worker,
// scope/engine-worker.js) → a Run (scope/run.js) → the panels (scope/*-panel.js, each
// owning its DOM): the main thread only draws. The element keeps the lifecycle:
// attributes, loading, controls, focus and events. One script tag:
//   <script type="module" src="infini-scope.js"></script>
//   <infini-scope model="models/infini-tiny/" autorun></infini-scope>

import { bytes } from "./infiniscope.js";
import { el, LIGHT, readPalette } from "./scope/draw.js";
import { mean } from "./scope/stats.js";
import { numbersCsv, panelPng, save } from "./scope/exports.js";
import { FootprintPanel } from "./scope/footprint-panel.js";
import { GatesPanel } from "./scope/gates-panel.js";
import { LayerPanel } from "./scope/layer-panel.js";
import { LossPanel, SHOWN_SEGMENTS } from "./scope/loss-panel.js";
import { MemoryPanel } from "./scope/memory-panel.js";
import { loadModel } from "./scope/engine.js";
import { Run } from "./scope/run.js";
import { BASE_CSS, CONTROLS, TOKENS } from "./scope/style.js";
import { TextPanel } from "./scope/text-panel.js";

const DEFAULT_MODEL = new URL("models/infini-tiny/", import.meta.url).href;
/** The panels in the order the data flows: text → layers → memory → output. */
const PANELS = [
  ["text", TextPanel, "wide"],
  ["gates", GatesPanel],
  ["layer", LayerPanel],
  ["memory", MemoryPanel],
  ["loss", LossPanel],
  ["footprint", FootprintPanel, "wide"],
];
/**
 * The drawings that summarise a run, made a few per frame (#drawSome); "segments"
 * puts the segments read since the last frame into the text panel, the loss table and
 * the scrubber.
 */
const DRAWN = ["segments", "status", "memory", "norms", "loss"];
/**
 * Milliseconds of drawing per frame. A frame's layout, paint and commit come on top
 * (10–30 ms in a reading's first frames on a 2-core machine with a software GPU),
 * and a drawing started before the limit runs to its end.
 */
const FRAME_MS = 6;
/**
 * Least milliseconds from one frame's drawing to the next (a reading asks for one at
 * every step): FRAME_EVERY_MS, or CPU_FRAME_EVERY_MS while the CPU path's workers
 * have no core to spare, so that every frame's layout and paint (the text panel's
 * most) is time they do not read in (250 ms read 1.09× faster than 100 ms, 16,384
 * tokens on two cores, BENCHMARKS.md §5).
 */
const FRAME_EVERY_MS = 100;
const CPU_FRAME_EVERY_MS = 250;
/** Below this width (CSS px) the panels stack in one column. */
const NARROW = 720;

const TEMPLATE = `
<style>${TOKENS}${CONTROLS}${BASE_CSS}${PANELS.map(([, Panel]) => Panel.css).join("")}</style>
<div class="root">
  <header class="bar">
    <strong>infini-scope</strong>
    <span class="device">loading model…</span>
    <button class="run primary" disabled>Run</button>
    <button class="pause" disabled>Pause</button>
    <button class="cancel" disabled>Cancel</button>
    <label><input type="checkbox" class="baseline"> also run with memory off</label>
    <progress class="progress" max="1" value="0" aria-label="progress"></progress>
    <span class="status"></span>
    <span class="exports">numbers: <button class="export" data-format="json">JSON</button> <button class="export" data-format="csv">CSV</button></span>
  </header>
  <div class="announce visually-hidden" role="status" aria-live="polite"></div>
  <div class="note"></div>
  <div class="error" role="alert"></div>
  <div class="grid"></div>
  <span class="probe" hidden></span>
</div>`;

export class InfiniScope extends HTMLElement {
  static observedAttributes = ["model", "panels", "segment-limit", "autorun", "theme"];

  #text = "";
  /** The model once loaded ({ model, info, note, url }); `#loading` is the load in flight. */
  #loaded = null;
  #loading = null;
  /** The current reading (scope/run.js), or null. */
  #run = null;
  /** Whether any of the element is on screen; its observer reports it as soon as it is attached. */
  #visible = false;
  #drawPending = false;
  /** Summary drawings due (DRAWN), and where the next frame starts among them. */
  #dirty = new Set();
  #cursor = 0;
  /** When the last frame's drawing began (performance.now()). */
  #lastFrame = -Infinity;
  /** Whether a reading is under way (from Run to its end, cancel or failure). */
  #reading = false;
  /** Segments recorded and not yet shown in the panels ("segments" in DRAWN). */
  #unshown = [];
  #observers = [];
  /** The head clicked in the gate grid (layer·heads + head), or null. */
  #lockedHead = null;
  #palette = LIGHT;
  /** The panel objects by name, and their sections. */
  #panels = {};
  #sections = {};

  constructor() {
    super();
    this.attachShadow({ mode: "open" }).innerHTML = TEMPLATE;
    const $ = (s) => this.#$(s);
    $(".run").onclick = () => this.run();
    $(".pause").onclick = () => (this.#run?.paused ? this.resume() : this.pause());
    $(".cancel").onclick = () => this.cancel();
    for (const button of this.shadowRoot.querySelectorAll("button.export")) {
      const format = button.dataset.format;
      button.onclick = () => this.#run && save(`infiniscope-numbers.${format}`, new Blob([this.exportNumbers(format)], { type: format === "csv" ? "text/csv" : "application/json" }));
    }
    const callbacks = {
      onFocus: (i, lock) => this.#focusHead(i ?? this.#lockedHead, lock),
      onScrub: (segment) => this.scrub(segment),
      onSelect: (token) => this.selectToken(token),
      onPick: (j) => this.showSegment(j),
      onHead: () => {
        this.#panels.text.retint(this.#palette);
        this.#drawRecall();
      },
    };
    for (const [name, Panel, wide] of PANELS) {
      const section = this.#section(name, Panel, wide);
      this.#panels[name] = new Panel(section.querySelector(".body"), callbacks);
    }
    // Esc unlocks the head clicked in the gate grid, wherever focus is in the element.
    this.shadowRoot.addEventListener("keydown", (e) => {
      if (e.key === "Escape") this.#focusHead(null, true);
    });
  }

  /** A panel's box: numbered title, "?" with its explanation, PNG export, `part` names. */
  #section(name, Panel, wide) {
    const section = el("section", wide ?? "");
    section.dataset.panel = name;
    section.setAttribute("part", `panel ${name}`);
    section.setAttribute("aria-labelledby", `title-${name}`);
    const head = el("div", "panel-head");
    const title = el("h3");
    title.id = `title-${name}`;
    title.textContent = Panel.title;
    const help = el("p", "help", Panel.help);
    help.id = `help-${name}`;
    help.hidden = true;
    const ask = el("button", "help-toggle", "?");
    ask.setAttribute("aria-label", `what the ${name} panel shows`);
    ask.setAttribute("aria-expanded", "false");
    ask.setAttribute("aria-controls", help.id);
    ask.onclick = () => {
      help.hidden = !help.hidden;
      ask.setAttribute("aria-expanded", String(!help.hidden));
    };
    const png = el("button", "png", "PNG");
    png.setAttribute("aria-label", `save the ${name} panel as PNG`);
    png.onclick = async () => save(`infiniscope-${name}.png`, await this.panelPng(name));
    head.append(title, ask, png);
    section.append(head, help, el("div", "body"));
    this.#$(".grid").append(section);
    this.#sections[name] = section;
    return section;
  }

  connectedCallback() {
    const visible = new IntersectionObserver((entries) => {
      this.#visible = entries.some((e) => e.isIntersecting);
      if (this.#visible) this.#scheduleDraw();
    });
    visible.observe(this);
    // Sizing follows the element's box, not the window: an embed may sit in a column.
    const size = new ResizeObserver(([entry]) => {
      this.#$(".root").classList.toggle("narrow", entry.contentRect.width < NARROW);
      this.#drawRecall();
    });
    size.observe(this);
    // A theme change (attribute, or the system's in auto) recolours the canvases.
    const scheme = matchMedia("(prefers-color-scheme: dark)");
    const recolour = () => this.#recolour();
    scheme.addEventListener("change", recolour);
    this.#observers = [visible, size, { disconnect: () => scheme.removeEventListener("change", recolour) }];
    this.#showPanels();
    this.#recolour();
    if (!this.#loaded && !this.#loading) this.#load();
  }

  disconnectedCallback() {
    for (const observer of this.#observers) observer.disconnect();
    const run = this.#run;
    this.cancel().then(() => {
      // Still detached once the run has stopped: its sessions' memory and GPU buffers go.
      if (!this.isConnected && this.#run === run) run?.free();
    });
  }

  attributeChangedCallback(name, old, value) {
    if (old === value || !this.isConnected) return;
    if (name === "model") this.#load();
    if (name === "panels") this.#showPanels();
    if (name === "theme") this.#recolour();
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

  /** Workers that read on the CPU path: 2 (the default; one where the machine has a single core) or 1. */
  get #cpuWorkers() {
    return this.getAttribute("cpu-workers") === "1" ? 1 : 2;
  }

  /** Least milliseconds between frames now (see FRAME_EVERY_MS). */
  get #frameEvery() {
    const onCpu = this.#reading && this.#loaded && !this.#loaded.model.onGpu;
    // How many workers read is the worker's choice (cores, memory, cpu-workers); it says.
    const workers = onCpu ? this.#run.workers : 0;
    return workers > 0 && (navigator.hardwareConcurrency ?? 1) <= workers ? CPU_FRAME_EVERY_MS : FRAME_EVERY_MS;
  }

  get #segmentLimit() {
    const limit = parseInt(this.getAttribute("segment-limit") ?? "", 10);
    return Number.isFinite(limit) && limit > 0 ? limit : Infinity;
  }

  #$(selector) {
    return this.shadowRoot.querySelector(selector);
  }

  #showPanels() {
    const wanted = (this.getAttribute("panels") || PANELS.map(([name]) => name).join(",")).split(/[\s,]+/);
    for (const [name, section] of Object.entries(this.#sections)) section.hidden = !wanted.includes(name);
  }

  /** Reads the theme's colours and repaints what is drawn with them. */
  #recolour() {
    this.#palette = readPalette(this.#$(".probe"));
    if (!this.#loaded) return;
    this.#panels.gates.recolour(this.#palette);
    this.#panels.text.retint(this.#palette);
    if (!this.#run) this.#panels.memory.paintEmpty(this.#palette);
    this.#drawRecall();
    this.#scheduleDraw();
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
      this.#announce(`Model ready on ${loaded.model.device}.`);
      this.#$(".progress").value = 0;
      this.#$(".note").textContent = loaded.note ?? "";
      this.#$(".error").textContent = "";
      this.#$(".run").disabled = false;
      // Another model's reading is over: its tokens and memory would mix two models.
      const run = this.#run;
      this.#run = null;
      run?.cancel().then(() => run.free());
      this.#panels.text.clear();
      this.#panels.loss.clear();
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
      if (cached || loaded === 0) this.#announce(cached ? "Model found in the browser's cache." : "Downloading the model.");
    } else {
      this.#$(".device").textContent = detail.gpu ? "preparing the GPU…" : "preparing the CPU reference…";
      this.#announce(this.#$(".device").textContent);
      bar.value = 1;
    }
    this.#emit("progress", detail);
  }

  /** Says `text` to screen readers (the polite live region): stages, not every frame. */
  #announce(text) {
    this.#$(".announce").textContent = text;
  }

  #fail(text) {
    this.#$(".error").textContent = text;
    this.#emit("error", { message: text });
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail, bubbles: true, composed: true }));
  }

  /** Builds what depends on the model's shape; kinds and thresholds are the engine's (src/gate.rs). */
  #buildPanels({ model, info }) {
    const { gates, memory, text, footprint } = this.#panels;
    gates.build(info.config, model.gates(), model.head_kinds(), info.thresholds, this.#palette);
    memory.build(info.config, this.#palette);
    text.build(info.config);
    footprint.build(info);
    this.#showLayer();
  }

  /**
   * Linked focus on head i (null: none): its gate cell and heatmap are outlined and
   * the gate line and layer diagram say its numbers; `lock` (a click) also tints the
   * text by that head and draws its recall map, until Esc or a second click.
   */
  #focusHead(i, lock) {
    if (!this.#loaded) return;
    if (lock && i !== null && i === this.#lockedHead) i = null;
    if (lock) this.#lockedHead = i;
    this.#panels.gates.focus(i);
    this.#panels.memory.focus(i);
    if (i !== null) this.#showGate(i);
    this.#showLayer(i);
    if (lock) {
      this.#panels.text.head = i;
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
    const valid = Number.isInteger(i) && i >= 0 && i < count ? i : null;
    // Setting the head locks it even when it is locked already (a second click would unlock).
    this.#lockedHead = null;
    this.#focusHead(valid, true);
  }

  #showGate(i) {
    const { info, model } = this.#loaded;
    const heads = info.config.n_heads;
    const run = this.#run;
    const share = run && run.tokensDone > 0 ? run.meanShare(i).toFixed(4) : "–";
    this.#panels.gates.describe(`layer ${Math.floor(i / heads)} head ${i % heads}: g = ${model.gates()[i].toFixed(6)} (${model.head_kinds()[i]}), mean memory share on the text so far ${share}`);
  }

  /** The layer diagram's numbers: head i, else the locked head, else the first. */
  #showLayer(i = this.#lockedHead) {
    const { info, model } = this.#loaded;
    const head = i ?? 0;
    const heads = info.config.n_heads;
    const run = this.#run;
    const view = run?.memoryView();
    this.#panels.layer.show({
      layer: Math.floor(head / heads),
      head: head % heads,
      g: model.gates()[head],
      kind: model.head_kinds()[head],
      share: run?.tokensDone ? run.meanShare(head) : undefined,
      mNorm: view?.mNorms[head],
      zNorm: view?.zNorms[head],
      segment: view?.index,
    });
  }

  /** Reads `this.text` (or, for the passkey test, a prepared token sequence). */
  async run(tokens = null) {
    await this.cancel();
    this.#run?.free();
    if (!this.#loaded) {
      this.#fail("The model is not loaded yet.");
      return;
    }
    if (!tokens && this.#text.length === 0) {
      this.#fail("Nothing to read: the text is empty.");
      return;
    }
    const run = new Run(this.#loaded, { text: this.#text, tokens, baseline: this.#$(".baseline").checked });
    this.#run = run;
    this.#unshown = [];
    this.#$(".error").textContent = "";
    this.#panels.text.clear();
    this.#panels.loss.clear();
    this.#controls(true);
    this.#reading = true;
    this.#announce("Reading the text.");
    const { config } = this.#loaded.info;
    try {
      await run.read({
        segmentLimit: this.#segmentLimit,
        workers: this.#cpuWorkers,
        onSegment: (segment) => this.#record(run, segment, config),
        onStep: () => this.#scheduleDraw(),
      });
      // The last frame now, not up to FRAME_EVERY_MS later: what `done` reports is on
      // screen (off screen it waits, like every frame, until the element is seen).
      if (this.#visible) this.#draw();
      else this.#showSegments();
      if (!run.cancelled) {
        this.#announce(`Read ${run.tokensDone} tokens in ${run.losses.length} segments.`);
        this.#emit("done", { segments: run.losses.length, tokens: run.tokensDone, loss: mean(run.losses.filter(Number.isFinite)) });
      }
    } catch (e) {
      this.#fail(`Reading stopped: ${message(e)}`);
    } finally {
      if (this.#run === run) {
        this.#reading = false;
        this.#showSegments();
        this.#controls(false);
      }
      this.#scheduleDraw();
    }
    return run;
  }

  /** Keeps one segment for the panels that list segments, and says it in a `segment` event. */
  #record(run, segment, config) {
    if (segment.recovered) {
      this.#$(".note").textContent = `The GPU was lost: ${segment.recovered}.`;
      this.#$(".device").textContent = segment.device;
    }
    this.#unshown.push([segment, config.n_layers]);
    // Off screen no frame shows them: only the newest count (the panels keep no more).
    if (this.#unshown.length > SHOWN_SEGMENTS) this.#unshown.shift();
    this.#scheduleDraw();
    const last = segment.hasMemory ? run.snapshots.at(-1) : null;
    this.#emit("segment", {
      index: segment.index,
      tokens: segment.pieces.length,
      loss: segment.segmentLoss,
      baselineLoss: segment.baselineLoss,
      gates: this.#loaded.model.gates(),
      memoryNorms: last ? { m: last.mNorms, z: last.zNorms } : null,
      device: segment.device,
    });
  }

  /** Hands the segments recorded since to the text panel, the loss table and the scrubber. */
  #showSegments() {
    if (!this.#unshown.length) return;
    for (const [segment, layers] of this.#unshown) {
      this.#panels.text.append(segment, layers, this.#palette);
      this.#panels.loss.add(segment);
    }
    this.#unshown = [];
    this.#panels.memory.follow(this.#run);
  }

  /** Marks every summary drawing as due, drawn in a frame FRAME_EVERY_MS after the last. */
  #scheduleDraw() {
    for (const step of DRAWN) this.#dirty.add(step);
    if (this.#drawPending || !this.#visible) return;
    this.#drawPending = true;
    const frame = () => requestAnimationFrame(() => this.#drawSome());
    const wait = this.#lastFrame + this.#frameEvery - performance.now();
    if (wait > 0) setTimeout(frame, wait);
    else frame();
  }

  /**
   * Redraws what summarises the whole run so far, a frame at a time: the drawings due
   * are made in turn until FRAME_MS have gone, the rest in the next frames (the
   * main thread stays free for input; none waits for long).
   */
  #drawSome() {
    this.#drawPending = false;
    const began = performance.now();
    this.#lastFrame = began;
    while (this.#dirty.size && performance.now() - began < FRAME_MS) {
      const step = DRAWN.find((s, i) => this.#dirty.has(s) && i >= this.#cursor) ?? DRAWN.find((s) => this.#dirty.has(s));
      this.#dirty.delete(step);
      this.#cursor = (DRAWN.indexOf(step) + 1) % DRAWN.length;
      this.#drawStep(step, true);
    }
    if (this.#dirty.size && this.#visible) {
      this.#drawPending = true;
      requestAnimationFrame(() => this.#drawSome());
    }
  }

  /** Redraws everything now (a scrub shows its segment at once). */
  #draw() {
    for (const step of DRAWN) this.#drawStep(step);
    this.#dirty.clear();
  }

  /** One drawing; `budgeted`: a frame's share of it (#drawSome), else all of it. */
  #drawStep(step, budgeted = false) {
    const run = this.#run;
    if (!run) return;
    if (step === "segments") this.#showSegments();
    else if (step === "status") {
      const { estimate, done, rate, left } = run.progress();
      this.#$(".progress").value = estimate ? Math.min(1, done / estimate) : 0;
      this.#$(".status").textContent =
        `${done.toLocaleString("en")} / ~${estimate.toLocaleString("en")} tokens · ${rate.toFixed(1)} tokens/s · ETA ${formatTime(left)}` +
        (run.paused ? " · paused" : "") +
        (run.done && done > 0 ? " · done" : "");
      this.#panels.footprint.draw(run.info, done);
      this.#panels.gates.update((i) => run.meanShare(i));
      this.#showLayer();
    } else if (step === "memory") {
      // A few heads' heatmaps at a time (about 5 ms), so that no frame waits for all sixteen.
      if (!this.#panels.memory.draw(run, this.#palette, budgeted ? performance.now() + 5 : Infinity)) this.#dirty.add("memory");
    }
    else if (step === "norms") this.#panels.memory.chart(run);
    else if (step === "loss") this.#panels.loss.draw(run, this.#palette);
  }

  /**
   * Shows the memory as it was after segment `segment` (the nearest snapshot at or
   * before it: the GPU reports M once per chunk), with that segment's loss and mean
   * memory share; the latest segment resumes live drawing. Returns what is shown.
   */
  scrub(segment) {
    const shown = this.#run?.scrub(segment) ?? null;
    if (!shown) return null;
    this.#draw();
    this.#emit("scrub", { segment: this.#run.scrubbed });
    return shown;
  }

  /**
   * Selects token `token` of the text (0 = first) and draws its recall map: which
   * earlier segments its memory read draws on (docs/DESIGN.md §6), for the head
   * chosen in the text panel (or the largest share over heads). Returns the map
   * ({ token, shares `[layer][head][j]`, layers, heads, segments, needle }), or null
   * with the reason shown when the token has none.
   */
  async selectToken(token) {
    const run = this.#run;
    if (!run) return null;
    this.#showSegments();
    this.#panels.text.select(token);
    // Keys pressed quickly: only the latest selection's map is drawn.
    run.selecting = token;
    try {
      const map = await run.tokenRecall(token);
      if (run.selecting !== token) return map;
      run.recall = map;
    } catch (e) {
      if (run.selecting !== token) return null;
      run.recall = null;
      this.#panels.text.drawRecall(null, `No recall map: ${message(e)}.`);
      return null;
    }
    this.#drawRecall();
    this.#emit("select", { token, segments: run.recall.segments });
    return run.recall;
  }

  #drawRecall() {
    const map = this.#run?.recall;
    if (map) this.#panels.text.drawRecall(map);
  }

  /** Shows segment `j` of the text: scrolls to it when it is in the text panel, else quotes it. */
  async showSegment(j) {
    const run = this.#run;
    this.#showSegments();
    if (!run || this.#panels.text.showSegment(j)) return;
    const ids = run.segmentIds[j];
    const text = ids ? await this.#loaded.model.decode(ids) : null;
    this.#panels.text.say(text === null ? `Segment ${j} is no longer kept.` : `Segment ${j} (no longer in the text panel): ${JSON.stringify(text)}`);
  }

  /**
   * The run's numbers: the model, the device, the gates with each head's kind and mean
   * memory share, and per segment its tokens, loss (memory on and off) and each head's
   * mean memory share.
   */
  numbers() {
    if (!this.#run || !this.#loaded) return null;
    return this.#run.numbers({ url: this.#loaded.url, device: this.#$(".device").textContent });
  }

  /** The run's numbers as "json" or "csv" text. */
  exportNumbers(format) {
    const numbers = this.numbers();
    if (!numbers) throw new Error("Read a text first: there are no numbers yet.");
    return format === "csv" ? numbersCsv(numbers) : JSON.stringify(numbers, null, 1);
  }

  /** The panel named `name` (text, gates, layer, memory, loss, footprint) as a PNG blob. */
  panelPng(name) {
    const section = this.#sections[name];
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
    this.#run.pause();
    this.#$(".pause").textContent = "Resume";
    this.#scheduleDraw();
  }

  resume() {
    if (!this.#run) return;
    this.#run.resume();
    this.#$(".pause").textContent = "Pause";
  }

  /** Stops the current run (its panels stay as they are). */
  async cancel() {
    await this.#run?.cancel();
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
    const haystack = await model.passkey(length, depth, key);
    const at = haystack.answer_at;
    const needle = Math.floor(haystack.needle_at / info.config.segment_len);
    const [ids, pieces, hidden] = [haystack.tokens.slice(0, at), haystack.pieces.slice(0, at), haystack.key];
    const run = await this.run({ ids, pieces, needle });
    if (!run || run.cancelled) throw new Error("The passkey run was cancelled.");
    const recall = await this.selectToken(at - 1);
    const answer = await this.generate(5, { temperature: 0 });
    return { length, depth, key: hidden, answer, correct: answer === hidden, recall };
  }

  /** Continues the text read so far by `count` tokens, calling `onPiece(text)` as each arrives. */
  async generate(count, { temperature = 0, onPiece = () => {} } = {}) {
    const run = this.#run;
    if (!run?.done) {
      throw new Error(run ? "Continue-writing starts where a text ends: let the reading finish first (or read a shorter text)." : "Read a text first: there is nothing to continue.");
    }
    return run.generate(count, temperature, onPiece);
  }
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
