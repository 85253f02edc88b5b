// The CPU path split over two workers (the model's first part in the engine's worker,
// the rest in a second one, each on a core: scope/engine-worker.js) reads exactly as
// one worker does and as the CLI: losses, memory shares, memory, a token's recall map
// and the continuation written after the text.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { assertMatchesCli, cliEval, modelLoaded, open, ROOT, shown, suite } from "./harness.mjs";

const env = suite({ webgpu: false });
// About 40 segments: the reader steps many times, so the rest of one step runs while
// the first part of the next does.
const TEXT = readFileSync(join(ROOT, "samples/paradise-lost.txt"), "utf8").slice(0, 5000);

/** Reads TEXT with `workers` CPU workers; what the element reported and shows. */
async function read(page, workers) {
  const reading = await page.evaluate(
    async ([text, workers]) => {
      const el = document.querySelector("#scope");
      el.setAttribute("cpu-workers", workers);
      const segments = [];
      const record = (e) => segments.push(e.detail);
      el.addEventListener("segment", record);
      el.text = text;
      const run = await el.run();
      el.removeEventListener("segment", record);
      const last = run.tokensDone - 1;
      const recall = await el.selectToken(last);
      const continuation = await el.generate(8, { temperature: 0 });
      return { segments, recall: recall && Array.from(recall.shares), continuation, last, workers: run.workers };
    },
    [TEXT, `${workers}`],
  );
  return { ...reading, view: await shown(page, "#scope") };
}

test("two workers on the CPU path read, recall and write as one worker and the CLI", async () => {
  const page = await open(env.chrome, `${env.server.url}/`);
  await modelLoaded(page);
  const one = await read(page, 1);
  const two = await read(page, 2);
  assert.ok(one.segments.length > 30, `${one.segments.length} segments`);
  assert.ok(one.segments.every((s) => !/two workers/.test(s.device)), one.segments[0].device);
  assert.ok(two.segments.every((s) => /two workers/.test(s.device)), `split: ${two.segments[0].device}`);
  // The element spaces its frames by this count (infini-scope.js, #frameEvery).
  assert.deepEqual([one.workers, two.workers], [1, 2], "the reading says how many workers read it");
  // Steps are sized by time, so the two readings cut the text into other chunks, and
  // the products' tiles sum some rows in another order: equal to float rounding.
  const close = (a, b, what) => {
    assert.equal(a.length, b.length, what);
    a.forEach((x, i) => assert.ok(Math.abs(x - b[i]) <= 1e-5 * Math.max(1, Math.abs(b[i])), `${what} [${i}]: ${x} against ${b[i]}`));
  };
  assert.deepEqual(two.segments.map((s) => s.tokens), one.segments.map((s) => s.tokens), "the same segments");
  close(two.segments.map((s) => s.loss), one.segments.map((s) => s.loss), "per-segment losses");
  // The memory comes with each step's last segment: compare it where both readings
  // carried it (the last segment always).
  const both = one.segments.filter((s, i) => s.memoryNorms && two.segments[i].memoryNorms);
  assert.ok(both.at(-1)?.index === one.segments.at(-1).index, "both carried the memory after the last segment");
  for (const s of both) {
    const [a, b] = [two.segments[s.index].memoryNorms, s.memoryNorms];
    close([...a.m, ...a.z], [...b.m, ...b.z], `‖M‖ and ‖z‖ after segment ${s.index}`);
  }
  assert.deepEqual(two.view.gates.map((g) => g.kind), one.view.gates.map((g) => g.kind), "head kinds");
  close(two.view.gates.map((g) => g.share), one.view.gates.map((g) => g.share), "mean memory shares");
  assert.ok(one.recall?.length > 0, "a recall map for the last token");
  close(two.recall, one.recall, `recall map of token ${one.last}`);
  assert.ok(one.continuation.length > 0);
  assert.equal(two.continuation, one.continuation, "greedy continuation");
  assertMatchesCli(assert, two.view, cliEval(TEXT));
  assert.deepEqual(page.problems, []);
});
