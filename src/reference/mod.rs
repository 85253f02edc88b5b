//! The CPU reference: the model of docs/DESIGN.md §1 in plain Rust, streaming a
//! chunk of segments per call. It is the golden model every GPU kernel is tested
//! against, and the fallback where no GPU adapter exists.
//!
//! [`ops`] holds one function per op; this file strings them into a layer that reads
//! like the formulas (an attention block and an MLP block on a residual stream).
//! Speed without a second code path: the row-wise products see all the chunk's rows
//! at once ([`numerics`], on every core natively) and each head walks the segments on
//! a thread of its own ([`threads`]).

mod numerics;
mod ops;
mod threads;
#[cfg(target_arch = "wasm32")]
mod tiles;

use std::ops::Range;
use std::sync::Arc;

pub use ops::*;
// The recall map folds σ(q)·z exactly as the memory read does.
pub(crate) use numerics::dot;

use crate::segment::validate_segment;
use crate::taps::{LayerMemory, MemoryMode, RecallTap, RunOptions, Segment, SegmentOutput, Taps};
use crate::weights::LayerWeights;
use crate::{Error, Model};
use threads::parallel_map;

/// The CPU engine: the model plus its memory state.
pub struct Reference {
    model: Arc<Model>,
    options: RunOptions,
    memory: Vec<LayerMemory>,
    segments_written: usize,
    /// RoPE's rotations for a whole segment, computed once.
    rotations: Vec<(f32, f32)>,
}

/// A call's segments and the rows each one owns among all their tokens.
struct Chunk<'a> {
    segments: &'a [Segment],
    spans: Vec<Range<usize>>,
    rows: usize,
}

/// What a layer's attention block leaves: its output (before the residual add), the
/// layer's memory after the chunk, each head's memory share per row and, if tapped,
/// its recall taps.
struct Attention {
    out: Vec<f32>,
    memory: LayerMemory,
    /// `[head][row]`.
    share: Vec<Vec<f32>>,
    /// `[head]`.
    recall: Vec<Option<HeadRecall>>,
}

/// One head's recall taps over a chunk.
struct HeadRecall {
    /// `[row][d]` each.
    sigma_q: Vec<f32>,
    a_mem: Vec<f32>,
    /// `[segment][d]`.
    delta_z: Vec<f32>,
}

/// What one head leaves after walking the chunk.
struct HeadRun {
    /// `[row][d]`: A.
    a: Vec<f32>,
    /// `[row]`.
    share: Vec<f32>,
    memory: LayerMemory,
    recall: Option<HeadRecall>,
}

impl Reference {
    pub fn new(model: Arc<Model>, options: RunOptions) -> Self {
        let c = &model.config;
        let memory = vec![LayerMemory::zeros(c.n_heads, c.head_dim); c.n_layers];
        Self {
            rotations: rotations(c.segment_len, c.head_dim, c.rope_base),
            model,
            options,
            memory,
            segments_written: 0,
        }
    }

    /// Forgets everything read so far.
    pub fn reset(&mut self) {
        let c = &self.model.config;
        self.memory = vec![LayerMemory::zeros(c.n_heads, c.head_dim); c.n_layers];
        self.segments_written = 0;
    }

    pub fn memory(&self) -> &[LayerMemory] {
        &self.memory
    }

    /// Segments written to memory since the last reset.
    pub fn segments_written(&self) -> usize {
        self.segments_written
    }

    /// Continues from a state read out of another engine.
    pub fn restore(&mut self, memory: Vec<LayerMemory>, segments_written: usize) {
        self.memory = memory;
        self.segments_written = segments_written;
    }

    /// Takes the memory of layers `first..` (one entry each) from the engine that ran
    /// them: the other part of a reading split in two ([`Self::part`]).
    pub fn set_layers(&mut self, first: usize, memory: Vec<LayerMemory>) {
        let layers = first..first + memory.len();
        self.memory.splice(layers, memory);
    }

    /// Runs one segment through every layer: read memory, then (if `commit`) write it.
    pub fn segment(&mut self, segment: &Segment, taps: Taps) -> Result<SegmentOutput, Error> {
        let mut outputs = self.segments(std::slice::from_ref(segment), taps)?;
        Ok(outputs.pop().expect("one output per segment"))
    }

    /// Runs consecutive segments as [`Self::segment`] would one after another, but
    /// every row-wise op (norms, projections, MLP, logits) takes all their tokens at
    /// once, so the products are large; attention and the memory go segment by
    /// segment, in order. The memory is tapped after the last segment only.
    pub fn segments(
        &mut self,
        segments: &[Segment],
        taps: Taps,
    ) -> Result<Vec<SegmentOutput>, Error> {
        let all = 0..blocks(&self.model.config);
        Ok(self.part(segments, None, all, taps)?.0)
    }

    /// Runs the model's blocks `blocks` (see [`blocks`]) over the chunk, as
    /// [`Self::segments`] runs all of them: from the tokens' embeddings when `blocks`
    /// starts at 0, else from `x`, the residual stream `[row][d_model]` the part before
    /// left; through the readout when `blocks` ends with the model's last, else the
    /// residual stream comes back for the next part (the second value). Parts chained
    /// in order give [`Self::segments`]'s numbers exactly; each output's taps (memory
    /// share, memory, recall) cover the layers whose attention block ran here
    /// ([`attention_layers`]), and the loss, argmax and logits come from the last part.
    pub fn part(
        &mut self,
        segments: &[Segment],
        x: Option<Vec<f32>>,
        blocks: Range<usize>,
        taps: Taps,
    ) -> Result<(Vec<SegmentOutput>, Option<Vec<f32>>), Error> {
        for segment in segments {
            validate_segment(&self.model, segment)?;
        }
        let model = Arc::clone(&self.model);
        let c = &model.config;
        let mut spans = Vec::with_capacity(segments.len());
        for segment in segments {
            let start = spans.last().map_or(0, |s: &Range<usize>| s.end);
            spans.push(start..start + segment.tokens.len());
        }
        let rows = spans.last().map_or(0, |s| s.end);
        let chunk = Chunk {
            segments,
            spans,
            rows,
        };
        let n_blocks = self::blocks(c);
        if blocks.is_empty() || blocks.end > n_blocks {
            return Err(Error::Text(format!(
                "blocks {blocks:?} of a model of {n_blocks}"
            )));
        }
        let mut x = match (x, blocks.start) {
            (None, 0) => {
                let tokens: Vec<u32> = segments.iter().flat_map(|s| s.tokens.clone()).collect();
                embed(&model.weights.embed, &tokens, c.d_model)
            }
            (Some(x), 1..) if x.len() == rows * c.d_model => x,
            _ => {
                return Err(Error::Text(format!(
                    "blocks {blocks:?} read the tokens when they start at 0, else the residual stream the part before left ({rows} rows × {})",
                    c.d_model
                )))
            }
        };
        // `[segment][layer][t][head]`, as SegmentOutput::memory_share.
        let mut shares = vec![Vec::new(); segments.len()];
        let mut recalls = vec![RecallTap::default(); segments.len()];

        for block in blocks.clone() {
            let (l, layer) = (block / 2, &model.weights.layers[block / 2]);
            if block % 2 == 1 {
                let mlp = self.mlp_block(layer, &x, rows);
                add(&mut x, &mlp);
                continue;
            }
            let attention = self.attention_block(layer, &self.memory[l], &x, &chunk, taps);
            add(&mut x, &attention.out);

            self.memory[l] = attention.memory;
            for (share, span) in shares.iter_mut().zip(&chunk.spans) {
                let heads = &attention.share;
                share.extend(span.clone().flat_map(|t| heads.iter().map(move |h| h[t])));
            }
            let heads: Vec<&HeadRecall> = attention.recall.iter().flatten().collect();
            let d = c.head_dim;
            for (i, (recall, span)) in recalls.iter_mut().zip(&chunk.spans).enumerate() {
                for row in span.clone().filter(|_| !heads.is_empty()) {
                    for head in &heads {
                        recall.sigma_q.extend(&head.sigma_q[row * d..(row + 1) * d]);
                        recall.a_mem.extend(&head.a_mem[row * d..(row + 1) * d]);
                    }
                }
                for head in &heads {
                    recall.delta_z.extend(&head.delta_z[i * d..(i + 1) * d]);
                }
            }
        }
        self.segments_written += segments.iter().filter(|s| s.commit).count();
        let last = segments.len().saturating_sub(1);
        let layers = attention_layers(&blocks);
        let outputs = chunk.spans.iter().zip(shares).zip(recalls).enumerate();
        let outputs = outputs.map(|(i, ((span, share), recall))| SegmentOutput {
            n_tokens: span.len(),
            memory: (taps.memory && i == last).then(|| self.memory[layers.clone()].to_vec()),
            memory_share: taps.memory_share.then_some(share),
            recall: taps.recall.then_some(recall),
            ..SegmentOutput::default()
        });
        let mut outputs: Vec<SegmentOutput> = outputs.collect();
        if blocks.end < n_blocks {
            return Ok((outputs, Some(x)));
        }
        self.readout(&x, &chunk, &mut outputs, taps);
        Ok((outputs, None))
    }

    /// A = g·A_mem + (1 − g)·A_dot per head over RMSNorm(x), projected by W_O; the
    /// memory read before each segment's write.
    fn attention_block(
        &self,
        layer: &LayerWeights,
        memory: &LayerMemory,
        x: &[f32],
        chunk: &Chunk,
        taps: Taps,
    ) -> Attention {
        let c = &self.model.config;
        let (dm, h, d, rows) = (c.d_model, c.n_heads, c.head_dim, chunk.rows);
        let xn = rmsnorm(x, &layer.attn_norm, c.norm_eps);
        let q = matmul(&xn, &layer.wq, rows, dm, dm);
        let k = matmul(&xn, &layer.wk, rows, dm, dm);
        let v = matmul(&xn, &layer.wv, rows, dm, dm);
        // A shift model's memory keys and queries (the same convolution, own taps); the
        // segment starts are gathered only for a model that has one.
        let shift = |x: &[f32], taps: &Option<Vec<f32>>| {
            taps.as_ref().map(|taps| {
                let starts: Vec<usize> = chunk.spans.iter().map(|s| s.start).collect();
                key_shift(x, taps, dm, &starts)
            })
        };
        let (q_mem, k_mem) = (shift(&q, &layer.query_shift), shift(&k, &layer.key_shift));
        // Heads are independent from the projections to the gate: each walks the
        // segments in order with its own part of the memory, on a core of its own.
        let heads = parallel_map(rows, h, |head| {
            let columns = |x: &[f32]| head_columns(x, head, h, d);
            let qkv = [columns(&q), columns(&k), columns(&v)];
            self.head(
                qkv,
                [q_mem.as_deref().map(columns), k_mem.as_deref().map(columns)],
                memory.head(head, d),
                layer.beta[head],
                chunk,
                taps.recall,
            )
        });
        let mut a = vec![0.0; rows * dm];
        let mut memory = memory.clone();
        let (mut share, mut recall) = (Vec::with_capacity(h), Vec::with_capacity(h));
        for (head, run) in heads.into_iter().enumerate() {
            for (row, a_t) in a.chunks_exact_mut(dm).zip(run.a.chunks_exact(d)) {
                row[head * d..(head + 1) * d].copy_from_slice(a_t);
            }
            memory.set_head(head, &run.memory);
            share.push(run.share);
            recall.push(run.recall);
        }
        Attention {
            out: matmul(&a, &layer.wo, rows, dm, dm),
            memory,
            share,
            recall,
        }
    }

    /// One head through the chunk, segment by segment: its A, memory share per row,
    /// memory after the last write and, if `recall`, its recall taps. The memory is
    /// read with `q_mem` and written with `k_mem` where the model shifts them, with Q
    /// and K otherwise.
    fn head(
        &self,
        [q, k, v]: [Vec<f32>; 3],
        [q_mem, k_mem]: [Option<Vec<f32>>; 2],
        mut memory: LayerMemory,
        beta: f32,
        chunk: &Chunk,
        recall: bool,
    ) -> HeadRun {
        let d = self.model.config.head_dim;
        let (mut a, mut share) = (Vec::with_capacity(chunk.rows * d), Vec::new());
        let mut taps = recall.then(|| HeadRecall {
            sigma_q: q_mem
                .as_ref()
                .unwrap_or(&q)
                .iter()
                .map(|&x| sigma(x))
                .collect(),
            a_mem: Vec::with_capacity(chunk.rows * d),
            delta_z: Vec::with_capacity(chunk.segments.len() * d),
        });
        let mut segments_written = self.segments_written;
        for (segment, span) in chunk.segments.iter().zip(&chunk.spans) {
            let own = span.start * d..span.end * d;
            let q_mem = &q_mem.as_ref().unwrap_or(&q)[own.clone()];
            let k_mem = &k_mem.as_ref().unwrap_or(&k)[own.clone()];
            let (q, k, v) = (&q[own.clone()], &k[own.clone()], &v[own]);
            let a_dot = attention(
                &rotate(q, &self.rotations, 1, d),
                &rotate(k, &self.rotations, 1, d),
                v,
                1,
                d,
            );
            let has_memory = segments_written > 0;
            let read_memory = has_memory && self.options.memory == MemoryMode::On;
            let a_mem = memory_read(q_mem, &memory, 1, d, read_memory);
            if let Some(taps) = taps.as_mut() {
                taps.a_mem.extend(&a_mem);
                let mut delta_z = vec![0.0; d];
                for k_t in k_mem.chunks_exact(d) {
                    for (z, &x) in delta_z.iter_mut().zip(k_t) {
                        *z += sigma(x);
                    }
                }
                taps.delta_z.extend(delta_z);
            }
            if segment.commit {
                let rule = self.options.update_rule;
                memory_write(k_mem, v, &mut memory, 1, d, rule, has_memory);
                segments_written += 1;
            }
            let (mixed, segment_share) = gate_mix(&a_mem, &a_dot, &[beta], d);
            a.extend(mixed);
            share.extend(segment_share);
        }
        HeadRun {
            a,
            share,
            memory,
            recall: taps,
        }
    }

    /// SwiGLU over RMSNorm(x): (silu(x·W_gate) ⊙ x·W_up)·W_down.
    fn mlp_block(&self, layer: &LayerWeights, x: &[f32], rows: usize) -> Vec<f32> {
        let c = &self.model.config;
        let (dm, f) = (c.d_model, c.mlp_hidden);
        let xn = rmsnorm(x, &layer.mlp_norm, c.norm_eps);
        let hidden = swiglu(
            matmul(&xn, &layer.w_gate, rows, dm, f),
            &matmul(&xn, &layer.w_up, rows, dm, f),
        );
        matmul(&hidden, &layer.w_down, rows, f, dm)
    }

    /// The last layer's x read out into every segment's output: logits against the
    /// tied embedding, and the loss and argmax only when tapped (an exp per logit).
    fn readout(&self, x: &[f32], chunk: &Chunk, outputs: &mut [SegmentOutput], taps: Taps) {
        let weights = &self.model.weights;
        let (dm, vocab) = (self.model.config.d_model, self.model.config.vocab_size);
        let norm_eps = self.model.config.norm_eps;
        let logits = matmul_bt(
            &rmsnorm(x, &weights.final_norm, norm_eps),
            &weights.embed,
            chunk.rows,
            dm,
            vocab,
        );
        let logits_of = |span: &Range<usize>| &logits[span.start * vocab..span.end * vocab];
        let losses = parallel_map(chunk.rows, chunk.segments.len(), |i| {
            taps.loss.then(|| {
                let targets = &chunk.segments[i].targets;
                cross_entropy(logits_of(&chunk.spans[i]), vocab, targets)
            })
        });
        for ((out, span), loss) in outputs.iter_mut().zip(&chunk.spans).zip(losses) {
            (out.loss, out.argmax) = loss.unzip();
            out.logits = taps.logits.then(|| logits_of(span).to_vec());
        }
    }
}

/// Blocks of a model: layer l's attention block is block 2·l, its MLP block 2·l + 1.
/// [`Reference::part`] runs a range of them.
pub fn blocks(config: &crate::Config) -> usize {
    2 * config.n_layers
}

/// The block where two parts of about equal work meet (the first block of the second
/// part), counting each block's multiply-adds per token: an attention block's four
/// projections, its local attention (half a segment on average) and its memory read
/// and write; an MLP block's three products; and, in the second part, the readout.
pub fn balanced_cut(config: &crate::Config) -> usize {
    let c = config;
    let attention = 4 * c.d_model * c.d_model
        + c.segment_len * c.d_model
        + 3 * c.n_heads * c.head_dim * c.head_dim;
    let cost = |block: usize| match block % 2 {
        0 => attention,
        _ => 3 * c.d_model * c.mlp_hidden,
    };
    let total: usize = (0..blocks(c)).map(cost).sum::<usize>() + c.vocab_size * c.d_model;
    (1..blocks(c))
        .min_by_key(|&cut| {
            let first: usize = (0..cut).map(cost).sum();
            first.max(total - first)
        })
        .unwrap_or(1)
}

/// The layers whose attention block (and so memory) is among `blocks`.
pub fn attention_layers(blocks: &Range<usize>) -> Range<usize> {
    blocks.start.div_ceil(2)..blocks.end.div_ceil(2)
}
