//! Products in the page's WebAssembly: 4 × 8 tiles on SIMD128, eight vector
//! accumulators. gemm's SIMD128 kernel keeps a 12 × 4 tile in twelve, which with its
//! operands is more than the XMM registers V8 gives WebAssembly code; it ran at about a
//! quarter of the 128-bit peak, and the engine reads 1.15× faster on these tiles
//! (BENCHMARKS.md §5). Tiles of 6 × 8, 5 × 8 and 3 × 12 measured slower than 4 × 8.
//! Built with relaxed SIMD (the page's second build, `cargo xtask wasm-relaxed`), each
//! step is a fused multiply-add (the engine reads ≈ 1.2× faster, BENCHMARKS.md).

use core::arch::wasm32::*;

/// Rows and columns of a tile.
const MR: usize = 4;
const NR: usize = 8;

/// `c [m×n] (+)= a [m×k] · b [k×n]` for `a` with contiguous columns (row stride
/// `a.1`), `b` with any strides, `c` with row stride `rsc`: the rows that fill whole
/// tiles of 4 × 8; returns how many rows (a multiple of 4) and columns (of 8) it did.
///
/// # Safety
/// `a`, `b` hold every element their strides reach for `m`, `k`, `n`; `c` holds
/// `extent(m, n, rsc, 1)` elements.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn product(
    m: usize,
    k: usize,
    n: usize,
    (a, lda): (&[f32], usize),
    (b, rsb, csb): (&[f32], usize, usize),
    c: *mut f32,
    rsc: usize,
    accumulate: bool,
) -> (usize, usize) {
    let (rows, cols) = (m / MR * MR, n / NR * NR);
    // One column panel of b at a time, packed [k][8] so each step reads 32 bytes in a
    // row; it stays in cache while every row tile of a passes over it.
    let mut panel = vec![0.0f32; k * NR];
    for j in (0..cols).step_by(NR) {
        for (kk, row) in panel.chunks_exact_mut(NR).enumerate() {
            for (x, out) in row.iter_mut().enumerate() {
                *out = b[kk * rsb + (j + x) * csb];
            }
        }
        for i in (0..rows).step_by(MR) {
            unsafe {
                tile(
                    k,
                    &a[i * lda..],
                    lda,
                    &panel,
                    c.add(i * rsc + j),
                    rsc,
                    accumulate,
                )
            };
        }
    }
    (rows, cols)
}

/// `a · b + c`, fused where the build has relaxed SIMD.
#[inline(always)]
fn madd(a: v128, b: v128, c: v128) -> v128 {
    #[cfg(target_feature = "relaxed-simd")]
    return f32x4_relaxed_madd(a, b, c);
    #[cfg(not(target_feature = "relaxed-simd"))]
    f32x4_add(f32x4_mul(a, b), c)
}

/// One tile: `c` (row stride `rsc`) (+)= MR rows of `a` (stride `lda`) · `panel` `[k][NR]`,
/// each row's eight sums in two vectors.
#[inline(always)]
unsafe fn tile(
    k: usize,
    a: &[f32],
    lda: usize,
    panel: &[f32],
    c: *mut f32,
    rsc: usize,
    accumulate: bool,
) {
    const V: usize = NR / 4;
    let mut acc = [[f32x4_splat(0.0); V]; MR];
    let p = panel.as_ptr();
    let rows: [*const f32; MR] = core::array::from_fn(|r| a[r * lda..r * lda + k].as_ptr());
    for kk in 0..k {
        // SAFETY: kk < k, and the panel holds k rows of NR; each a row holds k elements.
        let b: [v128; V] =
            core::array::from_fn(|v| unsafe { v128_load(p.add(kk * NR + 4 * v) as *const v128) });
        for (row, acc) in rows.iter().zip(&mut acc) {
            let x = unsafe { v128_load32_splat(row.add(kk) as *const u32) };
            for (sum, b) in acc.iter_mut().zip(&b) {
                *sum = madd(x, *b, *sum);
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        for (v, &sum) in acc.iter().enumerate() {
            // SAFETY: the caller's c holds this tile (MR rows, NR columns).
            let out = unsafe { c.add(r * rsc + 4 * v) } as *mut v128;
            let sum = if accumulate {
                f32x4_add(unsafe { v128_load(out) }, sum)
            } else {
                sum
            };
            unsafe { v128_store(out, sum) };
        }
    }
}
