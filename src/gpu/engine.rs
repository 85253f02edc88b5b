//! The model on the GPU: weights uploaded once ([`GpuModel`], shareable by several
//! engines), and per engine the activations and the memory state M, z of every
//! layer. A chunk of segments runs at once: every op but the memory works on all
//! its rows together, and the memory kernel walks the segments in order. A chunk's
//! whole layer stack is one command encoder and one submission; only the taps asked
//! for are read back.

use std::sync::Arc;

use super::kernels::{
    AttentionBindings, GateMixBindings, Heads, LossBindings, MemoryBindings, MemoryFlags,
    MAX_HEAD_DIM,
};
use super::{floats, uints, Gpu, Recorder};
use crate::segment::validate_segment;
use crate::stream::joins;
use crate::taps::{LayerMemory, MemoryMode, RecallTap, RunOptions, Segment, SegmentOutput, Taps};
use crate::{Error, Model, UpdateRule};

struct LayerBuffers {
    attn_norm: wgpu::Buffer,
    wq: wgpu::Buffer,
    wk: wgpu::Buffer,
    wv: wgpu::Buffer,
    wo: wgpu::Buffer,
    beta: wgpu::Buffer,
    mlp_norm: wgpu::Buffer,
    w_gate: wgpu::Buffer,
    w_up: wgpu::Buffer,
    w_down: wgpu::Buffer,
    /// `[w][D]`: a shift model's taps (`Config::key_shift`, `Config::query_shift`).
    key_shift: Option<wgpu::Buffer>,
    query_shift: Option<wgpu::Buffer>,
}

/// A model's weights on a device (f32: f16 files are widened at load).
pub struct GpuModel {
    pub gpu: Arc<Gpu>,
    pub model: Arc<Model>,
    embed: wgpu::Buffer,
    layers: Vec<LayerBuffers>,
    final_norm: wgpu::Buffer,
}

impl GpuModel {
    pub fn upload(gpu: Arc<Gpu>, model: Arc<Model>) -> Result<Arc<Self>, Error> {
        let limit = gpu.device.limits().max_storage_buffer_binding_size as usize;
        let largest = largest_buffer(&model.config, 1);
        if largest > limit {
            return Err(Error::Gpu(format!(
                "the model needs storage buffers of {largest} bytes; this device allows {limit}"
            )));
        }
        if model.config.head_dim > MAX_HEAD_DIM {
            return Err(Error::Gpu(format!(
                "the memory kernel handles heads of up to {MAX_HEAD_DIM} dimensions; this model's have {}",
                model.config.head_dim
            )));
        }
        let w = &model.weights;
        let layers = w
            .layers
            .iter()
            .enumerate()
            .map(|(l, layer)| {
                let up =
                    |name: &str, data: &[f32]| gpu.buffer_with(&format!("layers.{l}.{name}"), data);
                LayerBuffers {
                    attn_norm: up("attn_norm", &layer.attn_norm),
                    wq: up("wq", &layer.wq),
                    wk: up("wk", &layer.wk),
                    wv: up("wv", &layer.wv),
                    wo: up("wo", &layer.wo),
                    beta: up("beta", &layer.beta),
                    mlp_norm: up("mlp_norm", &layer.mlp_norm),
                    w_gate: up("w_gate", &layer.w_gate),
                    w_up: up("w_up", &layer.w_up),
                    w_down: up("w_down", &layer.w_down),
                    key_shift: layer.key_shift.as_ref().map(|s| up("key_shift", s)),
                    query_shift: layer.query_shift.as_ref().map(|s| up("query_shift", s)),
                }
            })
            .collect();
        let embed = gpu.buffer_with("embed", &w.embed);
        let final_norm = gpu.buffer_with("final_norm", &w.final_norm);
        gpu.check()?;
        Ok(Arc::new(Self {
            gpu,
            model,
            embed,
            layers,
            final_norm,
        }))
    }
}

/// Bytes of the largest buffer a chunk of `segments` segments needs.
fn largest_buffer(c: &crate::Config, segments: usize) -> usize {
    let rows = segments * c.segment_len;
    [
        c.vocab_size * c.d_model,
        rows * c.vocab_size,
        rows * c.mlp_hidden,
        segments * c.n_heads * c.segment_len * c.segment_len,
        c.n_layers * rows * c.n_heads,
    ]
    .into_iter()
    .max()
    .unwrap_or(0)
        * 4
}

/// Segments per chunk unless asked otherwise: large enough that a chunk's ops are
/// big (1,024 rows for N = 32), small enough for a live page and modest buffers.
pub const CHUNK_SEGMENTS: usize = 32;

/// Scratch space for one chunk of up to `chunk` segments of N tokens. Shapes for
/// R = chunk·N rows (a chunk's segments stacked), D = d_model = H·d, F = mlp_hidden,
/// V = vocab_size; a head h owns columns h·d .. (h+1)·d of every `[R][D]`.
struct Activations {
    /// `[R]` u32: the chunk's token ids.
    tokens: wgpu::Buffer,
    /// `[R]` u32: the next token of each row that has one.
    targets: wgpu::Buffer,
    /// `[R][D]`: the residual stream.
    x: wgpu::Buffer,
    /// `[R][D]`: RMSNorm(x), the input of the attention and MLP blocks.
    xn: wgpu::Buffer,
    /// `[R][D]` each: the projections; Q and K become σ(Q), σ(K) in the memory op.
    /// In a shift model Q and K hold the memory's queries Q̃ and keys K̃ …
    q: wgpu::Buffer,
    k: wgpu::Buffer,
    v: wgpu::Buffer,
    /// … `[R][D]` each, and these Q and K themselves, which the local attention reads.
    q_unshifted: Option<wgpu::Buffer>,
    k_unshifted: Option<wgpu::Buffer>,
    /// `[R][D]` each: RoPE(Q), RoPE(K) for the local attention.
    q_rope: wgpu::Buffer,
    k_rope: wgpu::Buffer,
    /// `[chunk][H][N][N]`: the local attention's softmax weights.
    probs: wgpu::Buffer,
    /// `[R][D]`: A_dot, the local attention.
    a_dot: wgpu::Buffer,
    /// `[R][D]`: A_mem, the memory read.
    a_mem: wgpu::Buffer,
    /// `[R][D]`: V − what memory returns for K (the delta rule's write), else V.
    surprise: wgpu::Buffer,
    /// `[R][D]`: A = g·A_mem + (1 − g)·A_dot.
    a: wgpu::Buffer,
    /// `[R][D]`: A·W_O, then the MLP's output, before each is added to x.
    proj: wgpu::Buffer,
    /// `[R][F]` each: x·W_gate, x·W_up, silu(gate)·up.
    gate: wgpu::Buffer,
    up: wgpu::Buffer,
    hidden: wgpu::Buffer,
    /// `[R][V]`.
    logits: wgpu::Buffer,
    /// `[R]`: the cross-entropy of each row with a target.
    loss: wgpu::Buffer,
    /// `[R]` u32: the most likely next token.
    argmax: wgpu::Buffer,
    /// `[L][R][H]`: every layer's memory share.
    share: wgpu::Buffer,
}

/// The compressive memory of one layer on the GPU.
struct MemoryBuffers {
    m: wgpu::Buffer,
    z: wgpu::Buffer,
}

/// The memory of every layer copied on the device, and the segments it holds: a
/// point to come back to ([`GpuEngine::save`], [`GpuEngine::restore`]).
pub struct SavedMemory {
    memory: Vec<MemoryBuffers>,
    segments_written: usize,
}

/// One layer's recall taps (`Taps::recall`): while they are asked for, the layer
/// computes Q, K and A_mem here instead of in the shared [`Activations`], so the
/// later layers leave them alone until they are read back. Shapes as there.
struct RecallBuffers {
    /// `[R][D]`: Q, σ(Q) after the memory op.
    q: wgpu::Buffer,
    /// `[R][D]`: K, σ(K) after the memory op; summed per segment into Δz on readback.
    k: wgpu::Buffer,
    /// `[R][D]`: A_mem.
    a_mem: wgpu::Buffer,
}

pub struct GpuEngine {
    shared: Arc<GpuModel>,
    options: RunOptions,
    act: Activations,
    /// Most segments one chunk may hold.
    chunk: usize,
    memory: Vec<MemoryBuffers>,
    /// One per layer once a chunk has asked for the recall taps; empty before.
    recall: Vec<RecallBuffers>,
    segments_written: usize,
}

impl GpuEngine {
    pub fn new(shared: Arc<GpuModel>, options: RunOptions) -> Self {
        Self::with_chunk(shared, options, CHUNK_SEGMENTS)
    }

    /// An engine that runs up to `chunk` segments at once (fewer if the device's
    /// buffer limit says so; at least one).
    pub fn with_chunk(shared: Arc<GpuModel>, options: RunOptions, chunk: usize) -> Self {
        let gpu = &shared.gpu;
        let c = &shared.model.config;
        let limit = gpu.device.limits().max_storage_buffer_binding_size as usize;
        let chunk = (1..=chunk.max(1))
            .rev()
            .find(|&s| largest_buffer(c, s) <= limit)
            .unwrap_or(1);
        let (n, dm, f) = (chunk * c.segment_len, c.d_model, c.mlp_hidden);
        // Every element is 4 bytes (f32, or u32 for token ids).
        let float_buf = |label: &str, len: usize| gpu.buffer(label, len * 4);
        let act = Activations {
            tokens: float_buf("tokens", n),
            targets: float_buf("targets", n),
            x: float_buf("x", n * dm),
            xn: float_buf("xn", n * dm),
            q: float_buf("q", n * dm),
            k: float_buf("k", n * dm),
            v: float_buf("v", n * dm),
            q_unshifted: (c.query_shift > 0).then(|| float_buf("q_unshifted", n * dm)),
            k_unshifted: (c.key_shift > 0).then(|| float_buf("k_unshifted", n * dm)),
            q_rope: float_buf("q_rope", n * dm),
            k_rope: float_buf("k_rope", n * dm),
            probs: float_buf("probs", chunk * c.n_heads * c.segment_len * c.segment_len),
            a_dot: float_buf("a_dot", n * dm),
            a_mem: float_buf("a_mem", n * dm),
            surprise: float_buf("surprise", n * dm),
            a: float_buf("a", n * dm),
            proj: float_buf("proj", n * dm),
            gate: float_buf("gate", n * f),
            up: float_buf("up", n * f),
            hidden: float_buf("hidden", n * f),
            logits: float_buf("logits", n * c.vocab_size),
            loss: float_buf("loss", n),
            argmax: float_buf("argmax", n),
            share: float_buf("share", c.n_layers * n * c.n_heads),
        };
        let memory = (0..c.n_layers)
            .map(|l| MemoryBuffers {
                m: float_buf(
                    &format!("layers.{l}.M"),
                    c.n_heads * c.head_dim * c.head_dim,
                ),
                z: float_buf(&format!("layers.{l}.z"), c.n_heads * c.head_dim),
            })
            .collect();
        Self {
            shared,
            options,
            act,
            chunk,
            memory,
            recall: Vec::new(),
            segments_written: 0,
        }
    }

    /// Most segments [`Self::segments_async`] takes at once.
    pub fn chunk(&self) -> usize {
        self.chunk
    }

    pub fn gpu(&self) -> &Gpu {
        &self.shared.gpu
    }

    pub fn model(&self) -> &Arc<Model> {
        &self.shared.model
    }

    /// Forgets everything read so far (M = 0, z = 0).
    pub fn reset(&mut self) {
        let gpu = &self.shared.gpu;
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        for mem in &self.memory {
            encoder.clear_buffer(&mem.m, 0, None);
            encoder.clear_buffer(&mem.z, 0, None);
        }
        gpu.queue.submit([encoder.finish()]);
        self.segments_written = 0;
    }

    /// A copy of M and z as they are now, on the device (nothing is read back).
    pub fn save(&self) -> SavedMemory {
        let gpu = &self.shared.gpu;
        let memory = self
            .memory
            .iter()
            .map(|mem| MemoryBuffers {
                m: gpu.buffer("saved M", mem.m.size() as usize),
                z: gpu.buffer("saved z", mem.z.size() as usize),
            })
            .collect();
        let saved = SavedMemory {
            memory,
            segments_written: self.segments_written,
        };
        self.copy_memory(&self.memory, &saved.memory);
        saved
    }

    /// Puts back the memory of an earlier [`Self::save`] of this engine.
    pub fn restore(&mut self, saved: &SavedMemory) {
        self.copy_memory(&saved.memory, &self.memory);
        self.segments_written = saved.segments_written;
    }

    fn copy_memory(&self, from: &[MemoryBuffers], to: &[MemoryBuffers]) {
        let gpu = &self.shared.gpu;
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        for (from, to) in from.iter().zip(to) {
            encoder.copy_buffer_to_buffer(&from.m, 0, &to.m, 0, None);
            encoder.copy_buffer_to_buffer(&from.z, 0, &to.z, 0, None);
        }
        gpu.queue.submit([encoder.finish()]);
    }

    /// Records a chunk's forward pass (and memory write, if committed): `segments`
    /// segments of `n` tokens, the first `n_targets` rows with a target; with
    /// `recall`, each layer's Q, K and A_mem in its [`RecallBuffers`].
    fn record<'a>(
        &'a self,
        rec: &mut Recorder<'a>,
        n: usize,
        segments: usize,
        n_targets: usize,
        commit: bool,
        recall: bool,
    ) {
        let GpuModel {
            embed,
            layers,
            final_norm,
            model,
            ..
        } = &*self.shared;
        let c = &model.config;
        let (dm, h, f) = (c.d_model, c.n_heads, c.mlp_hidden);
        let heads = Heads {
            n,
            segments,
            n_heads: h,
            head_dim: c.head_dim,
        };
        let rows = heads.rows();
        let act = &self.act;
        let flags = MemoryFlags {
            read: self.options.memory == MemoryMode::On,
            delta: self.options.update_rule == UpdateRule::Delta,
            commit,
        };

        let tapped: &[RecallBuffers] = if recall { &self.recall } else { &[] };
        rec.embed(&act.tokens, embed, &act.x, rows, dm);
        for (l, (w, mem)) in layers.iter().zip(&self.memory).enumerate() {
            let (q, k, a_mem) = match tapped.get(l) {
                Some(r) => (&r.q, &r.k, &r.a_mem),
                None => (&act.q, &act.k, &act.a_mem),
            };
            rec.rmsnorm(&act.x, &w.attn_norm, &act.xn, rows, dm, c.norm_eps);
            let q_proj = act.q_unshifted.as_ref().unwrap_or(q);
            let k_proj = act.k_unshifted.as_ref().unwrap_or(k);
            rec.matmul(&act.xn, &w.wq, q_proj, rows, dm, dm);
            rec.matmul(&act.xn, &w.wk, k_proj, rows, dm, dm);
            rec.matmul(&act.xn, &w.wv, &act.v, rows, dm, dm);
            rec.rope(q_proj, &act.q_rope, heads, c.rope_base);
            rec.rope(k_proj, &act.k_rope, heads, c.rope_base);
            if let Some(shift) = &w.query_shift {
                rec.key_shift(q_proj, shift, q, heads.n, rows, dm, c.query_shift);
            }
            if let Some(shift) = &w.key_shift {
                rec.key_shift(k_proj, shift, k, heads.n, rows, dm, c.key_shift);
            }
            let local = AttentionBindings {
                q: &act.q_rope,
                k: &act.k_rope,
                v: &act.v,
                probs: &act.probs,
                out: &act.a_dot,
            };
            rec.attention(local, heads);
            let memory = MemoryBindings {
                q,
                k,
                v: &act.v,
                m: &mem.m,
                z: &mem.z,
                a_mem,
                surprise: &act.surprise,
            };
            rec.memory(memory, heads, flags, self.segments_written);
            let mix = GateMixBindings {
                a_mem,
                a_dot: &act.a_dot,
                beta: &w.beta,
                out: &act.a,
                share: &act.share,
            };
            rec.gate_mix(mix, l * rows * h, heads);
            rec.matmul(&act.a, &w.wo, &act.proj, rows, dm, dm);
            rec.add(&act.x, &act.proj, rows * dm);

            rec.rmsnorm(&act.x, &w.mlp_norm, &act.xn, rows, dm, c.norm_eps);
            rec.matmul(&act.xn, &w.w_gate, &act.gate, rows, dm, f);
            rec.matmul(&act.xn, &w.w_up, &act.up, rows, dm, f);
            rec.swiglu(&act.gate, &act.up, &act.hidden, rows * f);
            rec.matmul(&act.hidden, &w.w_down, &act.proj, rows, f, dm);
            rec.add(&act.x, &act.proj, rows * dm);
        }
        rec.rmsnorm(&act.x, final_norm, &act.xn, rows, dm, c.norm_eps);
        rec.matmul_bt(&act.xn, embed, &act.logits, rows, dm, c.vocab_size);
        let loss = LossBindings {
            logits: &act.logits,
            targets: &act.targets,
            loss: &act.loss,
            argmax: &act.argmax,
        };
        rec.loss(loss, rows, n_targets, c.vocab_size);
    }

    /// Dispatches a chunk of `segments` segments of `n` tokens takes (for benchmarks).
    pub fn dispatches(&self, n: usize, segments: usize, commit: bool) -> usize {
        let mut rec = Recorder::new(&self.shared.gpu.kernels);
        self.record(&mut rec, n, segments, n * segments, commit, false);
        rec.len()
    }

    /// Where a chunk's time goes: each op's dispatches of a chunk of `segments` full
    /// segments, run on their own (best of `repeats`), as (op, dispatches, seconds).
    /// The memory state changes; [`Self::reset`] afterwards.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn profile(
        &self,
        segments: usize,
        repeats: usize,
    ) -> Result<Vec<(super::kernels::Op, usize, f64)>, Error> {
        let gpu = &self.shared.gpu;
        let n = self.shared.model.config.segment_len;
        let segments = segments.clamp(1, self.chunk);
        let mut all = Recorder::new(&gpu.kernels);
        self.record(&mut all, n, segments, n * segments, true, false);
        let mut times = Vec::new();
        for op in all.ops() {
            let mut best = f64::INFINITY;
            let mut count = 0;
            for _ in 0..repeats.max(1) {
                let mut rec = Recorder::new(&gpu.kernels);
                self.record(&mut rec, n, segments, n * segments, true, false);
                rec.keep_only(op);
                count = rec.len();
                let mut encoder = gpu.device.create_command_encoder(&Default::default());
                rec.finish(&mut encoder);
                let start = std::time::Instant::now();
                gpu.queue.submit([encoder.finish()]);
                gpu.device
                    .poll(wgpu::PollType::wait_indefinitely())
                    .map_err(|e| Error::Gpu(format!("waiting for the GPU failed: {e}")))?;
                best = best.min(start.elapsed().as_secs_f64());
            }
            gpu.check()?;
            times.push((op, count, best));
        }
        Ok(times)
    }

    /// Runs one segment: one submission, then reads back the taps asked for.
    pub async fn segment_async(
        &mut self,
        segment: &Segment,
        taps: Taps,
    ) -> Result<SegmentOutput, Error> {
        let mut out = self
            .segments_async(std::slice::from_ref(segment), taps)
            .await?;
        Ok(out.pop().expect("one output per segment"))
    }

    /// Runs consecutive segments of a text as one chunk (one submission) and reads
    /// back the taps asked for, split per segment; M and z (the `memory` tap) only
    /// after the last. Consecutive segments must be ones [`joins`] allows together.
    pub async fn segments_async(
        &mut self,
        segments: &[Segment],
        taps: Taps,
    ) -> Result<Vec<SegmentOutput>, Error> {
        let model = Arc::clone(&self.shared.model);
        let c = &model.config;
        let Some(first) = segments.first() else {
            return Ok(Vec::new());
        };
        let n = first.tokens.len();
        let commit = first.commit;
        for segment in segments {
            validate_segment(&model, segment)?;
        }
        if segments.windows(2).any(|pair| !joins(&pair[0], &pair[1])) {
            return Err(Error::Text(
                "a chunk holds committed segments of one length, each with every target but the last (or one uncommitted segment)".into(),
            ));
        }
        if segments.len() > self.chunk {
            return Err(Error::Text(format!(
                "a chunk holds at most {} segments, not {}",
                self.chunk,
                segments.len()
            )));
        }
        let gpu = Arc::clone(&self.shared.gpu);
        gpu.check()?;
        if taps.recall && self.recall.is_empty() {
            let len = self.chunk * c.segment_len * c.d_model * 4;
            self.recall = (0..c.n_layers)
                .map(|l| RecallBuffers {
                    q: gpu.buffer(&format!("layers.{l}.recall.q"), len),
                    k: gpu.buffer(&format!("layers.{l}.recall.k"), len),
                    a_mem: gpu.buffer(&format!("layers.{l}.recall.a_mem"), len),
                })
                .collect();
        }
        let count = segments.len();
        let rows = count * n;
        let tokens: Vec<u32> = segments
            .iter()
            .flat_map(|s| s.tokens.iter().copied())
            .collect();
        let targets: Vec<u32> = segments
            .iter()
            .flat_map(|s| s.targets.iter().copied())
            .collect();
        gpu.queue
            .write_buffer(&self.act.tokens, 0, bytemuck::cast_slice(&tokens));
        if !targets.is_empty() {
            gpu.queue
                .write_buffer(&self.act.targets, 0, bytemuck::cast_slice(&targets));
        }
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        let mut rec = Recorder::new(&gpu.kernels);
        self.record(&mut rec, n, count, targets.len(), commit, taps.recall);
        rec.finish(&mut encoder);

        let (h, vocab, dm) = (c.n_heads, c.vocab_size, c.d_model);
        let mut reads: Vec<(&wgpu::Buffer, usize)> = Vec::new();
        if taps.loss {
            reads.push((&self.act.loss, targets.len() * 4));
            reads.push((&self.act.argmax, rows * 4));
        }
        if taps.logits {
            reads.push((&self.act.logits, rows * vocab * 4));
        }
        if taps.memory_share {
            reads.push((&self.act.share, c.n_layers * rows * h * 4));
        }
        if taps.memory {
            for mem in &self.memory {
                reads.push((&mem.m, h * c.head_dim * c.head_dim * 4));
                reads.push((&mem.z, h * c.head_dim * 4));
            }
        }
        if taps.recall {
            for r in &self.recall {
                reads.extend([&r.q, &r.a_mem, &r.k].map(|b| (b, rows * dm * 4)));
            }
        }
        let mut data = gpu.submit_and_read(encoder, &reads).await?.into_iter();
        if commit {
            self.segments_written += count;
        }
        let mut next = || data.next().expect("one result per read");
        let loss = taps.loss.then(|| (floats(&next()), uints(&next())));
        let logits = taps.logits.then(|| floats(&next()));
        // The share buffer is [layer][row][head] over the chunk's rows.
        let share = taps.memory_share.then(|| floats(&next()));
        let memory = taps.memory.then(|| {
            (0..c.n_layers)
                .map(|_| LayerMemory {
                    m: floats(&next()),
                    z: floats(&next()),
                })
                .collect()
        });
        // `[layer]` of (σ(Q), A_mem, σ(K)), each `[row][D]` over the chunk's rows.
        let recall: Option<Vec<_>> = taps.recall.then(|| {
            (0..c.n_layers)
                .map(|_| [next(), next(), next()].map(|b| floats(&b)))
                .collect()
        });
        let mut outputs: Vec<SegmentOutput> = segments
            .iter()
            .enumerate()
            .map(|(i, segment)| {
                let rows_of = |width: usize| i * n * width..(i + 1) * n * width;
                SegmentOutput {
                    n_tokens: n,
                    loss: loss
                        .as_ref()
                        .map(|(l, _)| l[i * n..i * n + segment.targets.len()].to_vec()),
                    argmax: loss.as_ref().map(|(_, a)| a[rows_of(1)].to_vec()),
                    logits: logits.as_ref().map(|l| l[rows_of(vocab)].to_vec()),
                    memory_share: share.as_ref().map(|s| {
                        (0..c.n_layers)
                            .flat_map(|l| &s[l * rows * h..][rows_of(h)])
                            .copied()
                            .collect()
                    }),
                    memory: None,
                    recall: recall.as_ref().map(|layers| RecallTap {
                        sigma_q: layers
                            .iter()
                            .flat_map(|[q, ..]| &q[rows_of(dm)])
                            .copied()
                            .collect(),
                        a_mem: layers
                            .iter()
                            .flat_map(|[_, a, _]| &a[rows_of(dm)])
                            .copied()
                            .collect(),
                        delta_z: layers
                            .iter()
                            .flat_map(|[.., k]| column_sums(&k[rows_of(dm)], dm))
                            .collect(),
                    }),
                }
            })
            .collect();
        if let Some(last) = outputs.last_mut() {
            last.memory = memory;
        }
        Ok(outputs)
    }

    /// Blocking [`Self::segment_async`] for native callers.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn segment(&mut self, segment: &Segment, taps: Taps) -> Result<SegmentOutput, Error> {
        pollster::block_on(self.segment_async(segment, taps))
    }

    /// Blocking [`Self::segments_async`] for native callers.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn segments(
        &mut self,
        segments: &[Segment],
        taps: Taps,
    ) -> Result<Vec<SegmentOutput>, Error> {
        pollster::block_on(self.segments_async(segments, taps))
    }
}

/// Σ_t rows[t] of `[t][width]` rows, in order of t (as the CPU reference sums Δz).
fn column_sums(rows: &[f32], width: usize) -> Vec<f32> {
    let mut sums = vec![0.0; width];
    for row in rows.chunks_exact(width) {
        for (sum, &x) in sums.iter_mut().zip(row) {
            *sum += x;
        }
    }
    sums
}
