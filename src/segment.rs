//! Tokens → segments: cuts a token stream of any length into segments of N tokens,
//! holding back one token so that every position's target (the next token) is known.

use crate::taps::Segment;
use crate::{Error, Model};

pub struct Segmenter {
    segment_len: usize,
    buffer: Vec<u32>,
    next_index: usize,
}

impl Segmenter {
    pub fn new(segment_len: usize) -> Self {
        assert!(segment_len > 0, "segment length must be positive");
        Self {
            segment_len,
            buffer: Vec::new(),
            next_index: 0,
        }
    }

    /// Feeds more of the text; returns the segments that are now complete.
    pub fn push(&mut self, tokens: &[u32]) -> Vec<Segment> {
        self.buffer.extend_from_slice(tokens);
        let n = self.segment_len;
        let mut out = Vec::new();
        let mut start = 0;
        // A full segment is ready once the token after it is known too.
        while self.buffer.len() - start > n {
            let window = self.buffer[start..start + n + 1].to_vec();
            out.push(self.make(&window, n));
            start += n;
        }
        self.buffer.drain(..start);
        out
    }

    /// End of the text: the rest as a last, possibly short, segment.
    pub fn finish(&mut self) -> Option<Segment> {
        if self.buffer.is_empty() {
            return None;
        }
        let rest = std::mem::take(&mut self.buffer);
        Some(self.make(&rest, rest.len()))
    }

    /// Segment of `window[..len]` whose targets are `window[1..]`.
    fn make(&mut self, window: &[u32], len: usize) -> Segment {
        let segment = Segment {
            index: self.next_index,
            tokens: window[..len].to_vec(),
            targets: window[1..].to_vec(),
            commit: true,
        };
        self.next_index += 1;
        segment
    }
}

/// All segments of a whole token sequence.
pub fn segments(tokens: &[u32], segment_len: usize) -> Vec<Segment> {
    let mut segmenter = Segmenter::new(segment_len);
    let mut out = segmenter.push(tokens);
    out.extend(segmenter.finish());
    out
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
