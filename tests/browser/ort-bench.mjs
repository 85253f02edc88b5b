// The page's CPU path against onnxruntime-web's WebAssembly backend, in the same headless
// Chromium, on the same model and tokens. A benchmark, not a test:
//   node tests/browser/ort-bench.mjs [tokens] [rounds]     (after `trunk build`)
// Needs onnxruntime-web in target/ort-web (cargo xtask bench installs it there, so the
// tests' node_modules stay small) and tools/export_onnx.py's Python packages.
//
// onnxruntime-web runs tools/export_onnx.py's graph of 32 segments per call (its best
// case: one call per 1,024 tokens, M and z carried between calls), one thread (threads
// need a cross-origin-isolated page), timing session.run only; the page reads in one
// worker too (cpu-workers="1", not its two on a 2-core machine). The page is timed as
// tests/browser/bench.mjs times it: from Read to done, drawing included, so the ratio
// favours onnxruntime-web. Rounds alternate the two; the medians are printed.

import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import { extname, join, normalize } from "node:path";
import { browser, open, ROOT, runAndWait, serve } from "./harness.mjs";

const tokens = Number(process.argv[2] ?? 16384);
const rounds = Number(process.argv[3] ?? 3);
const SEGMENTS = 32;
const ORT = join(ROOT, "target/ort-web");
const DIST = join(ORT, "node_modules/onnxruntime-web/dist");
const MODEL = join(ROOT, "models/infini-tiny");
const GRAPH = join(ORT, `infini-tiny-${SEGMENTS}.onnx`);
const SAMPLE = join(ROOT, "samples/paradise-lost.txt");

if (!existsSync(DIST)) throw new Error(`${DIST} is missing: npm install onnxruntime-web in ${ORT} (cargo xtask bench does)`);
if (!existsSync(GRAPH)) execFileSync("python3", [join(ROOT, "tools/export_onnx.py"), MODEL, "--out", GRAPH, "--segments", String(SEGMENTS)], { stdio: "inherit" });
const chunk = SEGMENTS * 32;
const ids = JSON.parse(
  execFileSync("python3", ["-c", "import json,sys; from tokenizers import Tokenizer; print(json.dumps(Tokenizer.from_file(sys.argv[1]).encode(open(sys.argv[2]).read()).ids))", join(MODEL, "tokenizer.json"), SAMPLE], { maxBuffer: 1 << 26 }).toString(),
);
// Whole chunks only, each with its targets.
const read = Math.floor(Math.min(tokens, ids.length - 1) / chunk) * chunk;

const types = { ".html": "text/html", ".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm" };
const files = createServer((req, res) => {
  const path = normalize(decodeURIComponent(new URL(req.url, "http://x").pathname)).replace(/^(\.\.[/\\])+/, "");
  const file = path === "/" ? null : path === "/graph.onnx" ? GRAPH : join(DIST, path);
  if (path === "/") {
    res.writeHead(200, { "content-type": "text/html" });
    return res.end("<!doctype html><title>onnxruntime-web</title>");
  }
  if (!file.startsWith(DIST) && file !== GRAPH) return res.writeHead(404).end();
  if (!existsSync(file)) return res.writeHead(404).end();
  res.writeHead(200, { "content-type": types[extname(file)] ?? "application/octet-stream" });
  res.end(readFileSync(file));
});
await new Promise((r) => files.listen(0, "127.0.0.1", r));
const ortUrl = `http://127.0.0.1:${files.address().port}`;
const config = JSON.parse(readFileSync(join(MODEL, "config.json"), "utf8"));

async function onnxruntimeWeb(chrome) {
  const page = await chrome.newPage();
  await page.goto(`${ortUrl}/`);
  return page.evaluate(
    async ({ ids, read, chunk, c }) => {
      const ort = await import("/ort.wasm.min.mjs");
      Object.assign(ort.env.wasm, { numThreads: 1, wasmPaths: "/" });
      const session = await ort.InferenceSession.create(new Uint8Array(await (await fetch("/graph.onnx")).arrayBuffer()), { executionProviders: ["wasm"] });
      const { n_layers: L, n_heads: H, head_dim: d } = c;
      let m = new ort.Tensor("float32", new Float32Array(L * H * d * d), [L, H, d, d]);
      let z = new ort.Tensor("float32", new Float32Array(L * H * d), [L, H, d, 1]);
      let [seconds, lossSum] = [0, 0];
      for (let at = 0; at < read; at += chunk) {
        const feeds = {
          tokens: new ort.Tensor("int64", BigInt64Array.from(ids.slice(at, at + chunk), BigInt), [chunk]),
          targets: new ort.Tensor("int64", BigInt64Array.from(ids.slice(at + 1, at + chunk + 1), BigInt), [chunk]),
          memory_m: m,
          memory_z: z,
        };
        const began = performance.now();
        const out = await session.run(feeds);
        seconds += (performance.now() - began) / 1000;
        ({ memory_m_out: m, memory_z_out: z } = out);
        for (const x of out.nll.data) lossSum += x;
      }
      return { tokensPerSecond: read / seconds, loss: lossSum / read };
    },
    { ids, read, chunk, c: config },
  );
}

async function pageCpu(chrome, server) {
  const page = await open(chrome, `${server.url}/`);
  await page.waitForFunction(() => document.querySelector("#scope").model?.model, null, { timeout: 120_000 });
  await page.evaluate((n) => {
    const scope = document.querySelector("#scope");
    scope.setAttribute("segment-limit", n);
    // One thread each: the page's CPU path in one worker, as onnxruntime-web has one.
    scope.setAttribute("cpu-workers", "1");
  }, read / 32);
  await page.waitForFunction(() => document.querySelector("#scope").text.length > 100_000);
  const started = Date.now();
  const done = await runAndWait(page, "#scope", () => page.click("#read"), 1_800_000);
  return { tokensPerSecond: done.tokens / ((Date.now() - started) / 1000), loss: done.loss };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const server = await serve();
const chrome = await browser({ webgpu: false });
const results = { page: [], ort: [] };
try {
  for (let round = 0; round < rounds; round++) {
    const p = await pageCpu(chrome, server);
    const o = await onnxruntimeWeb(chrome);
    results.page.push(p.tokensPerSecond);
    results.ort.push(o.tokensPerSecond);
    console.log(`round ${round + 1}: page CPU path ${p.tokensPerSecond.toFixed(1)} tokens/s (mean loss ${Number(p.loss).toFixed(4)}), onnxruntime-web ${o.tokensPerSecond.toFixed(1)} tokens/s (mean loss ${o.loss.toFixed(4)})`);
  }
  const [page, ort] = [median(results.page), median(results.ort)];
  console.log(`\n| engine (${read} tokens, Chromium, one thread) | median tokens/s | rounds |\n|---|---|---|`);
  console.log(`| the page's CPU path (infiniscope's reference in wasm) | ${page.toFixed(1)} | ${results.page.map((x) => x.toFixed(1)).join(", ")} |`);
  console.log(`| onnxruntime-web 1.30 (wasm, ${SEGMENTS} segments a call) | ${ort.toFixed(1)} | ${results.ort.map((x) => x.toFixed(1)).join(", ")} |`);
  console.log(`\npage / onnxruntime-web: ${(page / ort).toFixed(2)}`);
} finally {
  await chrome.close();
  server.close();
  files.close();
}
