// Tokens per second of the page's engine without the page: the WebAssembly build that
// Trunk wrote run in Node, or with --chromium in headless Chromium (the page's own V8,
// which compiles the products differently from Node 20's), reading the bundled sample
// as the worker does (Session.step), with no taps read and nothing drawn. Beside
// bench.mjs it tells the engine's time from the page's. With --split (Node only) the
// model runs in two parts as the page's two CPU workers run it: the first part here,
// the rest in a worker thread, the rest of one step beside the first part of the next.
// A benchmark, not a test:
//   node tests/browser/engine-bench.mjs [tokens] [segments per step] [DIST] [--chromium | --split]
// (after `trunk build`; DIST defaults to target/dist).

import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { pathToFileURL } from "node:url";
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import { DIST, ROOT, browser, open, serve } from "./harness.mjs";
import { wasmFile } from "../../web/scope/wasm-build.js";

const { values, positionals } = parseArgs({ allowPositionals: true, options: { chromium: { type: "boolean" }, split: { type: "boolean" } } });
const [tokens, perStep, dist] = [Number(positionals[0] ?? 16384), Number(positionals[1] ?? 4), resolve(positionals[2] ?? DIST)];
const FILES = ["config.json", "model.safetensors", "tokenizer.json"];
const SAMPLE = "samples/paradise-lost.txt";

/**
 * Reads the sample's first `tokens` tokens with the engine module `wasm` (initialised)
 * and the model files' bytes; { read, seconds }. Runs in Node or, serialised, in a page.
 */
async function read(wasm, files, text, tokens, perStep) {
  const model = await wasm.WebModel.load(...files, false);
  const encoder = model.encoder();
  // About 3.3 characters a token in this sample; the slice is cut to `tokens` below.
  const encoded = encoder.push(text.slice(0, tokens * 5));
  const ids = encoded.ids.slice(0, tokens);
  const session = new wasm.Session(model, true);
  session.feed(ids);
  session.end_text();
  const began = performance.now();
  let read = 0;
  for (;;) {
    const results = await session.step(perStep);
    if (results.length === 0) break;
    for (const result of results) {
      read += result.tokens.length;
      result.free();
    }
  }
  const seconds = (performance.now() - began) / 1000;
  for (const o of [encoded, encoder, session, model]) o.free();
  return { read, seconds };
}

if (values.split && values.chromium) throw new Error("--split reads in Node only");
if (!isMainThread) await restOfTheModel();
else {
  let where, file, result;
  if (values.chromium) {
    const server = await serve(dist);
    const chrome = await browser({ webgpu: false });
    try {
      // A document of the same origin that starts nothing itself, and whose lack of a
      // policy lets the function below travel as source (the page's would refuse it).
      const page = await open(chrome, `${server.url}/${SAMPLE}`);
      [file, result] = await page.evaluate(
        async ({ source, tokens, perStep, FILES, SAMPLE }) => {
          const { wasmFile } = await import("/scope/wasm-build.js");
          const wasm = await import("/infiniscope.js");
          await wasm.default({ module_or_path: `/${wasmFile()}` });
          const bytes = async (path) => new Uint8Array(await (await fetch(path)).arrayBuffer());
          const files = await Promise.all(FILES.map((f) => bytes(`/models/infini-tiny/${f}`)));
          const text = await (await fetch(`/${SAMPLE}`)).text();
          const read = new Function(`return ${source}`)();
          return [wasmFile(), await read(wasm, files, text, tokens, perStep)];
        },
        { source: read.toString(), tokens, perStep, FILES, SAMPLE },
      );
      where = `Chromium ${chrome.version()}`;
    } finally {
      await chrome.close();
      server.close();
    }
  } else {
    // The build the page's worker would pick here (relaxed SIMD needs Node's
    // --experimental-wasm-relaxed-simd before Node 22); an older build may lack it.
    file = [wasmFile(), "infiniscope_bg.wasm"].find((f) => existsSync(join(dist, f)));
    const { wasm, files } = await engine(file);
    const text = readFileSync(join(ROOT, SAMPLE), "utf8");
    result = values.split ? await readSplit(wasm, files, text, file) : await read(wasm, files, text, tokens, perStep);
    where = `Node ${process.version}${values.split ? ", in two parts (a worker thread runs the rest)" : ""}`;
  }
  const { read: n, seconds } = result;
  console.log(`the page's engine in ${where}: ${n} tokens in ${seconds.toFixed(2)} s, ${(n / seconds).toFixed(1)} tokens/s (${perStep} segments a step, ${join(dist, file)})`);
}

/** The engine module of `file` in DIST, initialised, and the model files' bytes (Node). */
async function engine(file) {
  const wasm = await import(pathToFileURL(join(dist, "infiniscope.js")).href);
  await wasm.default({ module_or_path: readFileSync(join(dist, file)) });
  return { wasm, files: FILES.map((f) => readFileSync(join(dist, "models/infini-tiny", f))) };
}

/**
 * As `read`, with the model cut where the page cuts it (Session.split_front): this
 * thread steps the first part and hands each step's residual stream to a worker thread
 * (this file again), which steps the rest while this thread steps the next.
 */
async function readSplit(wasm, files, text, file) {
  const model = await wasm.WebModel.load(...files, false);
  const encoder = model.encoder();
  const encoded = encoder.push(text.slice(0, tokens * 5));
  const ids = encoded.ids.slice(0, tokens);
  const session = new wasm.Session(model, true);
  const cut = session.split_front(0);
  session.feed(ids);
  session.end_text();
  const rest = new Worker(new URL(import.meta.url), { workerData: { file, ids, cut }, argv: process.argv.slice(2) });
  // One request at a time: each reply settles the one waiting.
  let waiting = null;
  rest.on("message", (read) => waiting.resolve(read)).on("error", (e) => waiting.reject(e));
  const reply = () => new Promise((resolve, reject) => (waiting = { resolve, reject }));
  await reply(); // loaded
  const began = performance.now();
  let read = 0;
  let inFlight = null;
  for (;;) {
    const results = await session.step(perStep);
    if (results.length === 0) break;
    // Each `x` is a copy out of wasm memory: read once, then joined.
    const parts = results.map((r) => r.x);
    for (const result of results) result.free();
    const x = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
    parts.reduce((at, p) => (x.set(p, at), at + p.length), 0);
    // The worker takes one step at a time: the last one's rest first.
    if (inFlight) read += await inFlight;
    inFlight = reply();
    rest.postMessage({ x, segments: results.length }, [x.buffer]);
  }
  if (inFlight) read += await inFlight;
  const seconds = (performance.now() - began) / 1000;
  await rest.terminate();
  for (const o of [encoded, encoder, session, model]) o.free();
  return { read, seconds };
}

/** The worker thread of --split: the rest of the model, stepped on each residual stream it is sent. */
async function restOfTheModel() {
  const { file, ids, cut } = workerData;
  const { wasm, files } = await engine(file);
  const model = await wasm.WebModel.load(...files, false);
  const session = new wasm.Session(model, true);
  session.split_back(cut);
  session.feed(ids);
  session.end_text();
  parentPort.on("message", async ({ x, segments }) => {
    let read = 0;
    for (const result of await session.step_from(x, segments)) {
      read += result.tokens.length;
      result.free();
    }
    parentPort.postMessage(read);
  });
  parentPort.postMessage("loaded");
}
