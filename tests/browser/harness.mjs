// Shared by the browser tests: a static server over Trunk's output (target/dist),
// headless Chromium (Debian's, never a downloaded one), and the native CLI whose
// numbers the page must reproduce.

import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { extname, join, normalize, resolve } from "node:path";
import { after, before } from "node:test";
import { chromium } from "playwright-core";

export const ROOT = resolve(import.meta.dirname, "../..");
export const DIST = join(ROOT, "target/dist");
const CLI = join(ROOT, "target/release/infiniscope");
const TYPES = { ".html": "text/html", ".js": "text/javascript", ".wasm": "application/wasm", ".css": "text/css", ".json": "application/json", ".txt": "text/plain; charset=utf-8" };

/** Serves `dist` (a page built by Trunk); /corrupt/ is a model folder whose weights are garbage. */
export async function serve(dist = DIST) {
  if (!existsSync(join(dist, "index.html"))) throw new Error(`${dist} is missing: run \`trunk build\` first (cargo xtask test does)`);
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url, "http://x").pathname);
    if (path === "/corrupt/model.safetensors") {
      res.writeHead(200, { "content-type": "application/octet-stream" });
      return res.end(Buffer.from("this is not a safetensors file at all"));
    }
    const file = join(dist, normalize(path.replace(/^\/corrupt\//, "/models/infini-tiny/")).replace(/^(\.\.[/\\])+/, ""), path.endsWith("/") ? "index.html" : "");
    if (!file.startsWith(dist) || !existsSync(file)) {
      res.writeHead(404, { "content-type": "text/plain" });
      return res.end("not found");
    }
    const body = readFileSync(file);
    res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream", "content-length": body.length });
    res.end(body);
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${server.address().port}`, close: () => server.close() };
}

/** Headless Chromium, with WebGPU on SwiftShader unless `webgpu` is false; `more` flags. */
export async function browser({ webgpu = true, more = [] } = {}) {
  // Playwright gives every launch a fresh, empty profile of its own.
  const args = ["--no-sandbox", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-quic", ...more];
  if (webgpu) args.push("--enable-unsafe-webgpu", "--enable-features=Vulkan", "--use-webgpu-adapter=swiftshader");
  return chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", args, headless: true });
}

/**
 * The static server and headless Chromium for one test file's tests: started before
 * them, stopped after them. Read `env.server.url` and `env.chrome` inside tests (and
 * in a `before` hook, after `await env.ready`).
 */
export function suite(options) {
  let started;
  // node:test may start a file's own `before` hooks alongside this one: they await `ready`.
  const env = { ready: new Promise((resolve) => (started = resolve)) };
  before(async () => {
    env.server = await serve();
    env.chrome = await browser(options);
    started();
  });
  after(async () => {
    await env.chrome?.close();
    env.server?.close();
  });
  return env;
}

/** Waits until the <infini-scope> at `selector` has loaded its model. */
export function modelLoaded(page, selector = "#scope") {
  return page.waitForFunction((sel) => document.querySelector(sel).model?.model, selector, { timeout: 120_000 });
}

/** A page whose console errors and uncaught exceptions fail the test that reads them. */
export async function open(b, url) {
  const page = watch(await b.newPage({ viewport: { width: 1280, height: 1600 } }));
  await page.goto(url);
  return page;
}

/** Collects `page`'s console errors and uncaught exceptions in `page.problems` (a missing favicon aside). */
export function watch(page) {
  page.problems = [];
  page.on("pageerror", (e) => page.problems.push(`uncaught: ${e.message}`));
  page.on("console", (m) => m.type() === "error" && !/404|Failed to load resource/.test(m.text()) && page.problems.push(`console: ${m.text()}`));
  return page;
}

/** `infiniscope eval --json` of `text` on the CPU reference, with the model files the page was served. */
export function cliEval(text, model = join(DIST, "models/infini-tiny")) {
  const file = join(mkdtempSync(join(tmpdir(), "infiniscope-text-")), "text.txt");
  writeFileSync(file, text);
  const out = execFileSync(CLI, ["eval", "--cpu", "--json", "--model", model, "--text", file], { encoding: "utf8" });
  return JSON.parse(out);
}

/** `infiniscope passkey --json` on the CPU reference: one haystack's key and greedy answer. */
export function cliPasskey(length, depth, model = join(DIST, "models/infini-tiny")) {
  const args = ["passkey", "--cpu", "--json", "--model", model, "--lengths", `${length}`, "--depths", `${depth}`, "--trials", "1"];
  const out = JSON.parse(execFileSync(CLI, args, { encoding: "utf8" }));
  return out.results[0].answers[0];
}

/**
 * `infiniscope recall --json` of token `token` of `text` (default its last) on the CPU
 * reference; the contributions too (a second reading) with `contributions`.
 */
export function cliRecall(text, { token = null, contributions = false, model = join(DIST, "models/infini-tiny") } = {}) {
  const file = join(mkdtempSync(join(tmpdir(), "infiniscope-text-")), "text.txt");
  writeFileSync(file, text);
  const args = ["recall", "--cpu", "--json", "--model", model, "--text", file];
  if (!contributions) args.push("--shares-only");
  if (token !== null) args.push("--token", `${token}`);
  return JSON.parse(execFileSync(CLI, args, { encoding: "utf8", maxBuffer: 1 << 28 }));
}

/** Waits for an element's `done` (or `error`) event after `action` starts a run. */
export async function runAndWait(page, selector, action, timeout = 240_000) {
  const finished = page.evaluate(
    ([sel, t]) =>
      new Promise((resolve, reject) => {
        const el = document.querySelector(sel);
        const timer = setTimeout(() => reject(new Error(`no done event within ${t} ms`)), t);
        el.addEventListener("done", (e) => (clearTimeout(timer), resolve(e.detail)), { once: true });
        el.addEventListener("error", (e) => (clearTimeout(timer), reject(new Error(e.detail.message))), { once: true });
      }),
    [selector, timeout],
  );
  await action();
  return finished;
}

/** What the element shows: gate cells and the per-segment loss table. */
export function shown(page, selector = "infini-scope") {
  return page.evaluate((sel) => {
    const root = document.querySelector(sel).shadowRoot;
    const gates = [...root.querySelectorAll("td.gate")].map((c) => ({ gate: +c.dataset.gate, share: +c.dataset.share, kind: c.dataset.kind }));
    const losses = [...root.querySelectorAll("table.losses tbody tr")].map((r) => +r.cells[1].textContent);
    return { gates, losses, device: root.querySelector(".device").textContent, note: root.querySelector(".note").textContent, error: root.querySelector(".error").textContent };
  }, selector);
}

/** Checks the page's gates and per-segment losses against the CLI's, within 1e-3. */
export function assertMatchesCli(assert, page, cli, { segments = cli.segments.length } = {}) {
  assert.equal(page.gates.length, cli.heads.flat().length, "one gate cell per head");
  cli.heads.flat().forEach((h, i) => {
    assert.ok(Math.abs(page.gates[i].gate - h.gate) < 1e-3, `gate ${i}: page ${page.gates[i].gate}, CLI ${h.gate}`);
  });
  assert.equal(page.losses.length, segments, "one loss row per segment");
  for (let i = 0; i < segments; i++) {
    const want = cli.segments[i].loss;
    // A last segment of one token has nothing to predict: no loss on either side.
    if (want === null) assert.ok(Number.isNaN(page.losses[i]), `segment ${i} has no loss`);
    else assert.ok(Math.abs(page.losses[i] - want) < 1e-3, `segment ${i}: page ${page.losses[i]}, CLI ${want}`);
  }
}
