//! The Infini-Transformer of DESIGN.md §1 in burn, for training: the same formulas as
//! infiniscope's CPU reference (`src/reference.rs`), batched, with gradients flowing
//! through the memory M and z across every segment of a training sequence.

use burn::module::{Param, ParamId};
use burn::prelude::*;
use burn::tensor::activation::{log_softmax, relu, sigmoid, silu, softmax};
use burn::tensor::{Bool, Int, TensorData};

use infiniscope::weights::{LayerWeights, Weights};
use infiniscope::{Config, UpdateRule};

#[derive(Module, Debug)]
pub struct Layer {
    pub attn_norm: Param<Tensor<1>>,
    pub wq: Param<Tensor<2>>,
    pub wk: Param<Tensor<2>>,
    pub wv: Param<Tensor<2>>,
    pub wo: Param<Tensor<2>>,
    /// One scalar per head; the gate is sigmoid(β).
    pub beta: Param<Tensor<1>>,
    pub mlp_norm: Param<Tensor<1>>,
    pub w_gate: Param<Tensor<2>>,
    pub w_up: Param<Tensor<2>>,
    pub w_down: Param<Tensor<2>>,
    /// `[w, d_model]`: the taps of a key-shift model's convolution on the memory's keys
    /// (`Config::key_shift` = w).
    pub key_shift: Option<Param<Tensor<2>>>,
    /// `[w, d_model]`: the same for the queries that read the memory
    /// (`Config::query_shift` = w).
    pub query_shift: Option<Param<Tensor<2>>>,
}

#[derive(Module, Debug)]
pub struct InfiniModel {
    pub embed: Param<Tensor<2>>,
    pub layers: Vec<Layer>,
    pub final_norm: Param<Tensor<1>>,
}

/// Hyper-parameters the forward pass needs besides the weights.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub n_heads: usize,
    pub head_dim: usize,
    pub segment_len: usize,
    pub norm_eps: f32,
    pub rope_base: f32,
    pub rule: UpdateRule,
    /// False trains the control model: the memory read returns 0.
    pub memory: bool,
    pub order: Order,
}

/// How a training sequence goes through the layers; both give the same logits and
/// gradients (trainer/tests/smoke.rs), the first several times faster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// Layer by layer, every segment at once; only M and z walk the segments.
    Layered,
    /// Segment by segment through the whole stack, as the engines read a text.
    BySegment,
}

impl Shape {
    pub fn of(config: &Config, memory: bool) -> Self {
        Self {
            n_heads: config.n_heads,
            head_dim: config.head_dim,
            segment_len: config.segment_len,
            norm_eps: config.norm_eps,
            rope_base: config.rope_base,
            rule: config.update_rule,
            memory,
            order: Order::Layered,
        }
    }
}

fn param<const D: usize>(values: &[f32], shape: [usize; D], device: &Device) -> Param<Tensor<D>> {
    Param::from_tensor(Tensor::from_data(
        TensorData::new(values.to_vec(), shape),
        device,
    ))
}

fn values<const D: usize>(p: &Param<Tensor<D>>) -> Vec<f32> {
    p.val()
        .try_into_vec_as::<f32>()
        .expect("float parameters read as f32")
}

impl InfiniModel {
    /// From infiniscope's weights (also how a model is initialised: `Weights::random`).
    pub fn from_weights(config: &Config, w: &Weights, device: &Device) -> Self {
        let (d, f, v) = (config.d_model, config.mlp_hidden, config.vocab_size);
        let layers = w
            .layers
            .iter()
            .map(|l| Layer {
                attn_norm: param(&l.attn_norm, [d], device),
                wq: param(&l.wq, [d, d], device),
                wk: param(&l.wk, [d, d], device),
                wv: param(&l.wv, [d, d], device),
                wo: param(&l.wo, [d, d], device),
                beta: param(&l.beta, [config.n_heads], device),
                mlp_norm: param(&l.mlp_norm, [d], device),
                w_gate: param(&l.w_gate, [d, f], device),
                w_up: param(&l.w_up, [d, f], device),
                w_down: param(&l.w_down, [f, d], device),
                key_shift: l
                    .key_shift
                    .as_ref()
                    .map(|s| param(s, [config.key_shift, d], device)),
                query_shift: l
                    .query_shift
                    .as_ref()
                    .map(|s| param(s, [config.query_shift, d], device)),
            })
            .collect();
        Self {
            embed: param(&w.embed, [v, d], device),
            layers,
            final_norm: param(&w.final_norm, [d], device),
        }
    }

    /// Back to infiniscope's weights, for export.
    pub fn to_weights(&self) -> Weights {
        let layers = self
            .layers
            .iter()
            .map(|l| LayerWeights {
                attn_norm: values(&l.attn_norm),
                wq: values(&l.wq),
                wk: values(&l.wk),
                wv: values(&l.wv),
                wo: values(&l.wo),
                beta: values(&l.beta),
                mlp_norm: values(&l.mlp_norm),
                w_gate: values(&l.w_gate),
                w_up: values(&l.w_up),
                w_down: values(&l.w_down),
                key_shift: l.key_shift.as_ref().map(values),
                query_shift: l.query_shift.as_ref().map(values),
            })
            .collect();
        Weights {
            embed: values(&self.embed),
            layers,
            final_norm: values(&self.final_norm),
        }
    }

    /// The gates β and a shift model's shifts: per-head and per-channel gains that
    /// get their own learning rate and no weight decay (decay would pull c_0, the
    /// shift's weight on the token itself, away from 1).
    pub fn gain_ids(&self) -> Vec<ParamId> {
        let shifts = self
            .layers
            .iter()
            .flat_map(|l| l.key_shift.iter().chain(&l.query_shift))
            .map(|p| p.id);
        self.layers
            .iter()
            .map(|l| l.beta.id)
            .chain(shifts)
            .collect()
    }

    /// Logits `[batch, tokens, vocab]` for `tokens` `[batch, tokens]`, read layer by
    /// layer: within a layer everything but the memory walk is independent across
    /// segments once the layer's input is known, so projections, local attention and
    /// the MLP run over all segments of the batch at once, and only M and z are walked
    /// in segment order (gradients flow through them across every segment).
    /// `shape.order` = [`Order::BySegment`] reads the way the engines read a text
    /// instead: one segment at a time through the whole stack, M and z carried between
    /// calls (the definition the layered order is tested against).
    pub fn forward(&self, tokens: Tensor<2, Int>, shape: &Shape) -> Tensor<3> {
        self.forward_from(tokens, shape, self.empty_memory()).0
    }

    /// No layer has written anything: one `None` per layer.
    pub fn empty_memory(&self) -> Vec<Option<Memory>> {
        (0..self.layers.len()).map(|_| None).collect()
    }

    /// [`forward`](Self::forward) continuing from `memory` (one per layer, None =
    /// empty, each `[batch, …]` like `tokens`); also returns M and z after the last
    /// segment, so a training sequence can start where another one left the memory.
    pub fn forward_from(
        &self,
        tokens: Tensor<2, Int>,
        shape: &Shape,
        mut memory: Vec<Option<Memory>>,
    ) -> (Tensor<3>, Vec<Option<Memory>>) {
        if shape.order == Order::Layered {
            let logits = self.read(tokens, shape, &mut memory);
            return (logits, memory);
        }
        let length = tokens.dims()[1];
        let logits = (0..length)
            .step_by(shape.segment_len)
            .map(|start| {
                let len = shape.segment_len.min(length - start);
                self.read(tokens.clone().narrow(1, start, len), shape, &mut memory)
            })
            .collect();
        (Tensor::cat(logits, 1), memory)
    }

    /// Logits for `tokens` `[batch, tokens]` continuing from `memory` (one per layer,
    /// None = empty), which is left holding M and z after the last segment.
    fn read(
        &self,
        tokens: Tensor<2, Int>,
        shape: &Shape,
        memory: &mut [Option<Memory>],
    ) -> Tensor<3> {
        let [batch, length] = tokens.dims();
        let device = tokens.device();
        let n = shape.segment_len;
        let segments = length.div_ceil(n);
        // A short last segment is padded at its end: causal attention keeps the padding
        // out of every real position, and the memory it writes is never read.
        let tokens = match segments * n - length {
            0 => tokens,
            pad => Tensor::cat(vec![tokens, Tensor::zeros([batch, pad], &device)], 1),
        };
        let d_model = self.embed.dims()[1];
        let rope = Rope::new(n, shape.head_dim, shape.rope_base, &device);
        // Rows are segments: [batch·segments, N, d_model].
        let mut x = self
            .embed
            .val()
            .select(0, tokens.reshape([batch * segments * n]))
            .reshape([batch * segments, n, d_model]);
        for (layer, mem) in self.layers.iter().zip(memory.iter_mut()) {
            x = layer.forward(
                x,
                mem,
                &Pass {
                    batch,
                    rope: &rope,
                    shape,
                },
            );
        }
        let x = x
            .reshape([batch, segments * n, d_model])
            .narrow(1, 0, length);
        let x = rms_norm(x, &self.final_norm, shape.norm_eps);
        times(x, self.embed.val().transpose())
    }
}

/// Summed cross-entropy of `logits` against `targets`, each position weighted, and the
/// sum of the weights.
pub fn weighted_nll(logits: Tensor<3>, targets: Tensor<2, Int>, weights: Tensor<2>) -> Tensor<1> {
    let nll = log_softmax(logits, 2)
        .gather(2, targets.unsqueeze_dim::<3>(2))
        .squeeze_dim::<2>(2)
        .neg();
    (nll * weights).sum()
}

/// M `[batch, head, d, d]` and z `[batch, head, d, 1]` of one layer.
#[derive(Clone)]
pub struct Memory {
    m: Tensor<4>,
    z: Tensor<4>,
}

impl Memory {
    /// The first sequence's M and z, cut from the graph that wrote them (gradients stop
    /// at the start of the next sequence): `[1, head, d, …]`.
    pub fn first_detached(&self) -> Memory {
        Memory {
            m: self.m.clone().narrow(0, 0, 1).detach(),
            z: self.z.clone().narrow(0, 0, 1).detach(),
        }
    }

    /// A `[1, …]` memory given to each of `batch` sequences.
    pub fn repeat(&self, batch: usize) -> Memory {
        Memory {
            m: self.m.clone().repeat_dim(0, batch),
            z: self.z.clone().repeat_dim(0, batch),
        }
    }

    /// (M, z) of `memory`, or zeros `[batch, head, d, …]` when nothing is written yet.
    fn take_or_empty(
        memory: &mut Option<Memory>,
        [batch, h, d]: [usize; 3],
        device: &Device,
    ) -> (Tensor<4>, Tensor<4>) {
        match memory.take() {
            Some(mem) => (mem.m, mem.z),
            None => (
                Tensor::zeros([batch, h, d, d], device),
                Tensor::zeros([batch, h, d, 1], device),
            ),
        }
    }
}

/// What every layer of one read shares: sequences in the batch, RoPE tables, shape.
struct Pass<'a> {
    batch: usize,
    rope: &'a Rope,
    shape: &'a Shape,
}

struct Rope {
    cos: Tensor<4>,
    sin: Tensor<4>,
    causal: Tensor<4, Bool>,
}

impl Rope {
    fn new(n: usize, head_dim: usize, base: f32, device: &Device) -> Self {
        let half = head_dim / 2;
        let angles: Vec<f32> = (0..n)
            .flat_map(|t| {
                (0..half).map(move |i| t as f32 * base.powf(-((2 * i) as f32) / head_dim as f32))
            })
            .collect();
        let table = |f: fn(f32) -> f32| {
            let v: Vec<f32> = angles.iter().map(|&a| f(a)).collect();
            Tensor::<2>::from_data(TensorData::new(v, [n, half]), device).unsqueeze::<4>()
        };
        // tril_mask is true *above* the diagonal: the future, to be masked out.
        let causal = Tensor::<4, Bool>::tril_mask([1, 1, n, n], 0, device);
        Self {
            cos: table(f32::cos),
            sin: table(f32::sin),
            causal,
        }
    }

    /// Rotate-half pairing (i with i + d/2), positions 0.. within the segment.
    fn apply(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, _, len, d] = x.dims();
        let half = d / 2;
        let cos = self.cos.clone().narrow(2, 0, len);
        let sin = self.sin.clone().narrow(2, 0, len);
        let a = x.clone().narrow(3, 0, half);
        let b = x.narrow(3, half, half);
        Tensor::cat(
            vec![
                a.clone() * cos.clone() - b.clone() * sin.clone(),
                a * sin + b * cos,
            ],
            3,
        )
    }

    fn mask(&self, len: usize) -> Tensor<4, Bool> {
        self.causal.clone().narrow(2, 0, len).narrow(3, 0, len)
    }
}

fn rms_norm<const D: usize>(x: Tensor<D>, w: &Param<Tensor<1>>, eps: f32) -> Tensor<D> {
    let scale = (x.clone().powi_scalar(2).mean_dim(D - 1) + eps)
        .sqrt()
        .recip();
    x * scale * w.val().unsqueeze::<D>()
}

/// σ(x) = ELU(x) + 1, written so that no branch computes exp of a large number.
fn sigma(x: Tensor<4>) -> Tensor<4> {
    relu(x.clone()) + x.clamp_max(0.0).exp()
}

/// σ(q) M / (σ(q) z), the denominator clamped below by ε (docs/DESIGN.md §1); with
/// M = 0 and z = 0 (nothing written yet) this is exactly 0.
fn retrieve(sq: Tensor<4>, m: Tensor<4>, z: Tensor<4>) -> Tensor<4> {
    let den = sq
        .clone()
        .matmul(z)
        .clamp_min(infiniscope::reference::MEMORY_EPS);
    sq.matmul(m) / den
}

/// `[batch·segments, ...]` → `[batch, segments, rest]`, and back: the memory walk goes
/// along the segment axis of each sequence.
fn by_sequence(t: Tensor<4>, batch: usize) -> Tensor<3> {
    let [rows, a, b, c] = t.dims();
    t.reshape([batch, rows / batch, a * b * c])
}

fn by_segment(t: Tensor<3>, dims: [usize; 3]) -> Tensor<4> {
    let [batch, segments, _] = t.dims();
    t.reshape([batch * segments, dims[0], dims[1], dims[2]])
}

/// `t` `[batch·S, a, b, c]` as S tensors `[batch, a, b, c]`, one per segment. Cut in two
/// steps, about √S groups and then their segments: the backward pass of a cut fills a
/// tensor the size of what was cut, so cutting S segments straight out of the whole
/// cost O(S²) (a 16,384-token haystack, 512 segments, trained at a fifth of a 4,096-token
/// one's tokens/s).
fn each_segment(t: Tensor<4>, batch: usize) -> Vec<Tensor<4>> {
    let [rows, a, b, c] = t.dims();
    let segments = rows / batch;
    let group = (segments as f64).sqrt().ceil() as usize;
    let all = by_sequence(t, batch);
    (0..segments)
        .step_by(group)
        .flat_map(|start| {
            let len = group.min(segments - start);
            let part = all.clone().narrow(1, start, len);
            (0..len).map(move |s| part.clone().narrow(1, s, 1).reshape([batch, a, b, c]))
        })
        .collect()
}

/// Sums of the segments before each one, starting from `first`: `[batch, S, n]` →
/// `[batch, S, n]`.
fn exclusive_prefix(deltas: Tensor<3>, first: Tensor<3>) -> Tensor<3> {
    let [batch, segments, n] = deltas.dims();
    let zero = Tensor::zeros([batch, 1, n], &deltas.device());
    if segments == 1 {
        return zero + first;
    }
    Tensor::cat(vec![zero, deltas.narrow(1, 0, segments - 1)], 1).cumsum(1) + first
}

/// The memory state each segment reads, M `[batch·S, H, d, d]` and z `[batch·S, H, d, 1]`,
/// from σ(K) and V `[batch·S, H, N, d]` of every segment, continuing from `memory`,
/// which is left holding the state after the last segment. z never depends on M, so
/// it is a prefix sum; so is M under the linear rule; the delta rule's write depends on
/// M, so only it walks the segments one by one.
fn walk(
    sk: Tensor<4>,
    v: Tensor<4>,
    batch: usize,
    memory: &mut Option<Memory>,
    rule: UpdateRule,
) -> (Tensor<4>, Tensor<4>) {
    let [rows, h, _, d] = sk.dims();
    let segments = rows / batch;
    let device = sk.device();
    let (m0, z0) = Memory::take_or_empty(memory, [batch, h, d], &device);
    let flat = |t: Tensor<4>| {
        let [_, a, b, c] = t.dims();
        t.reshape([batch, 1, a * b * c])
    };
    let dz = by_sequence(sk.clone().sum_dim(2).swap_dims(2, 3), batch);
    let z_all = exclusive_prefix(dz.clone(), flat(z0.clone()));
    let z_end = z_all.clone().narrow(1, segments - 1, 1) + dz.narrow(1, segments - 1, 1);
    let z_prev = by_segment(z_all, [h, d, 1]);
    let m_prev = match rule {
        UpdateRule::Linear => {
            let dm = by_sequence(sk.swap_dims(2, 3).matmul(v), batch);
            let m_all = exclusive_prefix(dm.clone(), flat(m0));
            let m_end = m_all.clone().narrow(1, segments - 1, 1) + dm.narrow(1, segments - 1, 1);
            *memory = Some(Memory {
                m: m_end.reshape([batch, h, d, d]),
                z: z_end.reshape([batch, h, d, 1]),
            });
            by_segment(m_all, [h, d, d])
        }
        UpdateRule::Delta => {
            let (sk, v, z_prev) = (
                each_segment(sk, batch),
                each_segment(v, batch),
                each_segment(z_prev.clone(), batch),
            );
            let mut m = m0;
            let mut before = Vec::with_capacity(segments);
            for ((sk_s, v_s), z_s) in sk.into_iter().zip(v).zip(z_prev) {
                // Write after the read: only what M does not already hold is added.
                let surprise = v_s - retrieve(sk_s.clone(), m.clone(), z_s);
                before.push(m.clone());
                m = m + sk_s.swap_dims(2, 3).matmul(surprise);
            }
            *memory = Some(Memory {
                m,
                z: z_end.reshape([batch, h, d, 1]),
            });
            Tensor::stack::<5>(before, 1).reshape([rows, h, d, d])
        }
    };
    (m_prev, z_prev)
}

/// One segment's write, the formula as written: σ(K) and V `[batch, H, N, d]`; returns
/// the M and z the segment reads (those before its write) and leaves `memory` after it.
fn write(
    sk: Tensor<4>,
    v: Tensor<4>,
    memory: &mut Option<Memory>,
    rule: UpdateRule,
) -> (Tensor<4>, Tensor<4>) {
    let [batch, h, _, d] = sk.dims();
    let device = sk.device();
    let (m, z) = Memory::take_or_empty(memory, [batch, h, d], &device);
    let written = match rule {
        UpdateRule::Delta => v - retrieve(sk.clone(), m.clone(), z.clone()),
        UpdateRule::Linear => v,
    };
    *memory = Some(Memory {
        m: m.clone() + sk.clone().swap_dims(2, 3).matmul(written),
        z: z.clone() + sk.sum_dim(2).swap_dims(2, 3),
    });
    (m, z)
}

impl Layer {
    /// One layer over `x` `[batch·S, N, d_model]` (S segments of each of `batch`
    /// sequences, segment-major within a sequence), continuing from `memory`.
    fn forward(&self, x: Tensor<3>, memory: &mut Option<Memory>, pass: &Pass) -> Tensor<3> {
        let x = x.clone() + self.attention(x, memory, pass);
        x.clone() + self.mlp(x, pass.shape)
    }

    /// A = g·A_mem + (1 − g)·A_dot, then W_O.
    fn attention(&self, x: Tensor<3>, memory: &mut Option<Memory>, pass: &Pass) -> Tensor<3> {
        let (s, rope, batch) = (pass.shape, pass.rope, pass.batch);
        let [rows, len, d_model] = x.dims();
        let (h, d) = (s.n_heads, s.head_dim);
        let heads = |t: Tensor<3>| t.reshape([rows, len, h, d]).swap_dims(1, 2);
        let xn = rms_norm(x, &self.attn_norm, s.norm_eps);
        let q = heads(proj(xn.clone(), &self.wq));
        let k = heads(proj(xn.clone(), &self.wk));
        let v = heads(proj(xn, &self.wv));

        let scores = rope
            .apply(q.clone())
            .matmul(rope.apply(k.clone()).swap_dims(2, 3))
            / (d as f32).sqrt();
        let a_dot = softmax(scores.mask_fill(rope.mask(len), -1e9), 3).matmul(v.clone());

        let g = sigmoid(self.beta.val()).reshape([1, h, 1, 1]);
        let local = (g.clone().neg() + 1.0) * a_dot;
        // Memory off (the control model): the read returns 0 and nothing need be written.
        let a = if s.memory {
            let k = shifted(k, &self.key_shift);
            let q = shifted(q, &self.query_shift);
            let (m_prev, z_prev) = match s.order {
                Order::Layered => walk(sigma(k), v, batch, memory, s.rule),
                Order::BySegment => write(sigma(k), v, memory, s.rule),
            };
            g * retrieve(sigma(q), m_prev, z_prev) + local
        } else {
            local
        };
        proj(a.swap_dims(1, 2).reshape([rows, len, d_model]), &self.wo)
    }

    /// SwiGLU.
    fn mlp(&self, x: Tensor<3>, s: &Shape) -> Tensor<3> {
        let xn = rms_norm(x, &self.mlp_norm, s.norm_eps);
        let hidden = silu(proj(xn.clone(), &self.w_gate)) * proj(xn, &self.w_up);
        proj(hidden, &self.w_down)
    }
}

/// The memory's keys (or queries) of a shift model: K̃_t = Σ_i c_i ⊙ K_{t−i} for K
/// `[rows, H, N, d]` (a row is one segment, so nothing comes from before its first
/// token) and `shift` `[w, H·d]` = c_0 … c_{w−1}; K itself without a shift.
fn shifted(k: Tensor<4>, shift: &Option<Param<Tensor<2>>>) -> Tensor<4> {
    let Some(shift) = shift else { return k };
    let [rows, h, len, d] = k.dims();
    let taps = shift.dims()[0];
    let c = shift.val().reshape([taps, h, 1, d]);
    let mut out = k.clone() * c.clone().narrow(0, 0, 1);
    for i in 1..taps.min(len) {
        let zero = Tensor::zeros([rows, h, i, d], &k.device());
        let before = Tensor::cat(vec![zero, k.clone().narrow(2, 0, len - i)], 2);
        out = out + before * c.clone().narrow(0, i, 1);
    }
    out
}

/// `t` `[rows, len, in]` × W `[in, out]` as one product of all rows (a batched product
/// with the weight broadcast runs one small GEMM per row of segments).
fn proj(t: Tensor<3>, w: &Param<Tensor<2>>) -> Tensor<3> {
    times(t, w.val())
}

fn times(t: Tensor<3>, w: Tensor<2>) -> Tensor<3> {
    let [rows, len, d] = t.dims();
    let out = w.dims()[1];
    t.reshape([rows * len, d])
        .matmul(w)
        .reshape([rows, len, out])
}
