//! The CPU reference: the model of DESIGN.md §1 in plain Rust, one function per op,
//! streaming segment by segment. It is the golden model every GPU kernel is tested
//! against, and the fallback where no GPU adapter exists.
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
    gemm(a, b, m, k, n, (n as isize, 1))
}

/// `a [m×k] · bᵀ` where `b` is `[n×k]` (the tied output projection).
pub fn matmul_bt(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
    gemm(a, b, m, k, n, (1, k as isize))
}

fn gemm(a: &[f32], b: &[f32], m: usize, k: usize, n: usize, b_strides: (isize, isize)) -> Vec<f32> {
    assert_eq!(a.len(), m * k);
    assert_eq!(b.len(), k * n);
    let mut c = vec![0.0; m * n];
    // SAFETY: the asserts above make every index sgemm touches lie inside a, b and c.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            k as isize,
            1,
            b.as_ptr(),
            b_strides.0,
            b_strides.1,
            0.0,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
    c
}

pub fn embed(table: &[f32], tokens: &[u32], d_model: usize) -> Vec<f32> {
    tokens
        .iter()
        .flat_map(|&t| &table[t as usize * d_model..(t as usize + 1) * d_model])
        .copied()
        .collect()
}

/// y = x / √(mean(x²) + ε) · w, row by row.
pub fn rmsnorm(x: &[f32], w: &[f32], eps: f32) -> Vec<f32> {
    let cols = w.len();
    x.chunks_exact(cols)
        .flat_map(|row| {
            let mean_sq = row.iter().map(|v| v * v).sum::<f32>() / cols as f32;
            let r = 1.0 / (mean_sq + eps).sqrt();
            row.iter().zip(w).map(move |(v, g)| v * r * g)
        })
        .collect()
}

/// Rotary position embedding (rotate-half pairing: i with i + d/2), positions 0..n
/// within the segment.
pub fn rope(x: &[f32], n_heads: usize, head_dim: usize, base: f32) -> Vec<f32> {
    let half = head_dim / 2;
    let mut y = x.to_vec();
    for (t, row) in y.chunks_exact_mut(n_heads * head_dim).enumerate() {
        for head in row.chunks_exact_mut(head_dim) {
            for i in 0..half {
                let angle = t as f32 * base.powf(-((2 * i) as f32) / head_dim as f32);
                let (sin, cos) = angle.sin_cos();
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
                let ks = &k[s * dm + col..s * dm + col + head_dim];
                p[s] = qt.iter().zip(ks).map(|(a, b)| a * b).sum::<f32>() * scale;
            }
            let max = p[..=t].iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0;
            for ps in &mut p[..=t] {
                *ps = (*ps - max).exp();
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
        x.exp()
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
    let d = head_dim;
    let mut out = vec![0.0; q.len()];
    if !has_memory {
        return out;
    }
    for (qt, ot) in q
        .chunks_exact(n_heads * d)
        .zip(out.chunks_exact_mut(n_heads * d))
    {
        for h in 0..n_heads {
            let sq: Vec<f32> = qt[h * d..(h + 1) * d].iter().map(|&x| sigma(x)).collect();
            let m = &mem.m[h * d * d..(h + 1) * d * d];
            let z = &mem.z[h * d..(h + 1) * d];
            let den = sq
                .iter()
                .zip(z)
                .map(|(a, b)| a * b)
                .sum::<f32>()
                .max(MEMORY_EPS);
            for j in 0..d {
                let num: f32 = (0..d).map(|i| sq[i] * m[i * d + j]).sum();
                ot[h * d + j] = num / den;
            }
        }
    }
    out
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
    let d = head_dim;
    let dm = n_heads * d;
    let values = match rule {
        UpdateRule::Linear => v.to_vec(),
        UpdateRule::Delta => {
            let retrieved = memory_read(k, mem, n_heads, head_dim, has_memory);
            v.iter().zip(&retrieved).map(|(a, b)| a - b).collect()
        }
    };
    for (kt, vt) in k.chunks_exact(dm).zip(values.chunks_exact(dm)) {
        for h in 0..n_heads {
            for i in 0..d {
                let sk = sigma(kt[h * d + i]);
                mem.z[h * d + i] += sk;
                let row = &mut mem.m[(h * d + i) * d..(h * d + i + 1) * d];
                for (mij, vj) in row.iter_mut().zip(&vt[h * d..(h + 1) * d]) {
                    *mij += sk * vj;
                }
            }
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

/// SwiGLU's gating: silu(gate) · up.
pub fn swiglu(gate: &[f32], up: &[f32]) -> Vec<f32> {
    gate.iter()
        .zip(up)
        .map(|(g, u)| g / (1.0 + (-g).exp()) * u)
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
        let (best, max) =
            row.iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| {
                    if v > bv {
                        (i, v)
                    } else {
                        (bi, bv)
                    }
                });
        argmax.push(best as u32);
        if let Some(&target) = targets.get(t) {
            let sum: f32 = row.iter().map(|v| (v - max).exp()).sum();
            loss.push(sum.ln() + max - row[target as usize]);
        }
    }
    (loss, argmax)
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
}

impl Reference {
    pub fn new(model: Arc<Model>, options: RunOptions) -> Self {
        let c = &model.config;
        let memory = vec![LayerMemory::zeros(c.n_heads, c.head_dim); c.n_layers];
        Self {
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
        validate_segment(&self.model, segment)?;
        let model = Arc::clone(&self.model);
        let c = &model.config;
        let (dm, h, d, n) = (c.d_model, c.n_heads, c.head_dim, segment.tokens.len());
        let has_memory = self.segments_written > 0;
        let read_memory = has_memory && self.options.memory == MemoryMode::On;
        let mut shares = Vec::with_capacity(c.n_layers * n * h);

        let mut x = embed(&model.weights.embed, &segment.tokens, dm);
        for (layer, mem) in model.weights.layers.iter().zip(&mut self.memory) {
            let xn = rmsnorm(&x, &layer.attn_norm, c.norm_eps);
            let q = matmul(&xn, &layer.wq, n, dm, dm);
            let k = matmul(&xn, &layer.wk, n, dm, dm);
            let v = matmul(&xn, &layer.wv, n, dm, dm);
            let a_dot = attention(
                &rope(&q, h, d, c.rope_base),
                &rope(&k, h, d, c.rope_base),
                &v,
                h,
                d,
            );
            let a_mem = memory_read(&q, mem, h, d, read_memory);
            if segment.commit {
                memory_write(&k, &v, mem, h, d, self.options.update_rule, has_memory);
            }
            let (a, share) = gate_mix(&a_mem, &a_dot, &layer.beta, d);
            shares.extend(share);
            add(&mut x, &matmul(&a, &layer.wo, n, dm, dm));

            let xn = rmsnorm(&x, &layer.mlp_norm, c.norm_eps);
            let f = c.mlp_hidden;
            let hidden = swiglu(
                &matmul(&xn, &layer.w_gate, n, dm, f),
                &matmul(&xn, &layer.w_up, n, dm, f),
            );
            add(&mut x, &matmul(&hidden, &layer.w_down, n, f, dm));
        }
        if segment.commit {
            self.segments_written += 1;
        }
        let logits = matmul_bt(
            &rmsnorm(&x, &model.weights.final_norm, c.norm_eps),
            &model.weights.embed,
            n,
            dm,
            c.vocab_size,
        );
        let (loss, argmax) = cross_entropy(&logits, c.vocab_size, &segment.targets);
        Ok(SegmentOutput {
            n_tokens: n,
            loss: taps.loss.then_some(loss),
            argmax: taps.loss.then_some(argmax),
            logits: taps.logits.then_some(logits),
            memory: taps.memory.then(|| self.memory.clone()),
            memory_share: taps.memory_share.then_some(shares),
        })
    }
}
