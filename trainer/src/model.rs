//! The Infini-Transformer of DESIGN.md §1 in burn, for training: the same formulas as
//! infiniscope's CPU reference (`src/reference.rs`), batched, with gradients flowing
//! through the memory M and z across every segment of a training sequence.

use burn::module::Param;
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
            })
            .collect();
        Weights {
            embed: values(&self.embed),
            layers,
            final_norm: values(&self.final_norm),
        }
    }

    /// The gate parameters, which get their own learning rate and no weight decay.
    pub fn beta_ids(&self) -> Vec<burn::module::ParamId> {
        self.layers.iter().map(|l| l.beta.id).collect()
    }

    /// Logits `[batch, tokens, vocab]` for `tokens` `[batch, tokens]`, read segment by
    /// segment with the memory carried (and differentiated) across segments.
    pub fn forward(&self, tokens: Tensor<2, Int>, shape: &Shape) -> Tensor<3> {
        let [batch, length] = tokens.dims();
        let device = tokens.device();
        let n = shape.segment_len;
        let rope = Rope::new(n, shape.head_dim, shape.rope_base, &device);
        let mut memory: Vec<Option<Memory>> = (0..self.layers.len()).map(|_| None).collect();
        let embed_t = self.embed.val().transpose().unsqueeze::<3>();
        let mut logits = Vec::new();
        for start in (0..length).step_by(n) {
            let len = n.min(length - start);
            let ids = tokens.clone().narrow(1, start, len).reshape([batch * len]);
            let mut x = self
                .embed
                .val()
                .select(0, ids)
                .reshape([batch, len, self.embed.dims()[1]]);
            for (layer, mem) in self.layers.iter().zip(&mut memory) {
                x = layer.forward(x, mem, &rope, shape);
            }
            let x = rms_norm(x, &self.final_norm, shape.norm_eps);
            logits.push(x.matmul(embed_t.clone()));
        }
        Tensor::cat(logits, 1)
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
struct Memory {
    m: Tensor<4>,
    z: Tensor<4>,
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

/// σ(q) M / (σ(q) z), the denominator clamped below by ε (DESIGN.md §1).
fn read(sq: Tensor<4>, mem: &Memory) -> Tensor<4> {
    let den = sq
        .clone()
        .matmul(mem.z.clone())
        .clamp_min(infiniscope::reference::MEMORY_EPS);
    sq.matmul(mem.m.clone()) / den
}

impl Layer {
    fn forward(
        &self,
        x: Tensor<3>,
        memory: &mut Option<Memory>,
        rope: &Rope,
        s: &Shape,
    ) -> Tensor<3> {
        let [batch, len, d_model] = x.dims();
        let (h, d) = (s.n_heads, s.head_dim);
        let heads = |t: Tensor<3>| t.reshape([batch, len, h, d]).swap_dims(1, 2);
        let proj = |t: Tensor<3>, w: &Param<Tensor<2>>| t.matmul(w.val().unsqueeze::<3>());

        let xn = rms_norm(x.clone(), &self.attn_norm, s.norm_eps);
        let q = heads(proj(xn.clone(), &self.wq));
        let k = heads(proj(xn.clone(), &self.wk));
        let v = heads(proj(xn, &self.wv));

        let scores = rope
            .apply(q.clone())
            .matmul(rope.apply(k.clone()).swap_dims(2, 3))
            / (d as f32).sqrt();
        let a_dot = softmax(scores.mask_fill(rope.mask(len), -1e9), 3).matmul(v.clone());

        let (sq, sk) = (sigma(q), sigma(k));
        let g = sigmoid(self.beta.val()).reshape([1, h, 1, 1]);
        let local = (g.clone().neg() + 1.0) * a_dot;
        let a = match memory.as_ref().filter(|_| s.memory) {
            Some(mem) => g * read(sq, mem) + local,
            None => local,
        };
        // Write after the read.
        let written = match (s.rule, memory.as_ref()) {
            (UpdateRule::Delta, Some(mem)) => v - read(sk.clone(), mem),
            _ => v,
        };
        let dm = sk.clone().swap_dims(2, 3).matmul(written);
        let dz = sk.sum_dim(2).swap_dims(2, 3);
        *memory = Some(match memory.take() {
            Some(mem) => Memory {
                m: mem.m + dm,
                z: mem.z + dz,
            },
            None => Memory { m: dm, z: dz },
        });

        let x = x + proj(a.swap_dims(1, 2).reshape([batch, len, d_model]), &self.wo);
        let xn = rms_norm(x.clone(), &self.mlp_norm, s.norm_eps);
        let hidden = silu(proj(xn.clone(), &self.w_gate)) * proj(xn, &self.w_up);
        x + proj(hidden, &self.w_down)
    }
}
