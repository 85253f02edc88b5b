// Faults under load: the GPU device lost at different points of a read (before the
// next submission, while a step is in flight, while its results are read back), Pause
// and Cancel pressed at every stage, and two elements on one device with one removed
// mid-read. Each ends with the numbers of an undisturbed CPU run, or a clear message,
// and the page still answers.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { before, test } from "node:test";
import { assertMatchesCli, cliEval, DIST, modelLoaded, open, runAndWait, shown, suite } from "./harness.mjs";

// About 16 segments of the sample: long enough for several steps on SwiftShader.
const TEXT = readFileSync(join(DIST, "samples/paradise-lost.txt"), "utf8").slice(3000, 5000);

const env = suite();
let cli;
before(async () => {
  cli = cliEval(TEXT);
});

async function readyPage() {
  const page = await open(env.chrome, `${env.server.url}/`);
  await modelLoaded(page);
  await page.fill("#text", TEXT);
  return page;
}

const running = (page) => page.evaluate(() => document.querySelector("#scope").shadowRoot.querySelector("button.run").disabled);

// (segment after which, milliseconds later): 0 ms loses the device between two steps,
// before the next submission; the others land while a step is queued, runs, or is
// being read back (a step takes ≈ 100–400 ms on SwiftShader here).
const LOSSES = [
  [1, 0],
  [2, 3],
  [3, 40],
  [5, 150],
  [8, 300],
];

for (const [after, delay] of LOSSES) {
  test(`the GPU lost ${delay} ms after segment ${after}: the read ends on the CPU with the CLI's numbers`, async () => {
    const page = await readyPage();
    await page.evaluate(
      ([k, ms]) => {
        const scope = document.querySelector("#scope");
        let seen = 0;
        const lose = () => scope.model.model.lose_device();
        scope.addEventListener("segment", function once() {
          if (++seen < k) return;
          scope.removeEventListener("segment", once);
          if (ms === 0) lose();
          else setTimeout(lose, ms);
        });
      },
      [after, delay],
    );
    const done = await runAndWait(page, "#scope", () => page.click("#read"));
    const view = await shown(page, "#scope");
    assert.equal(done.tokens, cli.tokens);
    assert.match(view.note, /GPU was lost/);
    assert.match(view.device, /CPU reference/);
    assertMatchesCli(assert, view, cli);
    // Still answering: the text panel, and the next read.
    const again = await runAndWait(page, "#scope", () => page.click("#read"));
    assert.equal(again.tokens, cli.tokens);
    assert.deepEqual(page.problems, []);
    await page.close();
  });
}

test("Pause and Cancel at every stage leave the page answering, and the next read has the CLI's numbers", async () => {
  const page = await readyPage();
  const scope = "#scope";
  const click = (button) => page.click(`infini-scope >> button.${button}`);
  // While the text is still being tokenized (the first 16K characters of 2 MB).
  await page.evaluate(() => (document.querySelector("#scope").text = "A long text to tokenize. ".repeat(80_000)));
  await page.evaluate(() => {
    document.querySelector("#scope").run();
  });
  await click("cancel");
  await page.waitForFunction(() => !document.querySelector("#scope").shadowRoot.querySelector("button.run").disabled);
  // While a step is in flight, at several delays after Read.
  for (const ms of [0, 10, 60, 250]) {
    await page.fill("#text", `${TEXT} `.repeat(2));
    await page.click("#read");
    await page.waitForTimeout(ms);
    await click("cancel");
    await page.waitForFunction(() => !document.querySelector("#scope").shadowRoot.querySelector("button.run").disabled);
    assert.equal(await running(page), false, `Cancel ${ms} ms after Read`);
  }
  // Pause and Resume, twice, while steps are in flight: the read completes exactly.
  await page.fill("#text", TEXT);
  const done = await runAndWait(page, scope, async () => {
    await page.click("#read");
    await page.waitForFunction(() => document.querySelector("#scope").shadowRoot.querySelectorAll("table.losses tbody tr").length >= 2);
    await click("pause");
    await page.waitForTimeout(300);
    await click("pause");
    await page.waitForTimeout(50);
    await click("pause");
    await page.waitForTimeout(300);
    await click("pause");
  });
  assert.equal(done.tokens, cli.tokens);
  assertMatchesCli(assert, await shown(page, scope), cli);
  // Cancel while a passkey haystack is read: the experiment says so, and the page goes on.
  const cancelled = await page.evaluate(async () => {
    const el = document.querySelector("#scope");
    const asked = el.passkey(1024, 0.5, 12345).then(() => "finished", (e) => e.message);
    await new Promise((r) => setTimeout(r, 500));
    await el.cancel();
    return asked;
  });
  assert.match(cancelled, /cancelled/);
  // Continue-writing without a finished text: a message, not a failure.
  await page.fill("#gen-count", "3");
  await page.click("#gen-run");
  await page.waitForFunction(() => !document.getElementById("gen-run").disabled);
  assert.match(await page.textContent("#gen-out"), /let the reading finish|Read a text first/);
  const last = await runAndWait(page, scope, () => page.click("#read"));
  assert.equal(last.tokens, cli.tokens);
  assertMatchesCli(assert, await shown(page, scope), cli);
  assert.deepEqual(page.problems, []);
  await page.close();
});

test("two elements on one device, one removed mid-read: the other ends with the CLI's numbers", async () => {
  const page = await readyPage();
  const done = await page.evaluate(async (text) => {
    const make = (id) => {
      const el = document.createElement("infini-scope");
      el.id = id;
      el.setAttribute("panels", "gates,loss");
      document.body.append(el);
      return el;
    };
    const [kept, removed] = [make("kept"), make("removed")];
    const ready = (el) => new Promise((r) => (el.model ? r() : el.addEventListener("ready", r, { once: true })));
    await Promise.all([ready(kept), ready(removed)]);
    const finished = new Promise((r) => kept.addEventListener("done", (e) => r(e.detail), { once: true }));
    removed.text = `${text} ${text}`;
    kept.text = text;
    removed.run();
    kept.run();
    await new Promise((r) => removed.addEventListener("segment", r, { once: true }));
    removed.remove();
    return finished;
  }, TEXT);
  assert.equal(done.tokens, cli.tokens);
  assertMatchesCli(assert, await shown(page, "#kept"), cli);
  // The page's own element shares the device and still reads.
  const again = await runAndWait(page, "#scope", () => page.click("#read"));
  assert.equal(again.tokens, cli.tokens);
  assert.deepEqual(page.problems, []);
  await page.close();
});
