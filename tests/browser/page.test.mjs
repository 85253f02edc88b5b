// The demo page on SwiftShader WebGPU: it loads, reads a pasted text, every panel
// draws, and what it shows equals the native CLI on the same text and model.

import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { assertMatchesCli, cliEval, cliPasskey, cliRecall, modelLoaded, open, ROOT, runAndWait, shown, suite } from "./harness.mjs";

const SHOTS = join(ROOT, "target/screenshots");
const TEXT =
  "Whether I shall turn out to be the hero of my own life, or whether that station will be held by anybody else, these pages must show. " +
  "To begin my life with the beginning of my life, I record that I was born (as I have been informed and believe) on a Friday, at twelve o'clock at night. " +
  "It was remarked that the clock began to strike, and I began to cry, simultaneously.";

const env = suite();
mkdirSync(SHOTS, { recursive: true });

async function readyPage(hash = "") {
  const page = await open(env.chrome, `${env.server.url}/${hash}`);
  await modelLoaded(page);
  return page;
}

test("the page reads a pasted text on WebGPU and shows the CLI's numbers", async () => {
  const page = await readyPage();
  const before = await shown(page, "#scope");
  assert.match(before.device, /WebGPU/, `runs on WebGPU: ${before.device}`);
  // The engine reads in a worker, where the model and its WebGPU device live.
  assert.deepEqual(page.workers().map((w) => new URL(w.url()).pathname), ["/scope/engine-worker.js"]);
  await page.fill("#text", TEXT);
  const done = await runAndWait(page, "#scope", () => page.click("#read"));
  const cli = cliEval(TEXT);
  assert.equal(done.tokens, cli.tokens, "same number of tokens as the CLI");
  const page_ = await shown(page, "#scope");
  assertMatchesCli(assert, page_, cli);
  cli.heads.flat().forEach((h, i) => {
    assert.ok(Math.abs(page_.gates[i].share - h.memory_share) < 1e-3, `mean memory share ${i}: page ${page_.gates[i].share}, CLI ${h.memory_share}`);
    assert.equal(page_.gates[i].kind, h.kind);
  });

  // Every panel drew something.
  const drawn = await page.evaluate(() => {
    const root = document.querySelector("#scope").shadowRoot;
    const inked = (c) => {
      const data = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
      let coloured = 0;
      for (let i = 0; i < data.length; i += 4) if (data[i] !== 246 || data[i + 1] !== 246 || data[i + 2] !== 246) coloured++;
      return coloured;
    };
    return {
      heatmaps: [...root.querySelectorAll(".heads canvas.m")].map(inked),
      z: [...root.querySelectorAll(".heads canvas.z")].map(inked),
      // Lines with points (the empty charts have their lines' elements already).
      normLines: [...root.querySelectorAll("svg.norms path")].filter((p) => p.getAttribute("d")).length,
      lossLines: [...root.querySelectorAll("svg.loss-chart path")].filter((p) => p.getAttribute("d")).length,
      text: root.querySelector(".text").textContent,
      tinted: [...root.querySelectorAll(".text span")].filter((s) => s.style.background).length,
      kv: root.querySelector(".kv-bytes").textContent,
      memory: root.querySelector(".memory-bytes").textContent,
      status: root.querySelector(".status").textContent,
    };
  });
  assert.ok(drawn.heatmaps.length > 0 && drawn.heatmaps.every((n) => n > 0), `every M heatmap has colour: ${drawn.heatmaps}`);
  assert.ok(drawn.z.every((n) => n > 0), "every z strip has colour");
  assert.ok(drawn.normLines > 0 && drawn.lossLines > 0, "norm and loss charts drawn");
  assert.equal(drawn.text, TEXT, "the text panel shows exactly the text");
  assert.ok(drawn.tinted > 0, "tokens tinted by memory share");
  assert.match(drawn.memory, /KiB/);
  assert.match(drawn.kv, /KiB/);
  assert.match(drawn.status, new RegExp(`${cli.tokens} / ~${cli.tokens} tokens`));
  // Head kinds and their thresholds are the engine's, as the CLI reports them.
  const kinds = cli.heads.flat().map((h) => h.kind);
  const count = (k) => kinds.filter((x) => x === k).length;
  const [below, above] = [cli.thresholds.local_below, cli.thresholds.memory_above].map((x) => +x.toPrecision(6));
  assert.equal(
    await page.evaluate(() => document.querySelector("#scope").shadowRoot.querySelector(".counts").textContent),
    `${count("specialized-local")} specialized-local (g < ${below}), ${count("mixer")} mixer, ${count("specialized-memory")} specialized-memory (g > ${above}) heads`,
  );
  assert.deepEqual(page.problems, []);
  await page.close();
});

test("the sample runs live: screenshot mid-run, pause, resume, cancel", async () => {
  const page = await readyPage();
  await page.waitForFunction(() => document.querySelector("#scope").text.length > 100_000);
  await page.click("#read");
  // Functions, not strings: the page's CSP refuses to evaluate strings as code.
  const rows = () => page.evaluate(() => document.querySelector("#scope").shadowRoot.querySelectorAll("table.losses tbody tr").length);
  const moreRows = (n, timeout) =>
    page.waitForFunction((n) => document.querySelector("#scope").shadowRoot.querySelectorAll("table.losses tbody tr").length >= n, n, { timeout });
  await moreRows(6, 180_000);
  await page.screenshot({ path: join(SHOTS, "page-mid-run.png"), fullPage: true });
  // Every head's heatmap stays inside the memory panel, however many heads the model has.
  const overflow = await page.evaluate(() => {
    const root = document.querySelector("#scope").shadowRoot;
    const panel = root.querySelector('section[data-panel="memory"]').getBoundingClientRect();
    return [...root.querySelectorAll(".heads figure")].filter((f) => f.getBoundingClientRect().right > panel.right).length;
  });
  assert.equal(overflow, 0, `${overflow} memory heatmaps overflow their panel`);
  await page.click("infini-scope >> button.pause");
  const paused = await rows();
  // The step in flight when Pause is clicked still lands (a chunk: up to 32 segments,
  // sized by the page to its step time); after it, nothing.
  await page.waitForTimeout(1500);
  const still = await rows();
  await page.waitForTimeout(1500);
  const later = await rows();
  assert.ok(still - paused <= 32, `at most one step lands after Pause: ${paused} → ${still} segments`);
  assert.equal(later, still, `paused: ${still} → ${later} segments after the step in flight`);
  await page.click("infini-scope >> button.pause");
  await moreRows(still + 1, 60_000);
  await page.click("infini-scope >> button.cancel");
  await page.waitForFunction(() => document.querySelector("#scope").shadowRoot.querySelector("button.run").disabled === false);
  // Continue-writing after the text read so far streams tokens into the box.
  assert.deepEqual(page.problems, []);
  await page.close();
});

test("a clicked token's recall map, the strip's jump, scrubbing back and linked focus", async () => {
  const page = await readyPage();
  const text = [TEXT, TEXT.toUpperCase(), TEXT.split(" ").reverse().join(" "), TEXT].join("\n");
  // Every segment that reports M and z, as the engine reported it.
  await page.evaluate(() => {
    window.reported = {};
    document.querySelector("#scope").addEventListener("segment", (e) => e.detail.memoryNorms && (window.reported[e.detail.index] = e.detail.memoryNorms));
  });
  await page.fill("#text", text);
  const done = await runAndWait(page, "#scope", () => page.click("#read"));
  const n = await page.evaluate(() => JSON.parse(document.querySelector("#scope").model.model.info).config.segment_len);
  assert.ok(done.tokens > 8 * n, `several segments: ${done.tokens} tokens`);

  // Click a token in the sixth segment: its shares are the CLI's for that token.
  const token = 5 * n + 7;
  await page.locator("#scope .text span").nth(token).click();
  const map = await page.evaluate((t) => document.querySelector("#scope").selectToken(t), token);
  const cli = cliRecall(text, { token });
  assert.equal(cli.token, token);
  assert.equal(map.segments, 5);
  assert.equal(map.segments, cli.segment);
  cli.heads.forEach((h, i) => {
    h.shares.forEach((want, j) => assert.ok(Math.abs(map.shares[i * map.segments + j] - want) <= 1e-4, `token ${token} L${h.layer}H${h.head} segment ${j}: ${map.shares[i * map.segments + j]} vs ${want}`));
  });
  const info = await page.textContent("#scope .recall-info");
  assert.match(info, new RegExp(`token ${token} .*5 segments before its own \\(any head\\); largest in segment \\d`));
  assert.equal(await page.locator("#scope .text span.selected").count(), 1);
  // ← moves the selection to the token before (its map comes from the worker a moment later).
  await page.keyboard.press("ArrowLeft");
  await page.waitForFunction((t) => document.querySelector("#scope").shadowRoot.querySelector(".recall-info").textContent.startsWith(`token ${t} `), token - 1);

  // Clicking the strip's third cell shows segment 2: its tokens flash in the text panel.
  const strip = page.locator("#scope canvas.recall-strip");
  const box = await strip.boundingBox();
  await strip.click({ position: { x: (2.5 / 5) * box.width, y: 5 } });
  const flashed = await page.evaluate(() => [...document.querySelector("#scope").shadowRoot.querySelectorAll(".text span.flash")].map((s) => s.segment));
  assert.ok(flashed.length > 0 && flashed.every((j) => j === 2), `segment 2 flashes: ${flashed}`);

  // Scrubbing back: the memory panel shows the norms the engine reported for that segment.
  const indices = Object.keys(await page.evaluate(() => window.reported)).map(Number).sort((a, b) => a - b);
  const reported = await page.evaluate(() => window.reported);
  const back = indices[Math.max(0, indices.length - 3)];
  await page.evaluate((j) => {
    const input = document.querySelector("#scope").shadowRoot.querySelector("input.scrub");
    input.value = j;
    input.dispatchEvent(new Event("input"));
  }, back);
  const titles = await page.evaluate(() => [...document.querySelector("#scope").shadowRoot.querySelectorAll(".heads canvas.m")].map((c) => c.title));
  titles.forEach((title, i) => assert.ok(title.startsWith(`‖M‖ = ${reported[back].m[i].toFixed(3)},`), `head ${i} after segment ${back}: ${title} vs ${reported[back].m[i]}`));
  assert.match(await page.textContent("#scope .memory-info"), new RegExp(`^after segment ${back} · segment ${back}: loss \\d`));
  const live = await page.evaluate(() => document.querySelector("#scope").scrub(1e9));
  assert.equal(live.snapshot, indices.at(-1));
  assert.match(await page.textContent("#scope .memory-info"), /^live: after segment/);

  // Linked focus: a click on a gate locks its head (heatmap outlined, text tinted and
  // the recall map drawn by that head); Esc unlocks.
  await page.locator("#scope td.gate").nth(5).click();
  const focused = await page.evaluate(() => {
    const root = document.querySelector("#scope").shadowRoot;
    return { head: root.querySelector("select.head").value, figures: [...root.querySelectorAll(".heads figure")].map((f) => f.classList.contains("focus")), info: root.querySelector(".recall-info").textContent };
  });
  assert.equal(focused.head, "5");
  assert.deepEqual(focused.figures.map((f, i) => f === (i === 5)), focused.figures.map(() => true), `only head 5's heatmap is outlined: ${focused.figures}`);
  assert.match(focused.info, /\(L1H1\)/);
  await page.keyboard.press("Escape");
  assert.equal(await page.evaluate(() => document.querySelector("#scope").shadowRoot.querySelector("select.head").value), "mean");
  assert.equal(await page.locator("#scope .heads figure.focus").count(), 0);
  await page.locator("#scope section[data-panel=text]").screenshot({ path: join(SHOTS, "token-recall.png") });
  assert.deepEqual(page.problems, []);
  await page.close();
});

test("the shifted model: chosen in the URL, the same haystack as the paper's model, the CLI's answers", async () => {
  const SHIFT = join(ROOT, "target/dist/models/infini-tiny-shift");
  const page = await readyPage("#model=infini-tiny-shift");
  assert.equal(await page.inputValue("#model"), "infini-tiny-shift");
  assert.match((await shown(page, "#scope")).device, /4\.47M parameters/, "the shifted model (4,466,960 parameters) is loaded");
  // Its free-running answer is the CLI's for the CLI's key: the wasm engine runs its shifts.
  const cli = cliPasskey(256, 0.5, SHIFT);
  const mine = await page.evaluate((key) => document.getElementById("scope").passkey(256, 0.5, +key), cli.key);
  assert.deepEqual([mine.key, mine.answer], [cli.key, cli.answer], `greedy answer for key ${cli.key}`);
  // Both models on one haystack: the paper's first, then this one; one line each, same key.
  await page.selectOption("#pk-length", "256");
  await page.selectOption("#pk-depth", "0");
  await page.click("#pk-both");
  const lines = ['[id="pk-256-0"] .pk-infini-tiny', '[id="pk-256-0"] .pk-infini-tiny-shift'];
  await page.waitForFunction((lines) => lines.every((l) => / \/ \d{5}$/.test(document.querySelector(l).textContent)) && !document.getElementById("pk-run").disabled, lines, { timeout: 240_000 });
  const [paper, shift] = await Promise.all(lines.map((l) => page.textContent(l)));
  assert.match(paper, /^paper "\d*" \/ \d{5}$/);
  assert.match(shift, /^shift "\d*" \/ \d{5}$/);
  assert.equal(paper.split(" / ")[1], shift.split(" / ")[1], `one key for both: ${paper} | ${shift}`);
  assert.equal(await page.inputValue("#model"), "infini-tiny-shift", "the chosen model is back");
  assert.match((await shown(page, "#scope")).device, /4\.47M parameters/);
  // Choosing the paper's model loads it, ends the shown reading and drops it from the URL.
  await page.fill("#text", TEXT);
  await runAndWait(page, "#scope", () => page.click("#read"));
  assert.notEqual(await page.evaluate(() => document.getElementById("scope").numbers()), null, "the shifted model's reading is shown");
  await page.selectOption("#model", "infini-tiny");
  await page.waitForFunction(() => /4\.46M parameters/.test(document.getElementById("scope").shadowRoot.querySelector(".device").textContent));
  assert.equal(await page.evaluate(() => location.hash), "#text=own");
  assert.equal(await page.evaluate(() => document.getElementById("scope").numbers()), null, "no reading of the other model is kept");
  await page.locator("section.experiments > div").first().screenshot({ path: join(SHOTS, "passkey-both.png") });
  assert.deepEqual(page.problems, []);
  await page.close();
});

test("passkey and continue-writing", async () => {
  const page = await readyPage();
  await page.selectOption("#pk-length", "256");
  await page.selectOption("#pk-depth", "0.5");
  await page.click("#pk-run");
  const line = '[id="pk-256-0.5"] .pk-infini-tiny';
  await page.waitForFunction((line) => / \/ \d{5}$/.test(document.querySelector(line).textContent), line, { timeout: 180_000 });
  const cell = await page.textContent(line);
  const [answer, key] = cell.replace(/^paper /, "").split(" / ");
  assert.equal(key.length, 5);
  assert.ok(JSON.parse(answer).length > 0, `the model's answer is shown beside the key: ${cell}`);
  // The page's free-running answer is the CLI's, for the CLI's key.
  const cli = cliPasskey(256, 0.5);
  const mine = await page.evaluate((key) => document.getElementById("scope").passkey(256, 0.5, +key), cli.key);
  assert.equal(mine.key, cli.key);
  assert.equal(mine.answer, cli.answer, `greedy answer for key ${cli.key}`);
  assert.equal(mine.correct, cli.answer === cli.key);
  // The answer's recall map is the CLI's for the same text (the haystack up to the
  // question), head by head, within 1e-4.
  const { text, segmentTexts } = await page.evaluate(async (key) => {
    const scope = document.getElementById("scope");
    const hay = await scope.model.model.passkey(256, 0.5, +key);
    const n = JSON.parse(scope.model.model.info).config.segment_len;
    const pieces = hay.pieces.slice(0, hay.answer_at);
    const segmentTexts = [];
    for (let i = 0; i + n < pieces.length; i += n) segmentTexts.push(pieces.slice(i, i + n).join(""));
    return { text: pieces.join(""), segmentTexts };
  }, cli.key);
  const recall = cliRecall(text, { contributions: true });
  assert.deepEqual(recall.segments.map((s) => s.text), segmentTexts.slice(0, recall.segment), "the CLI cut the same segments");
  const { shares, layers, heads, segments, needle } = mine.recall;
  assert.equal(segments, recall.segment);
  recall.heads.forEach((h, i) => {
    assert.equal(h.layer * heads + h.head, i);
    h.shares.forEach((want, j) => assert.ok(Math.abs(shares[i * segments + j] - want) <= 1e-4, `L${h.layer}H${h.head} segment ${j}: ${shares[i * segments + j]} vs ${want}`));
  });
  // Per memory-leaning head: the segments with the largest share and the largest
  // contribution ‖c_j‖ (where the read's values came from), beside the needle's.
  const largest = (values) => values.indexOf(Math.max(...values));
  const report = recall.heads
    .filter((h) => h.gate > 0.5)
    .map((h) => `L${h.layer}H${h.head} (g ${h.gate.toFixed(2)}): share ${largest(h.shares)}, contribution ${largest(h.contributions.map((c) => Math.hypot(...c)))}`);
  console.log(`needle in segment ${needle} of ${segments}; largest per head: ${report.join(", ")}`);
  assert.match(await page.textContent("#pk-recall-note"), /the needle starts in segment \d+/);
  // The element's text panel selects the question's last token and marks the needle too.
  assert.match(await page.textContent("#scope .recall-info"), new RegExp(`over the ${segments} segments before its own .*the needle starts in segment ${needle} `));
  await page.locator("#scope section[data-panel=text]").screenshot({ path: join(SHOTS, "passkey-text-recall.png") });
  await page.locator("section.experiments > div").first().screenshot({ path: join(SHOTS, "passkey-recall.png") });
  await page.fill("#gen-count", "12");
  await page.click("#gen-run");
  await page.waitForFunction(() => !document.getElementById("gen-run").disabled && document.getElementById("gen-out").textContent.length > 0, null, { timeout: 120_000 });
  const generated = await page.textContent("#gen-out");
  assert.ok(generated.length > 0 && !/Read a text first|still being read/.test(generated), `generated: ${generated}`);
  assert.deepEqual(page.problems, []);
  await page.close();
});

test("a lost GPU device mid-run moves to the CPU and keeps the numbers", async () => {
  const page = await readyPage();
  await page.fill("#text", TEXT);
  const done = await runAndWait(page, "#scope", async () => {
    await page.click("#read");
    await page.waitForFunction(() => document.querySelector("#scope").shadowRoot.querySelectorAll("table.losses tbody tr").length >= 2);
    await page.evaluate(() => document.querySelector("#scope").model.model.lose_device());
  });
  const view = await shown(page, "#scope");
  assert.match(view.note, /GPU was lost/);
  assert.match(view.device, /CPU reference/);
  assertMatchesCli(assert, view, cliEval(TEXT));
  assert.ok(done.tokens > 0);
  await page.close();
});

test("the wasm Session reads chunks of segments with the numbers of one at a time", async () => {
  const page = await readyPage();
  const result = await page.evaluate(async (text) => {
    // The page's engine lives in a worker: this loads a model of its own here.
    const { Session, WebModel } = await import("/infiniscope.js");
    const files = await Promise.all(["config.json", "model.safetensors", "tokenizer.json"].map(async (f) => new Uint8Array(await (await fetch(`/models/infini-tiny/${f}`)).arrayBuffer())));
    const model = await WebModel.load(...files, true);
    const read = async (most) => {
      const session = new Session(model, true);
      const encoder = model.encoder();
      session.feed(encoder.push(text).ids);
      session.feed(encoder.finish().ids);
      session.end_text();
      const steps = [];
      const losses = [];
      for (;;) {
        const results = await session.step(most);
        if (results.length === 0) break;
        steps.push(results.length);
        for (const r of results) losses.push(Array.from(r.loss));
      }
      return { steps, losses };
    };
    return { one: await read(1), chunked: await read(4) };
  }, TEXT);
  assert.ok(result.chunked.steps.some((n) => n > 1), `some steps held several segments: ${result.chunked.steps}`);
  assert.equal(result.chunked.losses.length, result.one.losses.length);
  result.one.losses.forEach((want, i) =>
    want.forEach((w, t) => assert.ok(Math.abs(result.chunked.losses[i][t] - w) < 1e-3, `segment ${i} token ${t}`)),
  );
  assert.deepEqual(page.problems, []);
  await page.close();
});
