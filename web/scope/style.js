// The element's look: design tokens as CSS custom properties on :host (a page may
// set any of them: `infini-scope { --accent: #7b3294 }`), light and dark through
// light-dark() and color-scheme (the `theme` attribute: light, dark or auto), the
// layout, and what every panel shares. Each panel adds its own rules (its `css`).

/** The design tokens, for the element (:host) and a page that adopts them (:root). */
export const TOKENS = `
:root, :host {
  color-scheme: light dark;
  --bg: light-dark(#ffffff, #121417);
  --surface: light-dark(#f6f7f9, #1a1d22);
  --ink: light-dark(#1d2127, #e6e8eb);
  --muted: light-dark(#58606b, #9ba4ae);
  --line: light-dark(#dadee4, #323840);
  --accent: light-dark(#2166ac, #7fb2e0);
  --scale-negative: light-dark(rgb(33 102 172), rgb(104 166 214));
  --scale-mid: light-dark(rgb(247 247 247), rgb(38 42 48));
  --scale-positive: light-dark(rgb(214 96 26), rgb(244 143 62));
  --flash: light-dark(#fde2e1, #6b2b28);
  --note: light-dark(#fff6d8, #3b3420);
  --error-bg: light-dark(#fde2e1, #4a1f1d);
  --error-ink: light-dark(#8a1c14, #ffb4ab);
  --font: system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", sans-serif;
  --radius: 10px;
  --gap: 12px;
}`;

/** Controls (buttons, inputs, focus), for the element and a page that adopts them. */
export const CONTROLS = `
label { color: var(--muted); }
button, select, input, textarea { font: inherit; color: var(--ink); }
button, select { background: var(--surface); border: 1px solid var(--line); border-radius: 6px; padding: .2em .75em; }
button { cursor: pointer; }
button:hover:not(:disabled) { border-color: var(--accent); }
button.primary { background: var(--accent); color: var(--bg); border-color: var(--accent); font-weight: 600; }
button:disabled { opacity: .5; cursor: default; }
:focus-visible { outline: 2px solid var(--accent); outline-offset: 2px; }
@media (prefers-reduced-motion: reduce) { * { transition: none !important; animation: none !important; scroll-behavior: auto !important; } }
`;

export const BASE_CSS = `
:host {
  display: block;
  font: 13px/1.45 var(--font);
  font-variant-numeric: tabular-nums;
  color: var(--ink);
  background: var(--bg);
}
:host([theme="light"]) { color-scheme: light; }
:host([theme="dark"]) { color-scheme: dark; }
header.bar { display: flex; flex-wrap: wrap; gap: .5em .8em; align-items: center; margin-bottom: .6em; }
header.bar strong { font-size: 15px; letter-spacing: .01em; }
.device { color: var(--muted); }
.status { color: var(--muted); min-width: 10em; }
progress { width: 10em; accent-color: var(--accent); }
.note, .error { padding: .4em .7em; border-radius: 6px; margin-bottom: .5em; }
.note { background: var(--note); }
.error { background: var(--error-bg); color: var(--error-ink); }
.note:empty, .error:empty { display: none; }
.grid { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: var(--gap); }
.narrow .grid { grid-template-columns: minmax(0, 1fr); }
/* Containment: a panel's redraw lays out and paints that panel only. */
section { background: var(--surface); border: 1px solid var(--line); border-radius: var(--radius); padding: 10px 12px; min-width: 0; contain: content; }
section.wide { grid-column: 1 / -1; }
section[hidden] { display: none; }
.panel-head { display: flex; align-items: center; gap: .5em; margin-bottom: .4em; }
.panel-head h3 { margin: 0; font-size: 13.5px; font-weight: 600; flex: 1; }
/* Panels are numbered in the order the data flows through them (the shown ones only). */
.grid { counter-reset: step; }
section:not([hidden]) { counter-increment: step; }
.panel-head h3::before { content: counter(step); display: inline-grid; place-items: center; width: 1.6em; height: 1.6em; border-radius: 50%; background: var(--accent); color: var(--bg); font-size: 11px; margin-right: .45em; }
.panel-head button { font-size: 11px; padding: .05em .55em; }
.panel-head button.help-toggle { border-radius: 50%; width: 1.9em; padding: .05em 0; font-weight: 700; }
.help { background: var(--bg); border-left: 3px solid var(--accent); border-radius: 0 6px 6px 0; padding: .45em .7em; margin: 0 0 .6em; font-size: 12px; }
.legend { display: flex; flex-wrap: wrap; align-items: center; gap: .4em; font-size: 11px; color: var(--muted); margin: .3em 0; }
.legend .bar { width: 110px; height: 10px; border-radius: 2px; border: 1px solid var(--line); }
.legend .bar.sequential { background: linear-gradient(to right, var(--scale-mid), var(--scale-positive)); }
.legend .bar.diverging { background: linear-gradient(to right, var(--scale-negative), var(--scale-mid), var(--scale-positive)); }
.info { min-height: 1.4em; color: var(--muted); font-size: 12px; }
svg { width: 100%; height: auto; display: block; }
svg .axis { font-size: 9px; fill: var(--muted); }
table th { font-weight: 500; color: var(--muted); }
table td, table th { padding: 1px 6px; text-align: right; }
details { margin-top: .3em; }
details summary { cursor: pointer; color: var(--muted); font-size: 12px; }
.visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip-path: inset(50%); white-space: nowrap; }
`;
