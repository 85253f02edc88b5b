//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test binary uses a different subset

use std::sync::{Arc, OnceLock};

use infiniscope::gpu::Gpu;
use infiniscope::taps::Segment;
use infiniscope::{Config, Model, UpdateRule};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Shapes chosen so that nothing is a multiple of a workgroup size (64, 16).
pub fn odd_config(rule: UpdateRule) -> Config {
    Config {
        vocab_size: 301,
        d_model: 48,
        n_layers: 2,
        n_heads: 3,
        head_dim: 16,
        mlp_hidden: 75,
        segment_len: 13,
        update_rule: rule,
        rope_base: 10000.0,
        norm_eps: 1e-5,
        train_context: 104,
        key_shift: 0,
        query_shift: 0,
    }
}

pub const TRAINING_TEXT: &str = "Of Mans First Disobedience, and the Fruit\n\
Of that Forbidden Tree, whose mortal tast\n\
Brought Death into the World, and all our woe,\n\
With loss of EDEN, till one greater Man\n\
Restore us, and regain the blissful Seat, 12345 67890\n";

pub fn model(config: Config, seed: u64) -> Arc<Model> {
    Arc::new(Model::random(config, seed, TRAINING_TEXT).expect("a random model"))
}

/// One device per test binary. A missing adapter fails the test: GPU tests never skip.
pub fn gpu() -> Arc<Gpu> {
    static GPU: OnceLock<Arc<Gpu>> = OnceLock::new();
    Arc::clone(GPU.get_or_init(|| {
        let gpu = pollster::block_on(Gpu::new()).unwrap_or_else(|e| {
            panic!("GPU tests need an adapter (without a GPU: Debian's mesa-vulkan-drivers gives lavapipe): {e}")
        });
        eprintln!("GPU tests run on {}", gpu.describe());
        Arc::new(gpu)
    }))
}

pub fn random_floats(len: usize, scale: f32, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(-scale..scale)).collect()
}

pub fn random_tokens(len: usize, vocab: usize, seed: u64) -> Vec<u32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..len)
        .map(|_| rng.random_range(0..vocab as u32))
        .collect()
}

/// Largest absolute difference relative to the largest magnitude of `want`.
pub fn relative_error(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len(), "lengths differ");
    let scale = want
        .iter()
        .fold(0.0f32, |m, v| m.max(v.abs()))
        .max(f32::MIN_POSITIVE);
    let diff = got
        .iter()
        .zip(want)
        .fold(0.0f32, |m, (g, w)| m.max((g - w).abs()));
    if got.iter().any(|v| !v.is_finite()) {
        return f32::INFINITY;
    }
    diff / scale
}

#[track_caller]
pub fn assert_close(what: &str, got: &[f32], want: &[f32], tolerance: f32) {
    let err = relative_error(got, want);
    assert!(
        err <= tolerance,
        "{what}: relative error {err:e} > {tolerance:e}"
    );
}

/// A text's segments as a reader would see them.
pub fn segments_of(tokens: &[u32], segment_len: usize) -> Vec<Segment> {
    infiniscope::segment::segments(tokens, segment_len)
}

/// The bundled random test model.
pub fn random_tiny() -> Model {
    Model::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/random-tiny"))
        .expect("models/random-tiny loads")
}
