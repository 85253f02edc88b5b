//! Products in the page's WebAssembly: 3 × 12 tiles on SIMD128, nine vector
//! accumulators, and a strip of 3 × 4 tiles for columns left over (every width here
//! is a multiple of 4). a's rows are packed three by three first, so a step of a tile
//! reads its three values from one address. With the reference taking 32 segments a
//! call instead of 4, the page read 1.22× faster than on the 4 × 8 tiles of four row
//! pointers before (BENCHMARKS.md §5). gemm's SIMD128 kernel keeps a 12 × 4 tile in
//! twelve accumulators, which with its operands is more than the XMM registers V8
//! gives WebAssembly code; it ran at about a quarter of the 128-bit peak. Built with
//! relaxed SIMD (the page's second build, `cargo xtask wasm-relaxed`), each step is a
//! fused multiply-add (the engine reads ≈ 1.2× faster, BENCHMARKS.md).

use core::arch::wasm32::*;

/// Rows of a tile, and vectors of four columns in a whole one.
const MR: usize = 3;
const V: usize = 3;

/// `c [m×n] (+)= a [m×k] · b [k×n]` for `a` with contiguous columns (row stride
/// `a.1`), `b` with any strides, `c` with row stride `rsc`: the rows that fill whole
/// tiles of 3 rows and the columns that fill vectors of 4; returns how many rows (a
/// multiple of 3) and columns (of 4) it did.
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
    let (rows, whole, cols) = (m / MR * MR, n / (4 * V) * 4 * V, n / 4 * 4);
    // a's tiled rows, [row tile][k][MR].
    let mut packed = vec![0.0f32; rows * k];
    for (tile, a) in packed.chunks_exact_mut(MR * k).zip(a.chunks(MR * lda)) {
        for (kk, step) in tile.chunks_exact_mut(MR).enumerate() {
            for (r, out) in step.iter_mut().enumerate() {
                *out = a[r * lda + kk];
            }
        }
    }
    // One column panel of b at a time, packed [k][width] so each step reads its
    // vectors in a row; it stays in cache while every row tile passes over it.
    let mut panel = vec![0.0f32; k * 4 * V];
    let panels = (0..whole).step_by(4 * V).map(|j| (j, 4 * V));
    for (j, width) in panels.chain((whole..cols).step_by(4).map(|j| (j, 4))) {
        let panel = &mut panel[..k * width];
        for (kk, row) in panel.chunks_exact_mut(width).enumerate() {
            for (x, out) in row.iter_mut().enumerate() {
                *out = b[kk * rsb + (j + x) * csb];
            }
        }
        for (i, a) in (0..rows).step_by(MR).zip(packed.chunks_exact(MR * k)) {
            let c = unsafe { c.add(i * rsc + j) };
            match width {
                4 => unsafe { tile::<1>(a, panel, c, rsc, accumulate) },
                _ => unsafe { tile::<V>(a, panel, c, rsc, accumulate) },
            }
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

/// One tile: `c` (row stride `rsc`) (+)= `a` `[k][MR]` · `panel` `[k][4·W]`, each
/// row's sums in W vectors.
#[inline(always)]
unsafe fn tile<const W: usize>(
    a: &[f32],
    panel: &[f32],
    c: *mut f32,
    rsc: usize,
    accumulate: bool,
) {
    let mut acc = [[f32x4_splat(0.0); W]; MR];
    for (a, b) in a.chunks_exact(MR).zip(panel.chunks_exact(4 * W)) {
        // SAFETY: each chunk of the panel holds 4·W elements.
        let b: [v128; W] =
            core::array::from_fn(|v| unsafe { v128_load(b.as_ptr().add(4 * v) as *const v128) });
        for (&x, acc) in a.iter().zip(&mut acc) {
            let x = f32x4_splat(x);
            for (sum, b) in acc.iter_mut().zip(&b) {
                *sum = madd(x, *b, *sum);
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        for (v, &sum) in acc.iter().enumerate() {
            // SAFETY: the caller's c holds this tile (MR rows, 4·W columns).
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
