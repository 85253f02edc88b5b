//! Taps: what a caller asks to read out of a segment's forward pass, and what it
//! gets back. The CPU reference and the GPU engine fill the same struct, so whatever
//! draws the state reads it out of the one engine that runs the model.

use crate::UpdateRule;

/// Whether the memory read feeds the output. `Off` is memory off (docs/DESIGN.md
/// §1.4): the read returns 0, the first segment's view; memory is still written,
/// so its state can be shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryMode {
    On,
    Off,
}

/// How to run a model: by default as trained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunOptions {
    pub update_rule: UpdateRule,
    pub memory: MemoryMode,
}

impl RunOptions {
    pub fn for_config(config: &crate::Config) -> Self {
        Self {
            update_rule: config.update_rule,
            memory: MemoryMode::On,
        }
    }
}

/// What to read back after a segment. Loss and argmax are cheap; logits
/// (n × vocab) and the memory state (L·H·d·d floats) are not.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Taps {
    pub logits: bool,
    pub loss: bool,
    pub memory: bool,
    pub memory_share: bool,
    /// σ(Q), A_mem and Δz of every layer: what a recall map is made of
    /// (docs/DESIGN.md §6).
    pub recall: bool,
}

impl Taps {
    pub const ALL: Taps = Taps {
        logits: true,
        loss: true,
        memory: true,
        memory_share: true,
        recall: true,
    };
}

/// One segment's input: its tokens and, for as many leading positions as are known,
/// the next token of the text (the target of the loss).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Position of this segment in the text: 0 for the first.
    pub index: usize,
    pub tokens: Vec<u32>,
    /// `targets[t]` is the token after `tokens[t]`; shorter than `tokens` at the end of a text.
    pub targets: Vec<u32>,
    /// Write this segment into memory. `false` evaluates a partial segment (while
    /// generating) without changing the state.
    pub commit: bool,
}

/// M and z of one layer: `m` is `[head][i][j]` (H·d·d), `z` is `[head][i]` (H·d).
#[derive(Clone, Debug, PartialEq)]
pub struct LayerMemory {
    pub m: Vec<f32>,
    pub z: Vec<f32>,
}

impl LayerMemory {
    pub fn zeros(heads: usize, head_dim: usize) -> Self {
        Self {
            m: vec![0.0; heads * head_dim * head_dim],
            z: vec![0.0; heads * head_dim],
        }
    }

    /// Head `h`'s M and z (a copy), as the memory of a layer with one head.
    pub fn head(&self, h: usize, head_dim: usize) -> Self {
        let d = head_dim;
        Self {
            m: self.m[h * d * d..(h + 1) * d * d].to_vec(),
            z: self.z[h * d..(h + 1) * d].to_vec(),
        }
    }

    /// Puts back one head's memory taken with [`Self::head`].
    pub fn set_head(&mut self, h: usize, head: &Self) {
        let (dd, d) = (head.m.len(), head.z.len());
        self.m[h * dd..(h + 1) * dd].copy_from_slice(&head.m);
        self.z[h * d..(h + 1) * d].copy_from_slice(&head.z);
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct SegmentOutput {
    pub n_tokens: usize,
    /// `[t][vocab]`
    pub logits: Option<Vec<f32>>,
    /// Cross-entropy of each position that has a target, in nats.
    pub loss: Option<Vec<f32>>,
    /// The most likely next token at every position.
    pub argmax: Option<Vec<u32>>,
    /// After this segment's write, one per layer.
    pub memory: Option<Vec<LayerMemory>>,
    /// `[layer][t][head]`: g‖A_mem‖ / (g‖A_mem‖ + (1−g)‖A_dot‖).
    pub memory_share: Option<Vec<f32>>,
    pub recall: Option<RecallTap>,
}

/// A segment's part in the recall decomposition (docs/DESIGN.md §6), every layer.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RecallTap {
    /// `[layer][t][head][d]`: σ(Q) of each token, the query of its memory read.
    pub sigma_q: Vec<f32>,
    /// `[layer][t][head][d]`: A_mem of each token, the memory read itself (0 on the
    /// first segment and with memory off).
    pub a_mem: Vec<f32>,
    /// `[layer][head][d]`: Δz = Σ_t σ(K_t), what this segment adds to z when written.
    pub delta_z: Vec<f32>,
}

impl SegmentOutput {
    /// Mean loss over the positions that have a target, if any.
    pub fn mean_loss(&self) -> Option<f32> {
        let loss = self.loss.as_ref()?;
        (!loss.is_empty()).then(|| loss.iter().sum::<f32>() / loss.len() as f32)
    }
}
