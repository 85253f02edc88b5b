// Which build of the engine's WebAssembly this browser runs. Trunk's build uses
// SIMD128, which every browser with WebGPU has; a second build (`cargo xtask
// wasm-relaxed`, Trunk's post-build hook) adds relaxed SIMD, whose fused
// multiply-add makes the CPU path's products faster where the browser has it.
// Both share one JavaScript glue (infiniscope.js). A module with an unknown
// instruction fails to compile as a whole, so the choice is made before loading.

/**
 * A module of one function `(v128, v128, v128) → v128` that is `f32x4.relaxed_madd`:
 * it validates exactly where relaxed SIMD is there.
 */
const RELAXED_PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // "\0asm", version 1
  0x01, 0x08, 0x01, 0x60, 0x03, 0x7b, 0x7b, 0x7b, 0x01, 0x7b, // type: (v128 v128 v128) → v128
  0x03, 0x02, 0x01, 0x00, // function 0 of that type
  0x0a, 0x0d, 0x01, 0x0b, 0x00, // code: one body of 11 bytes, no locals
  0x20, 0x00, 0x20, 0x01, 0x20, 0x02, // local.get 0, 1, 2
  0xfd, 0x85, 0x02, // f32x4.relaxed_madd
  0x0b, // end
]);

/** Whether this JavaScript engine runs relaxed SIMD. */
export function relaxedSimd() {
  return WebAssembly.validate(RELAXED_PROBE);
}

/** The file name of the engine build to load here (beside infiniscope.js). */
export function wasmFile(relaxed = relaxedSimd()) {
  return relaxed ? "infiniscope_relaxed_bg.wasm" : "infiniscope_bg.wasm";
}
