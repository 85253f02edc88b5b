// Tokens per second of the page in headless Chromium: WebGPU (SwiftShader here) and
// the CPU fallback (WebAssembly), on the same text. A benchmark, not a test:
//   node tests/browser/bench.mjs [tokens]      (after `trunk build`)

import { browser, open, runAndWait, serve } from "./harness.mjs";

const tokens = Number(process.argv[2] ?? 1024);
const server = await serve();
try {
  for (const webgpu of [true, false]) {
    const chrome = await browser({ webgpu });
    try {
      const page = await open(chrome, `${server.url}/`);
      await page.waitForFunction(() => document.querySelector("#scope").model?.model, null, { timeout: 120_000 });
      const segments = Math.ceil(tokens / 32);
      await page.evaluate((n) => document.querySelector("#scope").setAttribute("segment-limit", n), segments);
      await page.waitForFunction(() => document.querySelector("#scope").text.length > 100_000);
      const started = Date.now();
      const done = await runAndWait(page, "#scope", () => page.click("#read"), 1_800_000);
      const seconds = (Date.now() - started) / 1000;
      const device = await page.evaluate(() => document.querySelector("#scope").shadowRoot.querySelector(".device").textContent);
      console.log(`${device.padEnd(60)} ${done.tokens} tokens of Paradise Lost in ${seconds.toFixed(1)} s: ${(done.tokens / seconds).toFixed(1)} tokens/s`);
    } finally {
      await chrome.close();
    }
  }
} finally {
  server.close();
}
