// Loading that a visitor understands: the weights download with progress (bytes of
// total), then the GPU is prepared; a second visit reads the model from the browser's
// Cache API without a network request for model.safetensors; "forget it" clears it.

import assert from "node:assert/strict";
import { test } from "node:test";
import { modelLoaded, open, shown, suite } from "./harness.mjs";

const env = suite();

test("the model downloads once with progress; a second visit starts from the cache; forgetting it downloads again", async () => {
  const context = await env.chrome.newContext();
  let weightRequests = 0;
  context.on("request", (r) => r.url().endsWith("/models/infini-tiny/model.safetensors") && weightRequests++);
  // The element's progress events, from the first one on.
  await context.addInitScript(() => {
    window.__progress = [];
    document.addEventListener("progress", (e) => e.detail?.stage && window.__progress.push(e.detail), true);
  });
  const ready = (page) => modelLoaded(page);

  const page = await open(context, `${env.server.url}/`);
  await ready(page);
  const first = await page.evaluate(() => window.__progress);
  const downloads = first.filter((p) => p.stage === "download");
  assert.equal(weightRequests, 1, "the weights are fetched once");
  assert.ok(downloads.length > 1, `progress while downloading: ${downloads.length} events`);
  const total = downloads.at(-1).total;
  assert.ok(total > 8e6, `total bytes known: ${total}`);
  assert.equal(downloads.at(-1).loaded, total, "the last event has every byte");
  assert.ok(downloads.every((p, i) => !p.cached && (i === 0 || p.loaded >= downloads[i - 1].loaded)), "bytes only grow");
  assert.equal(first.at(-1).stage, "prepare", "then the engine is prepared");
  const gates = (await shown(page, "#scope")).gates;

  await page.reload();
  await ready(page);
  const second = await page.evaluate(() => window.__progress);
  assert.equal(weightRequests, 1, "a second visit makes no request for model.safetensors");
  assert.deepEqual(second.filter((p) => p.stage === "download").map((p) => [p.cached, p.loaded]), [[true, total]]);
  assert.match(await page.evaluate(() => document.querySelector("#scope").shadowRoot.querySelector(".device").textContent), /WebGPU/);
  assert.deepEqual((await shown(page, "#scope")).gates, gates, "the cached model is the same model");

  await page.click("#forget");
  await page.waitForFunction(() => /forgotten/.test(document.getElementById("forget-message").textContent));
  assert.match(await page.textContent("#forget-message"), /^\d+\.\d MiB forgotten/);
  await page.reload();
  await ready(page);
  assert.equal(weightRequests, 2, "after forgetting, the weights are downloaded again");
  assert.deepEqual(page.problems, []);
  await context.close();
});
