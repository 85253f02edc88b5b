// embed.html: two <infini-scope> elements on one page share one model and one
// device, and each shows the CLI's numbers for its own text. Then the same page
// without WebGPU, on the CPU reference compiled to WebAssembly.

import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { assertMatchesCli, browser, cliEval, open, ROOT, serve, shown } from "./harness.mjs";

let server;
after(() => server?.close());
before(async () => {
  server = await serve();
});

async function bothDone(page) {
  await page.waitForFunction(
    () => ["first", "second"].every((id) => document.getElementById(id).shadowRoot.querySelectorAll("table.losses tbody tr").length === 8 && !document.getElementById(id).shadowRoot.querySelector("button.cancel").disabled === false),
    null,
    { timeout: 300_000 },
  );
}

async function checkEmbed(webgpu) {
  const chrome = await browser({ webgpu });
  try {
    const page = await open(chrome, `${server.url}/embed.html`);
    await bothDone(page);
    const texts = await page.evaluate(() => ["first", "second"].map((id) => document.getElementById(id).text));
    const sharesModel = await page.evaluate(() => document.getElementById("first").model === document.getElementById("second").model);
    assert.ok(sharesModel, "both elements hold the same loaded model (one device)");
    // The element spaces its frames by where the model reads (infini-scope.js, #frameEvery).
    const onGpu = await page.evaluate(() => document.getElementById("first").model.model.onGpu);
    assert.equal(onGpu, webgpu, "the model says whether it reads on the GPU");
    // On the CPU path the engine's worker runs each reading's first part and a second
    // worker the rest (scope/engine-worker.js): two for both elements.
    const workers = page.workers().map((w) => new URL(w.url()).pathname);
    assert.deepEqual(workers, Array(webgpu ? 1 : 2).fill("/scope/engine-worker.js"), "one engine worker (and on the CPU its second) for both");
    for (const [i, id] of ["first", "second"].entries()) {
      const view = await shown(page, `#${id}`);
      // Chromium has relaxed SIMD: the worker loads that build (wasm-builds.test.mjs runs both).
      assert.match(view.device, webgpu ? /WebGPU/ : /CPU reference \(WebAssembly, relaxed SIMD\)/, view.device);
      if (!webgpu) assert.match(view.note, /WebGPU/i, "says why it is on the CPU");
      assertMatchesCli(assert, view, cliEval(texts[i]), { segments: 8 });
    }
    if (webgpu) await page.screenshot({ path: join(ROOT, "target/screenshots/embed.png"), fullPage: true });
    assert.deepEqual(page.problems, []);
  } finally {
    await chrome.close();
  }
}

test("embed.html: two instances on WebGPU", () => checkEmbed(true));
test("embed.html without WebGPU falls back to the CPU reference with the same numbers", () => checkEmbed(false));

test("an element out of view keeps reading but draws only once it is scrolled to", async () => {
  const chrome = await browser();
  try {
    const page = await open(chrome, `${server.url}/embed.html`);
    await bothDone(page);
    const done = await page.evaluate(
      () =>
        new Promise((resolve) => {
          const el = document.createElement("infini-scope");
          el.id = "below";
          el.style.marginTop = "5000px";
          el.setAttribute("autorun", "");
          el.setAttribute("segment-limit", "3");
          el.addEventListener("done", (e) => resolve(e.detail), { once: true });
          document.body.append(el);
          el.text = "Far below the fold, the model reads all the same. ".repeat(12);
        }),
    );
    assert.ok(done.tokens > 0, "it read");
    // Heatmaps show the empty memory (every cell the scale's middle) until drawn:
    // pixels unlike each heatmap's first, per heatmap.
    await page.evaluate(() => {
      window.inked = () =>
        [...document.getElementById("below").shadowRoot.querySelectorAll(".heads canvas.m")].map((c) => {
          const data = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
          let coloured = 0;
          for (let i = 0; i < data.length; i += 4) if (data[i] !== data[0] || data[i + 1] !== data[1] || data[i + 2] !== data[2]) coloured++;
          return coloured;
        });
    });
    assert.ok(await page.evaluate(() => window.inked().every((n) => n === 0)), "no heatmap drawn while out of view");
    await page.evaluate(() => document.getElementById("below").scrollIntoView());
    await page.waitForFunction(() => window.inked().every((n) => n > 0));
  } finally {
    await chrome.close();
  }
});
