//! The model's ops on the CPU, one plain function per op (docs/DESIGN.md §1), each
//! the golden version of a WGSL kernel. Layouts: activations are `[t][d_model]`
//! row-major, head `h` owning columns `h·d .. (h+1)·d`; a layer's memory M is
//! `[head][i][j]` and z is `[head][i]`.

use super::numerics::{dot, exp_nonpositive, gemm, lanes, product};
use crate::taps::LayerMemory;
use crate::UpdateRule;
use multiversion::multiversion;

/// Lower clamp of the memory read's denominator σ(q)·z (docs/DESIGN.md §1.3).
pub const MEMORY_EPS: f32 = 1e-6;

/// `a [m×k] · b [k×n]`.
pub fn matmul(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
    product(m, k, n, (a, k, 1), (b, n, 1))
}

/// `a [m×k] · bᵀ` where `b` is `[n×k]` (the tied output projection).
pub fn matmul_bt(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
    product(m, k, n, (a, k, 1), (b, 1, k))
}

pub fn embed(table: &[f32], tokens: &[u32], d_model: usize) -> Vec<f32> {
    let mut x = Vec::with_capacity(tokens.len() * d_model);
    for &t in tokens {
        x.extend_from_slice(&table[t as usize * d_model..(t as usize + 1) * d_model]);
    }
    x
}

/// y = x / √(mean(x²) + ε) · w, row by row.
#[multiversion(targets = "simd")]
pub fn rmsnorm(x: &[f32], w: &[f32], eps: f32) -> Vec<f32> {
    let cols = w.len();
    let mut y = x.to_vec();
    for row in y.chunks_exact_mut(cols) {
        let r = 1.0 / (dot(row, row) / cols as f32 + eps).sqrt();
        row.iter_mut().zip(w).for_each(|(v, g)| *v = *v * r * g);
    }
    y
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
#[multiversion(targets = "simd")]
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

/// Causal softmax attention within the segment: A_dot = softmax(QKᵀ/√d) V, both
/// products whole (the masked scores are zeros in P).
#[multiversion(targets = "simd")]
pub fn attention(q: &[f32], k: &[f32], v: &[f32], n_heads: usize, head_dim: usize) -> Vec<f32> {
    let dm = n_heads * head_dim;
    let n = q.len() / dm;
    let scale = 1.0 / (head_dim as f32).sqrt();
    let mut out = vec![0.0; n * dm];
    for h in 0..n_heads {
        let col = h * head_dim;
        // `[t][s]`: Q Kᵀ, Kᵀ being K read with its strides swapped.
        let mut p = product(n, head_dim, n, (&q[col..], dm, 1), (&k[col..], 1, dm));
        for (t, row) in p.chunks_exact_mut(n).enumerate() {
            let (seen, future) = row.split_at_mut(t + 1);
            // Not f32::max: a libm call per score in WebAssembly (see exp_nonpositive).
            let max = seen
                .iter()
                .fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
            let mut sum = 0.0;
            for ps in seen.iter_mut() {
                *ps = exp_nonpositive((*ps - max) * scale);
                sum += *ps;
            }
            seen.iter_mut().for_each(|ps| *ps /= sum);
            future.fill(0.0);
        }
        let out = (&mut out[col..], dm);
        gemm(n, n, head_dim, (&p, n, 1), (&v[col..], dm, 1), out, false);
    }
    out
}

/// σ(x) = ELU(x) + 1: positive, so memory reads are convex mixtures of stored values.
#[inline(always)]
pub fn sigma(x: f32) -> f32 {
    if x > 0.0 {
        x + 1.0
    } else {
        exp_nonpositive(x)
    }
}

/// A_mem = σ(Q) M / (σ(Q) z) per head; exactly 0 where there is no memory yet.
/// `q` is used without position encoding.
#[multiversion(targets = "simd")]
pub fn memory_read(
    q: &[f32],
    mem: &LayerMemory,
    n_heads: usize,
    head_dim: usize,
    has_memory: bool,
) -> Vec<f32> {
    let (d, dm) = (head_dim, n_heads * head_dim);
    let mut out = vec![0.0; q.len()];
    if has_memory {
        for h in 0..n_heads {
            let sq = sigma_of_head(q, h, n_heads, d);
            read_head(&sq, mem, h, d, (&mut out[h * d..], dm));
        }
    }
    out
}

/// Head `h`'s σ(Q)M / (σ(Q)z) for queries already through σ (`sq`, `[t][d]`), into
/// columns 0..d of `out`'s rows, which are `out.1` apart.
fn read_head(sq: &[f32], mem: &LayerMemory, h: usize, d: usize, out: (&mut [f32], usize)) {
    let (m, z) = (&mem.m[h * d * d..][..d * d], &mem.z[h * d..][..d]);
    let (out, stride) = out;
    // Numerators σ(Q)M straight into the head's columns, then each row ÷ σ(q)·z.
    gemm(
        sq.len() / d,
        d,
        d,
        (sq, d, 1),
        (m, d, 1),
        (&mut *out, stride),
        false,
    );
    for (sq_t, out_t) in sq.chunks_exact(d).zip(out.chunks_mut(stride)) {
        let den = dot(sq_t, z).max(MEMORY_EPS);
        out_t[..d].iter_mut().for_each(|x| *x /= den);
    }
}

/// Head `h`'s columns of `x` (`[t][n_heads·d]`), as `[t][d]`.
pub(super) fn head_columns(x: &[f32], h: usize, n_heads: usize, d: usize) -> Vec<f32> {
    let mut columns = Vec::with_capacity(x.len() / n_heads);
    for row in x.chunks_exact(n_heads * d) {
        columns.extend_from_slice(&row[h * d..(h + 1) * d]);
    }
    columns
}

/// σ of head `h`'s columns of `x`, as `[t][d]`.
#[multiversion(targets = "simd")]
fn sigma_of_head(x: &[f32], h: usize, n_heads: usize, d: usize) -> Vec<f32> {
    let mut columns = head_columns(x, h, n_heads, d);
    columns.iter_mut().for_each(|v| *v = sigma(*v));
    columns
}

/// The memory's keys of the key-shift variant (`Config::key_shift`, beyond the paper),
/// and with their own taps its queries (`Config::query_shift`):
/// K̃_t = Σ_i c_i ⊙ K_{t−i} for `k` `[t][d_model]` and `shift` `[w][d_model]` = the taps
/// c_0 … c_{w−1}, with no term from before a segment's first token (the rows in
/// `starts`), so each segment's keys depend on that segment alone, like its local
/// attention.
pub fn key_shift(k: &[f32], shift: &[f32], d_model: usize, starts: &[usize]) -> Vec<f32> {
    let mut out = vec![0.0; k.len()];
    let mut start = 0;
    for (t, out_t) in out.chunks_exact_mut(d_model).enumerate() {
        if starts.contains(&t) {
            start = t;
        }
        let taps = shift.chunks_exact(d_model).enumerate().take(t - start + 1);
        for (i, c) in taps {
            let k_before = &k[(t - i) * d_model..][..d_model];
            for ((o, c), x) in out_t.iter_mut().zip(c).zip(k_before) {
                *o += c * x;
            }
        }
    }
    out
}

/// Writes a segment into memory. Linear: M += σ(K)ᵀV. Delta: M += σ(K)ᵀ(V − σ(K)M/(σ(K)z)),
/// so a binding already stored adds nothing. Both: z += Σ_t σ(K_t).
#[multiversion(targets = "simd")]
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
    for h in 0..n_heads {
        // σ(K) once: the delta rule's retrieval and the write both use it.
        let sk = sigma_of_head(k, h, n_heads, d);
        let mut values = head_columns(v, h, n_heads, d);
        if rule == UpdateRule::Delta && has_memory {
            let mut retrieved = vec![0.0; n * d];
            read_head(&sk, mem, h, d, (&mut retrieved, d));
            values.iter_mut().zip(&retrieved).for_each(|(v, r)| *v -= r);
        }
        // σ(K)ᵀ is σ(K) read with its strides swapped.
        let m = &mut mem.m[h * d * d..(h + 1) * d * d];
        gemm(d, n, d, (&sk, 1, d), (&values, d, 1), (m, d), true);
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
#[multiversion(targets = "simd")]
pub fn gate_mix(
    a_mem: &[f32],
    a_dot: &[f32],
    beta: &[f32],
    head_dim: usize,
) -> (Vec<f32>, Vec<f32>) {
    let gates: Vec<f32> = beta.iter().map(|&b| crate::gate::sigmoid(b)).collect();
    let mut out = Vec::with_capacity(a_mem.len());
    let mut share = Vec::with_capacity(a_mem.len() / head_dim);
    let rows = a_mem
        .chunks_exact(head_dim)
        .zip(a_dot.chunks_exact(head_dim));
    for ((m, l), &g) in rows.zip(gates.iter().cycle()) {
        out.extend(m.iter().zip(l).map(|(m, l)| g * m + (1.0 - g) * l));
        // ‖g·A_mem‖ and ‖(1 − g)·A_dot‖ from the plain norms, in eight lanes each.
        let norm = |x: &[f32]| {
            lanes(x, 0.0, |sum, v| sum + v * v)
                .iter()
                .sum::<f32>()
                .sqrt()
        };
        let (norm_m, norm_l) = (g * norm(m), (1.0 - g) * norm(l));
        share.push(if norm_m + norm_l > 0.0 {
            norm_m / (norm_m + norm_l)
        } else {
            0.0
        });
    }
    (out, share)
}

/// SwiGLU's gating: silu(gate) · up, silu(g) = g · sigmoid(g), in `gate`'s buffer.
/// A loop, not a `collect`: collect's body is a generic function compiled apart from
/// this one, without its SIMD target, and was 3–4% of the CPU reference's time.
#[multiversion(targets = "simd")]
pub fn swiglu(mut gate: Vec<f32>, up: &[f32]) -> Vec<f32> {
    for (g, u) in gate.iter_mut().zip(up) {
        // sigmoid from e^−|g| ≤ 1, which cannot overflow for either sign of g.
        let e = exp_nonpositive(-g.abs());
        let sigmoid = if *g >= 0.0 {
            1.0 / (1.0 + e)
        } else {
            e / (1.0 + e)
        };
        *g = *g * sigmoid * u;
    }
    gate
}

#[multiversion(targets = "simd")]
pub fn add(x: &mut [f32], y: &[f32]) {
    x.iter_mut().zip(y).for_each(|(a, b)| *a += b);
}

/// Per position: cross-entropy against `targets` (for the first `targets.len()`
/// positions) and the argmax (for all; ties go to the lowest id).
#[multiversion(targets = "simd")]
pub fn cross_entropy(logits: &[f32], vocab: usize, targets: &[u32]) -> (Vec<f32>, Vec<u32>) {
    let mut loss = Vec::with_capacity(targets.len());
    let mut argmax = Vec::new();
    for (t, row) in logits.chunks_exact(vocab).enumerate() {
        let (max, at) = max_and_argmax(row);
        argmax.push(at);
        if let Some(&target) = targets.get(t) {
            let sum: f32 = lanes(row, 0.0, |sum, v| sum + exp_nonpositive(v - max))
                .iter()
                .sum();
            loss.push(sum.ln() + max - row[target as usize]);
        }
    }
    (loss, argmax)
}

/// A row's largest value and its first index, in one pass of eight lanes that each keep
/// their best value and where it was (a second pass to find the max cost 1% of the
/// reference's time); NaNs are never the max, and a row of them gives index 0.
#[inline(always)]
fn max_and_argmax(row: &[f32]) -> (f32, u32) {
    // Each lane keeps the chunk its best came from, as an f32 (exact to 2²⁴) so that
    // both updates are the same vector blend; the index is chunk · 8 + lane.
    let (mut best, mut chunk_of) = ([f32::NEG_INFINITY; 8], [0f32; 8]);
    let chunks = row.chunks_exact(8);
    let tail = chunks.remainder().iter().zip(row.len() / 8 * 8..);
    for (c, chunk) in chunks.enumerate() {
        let c = c as f32;
        for i in 0..8 {
            let better = chunk[i] > best[i];
            best[i] = if better { chunk[i] } else { best[i] };
            chunk_of[i] = if better { c } else { chunk_of[i] };
        }
    }
    let mut at: [u32; 8] = core::array::from_fn(|i| chunk_of[i] as u32 * 8 + i as u32);
    for (&v, i) in tail {
        if v > best[0] {
            (best[0], at[0]) = (v, i as u32);
        }
    }
    // The lanes' best, ties to the lowest index; lanes that saw only NaN or −∞ never
    // beat the start, so such a row gives index 0.
    (0..8).fold((f32::NEG_INFINITY, 0), |(m, a), i| {
        if best[i] > m || (best[i] == m && at[i] < a) {
            (best[i], at[i])
        } else {
            (m, a)
        }
    })
}
