//! Segments → chunks: the queue of a text's segments waiting for an engine, and the
//! one rule for which of them may run together (docs/DESIGN.md §4). The CLI, the
//! page and the GPU engine's check all go through here.

use std::collections::VecDeque;

use crate::generate::OpenSegment;
use crate::segment::Segmenter;
use crate::taps::Segment;

/// Whether `next` may follow `last` in one chunk: both written to memory, of one
/// length, and `last` with a target for every token (only a chunk's last segment
/// may end the text). An uncommitted segment therefore always runs alone.
pub fn joins(last: &Segment, next: &Segment) -> bool {
    last.commit
        && next.commit
        && next.tokens.len() == last.tokens.len()
        && last.targets.len() == last.tokens.len()
}

/// A text's segments as they become known, handed out a chunk at a time.
pub struct Stream {
    segmenter: Segmenter,
    queue: VecDeque<Segment>,
    segment_len: usize,
}

impl Stream {
    pub fn new(segment_len: usize) -> Self {
        Self {
            segmenter: Segmenter::new(segment_len),
            queue: VecDeque::new(),
            segment_len,
        }
    }

    /// More tokens of the text; the segments they complete join the queue.
    pub fn push(&mut self, tokens: &[u32]) {
        let segments = self.segmenter.push(tokens);
        self.queue.extend(segments);
    }

    /// The text is complete: its last tokens join the queue as a last segment.
    pub fn end(&mut self) {
        self.queue.extend(self.segmenter.finish());
    }

    /// The text is complete and will be continued: its last tokens (1 to N) join the
    /// queue as a segment that is read but not written to memory, and come back as
    /// the open segment generation extends. `None` for an empty text.
    pub fn end_open(&mut self) -> Option<OpenSegment> {
        let mut last = self.segmenter.finish()?;
        last.commit = false;
        let open = OpenSegment::new(last.index, last.tokens.clone(), self.segment_len);
        self.queue.push_back(last);
        Some(open)
    }

    /// Segments waiting to run.
    pub fn pending(&self) -> usize {
        self.queue.len()
    }

    /// The next chunk: up to `most` (at least one) queued segments that [`joins`]
    /// allows together; empty when none is queued.
    pub fn next_chunk(&mut self, most: usize) -> Vec<Segment> {
        let mut chunk: Vec<Segment> = Vec::new();
        while chunk.len() < most.max(1) {
            let Some(next) = self.queue.front() else {
                break;
            };
            if chunk.last().is_some_and(|last| !joins(last, next)) {
                break;
            }
            chunk.extend(self.queue.pop_front());
        }
        chunk
    }
}
