// Tokens per second of the page's engine without the page: the WebAssembly build that
// Trunk wrote (CPU reference, SIMD128) run in Node, reading the bundled sample as the
// worker does (Session.step), with no taps read and nothing drawn. Beside bench.mjs it
// tells the engine's time from the page's. A benchmark, not a test:
//   node tests/browser/engine-bench.mjs [tokens] [segments per step] [DIST]
// (after `trunk build`; DIST defaults to target/dist).

import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { DIST, ROOT } from "./harness.mjs";
import { wasmFile } from "../../web/scope/wasm-build.js";

const [tokens, perStep, dist] = [Number(process.argv[2] ?? 16384), Number(process.argv[3] ?? 4), resolve(process.argv[4] ?? DIST)];
const wasm = await import(pathToFileURL(join(dist, "infiniscope.js")).href);
// The build the page's worker would pick here (relaxed SIMD needs Node's
// --experimental-wasm-relaxed-simd before Node 22); an older build may lack it.
const file = [wasmFile(), "infiniscope_bg.wasm"].find((f) => existsSync(join(dist, f)));
await wasm.default({ module_or_path: readFileSync(join(dist, file)) });
const files = ["config.json", "model.safetensors", "tokenizer.json"].map((f) => readFileSync(join(dist, "models/infini-tiny", f)));
const model = await wasm.WebModel.load(...files, false);

const encoder = model.encoder();
// About 3.3 characters a token in this sample; the slice is cut to `tokens` below.
const encoded = encoder.push(readFileSync(join(ROOT, "samples/paradise-lost.txt"), "utf8").slice(0, tokens * 5));
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
console.log(`the page's engine in Node ${process.version}: ${read} tokens in ${seconds.toFixed(2)} s, ${(read / seconds).toFixed(1)} tokens/s (${perStep} segments a step, ${join(dist, file)})`);
for (const o of [encoded, encoder, session, model]) o.free();
