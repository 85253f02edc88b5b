// The page's design at the sizes and themes visitors use: screenshots at 1280 and
// 390 px wide in light and dark (kept in target/screenshots) with every panel inside
// its box and nothing wider than the window; colours that follow the theme, also in
// the canvases; the component's theme attribute, ::part() and its own width; the
// explanations ("?" on every panel, the first-visit guide, the live layer diagram);
// and a keyboard-only path through the gate grid and the text.

import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { cliEval, modelLoaded, ROOT, runAndWait, suite, watch } from "./harness.mjs";

const TEXT = "Of Man's first disobedience, and the fruit of that forbidden tree, whose mortal taste brought death into the World, and all our woe. ".repeat(6);
const SHOTS = join(ROOT, "target/screenshots");

const env = suite();
mkdirSync(SHOTS, { recursive: true });

/** A page at `width` px in `scheme` whose console errors fail the test; the model loaded. */
async function openAt(width, scheme, hash = "") {
  const context = await env.chrome.newContext({ viewport: { width, height: 900 }, colorScheme: scheme });
  const page = watch(await context.newPage());
  await page.goto(`${env.server.url}/${hash}`);
  await modelLoaded(page);
  return page;
}

/** openAt, then the page reads TEXT. */
async function readAt(width, scheme) {
  const page = await openAt(width, scheme);
  await page.fill("#text", TEXT);
  await runAndWait(page, "#scope", () => page.click("#read"));
  return page;
}

/** Every panel's box, and each descendant that sticks out of its panel or of the window. */
function overflow(page) {
  return page.evaluate(() => {
    const root = document.querySelector("#scope").shadowRoot;
    const out = [];
    const panels = [];
    for (const section of root.querySelectorAll("section[data-panel]")) {
      const s = section.getBoundingClientRect();
      panels.push({ panel: section.dataset.panel, left: s.left, right: s.right, top: s.top });
      for (const el of section.querySelectorAll("*")) {
        const r = el.getBoundingClientRect();
        if (r.width === 0 || el.closest("dialog, details:not([open])")) continue;
        if (r.left < s.left - 0.5 || r.right > s.right + 0.5) out.push(`${section.dataset.panel}: ${el.tagName.toLowerCase()}.${el.className?.baseVal ?? el.className} ${r.left.toFixed(0)}–${r.right.toFixed(0)} outside ${s.left.toFixed(0)}–${s.right.toFixed(0)}`);
      }
    }
    return { out, panels, pageWidth: document.documentElement.scrollWidth, window: innerWidth };
  });
}

/** The element's resolved colours: its background, a panel's, and the heatmap scale's middle. */
function colours(page) {
  return page.evaluate(() => {
    const scope = document.querySelector("#scope");
    const section = scope.shadowRoot.querySelector("section[data-panel=gates]");
    const luminance = (css) => {
      const [r, g, b] = css.match(/[\d.]+/g).slice(0, 3).map((c) => (c / 255) ** 2.2);
      return 0.2126 * r + 0.7152 * g + 0.0722 * b;
    };
    const host = getComputedStyle(scope).backgroundColor;
    const panel = getComputedStyle(section).backgroundColor;
    const ink = getComputedStyle(section).color;
    return { host: luminance(host), panel: luminance(panel), ink: luminance(ink) };
  });
}

for (const scheme of ["light", "dark"]) {
  for (const width of [1280, 390]) {
    test(`${width} px, ${scheme}: every panel inside its box, nothing wider than the window`, async () => {
      const page = await readAt(width, scheme);
      await page.evaluate(() => document.querySelector("#scope").selectToken(60));
      // The element draws only while it is on screen (a visitor scrolls to it).
      await page.locator("#scope").scrollIntoViewIfNeeded();
      await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
      const { out, panels, pageWidth, window } = await overflow(page);
      assert.deepEqual(out, [], "no panel content outside its panel");
      assert.ok(pageWidth <= window, `the page is ${pageWidth} px wide in a ${window} px window`);
      if (width === 390) {
        // One column: every panel starts at the same x, one below the other.
        assert.equal(new Set(panels.map((p) => Math.round(p.left))).size, 1, JSON.stringify(panels));
      } else {
        assert.ok(new Set(panels.map((p) => Math.round(p.left))).size > 1, "two columns at 1280 px");
      }
      const c = await colours(page);
      if (scheme === "dark") assert.ok(c.host < 0.05 && c.panel < 0.05 && c.ink > 0.6, `dark: ${JSON.stringify(c)}`);
      else assert.ok(c.host > 0.9 && c.panel > 0.8 && c.ink < 0.05, `light: ${JSON.stringify(c)}`);
      // Contrast of the panel text on its panel: at least WCAG AA's 4.5:1.
      const contrast = (Math.max(c.panel, c.ink) + 0.05) / (Math.min(c.panel, c.ink) + 0.05);
      assert.ok(contrast >= 4.5, `contrast ${contrast.toFixed(1)}:1`);
      await page.screenshot({ path: join(SHOTS, `page-${scheme}-${width}.png`), fullPage: true });
      assert.deepEqual(page.problems, []);
      await page.context().close();
    });
  }
}

test("the theme reaches the canvases; the theme attribute, ::part(), the element's own width, reduced motion", async () => {
  const page = await readAt(1280, "light");
  // A gate cell's colour is the sequential scale's: g = 0 would be the scale's middle
  // colour, which the theme sets; the memory heatmaps follow it too.
  const corner = () =>
    page.evaluate(() => {
      const root = document.querySelector("#scope").shadowRoot;
      const canvas = root.querySelector(".heads canvas.m");
      const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
      // The palest cell of the first heatmap: the diverging scale's middle, near 0.
      let best = 0;
      for (let i = 0; i < data.length; i += 4) best = Math.max(best, data[i] + data[i + 1] + data[i + 2]);
      return { palest: best, gate: getComputedStyle(root.querySelector("td.gate")).backgroundColor };
    });
  const light = await corner();
  await page.evaluate(() => document.querySelector("#scope").setAttribute("theme", "dark"));
  await page.waitForTimeout(100);
  const dark = await corner();
  assert.ok(light.palest > 600 && dark.palest < light.palest - 150, `palest heatmap cell: light ${light.palest}, dark ${dark.palest}`);
  assert.notEqual(dark.gate, light.gate, "gate cells recoloured");
  // A jumped-to segment flashes and fades; with prefers-reduced-motion it does not fade.
  const fade = () => page.evaluate(() => getComputedStyle(document.querySelector("#scope").shadowRoot.querySelector(".text span")).transitionDuration);
  assert.equal(await fade(), "0.6s");
  await page.emulateMedia({ reducedMotion: "reduce" });
  assert.equal(await fade(), "0s");
  await page.emulateMedia({ reducedMotion: "no-preference" });
  // The page's theme button cycles auto → light → dark and remembers it.
  await page.click("#theme");
  await page.click("#theme");
  assert.equal(await page.evaluate(() => [document.documentElement.dataset.theme, document.querySelector("#scope").getAttribute("theme")].join()), "dark,dark");
  await page.reload();
  await page.waitForFunction(() => document.querySelector("#scope").getAttribute("theme") === "dark");
  // ::part() styles a panel from outside; custom properties theme it.
  const styled = await page.evaluate(() => {
    const style = document.createElement("style");
    style.textContent = "infini-scope::part(gates) { border-color: rgb(1, 2, 3); } infini-scope { --accent: rgb(200, 0, 100); }";
    document.head.append(style);
    const root = document.querySelector("#scope").shadowRoot;
    return [getComputedStyle(root.querySelector("section[data-panel=gates]")).borderTopColor, getComputedStyle(root.querySelector("button.run")).backgroundColor];
  });
  assert.deepEqual(styled, ["rgb(1, 2, 3)", "rgb(200, 0, 100)"]);
  // The layout follows the element's width, not the window's (an embed in a column).
  const columns = await page.evaluate(async () => {
    const scope = document.querySelector("#scope");
    const lefts = () => new Set([...scope.shadowRoot.querySelectorAll("section[data-panel]")].map((s) => Math.round(s.getBoundingClientRect().left))).size;
    const wide = lefts();
    scope.style.width = "500px";
    await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
    const narrow = lefts();
    scope.style.width = "";
    return [wide, narrow];
  });
  assert.deepEqual(columns, [2, 1]);
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test("explanations: a ? on every panel, the first-visit guide, the live layer diagram", async () => {
  const page = await openAt(1280, "light");
  // Screen readers hear the stages (a polite live region), not every frame.
  assert.match(await page.textContent("#scope .announce"), /^Model ready on WebGPU/);
  // The guide shows on a first visit and stays dismissed.
  assert.equal(await page.isVisible("#guide"), true);
  await page.click("#guide-close");
  await page.reload();
  await modelLoaded(page);
  assert.equal(await page.isVisible("#guide"), false);
  await page.click("#guide-open");
  assert.equal(await page.isVisible("#guide"), true);

  const panels = await page.evaluate(() => [...document.querySelector("#scope").shadowRoot.querySelectorAll("section[data-panel]")].map((s) => s.dataset.panel));
  assert.deepEqual(panels, ["text", "gates", "layer", "memory", "loss", "footprint"]);
  for (const panel of panels) {
    const help = `#scope section[data-panel=${panel}] p.help`;
    assert.equal(await page.isVisible(help), false);
    await page.click(`#scope section[data-panel=${panel}] button.help-toggle`);
    assert.equal(await page.isVisible(help), true, `${panel}: its explanation opens`);
    assert.ok((await page.textContent(help)).length > 150, `${panel}: says what it shows`);
    assert.equal(await page.getAttribute(`#scope section[data-panel=${panel}] button.help-toggle`, "aria-expanded"), "true");
  }
  // The gate is written g = sigmoid(β); σ is kept for ELU + 1.
  const words = await page.evaluate(() => document.querySelector("#scope").shadowRoot.textContent);
  assert.match(words, /g = sigmoid\(β\)/);
  assert.doesNotMatch(words, /σ\(β\)/);

  // The layer diagram: a box's formula on hover, the locked head's live numbers.
  await page.hover("#scope g.box#box-mem");
  assert.match(await page.textContent("#scope .formula"), /A_mem = σ\(Q\) M_\{s−1\} \/ σ\(Q\) z_\{s−1\}/);
  await page.fill("#text", TEXT);
  await runAndWait(page, "#scope", () => page.click("#read"));
  const cli = cliEval(TEXT);
  await page.evaluate(() => (document.querySelector("#scope").head = 5));
  await page.waitForTimeout(50);
  const live = await page.evaluate(() => [...document.querySelector("#scope").shadowRoot.querySelectorAll("svg.layer text.live")].map((t) => t.textContent).join(" | "));
  const head = cli.heads[1][1];
  assert.match(live, new RegExp(`L1H1 g = ${head.gate.toFixed(3)}`), live);
  assert.match(live, new RegExp(`L1H1 memory share ${head.memory_share.toFixed(3)}`), live);
  assert.match(live, new RegExp(`last written: segment ${cli.segments.length - 1}`), live);
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test("keyboard only: Tab reaches the gate grid (one stop), arrows move, Enter locks, the text's arrows select tokens", async () => {
  const page = await readAt(1280, "light");
  await page.focus("#read");
  /** Where focus is, inside the element's shadow root too. */
  const focused = () =>
    page.evaluate(() => {
      let el = document.activeElement;
      while (el?.shadowRoot?.activeElement) el = el.shadowRoot.activeElement;
      return { tag: el.tagName.toLowerCase(), cls: el.className, layer: el.dataset?.layer, head: el.dataset?.head };
    });
  const path = [];
  for (let i = 0; i < 80; i++) {
    await page.keyboard.press("Tab");
    const f = await focused();
    path.push(f.cls);
    if (f.cls.startsWith("gate")) break;
  }
  assert.ok(path.includes("text"), `the text panel is on the way: ${path.join(" ")}`);
  assert.deepEqual(await focused(), { tag: "td", cls: "gate", layer: "0", head: "0" });
  await page.keyboard.press("ArrowRight");
  await page.keyboard.press("ArrowDown");
  assert.deepEqual(await focused(), { tag: "td", cls: "gate focus", layer: "1", head: "1" });
  await page.keyboard.press("Enter");
  assert.equal(await page.evaluate(() => document.querySelector("#scope").head), 5);
  // One tab stop: Tab leaves the grid instead of walking its 16 cells.
  await page.keyboard.press("Tab");
  assert.notEqual((await focused()).tag, "td");
  // Back to the text with Shift+Tab (past the grid's one stop), then ← selects tokens;
  // the recall map comes from the worker a moment later.
  for (let i = 0; i < 10 && (await focused()).cls !== "text"; i++) await page.keyboard.press("Shift+Tab");
  assert.equal((await focused()).cls, "text");
  await page.keyboard.press("ArrowLeft");
  await page.keyboard.press("ArrowLeft");
  await page.waitForFunction(() => /^token \d+ /.test(document.querySelector("#scope").shadowRoot.querySelector(".recall-info").textContent));
  const info = await page.textContent("#scope .recall-info");
  assert.match(info, /^token \d+ .*\(L1H1\)/, info);
  const focusStyle = await page.evaluate(() => getComputedStyle(document.querySelector("#scope").shadowRoot.querySelector(".text")).outlineStyle);
  assert.notEqual(focusStyle, "none", "visible focus");
  await page.keyboard.press("Escape");
  assert.equal(await page.evaluate(() => document.querySelector("#scope").head), null);
  assert.deepEqual(page.problems, []);
  await page.context().close();
});
