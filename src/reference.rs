//! The CPU reference: the model of DESIGN.md §1 in plain Rust, one function per op,
//! streaming segment by segment. It is the golden model every GPU kernel is tested
//! against, and the fallback where no GPU adapter exists.
//!
//! Speed without a second code path: a call takes a run of segments, so the row-wise
//! products (matrixmultiply, on every core natively) see many rows at once; each
//! head walks the segments on a thread of its own; loops that fold a row keep eight
//! lanes and the softmax uses its own exp, so that they vectorize.
//!
//! Layouts: activations are `[t][d_model]` row-major, head `h` owning columns
//! `h·d .. (h+1)·d`; a layer's memory M is `[head][i][j]` and z is `[head][i]`.

use std::sync::Arc;

use crate::taps::{LayerMemory, MemoryMode, RunOptions, Segment, SegmentOutput, Taps};
use crate::{Error, Model, UpdateRule};

/// Lower clamp of the memory read's denominator σ(q)·z (DESIGN.md §1).
pub const MEMORY_EPS: f32 = 1e-6;

/// `a [m×k] · b [k×n]`.
pub fn matmul(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
    let mut c = vec![0.0; m * n];
    gemm(m, k, n, (a, k, 1), (b, n, 1), (&mut c, n), false);
    c
}

/// `a [m×k] · bᵀ` where `b` is `[n×k]` (the tied output projection).
pub fn matmul_bt(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
    let mut c = vec![0.0; m * n];
    gemm(m, k, n, (a, k, 1), (b, 1, k), (&mut c, n), false);
    c
}

/// `c [m×n] = a [m×k] · b [k×n]`, or `c += a · b` when `accumulate`. Each matrix is a
/// slice with its row and column strides (c's columns are contiguous), so a head's
/// columns of an activation or a transposed view can be used in place.
#[allow(clippy::type_complexity)]
fn gemm(
    m: usize,
    k: usize,
    n: usize,
    a: (&[f32], usize, usize),
    b: (&[f32], usize, usize),
    c: (&mut [f32], usize),
    accumulate: bool,
) {
    // The last element each matrix touches must lie inside its slice.
    let end =
        |rows: usize, cols: usize, rs: usize, cs: usize| (rows - 1) * rs + (cols - 1) * cs + 1;
    if m == 0 || k == 0 || n == 0 {
        return;
    }
    assert!(a.0.len() >= end(m, k, a.1, a.2));
    assert!(b.0.len() >= end(k, n, b.1, b.2));
    assert!(c.0.len() >= end(m, n, c.1, 1));
    // SAFETY: the asserts above keep every index sgemm touches inside a, b and c.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.0.as_ptr(),
            a.1 as isize,
            a.2 as isize,
            b.0.as_ptr(),
            b.1 as isize,
            b.2 as isize,
            if accumulate { 1.0 } else { 0.0 },
            c.0.as_mut_ptr(),
            c.1 as isize,
            1,
        );
    }
}

pub fn embed(table: &[f32], tokens: &[u32], d_model: usize) -> Vec<f32> {
    let mut x = Vec::with_capacity(tokens.len() * d_model);
    for &t in tokens {
        x.extend_from_slice(&table[t as usize * d_model..(t as usize + 1) * d_model]);
    }
    x
}

/// y = x / √(mean(x²) + ε) · w, row by row.
pub fn rmsnorm(x: &[f32], w: &[f32], eps: f32) -> Vec<f32> {
    let cols = w.len();
    let mut y = x.to_vec();
    for row in y.chunks_exact_mut(cols) {
        let r = 1.0 / (dot(row, row) / cols as f32 + eps).sqrt();
        row.iter_mut().zip(w).for_each(|(v, g)| *v = *v * r * g);
    }
    y
}

/// Σ aᵢbᵢ, summed in eight interleaved lanes so that it vectorizes.
fn dot(a: &[f32], b: &[f32]) -> f32 {
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

/// Rotary position embedding (rotate-half pairing: i with i + d/2), positions 0..n
/// within the segment.
pub fn rope(x: &[f32], n_heads: usize, head_dim: usize, base: f32) -> Vec<f32> {
    let rows = x.len() / (n_heads * head_dim);
    rotate(x, &rotations(rows, head_dim, base), n_heads, head_dim)
}

/// RoPE's (sin, cos) per position `0..rows` and pair `0..d/2`, the same for every head.
pub fn rotations(rows: usize, head_dim: usize, base: f32) -> Vec<(f32, f32)> {
    let frequencies: Vec<f32> = (0..head_dim / 2)
        .map(|i| base.powf(-((2 * i) as f32) / head_dim as f32))
        .collect();
    (0..rows)
        .flat_map(|t| frequencies.iter().map(move |f| (t as f32 * f).sin_cos()))
        .collect()
}

/// [`rope`] with its rotations computed beforehand (for at least as many rows as `x`).
pub fn rotate(x: &[f32], rotations: &[(f32, f32)], n_heads: usize, head_dim: usize) -> Vec<f32> {
    let half = head_dim / 2;
    let mut y = x.to_vec();
    for (row, rotations) in y
        .chunks_exact_mut(n_heads * head_dim)
        .zip(rotations.chunks_exact(half))
    {
        for head in row.chunks_exact_mut(head_dim) {
            for (i, &(sin, cos)) in rotations.iter().enumerate() {
                let (a, b) = (head[i], head[i + half]);
                head[i] = a * cos - b * sin;
                head[i + half] = a * sin + b * cos;
            }
        }
    }
    y
}

/// Causal softmax attention within the segment: A_dot = softmax(QKᵀ/√d) V.
pub fn attention(q: &[f32], k: &[f32], v: &[f32], n_heads: usize, head_dim: usize) -> Vec<f32> {
    let dm = n_heads * head_dim;
    let n = q.len() / dm;
    let scale = 1.0 / (head_dim as f32).sqrt();
    let mut out = vec![0.0; n * dm];
    let mut p = vec![0.0f32; n];
    for h in 0..n_heads {
        let col = h * head_dim;
        for t in 0..n {
            let qt = &q[t * dm + col..t * dm + col + head_dim];
            for s in 0..=t {
                p[s] = dot(qt, &k[s * dm + col..s * dm + col + head_dim]) * scale;
            }
            let max = p[..=t].iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0;
            for ps in &mut p[..=t] {
                *ps = exp_nonpositive(*ps - max);
                sum += *ps;
            }
            let o = &mut out[t * dm + col..t * dm + col + head_dim];
            for s in 0..=t {
                let w = p[s] / sum;
                for (oj, vj) in o.iter_mut().zip(&v[s * dm + col..s * dm + col + head_dim]) {
                    *oj += w * vj;
                }
            }
        }
    }
    out
}

/// σ(x) = ELU(x) + 1: positive, so memory reads are convex mixtures of stored values.
pub fn sigma(x: f32) -> f32 {
    if x > 0.0 {
        x + 1.0
    } else {
        exp_nonpositive(x)
    }
}

/// A_mem = σ(Q) M / (σ(Q) z) per head; exactly 0 where there is no memory yet.
/// `q` is used without position encoding.
pub fn memory_read(
    q: &[f32],
    mem: &LayerMemory,
    n_heads: usize,
    head_dim: usize,
    has_memory: bool,
) -> Vec<f32> {
    let (d, dm) = (head_dim, n_heads * head_dim);
    let n = q.len() / dm;
    let mut out = vec![0.0; q.len()];
    if !has_memory {
        return out;
    }
    for h in 0..n_heads {
        let sq = sigma_of_head(q, h, n_heads, d);
        let (m, z) = (
            &mem.m[h * d * d..(h + 1) * d * d],
            &mem.z[h * d..(h + 1) * d],
        );
        // Numerators σ(Q)M straight into this head's columns, then each row ÷ σ(q)·z.
        gemm(
            n,
            d,
            d,
            (&sq, d, 1),
            (m, d, 1),
            (&mut out[h * d..], dm),
            false,
        );
        for (sq_t, out_t) in sq.chunks_exact(d).zip(out.chunks_exact_mut(dm)) {
            let den = dot(sq_t, z).max(MEMORY_EPS);
            out_t[h * d..(h + 1) * d].iter_mut().for_each(|x| *x /= den);
        }
    }
    out
}

/// Head `h`'s columns of `x` (`[t][n_heads·d]`), as `[t][d]`.
fn head_columns(x: &[f32], h: usize, n_heads: usize, d: usize) -> Vec<f32> {
    let mut columns = Vec::with_capacity(x.len() / n_heads);
    for row in x.chunks_exact(n_heads * d) {
        columns.extend_from_slice(&row[h * d..(h + 1) * d]);
    }
    columns
}

/// σ of head `h`'s columns of `x`, as `[t][d]`.
fn sigma_of_head(x: &[f32], h: usize, n_heads: usize, d: usize) -> Vec<f32> {
    let mut columns = head_columns(x, h, n_heads, d);
    columns.iter_mut().for_each(|v| *v = sigma(*v));
    columns
}

/// Rows below which a call stays on one thread: starting threads costs tens of
/// microseconds, and far more on a busy machine (a 16K-token passkey run of one
/// segment per call, threaded, beside two training runs: 131 s of wall time for 7 s
/// of CPU time, the threads waiting for cores).
const THREADED_ROWS: usize = 128;

/// `[f(0), f(1), …, f(n − 1)]`, computed on every core (in contiguous runs) when the
/// call has `rows` ≥ [`THREADED_ROWS`], else in order.
fn parallel_map<T: Send>(rows: usize, n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let threads = if rows >= THREADED_ROWS { cores() } else { 1 };
    let per_thread = n.div_ceil(threads.min(n).max(1));
    if per_thread >= n {
        return (0..n).map(f).collect();
    }
    let f = &f;
    let run = move |start: usize| {
        (start..(start + per_thread).min(n))
            .map(f)
            .collect::<Vec<T>>()
    };
    std::thread::scope(|scope| {
        let others: Vec<_> = (per_thread..n)
            .step_by(per_thread)
            .map(|start| scope.spawn(move || run(start)))
            .collect();
        let mut all = run(0);
        for other in others {
            all.extend(
                other
                    .join()
                    .unwrap_or_else(|e| std::panic::resume_unwind(e)),
            );
        }
        all
    })
}

/// Threads worth starting: this machine's cores natively; one in the browser, whose
/// page has a single thread here.
fn cores() -> usize {
    #[cfg(target_arch = "wasm32")]
    return 1;
    #[cfg(not(target_arch = "wasm32"))]
    {
        static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
        *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |c| c.get()))
    }
}

/// Writes a segment into memory. Linear: M += σ(K)ᵀV. Delta: M += σ(K)ᵀ(V − σ(K)M/(σ(K)z)),
/// so a binding already stored adds nothing. Both: z += Σ_t σ(K_t).
pub fn memory_write(
    k: &[f32],
    v: &[f32],
    mem: &mut LayerMemory,
    n_heads: usize,
    head_dim: usize,
    rule: UpdateRule,
    has_memory: bool,
) {
    let (d, dm) = (head_dim, n_heads * head_dim);
    let n = k.len() / dm;
    let values = match rule {
        UpdateRule::Linear => v.to_vec(),
        UpdateRule::Delta => {
            let retrieved = memory_read(k, mem, n_heads, head_dim, has_memory);
            v.iter().zip(&retrieved).map(|(a, b)| a - b).collect()
        }
    };
    for h in 0..n_heads {
        let sk = sigma_of_head(k, h, n_heads, d);
        // σ(K)ᵀ is σ(K) read with its strides swapped.
        let m = &mut mem.m[h * d * d..(h + 1) * d * d];
        gemm(
            d,
            n,
            d,
            (&sk, 1, d),
            (&values[h * d..], dm, 1),
            (m, d),
            true,
        );
        for sk_t in sk.chunks_exact(d) {
            mem.z[h * d..(h + 1) * d]
                .iter_mut()
                .zip(sk_t)
                .for_each(|(z, s)| *z += s);
        }
    }
}

/// A = g·A_mem + (1−g)·A_dot with g = sigmoid(β) per head; also returns each
/// token's memory share per head, `[t][head]`.
pub fn gate_mix(
    a_mem: &[f32],
    a_dot: &[f32],
    beta: &[f32],
    head_dim: usize,
) -> (Vec<f32>, Vec<f32>) {
    let n_heads = beta.len();
    let mut out = vec![0.0; a_mem.len()];
    let mut share = Vec::with_capacity(a_mem.len() / head_dim);
    for (idx, (m, l)) in a_mem
        .chunks_exact(head_dim)
        .zip(a_dot.chunks_exact(head_dim))
        .enumerate()
    {
        let g = crate::gate::sigmoid(beta[idx % n_heads]);
        let (mut norm_m, mut norm_l) = (0.0f32, 0.0f32);
        for j in 0..head_dim {
            let (gm, gl) = (g * m[j], (1.0 - g) * l[j]);
            out[idx * head_dim + j] = gm + gl;
            norm_m += gm * gm;
            norm_l += gl * gl;
        }
        let (norm_m, norm_l) = (norm_m.sqrt(), norm_l.sqrt());
        share.push(if norm_m + norm_l > 0.0 {
            norm_m / (norm_m + norm_l)
        } else {
            0.0
        });
    }
    (out, share)
}

/// SwiGLU's gating: silu(gate) · up, silu(g) = g · sigmoid(g).
pub fn swiglu(gate: &[f32], up: &[f32]) -> Vec<f32> {
    gate.iter()
        .zip(up)
        .map(|(&g, u)| {
            // sigmoid from e^−|g| ≤ 1, which cannot overflow for either sign of g.
            let e = exp_nonpositive(-g.abs());
            let sigmoid = if g >= 0.0 {
                1.0 / (1.0 + e)
            } else {
                e / (1.0 + e)
            };
            g * sigmoid * u
        })
        .collect()
}

pub fn add(x: &mut [f32], y: &[f32]) {
    x.iter_mut().zip(y).for_each(|(a, b)| *a += b);
}

/// Per position: cross-entropy against `targets` (for the first `targets.len()`
/// positions) and the argmax (for all; ties go to the lowest id).
pub fn cross_entropy(logits: &[f32], vocab: usize, targets: &[u32]) -> (Vec<f32>, Vec<u32>) {
    let mut loss = Vec::with_capacity(targets.len());
    let mut argmax = Vec::new();
    for (t, row) in logits.chunks_exact(vocab).enumerate() {
        let max = lanes(row, f32::NEG_INFINITY, |m, v| if v > m { v } else { m })
            .into_iter()
            .fold(f32::NEG_INFINITY, f32::max);
        argmax.push(row.iter().position(|&v| v == max).unwrap_or(0) as u32);
        if let Some(&target) = targets.get(t) {
            let sum: f32 = lanes(row, 0.0, |sum, v| sum + exp_nonpositive(v - max))
                .iter()
                .sum();
            loss.push(sum.ln() + max - row[target as usize]);
        }
    }
    (loss, argmax)
}

/// Folds `row` in eight interleaved lanes (then the tail into lane 0): independent
/// accumulators the compiler can keep in one SIMD register, where a single
/// accumulator would chain every step on the last.
fn lanes(row: &[f32], init: f32, step: impl Fn(f32, f32) -> f32) -> [f32; 8] {
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
fn exp_nonpositive(x: f32) -> f32 {
    // ln 2 = LN2_HI + LN2_LO, LN2_HI = 355/512 so that n · LN2_HI is exact.
    const LN2_HI: f32 = 355.0 / 512.0;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const ROUND: f32 = 12_582_912.0; // 1.5 · 2²³: adding it rounds to an integer
    let x = x.max(-87.0);
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

/// Checks a segment against the model before any engine touches it.
pub fn validate_segment(model: &Model, segment: &Segment) -> Result<(), Error> {
    let config = &model.config;
    let n = segment.tokens.len();
    if n == 0 || n > config.segment_len {
        return Err(Error::Text(format!(
            "a segment holds 1 to {} tokens, got {n}",
            config.segment_len
        )));
    }
    if segment.targets.len() > n {
        return Err(Error::Text(format!(
            "{} targets for {n} tokens",
            segment.targets.len()
        )));
    }
    if let Some(bad) = segment
        .tokens
        .iter()
        .chain(&segment.targets)
        .find(|&&t| t as usize >= config.vocab_size)
    {
        return Err(Error::Text(format!(
            "token id {bad} is outside the vocabulary ({})",
            config.vocab_size
        )));
    }
    Ok(())
}

/// The CPU engine: the model plus its memory state.
pub struct Reference {
    model: Arc<Model>,
    options: RunOptions,
    memory: Vec<LayerMemory>,
    segments_written: usize,
    /// RoPE's rotations for a whole segment, computed once.
    rotations: Vec<(f32, f32)>,
}

impl Reference {
    pub fn new(model: Arc<Model>, options: RunOptions) -> Self {
        let c = &model.config;
        let memory = vec![LayerMemory::zeros(c.n_heads, c.head_dim); c.n_layers];
        Self {
            rotations: rotations(c.segment_len, c.head_dim, c.rope_base),
            model,
            options,
            memory,
            segments_written: 0,
        }
    }

    /// Forgets everything read so far.
    pub fn reset(&mut self) {
        let c = &self.model.config;
        self.memory = vec![LayerMemory::zeros(c.n_heads, c.head_dim); c.n_layers];
        self.segments_written = 0;
    }

    pub fn memory(&self) -> &[LayerMemory] {
        &self.memory
    }

    /// Continues from a state read out of another engine.
    pub fn restore(&mut self, memory: Vec<LayerMemory>, segments_written: usize) {
        self.memory = memory;
        self.segments_written = segments_written;
    }

    /// Runs one segment through every layer: read memory, then (if `commit`) write it.
    pub fn segment(&mut self, segment: &Segment, taps: Taps) -> Result<SegmentOutput, Error> {
        let mut outputs = self.segments(std::slice::from_ref(segment), taps)?;
        Ok(outputs.pop().expect("one output per segment"))
    }

    /// Runs consecutive segments as [`Self::segment`] would one after another, but
    /// every row-wise op (norms, projections, MLP, logits) takes all their tokens at
    /// once, so the products are large; attention and the memory go segment by
    /// segment, in order. The memory is tapped after the last segment only.
    pub fn segments(
        &mut self,
        segments: &[Segment],
        taps: Taps,
    ) -> Result<Vec<SegmentOutput>, Error> {
        for segment in segments {
            validate_segment(&self.model, segment)?;
        }
        let model = Arc::clone(&self.model);
        let c = &model.config;
        let (dm, h, d, vocab) = (c.d_model, c.n_heads, c.head_dim, c.vocab_size);
        // Each segment's rows among all the tokens.
        let mut spans = Vec::with_capacity(segments.len());
        for segment in segments {
            let start = spans.last().map_or(0, |s: &std::ops::Range<usize>| s.end);
            spans.push(start..start + segment.tokens.len());
        }
        let rows = spans.last().map_or(0, |s| s.end);
        let tokens: Vec<u32> = segments.iter().flat_map(|s| s.tokens.clone()).collect();
        let mut shares = vec![Vec::new(); segments.len()];

        let mut x = embed(&model.weights.embed, &tokens, dm);
        for (layer, mem) in model.weights.layers.iter().zip(&mut self.memory) {
            let xn = rmsnorm(&x, &layer.attn_norm, c.norm_eps);
            let q = matmul(&xn, &layer.wq, rows, dm, dm);
            let k = matmul(&xn, &layer.wk, rows, dm, dm);
            let v = matmul(&xn, &layer.wv, rows, dm, dm);
            // Heads are independent from the projections to the gate: each walks the
            // segments in order with its own part of the memory, on a core of its own.
            let heads = parallel_map(rows, h, |head| {
                let columns = |x: &[f32]| head_columns(x, head, h, d);
                let (q, k, v) = (columns(&q), columns(&k), columns(&v));
                let mut memory = mem.head(head, d);
                let (mut a, mut share) = (Vec::with_capacity(rows * d), Vec::with_capacity(rows));
                let mut written = self.segments_written;
                for (segment, span) in segments.iter().zip(&spans) {
                    let own = span.start * d..span.end * d;
                    let (q, k, v) = (&q[own.clone()], &k[own.clone()], &v[own]);
                    let a_dot = attention(
                        &rotate(q, &self.rotations, 1, d),
                        &rotate(k, &self.rotations, 1, d),
                        v,
                        1,
                        d,
                    );
                    let has_memory = written > 0;
                    let read_memory = has_memory && self.options.memory == MemoryMode::On;
                    let a_mem = memory_read(q, &memory, 1, d, read_memory);
                    if segment.commit {
                        memory_write(
                            k,
                            v,
                            &mut memory,
                            1,
                            d,
                            self.options.update_rule,
                            has_memory,
                        );
                        written += 1;
                    }
                    let (mixed, segment_share) =
                        gate_mix(&a_mem, &a_dot, &layer.beta[head..=head], d);
                    a.extend(mixed);
                    share.extend(segment_share);
                }
                (a, share, memory)
            });
            let mut a = vec![0.0; rows * dm];
            for (head, (a_head, _, memory)) in heads.iter().enumerate() {
                for (row, a_t) in a.chunks_exact_mut(dm).zip(a_head.chunks_exact(d)) {
                    row[head * d..(head + 1) * d].copy_from_slice(a_t);
                }
                mem.set_head(head, memory);
            }
            for (share, span) in shares.iter_mut().zip(&spans) {
                share.extend(span.clone().flat_map(|t| heads.iter().map(move |x| x.1[t])));
            }
            add(&mut x, &matmul(&a, &layer.wo, rows, dm, dm));

            let xn = rmsnorm(&x, &layer.mlp_norm, c.norm_eps);
            let f = c.mlp_hidden;
            let hidden = swiglu(
                &matmul(&xn, &layer.w_gate, rows, dm, f),
                &matmul(&xn, &layer.w_up, rows, dm, f),
            );
            add(&mut x, &matmul(&hidden, &layer.w_down, rows, f, dm));
        }
        self.segments_written += segments.iter().filter(|s| s.commit).count();
        let logits = matmul_bt(
            &rmsnorm(&x, &model.weights.final_norm, c.norm_eps),
            &model.weights.embed,
            rows,
            dm,
            vocab,
        );
        let logits_of =
            |span: &std::ops::Range<usize>| &logits[span.start * vocab..span.end * vocab];
        // The loss reads every logit (an exp per vocabulary entry): only when tapped.
        let losses = parallel_map(rows, segments.len(), |i| {
            taps.loss
                .then(|| cross_entropy(logits_of(&spans[i]), vocab, &segments[i].targets))
        });
        let last = segments.len().saturating_sub(1);
        let outputs = spans.iter().zip(shares).zip(losses).enumerate();
        Ok(outputs
            .map(|(i, ((span, share), loss))| {
                let logits = logits_of(span);
                let (loss, argmax) = loss.unzip();
                SegmentOutput {
                    n_tokens: span.len(),
                    loss,
                    argmax,
                    logits: taps.logits.then(|| logits.to_vec()),
                    memory: (taps.memory && i == last).then(|| self.memory.clone()),
                    memory_share: taps.memory_share.then_some(share),
                }
            })
            .collect())
    }
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
