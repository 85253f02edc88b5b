//! One optimizer step and what it needs: the model presets, batching, the learning-rate
//! schedule, two AdamW optimizers (the gates β get their own rate and no decay).

use burn::optim::grad_clipping::GradientClippingConfig;
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::{Int, TensorData};

use crate::data::Example;
use crate::model::{weighted_nll, InfiniModel, Memory, Shape};
use infiniscope::{Config, UpdateRule};

pub fn config(preset: &str, rule: UpdateRule) -> Result<Config, String> {
    let base = Config {
        vocab_size: 4096,
        d_model: 256,
        n_layers: 4,
        n_heads: 4,
        head_dim: 64,
        mlp_hidden: 768,
        segment_len: 32,
        update_rule: rule,
        rope_base: 10000.0,
        norm_eps: 1e-5,
        train_context: 4096,
        key_shift: 0,
        query_shift: 0,
    };
    match preset {
        // The shipped infini-tiny: 4 heads per layer, 4.46M parameters.
        "tiny" => Ok(base),
        // The first shipped model (1.38M parameters, until commit ebca22c): 2 heads per
        // layer, about twice tiny's training speed on a CPU, but layer 3's gates stayed at 0.5.
        "micro" => Ok(Config {
            d_model: 128,
            n_heads: 2,
            mlp_hidden: 384,
            ..base
        }),
        "smoke" => Ok(Config {
            vocab_size: 512,
            d_model: 32,
            n_layers: 2,
            n_heads: 2,
            head_dim: 16,
            mlp_hidden: 64,
            segment_len: 8,
            train_context: 64,
            ..base
        }),
        other => Err(format!("unknown preset {other:?}")),
    }
}

/// Sequence lengths of the curriculum: the next is unlocked when passkey digits come
/// back right at least this often; earlier lengths stay in the mix. Lengths past the
/// model's `train_context` are never reached.
pub const LENGTHS: [usize; 8] = [128, 256, 512, 1024, 2048, 4096, 8192, 16384];
/// Segments per text sequence: gradients flow through M and z across all of them.
pub const TEXT_SEGMENTS: usize = 16;
pub const UNLOCK_ACCURACY: f32 = 0.8;

/// Initial weights: infiniscope's deterministic random init, with every β at 0 so the
/// gates start at 0.5 (saturated gates never learn: DESIGN.md §3).
pub fn initial_weights(config: &Config, seed: u64) -> infiniscope::weights::Weights {
    let mut weights = infiniscope::weights::Weights::random(config, seed);
    for layer in &mut weights.layers {
        layer.beta.fill(0.0);
        layer.key_shift = None;
        layer.query_shift = None;
    }
    add_shifts(config, &mut weights);
    weights
}

/// Gives every layer of a shift model the key and query taps its config asks for:
/// c_0 = 1 and the others 0 where a layer has none (K̃ = K, so the model starts as the
/// paper's, from scratch or from a model trained without the shift), and zero taps
/// appended where a layer has fewer (a model continued with a wider convolution starts
/// where it was).
pub fn add_shifts(config: &Config, weights: &mut infiniscope::weights::Weights) {
    let d = config.d_model;
    for layer in &mut weights.layers {
        for (taps, shift) in [
            (config.key_shift, &mut layer.key_shift),
            (config.query_shift, &mut layer.query_shift),
        ] {
            if taps > 0 {
                shift
                    .get_or_insert_with(|| vec![1.0; d])
                    .resize(taps * d, 0.0);
            }
        }
    }
}

pub fn batch_tensors(
    examples: &[Example],
    device: &Device,
) -> (Tensor<2, Int>, Tensor<2, Int>, Tensor<2>) {
    let (b, t) = (examples.len(), examples[0].weights.len());
    let mut inputs = Vec::with_capacity(b * t);
    let mut targets = Vec::with_capacity(b * t);
    let mut weights = Vec::with_capacity(b * t);
    for e in examples {
        inputs.extend(e.tokens[..t].iter().map(|&x| x as i64));
        targets.extend(e.tokens[1..].iter().map(|&x| x as i64));
        weights.extend_from_slice(&e.weights);
    }
    (
        Tensor::from_data(TensorData::new(inputs, [b, t]), device),
        Tensor::from_data(TensorData::new(targets, [b, t]), device),
        Tensor::from_data(TensorData::new(weights, [b, t]), device),
    )
}

/// Fraction of answer digits predicted right (argmax) in the passkey examples.
pub fn passkey_accuracy(logits: &Tensor<3>, examples: &[Example]) -> Option<f32> {
    let mut right = 0;
    let mut total = 0;
    for (i, e) in examples.iter().enumerate() {
        let Some(at) = e.answer_at else { continue };
        let digits = e.tokens.len() - at;
        let slice = logits.clone().narrow(0, i, 1).narrow(1, at - 1, digits);
        let guess = slice
            .argmax(2)
            .try_into_vec_as::<i64>()
            .expect("argmax reads");
        for (g, want) in guess.iter().zip(&e.tokens[at..]) {
            right += (*g as u32 == *want) as usize;
            total += 1;
        }
    }
    (total > 0).then(|| right as f32 / total as f32)
}

pub fn optimizers() -> (ModuleOptimizer, ModuleOptimizer) {
    let main = AdamWConfig::new()
        .with_beta_1(0.9)
        .with_beta_2(0.95)
        .with_epsilon(1e-8)
        .with_weight_decay(0.1)
        .with_grad_clipping(Some(GradientClippingConfig::Norm(1.0)))
        .init();
    let gates = AdamWConfig::new()
        .with_beta_1(0.9)
        .with_beta_2(0.95)
        .with_epsilon(1e-8)
        .with_weight_decay(0.0)
        .init();
    (main, gates)
}

/// Linear warm-up over the first 2% of the budget, then cosine down to 10%.
pub fn learning_rate(peak: f64, tokens: usize, budget: usize) -> f64 {
    let x = tokens as f64 / budget as f64;
    if x < 0.02 {
        return peak * (x / 0.02).max(0.01);
    }
    let progress = ((x - 0.02) / 0.98).min(1.0);
    peak * (0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()))
}

/// What one optimizer step returns.
pub struct Stepped {
    pub model: InfiniModel,
    /// Mean weighted loss of the batch.
    pub loss: f32,
    /// Passkey digit accuracy (teacher-forced argmax), for passkey batches.
    pub accuracy: Option<f32>,
    /// The first sequence's M and z after its last segment, detached: where a later
    /// sequence can start ([`Memory::first_detached`]).
    pub memory: Vec<Option<Memory>>,
}

/// Forward from `memory` (`[1, …]` per layer, given to every sequence; None = empty),
/// backward and one update of both optimizers.
pub fn step(
    model: InfiniModel,
    shape: &Shape,
    examples: &[Example],
    memory: &[Option<Memory>],
    (opt_main, opt_gates): (&mut ModuleOptimizer, &mut ModuleOptimizer),
    (lr, gate_lr): (f64, f64),
) -> Stepped {
    let device = model.embed.val().device();
    let (inputs, targets, weights) = batch_tensors(examples, &device);
    let start = memory
        .iter()
        .map(|m| m.as_ref().map(|m| m.repeat(examples.len())))
        .collect();
    let (logits, end) = model.forward_from(inputs, shape, start);
    let memory = end
        .iter()
        .map(|m| m.as_ref().map(Memory::first_detached))
        .collect();
    let accuracy = passkey_accuracy(&logits, examples);
    let total_weight: f32 = examples.iter().flat_map(|e| &e.weights).sum();
    let loss = weighted_nll(logits, targets, weights) / total_weight;
    let loss_value = loss.clone().into_scalar::<f32>();
    let mut grads = loss.backward();
    let grads_gates = GradientsParams::from_params(&mut grads, &model, &model.gain_ids());
    let grads_main = GradientsParams::from_module(&mut grads, &model);
    let model = opt_main.step(lr, model, grads_main);
    let model = opt_gates.step(gate_lr, model, grads_gates);
    Stepped {
        model,
        loss: loss_value,
        accuracy,
        memory,
    }
}
