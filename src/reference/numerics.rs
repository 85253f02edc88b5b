//! The CPU reference's numeric kernels: strided products on faer's gemm, folds in
//! eight lanes and an exp of its own, so that the hot loops vectorize. Each computes
//! exactly what its plain formula says; only the order of the sums differs.

/// A matrix operand: a slice with its row and column strides, so that a head's columns
/// of an activation or a transposed view can be used in place.
type Strided<'a> = (&'a [f32], usize, usize);

/// Products at least this large (m·k·n) are spread over the cores; a segment's
/// memory products (32·64·64) stay on the calling thread.
#[cfg(not(target_arch = "wasm32"))]
const THREADED_MACS: usize = 1 << 20;

/// The last element a `rows × cols` matrix with strides `rs`, `cs` touches, plus one.
fn extent(rows: usize, cols: usize, rs: usize, cs: usize) -> usize {
    (rows - 1) * rs + (cols - 1) * cs + 1
}

/// `c [m×n] = a [m×k] · b [k×n]`, or `c += a · b` when `accumulate`; c's rows are
/// `c.1` apart and its columns contiguous.
pub(super) fn gemm(
    m: usize,
    k: usize,
    n: usize,
    a: Strided,
    b: Strided,
    c: (&mut [f32], usize),
    accumulate: bool,
) {
    if m == 0 || k == 0 || n == 0 {
        return;
    }
    assert!(c.0.len() >= extent(m, n, c.1, 1));
    // SAFETY: c holds every element the product writes (asserted above; a and b in `kernel`).
    unsafe { kernel(m, k, n, a, b, c.0.as_mut_ptr(), c.1, accumulate) }
}

/// `a [m×k] · b [k×n]` as a new row-major `[m×n]`, each element written once (no
/// zeroing pass before: it was 3% of the CPU reference's time).
pub(super) fn product(m: usize, k: usize, n: usize, a: Strided, b: Strided) -> Vec<f32> {
    if m == 0 || k == 0 || n == 0 {
        return vec![0.0; m * n];
    }
    let mut c = Vec::with_capacity(m * n);
    // SAFETY: the capacity holds m·n elements; a product that does not accumulate
    // writes every one of them without reading any, so all are initialised after it.
    unsafe {
        kernel(m, k, n, a, b, c.as_mut_ptr(), n, false);
        c.set_len(m * n);
    }
    c
}

/// The product itself on faer's gemm, whose kernels are chosen for this CPU at run time
/// (AVX-512, AVX2+FMA or SSE natively). In the page, whole 4 × 8 tiles go to
/// [`super::tiles`] and only the edges to gemm's SIMD128 kernels. `c` must hold
/// `extent(m, n, rsc, 1)` elements.
#[allow(clippy::too_many_arguments)]
unsafe fn kernel(
    m: usize,
    k: usize,
    n: usize,
    a: Strided,
    b: Strided,
    c: *mut f32,
    rsc: usize,
    accumulate: bool,
) {
    assert!(a.0.len() >= extent(m, k, a.1, a.2));
    assert!(b.0.len() >= extent(k, n, b.1, b.2));
    #[cfg(target_arch = "wasm32")]
    if a.2 == 1 {
        // SAFETY: as asserted above; the edges are the remaining rows (all columns) and
        // the remaining columns of the tiled rows, each within a, b and c.
        unsafe {
            let (rows, cols) = super::tiles::product(m, k, n, (a.0, a.1), b, c, rsc, accumulate);
            if rows < m {
                let a_rest = (&a.0[rows * a.1..], a.1, 1);
                on_gemm(
                    m - rows,
                    k,
                    n,
                    a_rest,
                    b,
                    c.add(rows * rsc),
                    rsc,
                    accumulate,
                );
            }
            if cols < n && rows > 0 {
                let b_rest = (&b.0[cols * b.2..], b.1, b.2);
                on_gemm(rows, k, n - cols, a, b_rest, c.add(cols), rsc, accumulate);
            }
        }
        return;
    }
    unsafe { on_gemm(m, k, n, a, b, c, rsc, accumulate) }
}

#[allow(clippy::too_many_arguments)]
unsafe fn on_gemm(
    m: usize,
    k: usize,
    n: usize,
    a: Strided,
    b: Strided,
    c: *mut f32,
    rsc: usize,
    accumulate: bool,
) {
    #[cfg(not(target_arch = "wasm32"))]
    let parallelism = if m * k * n >= THREADED_MACS && super::threads::threaded() {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    #[cfg(target_arch = "wasm32")]
    let parallelism = gemm::Parallelism::None;
    // gemm's dst = α·dst + β·lhs·rhs, its strides column-first.
    // SAFETY: the caller's a, b and c hold what these sizes and strides reach.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c,
            1,
            rsc as isize,
            accumulate,
            a.0.as_ptr(),
            a.2 as isize,
            a.1 as isize,
            b.0.as_ptr(),
            b.2 as isize,
            b.1 as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        )
    };
}

/// Σ aᵢbᵢ, summed in eight interleaved lanes so that it vectorizes.
#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a8
        .remainder()
        .iter()
        .zip(b8.remainder())
        .map(|(x, y)| x * y)
        .sum();
    let mut acc = [0.0f32; 8];
    for (x, y) in a8.zip(b8) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Folds `row` in eight interleaved lanes (then the tail into lane 0): independent
/// accumulators the compiler can keep in one SIMD register, where a single
/// accumulator would chain every step on the last.
#[inline(always)]
pub(super) fn lanes(row: &[f32], init: f32, step: impl Fn(f32, f32) -> f32) -> [f32; 8] {
    let mut acc = [init; 8];
    let chunks = row.chunks_exact(8);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (a, &v) in acc.iter_mut().zip(chunk) {
            *a = step(*a, v);
        }
    }
    acc[0] = tail.iter().fold(acc[0], |a, &v| step(a, v));
    acc
}

/// e^x for x ≤ 0 (a softmax term after subtracting the row's max), relative error
/// below 3e-7, in plain arithmetic so that a loop over the vocabulary vectorizes
/// (libm's expf is a call per element): e^x = 2^n · e^r with n = round(x / ln 2),
/// |r| ≤ ln 2 / 2 and e^r by its Taylor series to r⁶. Below −87, 2^n would leave
/// the normal range; e^−87 ≈ 1.6e−38 adds nothing to a sum that holds e^0 = 1.
#[inline(always)]
pub(super) fn exp_nonpositive(x: f32) -> f32 {
    // ln 2 = LN2_HI + LN2_LO, LN2_HI = 355/512 so that n · LN2_HI is exact.
    const LN2_HI: f32 = 355.0 / 512.0;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const ROUND: f32 = 12_582_912.0; // 1.5 · 2²³: adding it rounds to an integer

    // A comparison, not f32::max: that is a call to libm's fmaxf per element in the
    // page's WebAssembly (NaN rules), which kept the loop from vectorizing.
    let x = if x < -87.0 { -87.0 } else { x };
    // t's low mantissa bits hold n (+ 2²² from ROUND, which the shift below drops).
    let t = x * std::f32::consts::LOG2_E + ROUND;
    let n = t - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r / 720.0)))));
    // 2^n from its exponent bits; integer ops only, which vectorize where `n as i32` does not.
    p * f32::from_bits(t.to_bits().wrapping_add(127) << 23)
}

#[cfg(test)]
mod tests {
    use super::exp_nonpositive;

    #[test]
    fn exp_nonpositive_is_within_3e7_of_libm() {
        let mut worst = 0.0f32;
        for i in 0..=1_000_000 {
            let x = -90.0 * i as f32 / 1e6;
            let (want, got) = (x.exp(), exp_nonpositive(x));
            if x >= -87.0 {
                worst = worst.max(((got - want) / want).abs());
            } else {
                assert!(got <= 1.7e-38, "e^{x} = {got}");
            }
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        assert_eq!(exp_nonpositive(0.0), 1.0);
    }
}
