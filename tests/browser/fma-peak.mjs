// The ceiling of the page's CPU path on this host: GFLOP/s of a WebAssembly loop that
// does nothing but 128-bit multiply-adds into independent accumulators (no loads), as
// the engine's product tiles do at best. A benchmark, not a test:
//   node [--experimental-wasm-relaxed-simd] tests/browser/fma-peak.mjs [seconds]
// Relaxed SIMD's fused f32x4.relaxed_madd is measured where this Node has it (Node 20
// with the flag; Chromium has it), SIMD128's f32x4.mul then f32x4.add always.

import { relaxedSimd } from "../../web/scope/wasm-build.js";

const seconds = Number(process.argv[2] ?? 1);

/** Unsigned LEB128. */
const leb = (n) => {
  const out = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n) byte |= 0x80;
    out.push(byte);
  } while (n);
  return out;
};
const section = (id, bytes) => [id, ...leb(bytes.length), ...bytes];
const F32X4_SPLAT = [0xfd, 0x13];
const F32X4_ADD = [0xfd, 0xe4, 0x01];
const F32X4_MUL = [0xfd, 0xe6, 0x01];
const F32X4_RELAXED_MADD = [0xfd, 0x85, 0x02];
const F32X4_EXTRACT_LANE_0 = [0xfd, 0x1f, 0x00];
const f32 = (x) => [0x43, ...new Uint8Array(new Float32Array([x]).buffer)];

/**
 * A module exporting `run(iterations: i32) → f32`: each iteration updates `n`
 * accumulators a_i = x·y + a_i (fused, or a multiply then an add); the sum of their
 * first lanes is returned so that none is optimised away.
 */
function module(n, fused) {
  const [x, y] = [n + 1, n + 2]; // locals after the parameter (0) and the n accumulators
  const body = [...f32(1.0001), ...F32X4_SPLAT, 0x21, x, ...f32(0.9999), ...F32X4_SPLAT, 0x21, y];
  body.push(0x03, 0x40); // loop
  for (let a = 1; a <= n; a++) {
    if (fused) body.push(0x20, x, 0x20, y, 0x20, a, ...F32X4_RELAXED_MADD, 0x21, a);
    else body.push(0x20, x, 0x20, y, ...F32X4_MUL, 0x20, a, ...F32X4_ADD, 0x21, a);
  }
  body.push(0x20, 0, 0x41, 1, 0x6b, 0x22, 0, 0x0d, 0, 0x0b); // i -= 1; br_if i; end
  body.push(0x20, 1);
  for (let a = 2; a <= n; a++) body.push(0x20, a, ...F32X4_ADD);
  body.push(...F32X4_EXTRACT_LANE_0, 0x0b);
  const locals = [0x01, ...leb(n + 2), 0x7b];
  const fn = [...locals, ...body];
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [0x01, 0x60, 0x01, 0x7f, 0x01, 0x7d]), // (i32) → f32
    ...section(3, [0x01, 0x00]),
    ...section(7, [0x01, 0x03, ...new TextEncoder().encode("run"), 0x00, 0x00]),
    ...section(10, [0x01, ...leb(fn.length), ...fn]),
  ]);
}

const rows = [];
for (const fused of relaxedSimd() ? [false, true] : [false]) {
  for (const n of [8, 12]) {
    const { instance } = await WebAssembly.instantiate(module(n, fused));
    const run = instance.exports.run;
    run(1_000_000); // tier up
    let iterations = 1_000_000;
    let best = 0;
    const until = performance.now() + seconds * 1000;
    while (performance.now() < until) {
      const began = performance.now();
      run(iterations);
      const took = performance.now() - began;
      best = Math.max(best, (iterations * n * 8) / took / 1e6);
      if (took < 50) iterations *= 2;
    }
    rows.push(`| ${fused ? "f32x4.relaxed_madd" : "f32x4.mul + f32x4.add"} | ${n} | ${best.toFixed(1)} |`);
  }
}
console.log(`WebAssembly multiply-adds in Node ${process.version} (best of ${seconds} s each)\n\n| instruction | accumulators | GFLOP/s |\n|---|---|---|\n${rows.join("\n")}`);
