//! What a reading of a text adds up to: each segment's loss, the mean loss over all
//! predicted tokens and each head's mean memory share (docs/DESIGN.md §1.3).

use crate::taps::{Segment, SegmentOutput};
use crate::Config;

/// One segment's loss.
pub struct SegmentLoss {
    pub index: usize,
    pub tokens: usize,
    /// Positions whose next token is known: the loss is their mean.
    pub targets: usize,
    pub loss: Option<f32>,
}

/// Running sums over the segments of one text, in order.
pub struct Evaluation {
    pub segments: Vec<SegmentLoss>,
    /// Tokens read so far.
    pub tokens: usize,
    n_heads: usize,
    /// Σ memory share per `[layer][head]` over every token.
    share_sum: Vec<f64>,
}

impl Evaluation {
    pub fn new(config: &Config) -> Self {
        Self {
            segments: Vec::new(),
            tokens: 0,
            n_heads: config.n_heads,
            share_sum: vec![0.0; config.n_layers * config.n_heads],
        }
    }

    /// Adds a segment's output (with the `loss` and `memory_share` taps).
    pub fn add(&mut self, segment: &Segment, out: &SegmentOutput) {
        let h = self.n_heads;
        let share = out.memory_share.as_ref().expect("share tapped");
        for (i, s) in share.iter().enumerate() {
            // share is [layer][t][head]
            let (layer, head) = (i / (segment.tokens.len() * h), i % h);
            self.share_sum[layer * h + head] += *s as f64;
        }
        self.tokens += segment.tokens.len();
        self.segments.push(SegmentLoss {
            index: segment.index,
            tokens: segment.tokens.len(),
            targets: segment.targets.len(),
            loss: out.mean_loss(),
        });
    }

    /// Mean loss in nats over every predicted token (all but the first).
    pub fn mean_loss(&self) -> f64 {
        let total: f64 = self
            .segments
            .iter()
            .filter_map(|r| r.loss.map(|loss| loss as f64 * r.targets as f64))
            .sum();
        total / (self.tokens - 1) as f64
    }

    /// Each head's mean memory share over the text, `[layer][head]`.
    pub fn mean_share(&self) -> Vec<f64> {
        self.share_sum
            .iter()
            .map(|s| s / self.tokens as f64)
            .collect()
    }
}
