// The engine's two WebAssembly builds: SIMD128 (Trunk's) and relaxed SIMD (Trunk's
// post-build hook). The worker picks by what the JavaScript engine validates; each
// build must read a text with the CLI's numbers. Chromium has relaxed SIMD and no
// switch to turn it off, so both builds run here in Node, whose V8 (20) has it only
// behind a flag: without it the worker's choice is the SIMD128 build.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { test } from "node:test";
import { cliEval, DIST, ROOT } from "./harness.mjs";

const CHOOSER = pathToFileURL(join(ROOT, "web/scope/wasm-build.js")).href;
const FLAGS = { simd128: "--no-experimental-wasm-relaxed-simd", relaxed: "--experimental-wasm-relaxed-simd" };

/** Runs `code` (an ES module) in a Node with relaxed SIMD on or off; its JSON output. */
function inNode(build, code) {
  return JSON.parse(execFileSync(process.execPath, [FLAGS[build], "--input-type=module", "-e", code], { encoding: "utf8", maxBuffer: 1 << 26 }));
}

test("relaxed SIMD is detected exactly where it validates, and picks the build", () => {
  const probe = `import { relaxedSimd, wasmFile } from ${JSON.stringify(CHOOSER)}; console.log(JSON.stringify([relaxedSimd(), wasmFile()]));`;
  assert.deepEqual(inNode("simd128", probe), [false, "infiniscope_bg.wasm"]);
  assert.deepEqual(inNode("relaxed", probe), [true, "infiniscope_relaxed_bg.wasm"]);
});

const TEXT = "Of Man's first disobedience, and the fruit\nOf that forbidden tree whose mortal taste\nBrought death into the World, and all our woe. ".repeat(12);

/** The text read by the build the worker would pick there: device and per-segment mean losses. */
function read(build) {
  return inNode(
    build,
    `import { readFileSync } from "node:fs";
     import { join } from "node:path";
     import { wasmFile } from ${JSON.stringify(CHOOSER)};
     const dist = ${JSON.stringify(DIST)};
     const wasm = await import(${JSON.stringify(pathToFileURL(join(DIST, "infiniscope.js")).href)});
     await wasm.default({ module_or_path: readFileSync(join(dist, wasmFile())) });
     const files = ["config.json", "model.safetensors", "tokenizer.json"].map((f) => readFileSync(join(dist, "models/infini-tiny", f)));
     const model = await wasm.WebModel.load(...files, false);
     const encoder = model.encoder();
     const session = new wasm.Session(model, true);
     session.feed(encoder.push(${JSON.stringify(TEXT)}).ids);
     session.feed(encoder.finish().ids);
     session.end_text();
     const losses = [];
     for (;;) {
       const results = await session.step(4);
       if (results.length === 0) break;
       for (const r of results) losses.push(r.loss.length ? r.loss.reduce((a, b) => a + b, 0) / r.loss.length : null);
     }
     console.log(JSON.stringify({ device: model.device, losses }));`,
  );
}

for (const [build, name] of [["simd128", /SIMD128/], ["relaxed", /relaxed SIMD/]]) {
  test(`the ${build} build reads a text with the CLI's losses`, () => {
    const { device, losses } = read(build);
    assert.match(device, name);
    const cli = cliEval(TEXT);
    assert.equal(losses.length, cli.segments.length);
    cli.segments.forEach(({ loss }, i) => {
      if (loss === null) assert.equal(losses[i], null, `segment ${i} has no loss`);
      else assert.ok(Math.abs(losses[i] - loss) < 1e-4, `segment ${i}: ${build} ${losses[i]}, CLI ${loss}`);
    });
  });
}
