// Tokens per second of the page in headless Chromium: WebGPU (SwiftShader here) and
// the CPU fallback (WebAssembly), on the same text. A benchmark, not a test:
//   node tests/browser/bench.mjs [tokens] [--cpu] [--rounds N] [--then DIST] [--workers 1]
// (after `trunk build`). --cpu reads with the CPU fallback only; --then DIST also
// serves an older build of the page (its Trunk output), read before this one in every
// round, and prints both builds' medians and their ratio; --workers 1 keeps the CPU
// path in one worker (the element's cpu-workers attribute).

import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { DIST, browser, open, runAndWait, serve } from "./harness.mjs";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { cpu: { type: "boolean" }, rounds: { type: "string", default: "1" }, then: { type: "string" }, workers: { type: "string", default: "2" } },
});
const tokens = Number(positionals[0] ?? 1024);
const builds = values.then ? [["then", resolve(values.then)], ["now", DIST]] : [["now", DIST]];
const paths = values.cpu ? [false] : [true, false];

/** Reads the first `tokens` tokens of the bundled sample with the page at `url`; tokens/s. */
async function read(url, webgpu) {
  const chrome = await browser({ webgpu });
  try {
    const page = await open(chrome, `${url}/`);
    await page.waitForFunction(() => document.querySelector("#scope").model?.model, null, { timeout: 120_000 });
    await page.evaluate(([n, workers]) => {
      const scope = document.querySelector("#scope");
      scope.setAttribute("segment-limit", n);
      scope.setAttribute("cpu-workers", workers);
    }, [Math.ceil(tokens / 32), values.workers]);
    await page.waitForFunction(() => document.querySelector("#scope").text.length > 100_000);
    const started = Date.now();
    const done = await runAndWait(page, "#scope", () => page.click("#read"), 1_800_000);
    const seconds = (Date.now() - started) / 1000;
    const device = await page.evaluate(() => document.querySelector("#scope").shadowRoot.querySelector(".device").textContent);
    console.log(`${device.padEnd(60)} ${done.tokens} tokens of Paradise Lost in ${seconds.toFixed(1)} s: ${(done.tokens / seconds).toFixed(1)} tokens/s`);
    return done.tokens / seconds;
  } finally {
    await chrome.close();
  }
}

const servers = await Promise.all(builds.map(([, dist]) => serve(dist)));
try {
  const runs = {};
  for (let round = 1; round <= Number(values.rounds); round++) {
    for (const webgpu of paths) {
      for (const [i, [name]] of builds.entries()) {
        if (builds.length > 1) process.stdout.write(`round ${round}, ${name}: `);
        (runs[`${webgpu ? "WebGPU" : "CPU"} ${name}`] ??= []).push(await read(servers[i].url, webgpu));
      }
    }
  }
  if (builds.length > 1 || Number(values.rounds) > 1) {
    const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    console.log(`\n| path | build | median tokens/s | rounds |\n|---|---|---|---|`);
    for (const [key, xs] of Object.entries(runs)) {
      const [path, name] = key.split(" ");
      console.log(`| ${path} | ${name === "then" ? values.then : "this build"} | ${median(xs).toFixed(1)} | ${xs.map((x) => x.toFixed(1)).join(", ")} |`);
    }
    for (const path of paths.map((w) => (w ? "WebGPU" : "CPU"))) {
      if (runs[`${path} then`]) console.log(`${path}: this build / then: ${(median(runs[`${path} now`]) / median(runs[`${path} then`])).toFixed(2)}×`);
    }
  }
} finally {
  for (const server of servers) server.close();
}
