// Where the page's threads go while it reads on the CPU path: one reading in headless
// Chromium traced over CDP, the main thread's time summed by what Blink did (paint,
// layout, style, hit tests after layout under a resting pointer, script) and the
// raster threads' time beside it, with the reading's tokens/s. The two CPU workers
// share the machine's cores with all of this. A benchmark, not a test:
//   node tests/browser/frames.mjs [tokens=16384] [--panels text,loss,...] [--workers 1]
// (after `trunk build`). --panels shows only those panels (the element's attribute).

import { parseArgs } from "node:util";
import { browser, open, runAndWait, serve } from "./harness.mjs";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { panels: { type: "string" }, workers: { type: "string", default: "2" } },
});
const tokens = Number(positionals[0] ?? 16384);
/** Trace events summed: [thread, event name, what it is reported as]. */
const SUMMED = [
  ["CrRendererMain", "RunTask", "main thread, all tasks"],
  ["CrRendererMain", "Paint", "paint"],
  ["CrRendererMain", "Layout", "layout"],
  ["CrRendererMain", "UpdateLayoutTree", "style"],
  ["CrRendererMain", "LayoutView::HitTest", "hit tests"],
  ["CrRendererMain", "v8.callFunction", "script (with the DOM and canvas calls it makes)"],
  ["ThreadPoolForegroundWorker", "RasterTask", "raster threads"],
];

const server = await serve();
const chrome = await browser({ webgpu: false });
try {
  const page = await open(chrome, `${server.url}/`);
  await page.waitForFunction(() => document.querySelector("#scope").model?.model, null, { timeout: 120_000 });
  await page.evaluate(
    ([limit, workers, panels]) => {
      const scope = document.querySelector("#scope");
      scope.setAttribute("segment-limit", limit);
      scope.setAttribute("cpu-workers", workers);
      if (panels) scope.setAttribute("panels", panels);
    },
    [Math.ceil(tokens / 32), values.workers, values.panels ?? null],
  );
  await page.waitForFunction(() => document.querySelector("#scope").text.length > 100_000);
  const cdp = await page.context().newCDPSession(page);
  const events = [];
  cdp.on("Tracing.dataCollected", ({ value }) => events.push(...value));
  const complete = new Promise((resolve) => cdp.once("Tracing.tracingComplete", resolve));
  await cdp.send("Tracing.start", { categories: "devtools.timeline,disabled-by-default-devtools.timeline,blink,v8", transferMode: "ReportEvents" });
  const started = Date.now();
  const done = await runAndWait(page, "#scope", () => page.click("#read"), 1_800_000);
  const seconds = (Date.now() - started) / 1000;
  await cdp.send("Tracing.end");
  await complete;
  const threads = new Map(events.filter((e) => e.ph === "M" && e.name === "thread_name").map((e) => [`${e.pid}:${e.tid}`, e.args.name]));
  const sums = new Map();
  const counts = new Map();
  for (const e of events) {
    if (e.ph !== "X" || !e.dur) continue;
    const key = `${threads.get(`${e.pid}:${e.tid}`)}|${e.name}`;
    sums.set(key, (sums.get(key) ?? 0) + e.dur / 1e6);
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  console.log(`${done.tokens} tokens in ${seconds.toFixed(2)} s: ${(done.tokens / seconds).toFixed(1)} tokens/s (panels: ${values.panels ?? "all"}, ${values.workers} CPU worker(s))`);
  for (const [thread, name, what] of SUMMED) {
    const [sum, count] = [sums.get(`${thread}|${name}`) ?? 0, counts.get(`${thread}|${name}`) ?? 0];
    console.log(`${sum.toFixed(2).padStart(7)} s  ${what} (${count} events, ${((1000 * sum) / Math.max(count, 1)).toFixed(1)} ms each)`);
  }
} finally {
  await chrome.close();
  server.close();
}
