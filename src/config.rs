//! `config.json`: every hyper-parameter of an Infini-Transformer (docs/DESIGN.md §1–3).

use serde::{Deserialize, Serialize};

use crate::Error;

/// How a segment is written into the compressive memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpdateRule {
    /// M ← M + σ(K)ᵀ V
    Linear,
    /// M ← M + σ(K)ᵀ (V − σ(K) M / (σ(K) z))
    Delta,
}

impl std::str::FromStr for UpdateRule {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "linear" => Ok(Self::Linear),
            "delta" => Ok(Self::Delta),
            other => Err(Error::Config(format!(
                "unknown update rule {other:?} (expected \"linear\" or \"delta\")"
            ))),
        }
    }
}

/// Most taps of the shift variant's convolutions (`Config::key_shift`, `Config::query_shift`).
pub const MAX_KEY_SHIFT: usize = 8;

fn is_zero(taps: &usize) -> bool {
    *taps == 0
}

/// The hyper-parameters stored beside the weights. Unknown keys are an error, so a
/// typo never silently falls back to a default.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub vocab_size: usize,
    pub d_model: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    /// d = d_key = d_value: M is head_dim × head_dim.
    pub head_dim: usize,
    /// Width of the SwiGLU hidden layer.
    pub mlp_hidden: usize,
    /// N: tokens per segment.
    pub segment_len: usize,
    pub update_rule: UpdateRule,
    pub rope_base: f32,
    pub norm_eps: f32,
    /// Tokens per training sequence (informative: the engine streams any length).
    pub train_context: usize,
    /// A variant beyond the paper (docs/DESIGN.md §8): the memory's keys are
    /// K̃_t = Σ_{i<w} c_i ⊙ K_{t−i} inside each segment, a learned causal convolution of
    /// `key_shift` = w taps (`layers.{l}.key_shift` = [c_0; …; c_{w−1}]), so what a token
    /// writes can carry the tokens before it. 0 (the paper's model) unless config.json
    /// says otherwise; 2 to 8 taps.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub key_shift: usize,
    /// The same for the queries that read the memory (docs/DESIGN.md §8):
    /// Q̃_t = Σ_{i<w} e_i ⊙ Q_{t−i} (`layers.{l}.query_shift`), so a read can ask for
    /// what followed the tokens just before it, not only the last one. Local attention
    /// keeps the unshifted Q and K. 0 unless config.json says otherwise; 2 to 8 taps.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub query_shift: usize,
}

impl Config {
    pub fn from_json(text: &str) -> Result<Self, Error> {
        // The path names the field of a wrong value ("vocab_size: invalid type ..."),
        // which serde_json's line and column alone do not.
        let config: Config =
            serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(text))
                .map_err(|e| Error::Config(format!("config.json: {e}")))?;
        config.validate()?;
        Ok(config)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a Config always serialises")
    }

    pub fn validate(&self) -> Result<(), Error> {
        let positive = [
            ("vocab_size", self.vocab_size),
            ("d_model", self.d_model),
            ("n_layers", self.n_layers),
            ("n_heads", self.n_heads),
            ("head_dim", self.head_dim),
            ("mlp_hidden", self.mlp_hidden),
            ("segment_len", self.segment_len),
            ("train_context", self.train_context),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(Error::Config(format!("{name} must be positive")));
            }
        }
        // Checked: huge sizes in a broken file must not wrap around to a match.
        if self.n_heads.checked_mul(self.head_dim) != Some(self.d_model) {
            return Err(Error::Config(format!(
                "d_model ({}) must equal n_heads ({}) × head_dim ({})",
                self.d_model, self.n_heads, self.head_dim
            )));
        }
        for (name, taps, of) in [
            ("key_shift", self.key_shift, "keys"),
            ("query_shift", self.query_shift, "queries"),
        ] {
            if taps == 1 || taps > MAX_KEY_SHIFT {
                return Err(Error::Config(format!(
                    "{name} is the taps of the {of}' convolution: 0 (none) or 2 to {MAX_KEY_SHIFT}, found {taps}"
                )));
            }
        }
        if !self.head_dim.is_multiple_of(2) {
            return Err(Error::Config(format!(
                "head_dim ({}) must be even for RoPE",
                self.head_dim
            )));
        }
        if !(self.rope_base.is_finite() && self.rope_base > 1.0) {
            return Err(Error::Config(format!(
                "rope_base must be > 1, found {}",
                self.rope_base
            )));
        }
        if !(self.norm_eps.is_finite() && self.norm_eps > 0.0) {
            return Err(Error::Config(format!(
                "norm_eps must be > 0, found {}",
                self.norm_eps
            )));
        }
        // Token ids travel as u32 and the GPU indexes with u32.
        if self.vocab_size > u32::MAX as usize / self.d_model {
            return Err(Error::Config(format!(
                "vocab_size {} is too large",
                self.vocab_size
            )));
        }
        // Every count derived from the sizes (parameters, memory, KV cache) is at most
        // the parameter count: computed checked, they never overflow afterwards.
        if self.checked_params().is_none() {
            return Err(Error::Config(
                "n_layers, d_model and mlp_hidden describe more parameters than can be counted"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The parameter count, or None when it overflows usize (32 bits on the web).
    fn checked_params(&self) -> Option<usize> {
        let d = self.d_model;
        let mul = |a: usize, b: usize| a.checked_mul(b);
        let per_layer = mul(mul(4, d)?, d)?
            .checked_add(self.n_heads)?
            .checked_add(mul(2, d)?)?
            .checked_add(mul(mul(3, d)?, self.mlp_hidden)?)?
            .checked_add(mul(self.key_shift + self.query_shift, d)?)?;
        mul(self.vocab_size, d)?
            .checked_add(mul(self.n_layers, per_layer)?)?
            .checked_add(d)
    }

    /// Floats of compressive-memory state: L·H·(d·d + d), whatever the text length.
    pub fn memory_floats(&self) -> usize {
        self.n_layers * self.n_heads * (self.head_dim * self.head_dim + self.head_dim)
    }

    /// Floats a full-attention KV cache would hold for `tokens` tokens: 2·L·n·d_model.
    pub fn kv_cache_floats(&self, tokens: usize) -> usize {
        2 * self.n_layers * tokens * self.d_model
    }

    /// Floating-point operations (multiply and add counted apart) per token of a
    /// full segment: projections, MLP, local attention (a causal segment averages
    /// (N+1)/2 keys), the memory's two reads and one write, and the logits.
    pub fn flops_per_token(&self) -> usize {
        let (dm, f, n) = (self.d_model, self.mlp_hidden, self.segment_len);
        let memory_cells = self.n_heads * self.head_dim * self.head_dim;
        let per_layer =
            2 * (4 * dm * dm + 3 * dm * f) + 2 * 2 * dm * (n + 1) / 2 + 2 * 3 * memory_cells;
        self.n_layers * per_layer + 2 * dm * self.vocab_size
    }

    pub fn n_params(&self) -> usize {
        self.checked_params()
            .expect("validate() checked that the parameters can be counted")
    }
}
