// Page soak: the demo page reads one text after another in headless Chromium (read,
// Cancel once the run has read its share of tokens, hand it the next text, read again)
// and after every run samples what grows when something leaks: the JS heap after a
// forced garbage collection, the engine worker's WebAssembly memory, the DOM's nodes
// (shadow DOM included), WebGPU buffers created and destroyed, and main-thread long tasks.
// A benchmark, not a test (RELIABILITY.md holds its figures):
//   node tests/browser/soak.mjs [runs=10] [tokens per run=2048] [cpu]   (after `trunk build`)
// Writes target/soak/soak.csv and target/soak/soak.svg; exits 1 when memory drifts.

import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { browser, DIST, modelLoaded, ROOT, serve, watch } from "./harness.mjs";

const runs = Number(process.argv[2] ?? 10);
const tokensPerRun = Number(process.argv[3] ?? 2048);
const webgpu = process.argv[4] !== "cpu";
const OUT = join(ROOT, "target/soak");
// After the first two runs (warm-up: allocators and WebGPU pools reach their working
// size), nothing a run allocates may outlive the next run: the engine's heap in use
// (bytes allocated and not freed, counted by its allocator) and the live WebGPU buffers
// return to the same figures, the JS heap moves by garbage-collector noise only, and
// the DOM by a few chart labels (the text panel and loss table are bounded). The wasm
// memory itself never shrinks and grows in steps as the heap fragments: reported, and
// judged by the heap in use.
const HEAP_DRIFT = 4 << 20;
const WASM_DRIFT = 64 << 10;
const DOM_DRIFT = 32;
const WARM_UP = 2;

// The engine runs in a worker (web/scope/engine-worker.js): its WebGPU buffers are
// counted there, as soon as the worker starts (before the model's buffers exist).
function instrumentWorker() {
  self.__soak = { created: 0, destroyed: 0, collected: 0 };
  if (!self.GPUDevice) return;
  // A buffer is gone when destroyed or when garbage-collected (wgpu drops its handle
  // and the browser frees the GPU memory with the JS object).
  const gone = new FinalizationRegistry(() => self.__soak.collected++);
  const create = GPUDevice.prototype.createBuffer;
  GPUDevice.prototype.createBuffer = function (...args) {
    self.__soak.created++;
    const buffer = create.apply(this, args);
    gone.register(buffer, null);
    return buffer;
  };
  const destroy = GPUBuffer.prototype.destroy;
  GPUBuffer.prototype.destroy = function (...args) {
    self.__soak.destroyed++;
    return destroy.apply(this, args);
  };
}

// The page's main thread: its long tasks, and the longest script among them (what
// the page's own code took, rendering aside), from before its scripts run.
function instrumentPage() {
  window.__soak = { longTasks: 0, longest: 0, longestScript: 0 };
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      window.__soak.longTasks++;
      window.__soak.longest = Math.max(window.__soak.longest, e.duration);
    }
  }).observe({ type: "longtask" });
  new PerformanceObserver((list) => {
    for (const frame of list.getEntries()) for (const script of frame.scripts) window.__soak.longestScript = Math.max(window.__soak.longestScript, script.duration);
  }).observe({ type: "long-animation-frame" });
}

const sample = readFileSync(join(DIST, "samples/paradise-lost.txt"), "utf8");
const server = await serve();
// gc() in the worker, whose heap the page's DevTools session does not reach.
const chrome = await browser({ webgpu, more: ["--js-flags=--expose-gc"] });
const rows = [];
let failed = false;
try {
  const context = await chrome.newContext({ viewport: { width: 1280, height: 1600 } });
  await context.addInitScript(instrumentPage);
  const page = await context.newPage();
  const engine = new Promise((resolve) => page.on("worker", (worker) => worker.evaluate(instrumentWorker).then(() => resolve(worker))));
  watch(page);
  await page.goto(`${server.url}/`);
  const worker = await engine;
  const cdp = await context.newCDPSession(page);
  await modelLoaded(page);
  // The tokenizer keeps a cache of up to 10,000 words it has split (HuggingFace
  // tokenizers' BPE cache, never evicted): tokenizing the whole sample once first fills
  // it with every word the runs will meet, so that its growth is not taken for a leak.
  await page.evaluate((text) => document.querySelector("#scope").model.model.warm(text), sample);
  // The engine reads a few steps ahead of what the page has drawn, so a run cancelled at
  // its share would leave a reading of a varying length live (Δz per segment for recall
  // maps, 4 KiB each) until the next run frees it. Stopping the reader at exactly the
  // run's segments leaves the same reading live every time.
  const segmentLen = await page.evaluate(() => document.querySelector("#scope").model.info.config.segment_len);
  await page.evaluate((limit) => document.querySelector("#scope").setAttribute("segment-limit", limit), Math.ceil(tokensPerRun / segmentLen));
  const device = await page.evaluate(() => document.querySelector("#scope").shadowRoot.querySelector(".device").textContent);
  console.log(`${device}: ${runs} runs of ${tokensPerRun} tokens each`);
  const started = Date.now();
  let total = 0;
  for (let run = 0; run < runs; run++) {
    // A different stretch each run (about 4 characters per token), the sample read
    // round from a new place and repeated when a run wants more than it holds. It goes
    // to the element's `text` (what the page does with a dropped file): typing it into
    // the text box would take the test driver seconds per 10,000 characters.
    const from = (run * 7919 * 64) % sample.length;
    const rotated = sample.slice(from) + sample.slice(0, from);
    const text = rotated.repeat(Math.ceil((tokensPerRun * 6) / rotated.length)).slice(0, tokensPerRun * 6);
    const read = await page.evaluate(
      ([want, text]) =>
        new Promise((resolve) => {
          const scope = document.querySelector("#scope");
          let tokens = 0;
          const onSegment = (e) => {
            tokens += e.detail.tokens;
            if (tokens >= want) {
              scope.removeEventListener("segment", onSegment);
              scope.cancel().then(() => resolve(tokens));
            }
          };
          scope.addEventListener("segment", onSegment);
          // Long tasks count from Read on.
          Object.assign(window.__soak, { longTasks: 0, longest: 0, longestScript: 0 });
          scope.text = text;
          scope.run();
        }),
      [tokensPerRun, text],
    );
    total += read;
    // The wasm memory before any forced collection: what a visitor's tab holds (a JS
    // heap this small seldom triggers one, so wasm objects left to finalizers stay).
    // Long tasks too: the forced collections below block the main thread for seconds
    // themselves, so what they take is not counted.
    const [wasm, heapInUse, longTasks, longest, longestScript] = await page.evaluate(async () => {
      const s = window.__soak;
      const { live, memory } = await document.querySelector("#scope").model.model.memory();
      const taken = [memory, live, s.longTasks, s.longest, s.longestScript];
      Object.assign(s, { longTasks: 0, longest: 0, longestScript: 0 });
      return taken;
    });
    await cdp.send("HeapProfiler.collectGarbage");
    await worker.evaluate(() => gc());
    // Finalizers run after the collection, on a later task.
    await page.waitForTimeout(200);
    await cdp.send("HeapProfiler.collectGarbage");
    await worker.evaluate(() => gc());
    const heap = await cdp.send("Runtime.getHeapUsage");
    const nodes = await page.evaluate(() => document.getElementsByTagName("*").length + document.querySelector("#scope").shadowRoot.querySelectorAll("*").length);
    const seen = { nodes, ...(await worker.evaluate(() => self.__soak)) };
    const row = { run: run + 1, tokens: read, seconds: (Date.now() - started) / 1000, heap: heap.usedSize, wasm, heapInUse, ...seen, longTasks, longest, longestScript, live: seen.created - seen.collected };
    rows.push(row);
    console.log(
      `run ${String(row.run).padStart(2)}: ${read} tokens · JS heap ${(row.heap / 2 ** 20).toFixed(1)} MiB · wasm ${(row.wasm / 2 ** 20).toFixed(1)} MiB (${(row.heapInUse / 2 ** 20).toFixed(2)} MiB in use) · ${row.nodes} DOM nodes · GPU buffers ${row.created} created, ${row.destroyed} destroyed, ${row.collected} collected, ${row.live} live · ${row.longTasks} long tasks (longest ${row.longest.toFixed(0)} ms; longest script ${row.longestScript.toFixed(0)} ms)`,
    );
  }
  console.log(`${total} tokens in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  const after = rows.slice(WARM_UP);
  const spread = (key) => Math.max(...after.map((r) => r[key])) - Math.min(...after.map((r) => r[key]));
  const drift = { heap: spread("heap"), wasm: spread("wasm"), inUse: spread("heapInUse"), nodes: spread("nodes"), live: spread("live") };
  console.log(
    `after run ${WARM_UP}: engine heap in use spread ${(drift.inUse / 1024).toFixed(1)} KiB (allowed ${WASM_DRIFT / 1024}), JS heap ${(drift.heap / 2 ** 20).toFixed(2)} MiB (allowed ${HEAP_DRIFT / 2 ** 20}), DOM nodes ${drift.nodes} (allowed ${DOM_DRIFT}), live GPU buffers ${drift.live} (allowed 0); wasm memory grew ${(drift.wasm / 2 ** 20).toFixed(1)} MiB`,
  );
  failed = after.length > 0 && (drift.inUse > WASM_DRIFT || drift.heap > HEAP_DRIFT || drift.nodes > DOM_DRIFT || drift.live > 0);
  if (page.problems.length) {
    console.log(`page problems: ${page.problems.join("; ")}`);
    failed = true;
  }
  mkdirSync(OUT, { recursive: true });
  const keys = Object.keys(rows[0]);
  writeFileSync(join(OUT, "soak.csv"), [keys.join(","), ...rows.map((r) => keys.map((k) => r[k]).join(","))].join("\n") + "\n");
  writeFileSync(join(OUT, "soak.svg"), plot(rows));
  console.log(`${failed ? "DRIFT" : "flat"}: ${join(OUT, "soak.csv")}, ${join(OUT, "soak.svg")}`);
} finally {
  await chrome.close();
  server.close();
}
process.exit(failed ? 1 : 0);

/** JS heap and wasm memory (MiB) and live GPU buffers over the runs, one SVG. */
function plot(rows) {
  const [w, h, pad] = [640, 240, 40];
  const series = [
    { key: "heap", label: "JS heap (MiB)", colour: "#d6601a", scale: 2 ** 20 },
    { key: "wasm", label: "wasm memory (MiB)", colour: "#2166ac", scale: 2 ** 20 },
    { key: "heapInUse", label: "engine heap in use (MiB)", colour: "#762a83", scale: 2 ** 20 },
    { key: "live", label: "live GPU buffers", colour: "#1b7837", scale: 1 },
  ];
  const top = Math.max(1, ...series.flatMap((s) => rows.map((r) => r[s.key] / s.scale)));
  const x = (i) => pad + ((w - 2 * pad) * i) / Math.max(1, rows.length - 1);
  const y = (v) => h - pad - ((h - 2 * pad) * v) / top;
  const lines = series.map((s, k) => {
    const d = rows.map((r, i) => `${i ? "L" : "M"}${x(i).toFixed(1)},${y(r[s.key] / s.scale).toFixed(1)}`).join("");
    return `<path d="${d}" fill="none" stroke="${s.colour}" stroke-width="2"/><text x="${pad + 140 * k}" y="16" fill="${s.colour}" font-size="12">${s.label}</text>`;
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" font-family="sans-serif"><rect width="100%" height="100%" fill="#fff"/>${lines.join("")}<text x="${pad}" y="${h - 10}" font-size="11">run 1 … ${rows.length} (${rows.at(-1).tokens} tokens each); top of the scale ${top.toFixed(1)}</text></svg>\n`;
}
