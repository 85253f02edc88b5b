// Bad input gets a clear message and the page keeps working: empty text, a 50 MB
// paste (streamed, never frozen), binary files, emoji and combining marks, pasted
// HTML (shown as text, never run), a model URL that 404s or is corrupt.

import assert from "node:assert/strict";
import { before, test } from "node:test";
import { browser, modelLoaded, open, runAndWait, shown, suite } from "./harness.mjs";

const env = suite();
let page;
before(async () => {
  await env.ready;
  page = await open(env.chrome, `${env.server.url}/`);
  await modelLoaded(page);
});

const scopeText = () => page.evaluate(() => document.querySelector("#scope").shadowRoot.querySelector(".text").textContent);

test("an empty text says so", async () => {
  await page.fill("#text", "");
  await page.click("#read");
  assert.match(await page.textContent("#input-message"), /empty/);
});

test("pasted HTML and script are shown as text and never run", async () => {
  const html = `<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script><svg onload="window.__pwned=3"><b>bold?</b></svg> &amp; done`;
  await page.fill("#text", html);
  await runAndWait(page, "#scope", () => page.click("#read"));
  assert.equal(await scopeText(), html);
  assert.equal(await page.evaluate(() => window.__pwned), undefined);
  assert.equal(await page.evaluate(() => document.querySelector("#scope").shadowRoot.querySelectorAll(".text img, .text script, .text svg, .text b").length), 0);
});

test("the page's Content-Security-Policy stops inline script and lets the page run", async () => {
  const csp = await page.getAttribute('meta[http-equiv="Content-Security-Policy"]', "content");
  assert.match(csp, /script-src 'self' 'wasm-unsafe-eval';/);
  // A script element that got into the document anyway: the policy refuses it and says so.
  const outcome = await page.evaluate(
    () =>
      new Promise((resolve) => {
        document.addEventListener("securitypolicyviolation", (e) => resolve(e.effectiveDirective), { once: true });
        const s = document.createElement("script");
        s.textContent = "window.__inline = 1";
        document.body.append(s);
        setTimeout(() => resolve(window.__inline === 1 ? "ran" : "no report"), 2000);
      }),
  );
  assert.equal(outcome, "script-src-elem");
  assert.equal(await page.evaluate(() => window.__inline), undefined);
  // The refusal is logged as a console error; it was this test's own doing.
  page.problems = page.problems.filter((p) => !/Content Security Policy/.test(p));
  // The page still reads under the policy (every other test also fails on any console error).
  await page.fill("#text", "Of Mans First Disobedience, and the Fruit of that Forbidden Tree.");
  const done = await runAndWait(page, "#scope", () => page.click("#read"));
  assert.ok(done.tokens > 0);
  assert.deepEqual(page.problems, []);
});

test("emoji, combining marks and CJK come back exactly", async () => {
  const text = "Emoji 🦀👩‍👩‍👧🇫🇷, combining e\u0301\u0308 a\u030A, 無限の文脈, tabs\t\tand\r\nCRLF. ".repeat(3);
  await page.fill("#text", text);
  await runAndWait(page, "#scope", () => page.click("#read"));
  assert.equal(await scopeText(), text.replace(/\r\n/g, "\n"));
});

test("a binary file is refused with a message", async () => {
  const bytes = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 256));
  await page.setInputFiles("#file", { name: "garbage.bin", mimeType: "application/octet-stream", buffer: bytes });
  await page.waitForFunction(() => /binary|UTF-8/.test(document.getElementById("input-message").textContent));
  const invalid = Buffer.from([0x41, 0x42, 0xff, 0xfe, 0x43]);
  await page.setInputFiles("#file", { name: "latin1.txt", mimeType: "text/plain", buffer: invalid });
  await page.waitForFunction(() => /not UTF-8/.test(document.getElementById("input-message").textContent));
});

/**
 * Reads `segments` segments of a 50 MB text on `page`: segments keep coming, the page
 * answers input, the total is estimated, and no script on the main thread runs over
 * 250 ms from the Read on (the engine reads and sums up in a worker; the main thread
 * only draws): a frozen page, not a slow frame. Frames are timing on a shared VM: with
 * 50% steal time in `top`, the build from before that session's changes had frame
 * scripts of 49–71 ms, and a `.ci/run` of its own one of 109 ms, where idle runs stay
 * under 50; so the longest is printed. Tasks over 50 ms with their frame's layout and paint are printed, not
 * judged: from segment 8 on 0 in most idle runs on this 2-core machine, but one of
 * 51 ms in a `bash .ci/run`; before it, one of 52–68 ms in half the runs (a reading's
 * first frames: layout, paint and commit of what it fills in), so an assertion would
 * fail by chance.
 */
async function fiftyMegabytes(page, segments) {
  await page.evaluate(() => {
    const sentence = "The pass of time is long and the text is longer still, so it is read a piece at a time. ";
    document.querySelector("#scope").text = sentence.repeat(Math.ceil(50e6 / sentence.length));
  });
  await page.evaluate(() => {
    const scope = document.querySelector("#scope");
    window.__long = { tasks: [], scripts: [], from: Infinity, scriptsFrom: performance.now() };
    // Tasks are counted apart from segment 8 on: the first frames lay out, paint and
    // commit what the run fills in for the first time.
    scope.addEventListener("segment", (e) => e.detail.index === 8 && (window.__long.from = performance.now()));
    new PerformanceObserver((list) => window.__long.tasks.push(...list.getEntries().map((e) => ({ ms: Math.round(e.duration), after: e.startTime > window.__long.from })))).observe({ type: "longtask" });
    new PerformanceObserver((list) => {
      for (const frame of list.getEntries()) {
        for (const script of frame.scripts) if (script.startTime > window.__long.scriptsFrom) window.__long.scripts.push({ ms: Math.round(script.duration), invoker: script.invoker });
      }
    }).observe({ type: "long-animation-frame" });
    scope.run();
  });
  await page.waitForFunction((rows) => document.querySelector("#scope").shadowRoot.querySelectorAll("table.losses tbody tr").length >= rows, segments, { timeout: 120_000 });
  // The page still reacts to input while the model reads.
  await page.fill("#gen-count", "7");
  assert.equal(await page.inputValue("#gen-count"), "7");
  const status = await page.evaluate(() => document.querySelector("#scope").shadowRoot.querySelector(".status").textContent);
  assert.match(status, /~\d{1,3}(,\d{3}){2,} tokens/, `a total of millions of tokens is estimated: ${status}`);
  const { tasks, scripts } = await page.evaluate(() => window.__long);
  const device = await page.evaluate(() => document.querySelector("#scope").shadowRoot.querySelector(".device").textContent);
  const longest = Math.max(0, ...scripts.map((s) => s.ms));
  const after = tasks.filter((t) => t.after).map((t) => t.ms);
  console.log(`${device}: ${segments} segments; tasks over 50 ms from segment 8 on: ${after.length} [${after}] (before it: [${tasks.filter((t) => !t.after).map((t) => t.ms)}]); longest script in a long frame ${longest} ms`);
  await page.evaluate(() => document.querySelector("#scope").cancel());
  assert.deepEqual(scripts.filter((s) => s.ms > 250), [], "no script over 250 ms on the main thread");
}

test("a 50 MB text streams on WebGPU: segments keep coming and no main-thread script runs over 250 ms", async () => {
  await fiftyMegabytes(page, 32);
});

test("a 50 MB text streams on the CPU reference too, and no main-thread script runs over 250 ms", async () => {
  const cpu = await browser({ webgpu: false });
  try {
    const other = await open(cpu, `${env.server.url}/`);
    await modelLoaded(other);
    assert.match(await other.evaluate(() => document.querySelector("#scope").shadowRoot.querySelector(".device").textContent), /CPU/);
    await fiftyMegabytes(other, 200);
    assert.deepEqual(other.problems, []);
  } finally {
    await cpu.close();
  }
});

test("HTML and SVG in a file's name or a model URL are shown as text, never run", async () => {
  const hostile = `<img src=x onerror="window.__pwned=4"><svg onload="window.__pwned=5"></svg>`;
  // A text file and a binary one, each named with markup: the messages quote the name.
  await page.setInputFiles("#file", { name: `${hostile}.txt`, mimeType: "text/plain", buffer: Buffer.from("A short text with a hostile name. ".repeat(3)) });
  await page.waitForFunction(() => /characters/.test(document.getElementById("input-message").textContent));
  assert.match(await page.textContent("#input-message"), /<img src=x onerror=/);
  await page.evaluate(() => document.querySelector("#scope").cancel());
  await page.setInputFiles("#file", { name: `${hostile}.bin`, mimeType: "application/octet-stream", buffer: Buffer.alloc(64) });
  await page.waitForFunction(() => /binary/.test(document.getElementById("input-message").textContent));
  assert.match(await page.textContent("#input-message"), /<svg onload=/);
  // Model URLs with markup, a javascript: URL and another origin (refused by the page's
  // connect-src): each a message in the element, shown as text.
  for (const url of [`${hostile}/`, "javascript:window.__pwned=6", "https://models.example/infini-tiny/"]) {
    const message = await page.evaluate(
      (model) =>
        new Promise((resolve) => {
          const el = document.createElement("infini-scope");
          el.id = "hostile";
          el.setAttribute("model", model);
          el.addEventListener("error", (e) => resolve(e.detail.message), { once: true });
          document.body.append(el);
        }),
      url,
    );
    assert.match(message, /could not be loaded/, `${url}: ${message}`);
    const view = await shown(page, "#hostile");
    assert.equal(view.error, message, "the message is the element's text");
    assert.equal(await page.evaluate(() => document.getElementById("hostile").shadowRoot.querySelectorAll("img, svg:not(.norms):not(.loss-chart):not(.layer)").length), 0);
    await page.evaluate(() => document.getElementById("hostile").remove());
  }
  assert.equal(await page.evaluate(() => window.__pwned), undefined);
  assert.equal(await page.evaluate(() => document.querySelectorAll("body > img, #input-message *").length), 0);
  // The browser logs each fetch the page's connect-src refused: expected here, and only those.
  const refused = page.problems.filter((p) => /Content Security Policy/.test(p));
  assert.ok(refused.length > 0 && refused.every((p) => p.includes("https://models.example/")), `refused: ${refused}`);
  page.problems = page.problems.filter((p) => !refused.includes(p));
  assert.deepEqual(page.problems, []);
});

test("a model URL that 404s or is corrupt gives a message; the page keeps working", async () => {
  for (const [url, pattern] of [["missing/", /HTTP 404/], ["corrupt/", /invalid weights|safetensors/i]]) {
    const message = await page.evaluate(
      (model) =>
        new Promise((resolve) => {
          const el = document.createElement("infini-scope");
          el.id = "broken";
          el.setAttribute("model", model);
          el.addEventListener("error", (e) => resolve(e.detail.message), { once: true });
          document.body.append(el);
        }),
      url,
    );
    assert.match(message, pattern);
    const view = await shown(page, "#broken");
    assert.match(view.error, pattern, "the message is shown in the element");
    await page.evaluate(() => document.getElementById("broken").remove());
  }
  await page.fill("#text", "Still working after a broken model elsewhere on the page. ".repeat(4));
  const done = await runAndWait(page, "#scope", () => page.click("#read"));
  assert.ok(done.tokens > 0);
  assert.deepEqual(page.problems, []);
});
