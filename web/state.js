// The demo page's state, kept in the URL hash so that a view can be bookmarked or
// shared: which text (the bundled sample, or "own": a pasted text never goes into a
// URL), the model that reads it, the head locked in the gate grid, the segment the
// memory panel is scrubbed to, and the panels shown. Parsing is strict: anything
// unexpected is dropped, not used.

const PANELS = ["text", "gates", "layer", "memory", "loss", "footprint"];

/** The bundled models (folders under models/); the first is the page's default. */
export const MODELS = ["infini-tiny", "infini-tiny-shift"];

/** @typedef {{ text: "sample" | "own", model: string, head: number | null, segment: number | null, panels: string[] | null }} PageState */

/** @returns {PageState} */
export function parse(hash) {
  const p = new URLSearchParams(hash.replace(/^#/, ""));
  const count = (name) => (/^\d{1,9}$/.test(p.get(name) ?? "") ? Number(p.get(name)) : null);
  const panels = p.get("panels")?.split(",").filter((x) => PANELS.includes(x)) ?? null;
  return {
    text: p.get("text") === "own" ? "own" : "sample",
    model: MODELS.includes(p.get("model")) ? p.get("model") : MODELS[0],
    head: count("head"),
    segment: count("segment"),
    panels: panels?.length ? panels : null,
  };
}

/** @param {PageState} state */
export function format(state) {
  const p = new URLSearchParams({ text: state.text });
  if (state.model !== MODELS[0]) p.set("model", state.model);
  if (state.head !== null) p.set("head", state.head);
  if (state.segment !== null) p.set("segment", state.segment);
  if (state.panels) p.set("panels", state.panels.join(","));
  return `#${p}`;
}
