// Keep and share: the run's numbers as JSON and CSV (the numbers the panels show, which
// are the CLI's), each panel as a PNG, and the page's state in the URL hash.

import assert from "node:assert/strict";
import { test } from "node:test";
import { assertMatchesCli, cliEval, modelLoaded, open, runAndWait, shown, suite } from "./harness.mjs";

const TEXT = "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of foolishness. ".repeat(3);

const env = suite();

async function readyPage(hash = "") {
  const page = await open(env.chrome, `${env.server.url}/${hash}`);
  await modelLoaded(page);
  return page;
}

/** Clicks `selector` and returns the file it downloads: { name, bytes }. */
async function download(page, selector) {
  const [file] = await Promise.all([page.waitForEvent("download"), page.click(selector)]);
  const chunks = [];
  for await (const chunk of await file.createReadStream()) chunks.push(chunk);
  return { name: file.suggestedFilename(), bytes: Buffer.concat(chunks) };
}

test("the run's numbers download as JSON and CSV, each panel as a PNG", async () => {
  const page = await readyPage();
  await page.fill("#text", TEXT);
  await runAndWait(page, "#scope", () => page.click("#read"));
  const cli = cliEval(TEXT);
  const view = await shown(page, "#scope");
  assertMatchesCli(assert, view, cli);

  const json = await download(page, "infini-scope >> button.export[data-format=json]");
  assert.equal(json.name, "infiniscope-numbers.json");
  const numbers = JSON.parse(json.bytes.toString("utf8"));
  assert.equal(numbers.tokens, cli.tokens);
  assert.equal(numbers.segments.length, cli.segments.length);
  numbers.segments.forEach((s, i) => {
    assert.ok(Math.abs(s.loss - cli.segments[i].loss) < 1e-3, `segment ${i}: JSON ${s.loss}, CLI ${cli.segments[i].loss}`);
    assert.equal(s.shares.length, numbers.gates.length);
  });
  cli.heads.flat().forEach((h, i) => {
    assert.ok(Math.abs(numbers.gates[i].g - h.gate) < 1e-6, `gate ${i}`);
    assert.ok(Math.abs(numbers.gates[i].meanShare - h.memory_share) < 1e-3, `mean share ${i}`);
  });
  // Each head's mean share over the text is the token-weighted mean of its segments'.
  const weighted = numbers.gates.map((_, i) => numbers.segments.reduce((s, seg) => s + seg.shares[i] * seg.tokens, 0) / numbers.tokens);
  weighted.forEach((w, i) => assert.ok(Math.abs(w - numbers.gates[i].meanShare) < 1e-5, `head ${i}: ${w} vs ${numbers.gates[i].meanShare}`));

  const csv = await download(page, "infini-scope >> button.export[data-format=csv]");
  assert.equal(csv.name, "infiniscope-numbers.csv");
  const [header, ...rows] = csv.bytes.toString("utf8").trim().split("\n").map((line) => line.split(","));
  assert.deepEqual(header.slice(0, 4), ["segment", "tokens", "loss", "loss_memory_off"]);
  assert.equal(header.length, 4 + numbers.gates.length);
  assert.equal(rows.length, cli.segments.length);
  rows.forEach((row, i) => {
    assert.equal(+row[0], i);
    assert.equal(row.length, header.length);
    assert.ok(Math.abs(+row[2] - cli.segments[i].loss) < 1e-3, `CSV segment ${i}`);
    assert.equal(row[3], "", "no memory-off reader: empty");
  });

  for (const panel of ["text", "gates", "layer", "memory", "loss", "footprint"]) {
    const png = await download(page, `infini-scope >> section[data-panel=${panel}] >> button.png`);
    assert.equal(png.name, `infiniscope-${panel}.png`);
    assert.deepEqual([...png.bytes.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], `${panel}: a PNG`);
    const [width, height] = [png.bytes.readUInt32BE(16), png.bytes.readUInt32BE(20)];
    assert.ok(width > 100 && height > 50, `${panel}: ${width}×${height}`);
  }
  // The memory panel's PNG has the heatmaps' colours in it, not just a background.
  const colours = await page.evaluate(async () => {
    const blob = await document.querySelector("#scope").panelPng("memory");
    const bitmap = await createImageBitmap(blob);
    const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
    const ctx = canvas.getContext("2d");
    ctx.drawImage(bitmap, 0, 0);
    const data = ctx.getImageData(0, 0, bitmap.width, bitmap.height).data;
    const seen = new Set();
    for (let i = 0; i < data.length; i += 4 * 7) seen.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
    return seen.size;
  });
  assert.ok(colours > 50, `the memory PNG has ${colours} colours`);
  assert.deepEqual(page.problems, []);
  await page.close();
});

test("the page's state round-trips through the URL hash", async () => {
  // Arriving with a state: the head is locked and the panels are the ones asked for.
  const page = await readyPage("#text=sample&head=6&panels=gates,memory,text");
  await page.waitForFunction(() => document.querySelector("#scope").head === 6);
  const hidden = await page.evaluate(() => [...document.querySelector("#scope").shadowRoot.querySelectorAll("section[data-panel]")].filter((s) => s.hidden).map((s) => s.dataset.panel));
  assert.deepEqual(hidden, ["layer", "loss", "footprint"]);
  assert.equal(await page.evaluate(() => document.querySelector("#scope").shadowRoot.querySelector("select.head").value), "6");
  // Changing the state changes the hash: another head, Esc, then a pasted text.
  await page.locator("#scope td.gate").nth(2).click();
  assert.equal((await page.evaluate(() => location.hash)), "#text=sample&head=2&panels=gates%2Cmemory%2Ctext");
  await page.keyboard.press("Escape");
  assert.equal((await page.evaluate(() => location.hash)), "#text=sample&panels=gates%2Cmemory%2Ctext");
  await page.fill("#text", TEXT);
  assert.match((await page.evaluate(() => location.hash)), /^#text=own/);
  // The segment the memory panel is scrubbed to is kept too.
  await runAndWait(page, "#scope", () => page.click("#read"));
  await page.evaluate(() => document.querySelector("#scope").scrub(1));
  const hash = (await page.evaluate(() => location.hash));
  assert.match(hash, /segment=1/);
  // Hostile or malformed values are dropped, not used.
  const odd = await page.evaluate(async () => {
    const { parse } = await import("./state.js");
    return parse("#text=<script>&model=../../etc&head=-1&segment=1e9&panels=gates,<img>");
  });
  assert.deepEqual(odd, { text: "sample", model: "infini-tiny", head: null, segment: null, panels: ["gates"] });
  assert.deepEqual(page.problems, []);
  await page.close();
});
