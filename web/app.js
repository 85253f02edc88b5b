// The demo page around one <infini-scope>: where the text comes from (paste, drop,
// file, the bundled sample), the passkey experiment and continue-writing. All model
// work goes through the element's methods.

import { readPalette } from "./scope/draw.js";
import { clearModelCache } from "./scope/loader.js";
import { RecallStrip } from "./scope/recall-strip.js";
import { CONTROLS, TOKENS } from "./scope/style.js";
import { MODELS, format, parse } from "./state.js";

const $ = (id) => document.getElementById(id);
const scope = $("scope");

// The state in the URL hash (state.js): applied on arrival, kept up to date after.
const state = parse(location.hash);
const keep = () => history.replaceState(null, "", format(state));

// The model is named before the element is defined, so that only it is loaded.
const modelUrl = (name) => new URL(`models/${name}/`, import.meta.url).href;
scope.setAttribute("model", modelUrl(state.model));
$("model").value = state.model;
await import("./infini-scope.js");
const SAMPLE = new URL("samples/paradise-lost.txt", import.meta.url);

// The element's design tokens and controls, for the page too: one set of colours and type.
const tokens = new CSSStyleSheet();
tokens.replaceSync(TOKENS + CONTROLS);
document.adoptedStyleSheets = [...document.adoptedStyleSheets, tokens];

/** Local storage where the browser allows it (it may refuse: private modes, policies). */
const stored = {
  get: (key) => {
    try {
      return localStorage.getItem(key);
    } catch {
      return null;
    }
  },
  set: (key, value) => {
    try {
      localStorage.setItem(key, value);
    } catch {
      // not remembered: the page still works
    }
  },
};

// Theme: auto (the system's), light or dark; the button cycles, the choice is remembered.
const THEMES = ["auto", "light", "dark"];
const probe = document.body.appendChild(Object.assign(document.createElement("span"), { hidden: true }));
let palette = readPalette(probe);
function applyTheme(theme) {
  document.documentElement.dataset.theme = theme;
  scope.setAttribute("theme", theme);
  $("theme").textContent = `theme: ${theme}`;
  $("theme").setAttribute("aria-label", `colour theme: ${theme === "auto" ? "follows the system" : theme}; press to change`);
  palette = readPalette(probe);
  if (lastRecall) drawRecall(lastRecall);
}
$("theme").onclick = () => {
  const next = THEMES[(THEMES.indexOf(document.documentElement.dataset.theme) + 1) % THEMES.length];
  stored.set("infiniscope.theme", next);
  applyTheme(next);
};
matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => applyTheme(document.documentElement.dataset.theme));

// The first-visit guide, until it is dismissed (the footer brings it back).
$("guide").hidden = stored.get("infiniscope.guide") === "dismissed";
$("guide-close").onclick = () => {
  $("guide").hidden = true;
  stored.set("infiniscope.guide", "dismissed");
};
$("guide-open").onclick = () => {
  $("guide").hidden = false;
  $("guide").scrollIntoView();
};

function say(element, text, error = false) {
  element.textContent = text;
  element.classList.toggle("error", error);
}

/** A dropped or chosen file as text; refuses what is not UTF-8 text. */
async function readFile(file) {
  const bytes = new Uint8Array(await file.arrayBuffer());
  if (bytes.subarray(0, 65536).includes(0)) throw new Error(`${file.name} looks like a binary file (it contains NUL bytes), not text`);
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new Error(`${file.name} is not UTF-8 text`);
  }
}

/** What useText put in the text box: while it is unedited, the element's text is read. */
let shown = null;

/**
 * Characters a text box holds before it shows only the start: a box of the whole
 * 465,000-character sample cost each frame of a reading ≈ 30 ms of layout and paint
 * (32,000 layout objects walked), though nothing in it changed.
 */
const SHOWN_CHARACTERS = 50_000;

/** Hands text to the element; a very long text is not put whole into the text box. */
function useText(text, origin) {
  $("text").value = text.length > SHOWN_CHARACTERS ? `${text.slice(0, SHOWN_CHARACTERS)}\n… (${origin}: ${text.length.toLocaleString("en")} characters, shown in part; all of it is read)` : text;
  shown = $("text").value;
  scope.text = text;
  say($("input-message"), `${origin}: ${text.length.toLocaleString("en")} characters`);
}

async function loadFile(file) {
  try {
    useText(await readFile(file), file.name);
    scope.run();
  } catch (e) {
    say($("input-message"), e.message, true);
  }
}

$("sample").onclick = async () => {
  try {
    const response = await fetch(SAMPLE);
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    useText(await response.text(), "Paradise Lost");
  } catch (e) {
    say($("input-message"), `The sample could not be loaded: ${e.message}`, true);
  }
};
$("file").onchange = (e) => e.target.files[0] && loadFile(e.target.files[0]);
$("read").onclick = () => {
  const text = $("text").value;
  if (text === shown && text !== "") return scope.run();
  scope.text = text;
  if (!text) return say($("input-message"), "Nothing to read: the text box is empty.", true);
  say($("input-message"), `${text.length.toLocaleString("en")} characters`);
  scope.run();
};
const drop = $("drop");
drop.ondragover = (e) => {
  e.preventDefault();
  drop.classList.add("over");
};
drop.ondragleave = () => drop.classList.remove("over");
drop.ondrop = (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  const file = e.dataTransfer.files[0];
  if (file) loadFile(file);
};

// The model: the paper's infini-tiny or its shifted variant, both bundled. Switching
// ends the reading on screen; the passkey grid keeps each model's answers.
/** Makes `name` the element's model; resolves once it is ready (at once if it is). */
function useModel(name) {
  $("model").value = state.model = name;
  keep();
  describeModel();
  if (scope.getAttribute("model") === modelUrl(name) && scope.model) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const done = (e) => {
      scope.removeEventListener("ready", done);
      scope.removeEventListener("error", done);
      e.type === "ready" ? resolve() : reject(new Error(e.detail.message));
    };
    scope.addEventListener("ready", done);
    scope.addEventListener("error", done);
    scope.setAttribute("model", modelUrl(name));
  });
}
function describeModel() {
  $("model-note").textContent = $("model").selectedOptions[0].title;
}
describeModel();
$("model").onchange = () => useModel($("model").value).catch((e) => say($("input-message"), e.message, true));

// Passkey: results fill a length × depth grid as runs finish, one line per model.
const lengths = [...$("pk-length").options].map((o) => +o.value);
const depths = [...$("pk-depth").options].map((o) => +o.value);
const short = Object.fromEntries([...$("model").options].map((o) => [o.value, o.dataset.short]));
const grid = $("pk-grid");
grid.insertRow().innerHTML = `<th>length \\ depth</th>${depths.map((d) => `<th>${d}</th>`).join("")}`;
for (const length of lengths) {
  const row = grid.insertRow();
  row.insertCell().outerHTML = `<th>${length}</th>`;
  for (const depth of depths) {
    const cell = Object.assign(row.insertCell(), { id: `pk-${length}-${depth}` });
    for (const name of MODELS) Object.assign(cell.appendChild(document.createElement("div")), { className: `pk-${name}`, textContent: "·" });
  }
}
/** Reads one haystack with the model in use and enters its answer. */
async function passkey(length, depth, key) {
  const name = state.model;
  say($("pk-message"), `${short[name]}: reading a ${length}-token haystack…`);
  const r = await scope.passkey(length, depth, key);
  const line = $(`pk-${length}-${depth}`).querySelector(`.pk-${name}`);
  line.textContent = `${short[name]} ${JSON.stringify(r.answer)} / ${r.key}`;
  line.className = `pk-${name} ${r.correct ? "right" : "wrong"}`;
  say($("pk-message"), `key ${r.key}, ${short[name]} answered ${JSON.stringify(r.answer)}${r.correct ? ": right" : ""}`);
  drawRecall(r.recall);
  return r;
}
/** Runs the experiment; `both`: the same haystack with the other model first, then this one. */
async function runPasskey(both) {
  const [length, depth, chosen] = [+$("pk-length").value, +$("pk-depth").value, state.model];
  for (const button of [$("pk-run"), $("pk-both")]) button.disabled = true;
  try {
    let key;
    if (both) {
      await useModel(MODELS.find((m) => m !== chosen));
      key = (await passkey(length, depth)).key;
      await useModel(chosen);
    }
    await passkey(length, depth, key === undefined ? undefined : +key);
  } catch (e) {
    say($("pk-message"), e.message, true);
  } finally {
    for (const button of [$("pk-run"), $("pk-both")]) button.disabled = false;
  }
}
$("pk-run").onclick = () => runPasskey(false);
$("pk-both").onclick = () => runPasskey(true);

// The answer's recall map (the element's text panel shows the same one): the needle's
// segment marked below the strip; click a segment to see it in the text panel.
const recallStrip = new RecallStrip($("pk-recall"), (j) => scope.showSegment(j));
let lastRecall = null;
function drawRecall(map) {
  lastRecall = map;
  if (!map) return say($("pk-recall-note"), "No recall map for this answer.", true);
  const { best, largest, top } = recallStrip.draw(map, { needle: map.needle, palette });
  say($("pk-recall-note"), `${map.segments} segments before the question; largest share (any head) in segment ${largest} (${top.toFixed(3)}); the needle starts in segment ${map.needle} (${best[map.needle]?.toFixed(3) ?? "–"}).`);
}

$("gen-run").onclick = async () => {
  const out = $("gen-out");
  out.textContent = "";
  $("gen-run").disabled = true;
  try {
    await scope.generate(Math.min(2048, Math.max(1, +$("gen-count").value || 64)), {
      temperature: +$("gen-temperature").value || 0,
      onPiece: (piece) => out.append(piece),
    });
  } catch (e) {
    out.textContent = e.message;
  } finally {
    $("gen-run").disabled = false;
  }
};

$("forget").onclick = async () => {
  const freed = await clearModelCache();
  say($("forget-message"), freed ? `${(freed / 2 ** 20).toFixed(1)} MiB forgotten: the next visit downloads the model again.` : "Nothing was cached.");
};

if (state.panels) scope.setAttribute("panels", state.panels.join(","));
scope.addEventListener("ready", () => state.head !== null && (scope.head = state.head), { once: true });
scope.addEventListener("done", () => state.segment !== null && scope.scrub(state.segment), { once: true });
scope.addEventListener("select", (e) => {
  if (!("head" in e.detail)) return;
  state.head = e.detail.head;
  keep();
});
scope.addEventListener("scrub", (e) => {
  state.segment = e.detail.segment;
  keep();
});
// A long paste goes to the element whole and into the box in part, as a file does.
$("text").addEventListener("paste", (e) => {
  const text = e.clipboardData?.getData("text/plain") ?? "";
  if (text.length <= SHOWN_CHARACTERS) return;
  e.preventDefault();
  useText(text, "pasted text");
  state.text = "own";
  keep();
});
$("text").addEventListener("input", () => {
  state.text = "own";
  keep();
});
$("sample").addEventListener("click", () => {
  state.text = "sample";
  keep();
});

applyTheme(THEMES.includes(stored.get("infiniscope.theme")) ? stored.get("infiniscope.theme") : "auto");

// Open with the sample loaded (unless the URL says the text was the visitor's own).
if (state.text === "sample") $("sample").click();
keep();
