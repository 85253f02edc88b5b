//! Continuing a text: the open segment that generated tokens accumulate in, sampling
//! from the last position's logits, and the text each token adds. Shared by the CLI
//! and the page; the prompt before it is read by [`crate::stream::Stream::end_open`].

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::taps::Segment;
use crate::tokenizer::{Pieces, Tokenizer};

/// The segment being written. It is re-run as it grows and written to memory once
/// it holds N tokens; the next token then starts a new segment.
pub struct OpenSegment {
    index: usize,
    tokens: Vec<u32>,
    segment_len: usize,
}

impl OpenSegment {
    /// `tokens` (at least one, at most N) are the text's last, unwritten tokens and
    /// `index` their segment's position in the text.
    pub fn new(index: usize, tokens: Vec<u32>, segment_len: usize) -> Self {
        debug_assert!(!tokens.is_empty() && tokens.len() <= segment_len);
        Self {
            index,
            tokens,
            segment_len,
        }
    }

    /// The segment to run for the next token: committed when it is full.
    pub fn segment(&self) -> Segment {
        Segment {
            index: self.index,
            tokens: self.tokens.clone(),
            targets: Vec::new(),
            commit: self.tokens.len() == self.segment_len,
        }
    }

    /// Appends the token sampled after running [`Self::segment`].
    pub fn push(&mut self, next: u32) {
        if self.tokens.len() == self.segment_len {
            self.tokens.clear();
            self.index += 1;
        }
        self.tokens.push(next);
    }

    /// Logits of the last position, out of a run's `[t][vocab]` logits.
    pub fn last<'a>(&self, logits: &'a [f32], vocab: usize) -> &'a [f32] {
        &logits[(self.tokens.len() - 1) * vocab..self.tokens.len() * vocab]
    }
}

/// Generation after a text: run [`Self::segment`] with the logits tapped, hand the
/// logits to [`Self::next`], repeat.
pub struct Generator {
    open: OpenSegment,
    rng: ChaCha8Rng,
    pieces: Pieces,
}

impl Generator {
    pub fn new(open: OpenSegment, seed: u64) -> Self {
        Self {
            open,
            rng: ChaCha8Rng::seed_from_u64(seed),
            pieces: Pieces::default(),
        }
    }

    /// The segment to run for the next token.
    pub fn segment(&self) -> Segment {
        self.open.segment()
    }

    /// Samples the next token from the logits of [`Self::segment`]'s run, appends it
    /// and returns the text it adds (empty while a character is split over tokens).
    pub fn next(&mut self, tokenizer: &Tokenizer, logits: &[f32], temperature: f32) -> String {
        let vocab = logits.len() / self.open.tokens.len();
        let next = sample(self.open.last(logits, vocab), temperature, &mut self.rng);
        self.open.push(next);
        self.pieces.next(tokenizer, next)
    }
}

/// The most likely token at temperature 0, else a draw from softmax(logits / T).
pub fn sample(logits: &[f32], temperature: f32, rng: &mut impl Rng) -> u32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if temperature <= 0.0 {
        return logits.iter().position(|&v| v == max).unwrap_or(0) as u32;
    }
    let weights: Vec<f32> = logits
        .iter()
        .map(|v| ((v - max) / temperature).exp())
        .collect();
    let mut pick = rng.random::<f32>() * weights.iter().sum::<f32>();
    for (i, w) in weights.iter().enumerate() {
        pick -= w;
        if pick <= 0.0 {
            return i as u32;
        }
    }
    (weights.len() - 1) as u32
}
