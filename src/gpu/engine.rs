//! The model on the GPU: weights uploaded once ([`GpuModel`], shareable by several
//! engines), and per engine the activations and the memory state M, z of every
//! layer. A segment's whole layer stack is one command encoder and one submission;
//! only the taps asked for are read back.

use std::sync::Arc;

use super::kernels::Heads;
use super::{floats, uints, Gpu, Recorder};
use crate::reference::validate_segment;
use crate::taps::{LayerMemory, MemoryMode, RunOptions, Segment, SegmentOutput, Taps};
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
        let c = &model.config;
        let largest = [
            c.vocab_size * c.d_model,
            c.segment_len * c.vocab_size,
            c.segment_len * c.mlp_hidden,
            c.n_heads * c.segment_len * c.segment_len,
        ]
        .into_iter()
        .max()
        .unwrap_or(0)
            * 4;
        if largest > limit {
            return Err(Error::Gpu(format!(
                "the model needs storage buffers of {largest} bytes; this device allows {limit}"
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

/// Scratch space for one segment of up to N tokens.
struct Activations {
    tokens: wgpu::Buffer,
    targets: wgpu::Buffer,
    x: wgpu::Buffer,
    xn: wgpu::Buffer,
    q: wgpu::Buffer,
    k: wgpu::Buffer,
    v: wgpu::Buffer,
    q_rope: wgpu::Buffer,
    k_rope: wgpu::Buffer,
    probs: wgpu::Buffer,
    a_dot: wgpu::Buffer,
    a_mem: wgpu::Buffer,
    retrieved: wgpu::Buffer,
    a: wgpu::Buffer,
    proj: wgpu::Buffer,
    gate: wgpu::Buffer,
    up: wgpu::Buffer,
    hidden: wgpu::Buffer,
    logits: wgpu::Buffer,
    loss: wgpu::Buffer,
    argmax: wgpu::Buffer,
    share: wgpu::Buffer,
}

/// The compressive memory of one layer on the GPU.
struct MemoryBuffers {
    m: wgpu::Buffer,
    z: wgpu::Buffer,
}

pub struct GpuEngine {
    shared: Arc<GpuModel>,
    options: RunOptions,
    act: Activations,
    memory: Vec<MemoryBuffers>,
    segments_written: usize,
}

impl GpuEngine {
    pub fn new(shared: Arc<GpuModel>, options: RunOptions) -> Self {
        let gpu = &shared.gpu;
        let c = &shared.model.config;
        let (n, dm, f) = (c.segment_len, c.d_model, c.mlp_hidden);
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
            q_rope: float_buf("q_rope", n * dm),
            k_rope: float_buf("k_rope", n * dm),
            probs: float_buf("probs", c.n_heads * n * n),
            a_dot: float_buf("a_dot", n * dm),
            a_mem: float_buf("a_mem", n * dm),
            retrieved: float_buf("retrieved", n * dm),
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
            memory,
            segments_written: 0,
        }
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

    /// Records one segment's forward pass (and memory write, if committed).
    fn record<'a>(&'a self, rec: &mut Recorder<'a>, n: usize, n_targets: usize, commit: bool) {
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
            n_heads: h,
            head_dim: c.head_dim,
        };
        let act = &self.act;
        let has_memory = self.segments_written > 0;
        let read_memory = has_memory && self.options.memory == MemoryMode::On;
        let delta = self.options.update_rule == UpdateRule::Delta;

        rec.embed(&act.tokens, embed, &act.x, n, dm);
        for (l, (w, mem)) in layers.iter().zip(&self.memory).enumerate() {
            rec.rmsnorm(&act.x, &w.attn_norm, &act.xn, n, dm, c.norm_eps);
            rec.matmul(&act.xn, &w.wq, &act.q, n, dm, dm);
            rec.matmul(&act.xn, &w.wk, &act.k, n, dm, dm);
            rec.matmul(&act.xn, &w.wv, &act.v, n, dm, dm);
            rec.rope(&act.q, &act.q_rope, heads, c.rope_base);
            rec.rope(&act.k, &act.k_rope, heads, c.rope_base);
            rec.attention(
                &act.q_rope,
                &act.k_rope,
                &act.v,
                &act.probs,
                &act.a_dot,
                heads,
            );
            rec.memory_read(&act.q, &mem.m, &mem.z, &act.a_mem, heads, read_memory);
            if commit {
                if delta {
                    rec.memory_read(&act.k, &mem.m, &mem.z, &act.retrieved, heads, has_memory);
                }
                rec.memory_write(&act.k, &act.v, &act.retrieved, &mem.m, &mem.z, heads, delta);
            }
            rec.gate_mix(
                &act.a_mem,
                &act.a_dot,
                &w.beta,
                &act.a,
                &act.share,
                l * n * h,
                heads,
            );
            rec.matmul(&act.a, &w.wo, &act.proj, n, dm, dm);
            rec.add(&act.x, &act.proj, n * dm);

            rec.rmsnorm(&act.x, &w.mlp_norm, &act.xn, n, dm, c.norm_eps);
            rec.matmul(&act.xn, &w.w_gate, &act.gate, n, dm, f);
            rec.matmul(&act.xn, &w.w_up, &act.up, n, dm, f);
            rec.swiglu(&act.gate, &act.up, &act.hidden, n * f);
            rec.matmul(&act.hidden, &w.w_down, &act.proj, n, f, dm);
            rec.add(&act.x, &act.proj, n * dm);
        }
        rec.rmsnorm(&act.x, final_norm, &act.xn, n, dm, c.norm_eps);
        rec.matmul_bt(&act.xn, embed, &act.logits, n, dm, c.vocab_size);
        rec.loss(
            &act.logits,
            &act.targets,
            &act.loss,
            &act.argmax,
            n,
            n_targets,
            c.vocab_size,
        );
    }

    /// Dispatches one segment takes (for benchmarks).
    pub fn dispatches_per_segment(&self, n: usize, commit: bool) -> usize {
        let mut rec = Recorder::new(&self.shared.gpu.kernels);
        self.record(&mut rec, n, n, commit);
        rec.len()
    }

    /// Runs one segment: one submission, then reads back the taps asked for.
    pub async fn segment_async(
        &mut self,
        segment: &Segment,
        taps: Taps,
    ) -> Result<SegmentOutput, Error> {
        let model = Arc::clone(&self.shared.model);
        validate_segment(&model, segment)?;
        let gpu = Arc::clone(&self.shared.gpu);
        gpu.check()?;
        let c = &model.config;
        let n = segment.tokens.len();
        gpu.queue
            .write_buffer(&self.act.tokens, 0, bytemuck::cast_slice(&segment.tokens));
        if !segment.targets.is_empty() {
            gpu.queue
                .write_buffer(&self.act.targets, 0, bytemuck::cast_slice(&segment.targets));
        }
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        let mut rec = Recorder::new(&gpu.kernels);
        self.record(&mut rec, n, segment.targets.len(), segment.commit);
        rec.finish(&mut encoder);

        let mut reads: Vec<(&wgpu::Buffer, usize)> = Vec::new();
        if taps.loss {
            reads.push((&self.act.loss, segment.targets.len() * 4));
            reads.push((&self.act.argmax, n * 4));
        }
        if taps.logits {
            reads.push((&self.act.logits, n * c.vocab_size * 4));
        }
        if taps.memory_share {
            reads.push((&self.act.share, c.n_layers * n * c.n_heads * 4));
        }
        if taps.memory {
            for mem in &self.memory {
                reads.push((&mem.m, c.n_heads * c.head_dim * c.head_dim * 4));
                reads.push((&mem.z, c.n_heads * c.head_dim * 4));
            }
        }
        let mut data = gpu.submit_and_read(encoder, &reads).await?.into_iter();
        if segment.commit {
            self.segments_written += 1;
        }
        let mut next = || data.next().expect("one result per read");
        let mut out = SegmentOutput {
            n_tokens: n,
            ..Default::default()
        };
        if taps.loss {
            out.loss = Some(floats(&next()));
            out.argmax = Some(uints(&next()));
        }
        if taps.logits {
            out.logits = Some(floats(&next()));
        }
        if taps.memory_share {
            // The share buffer is laid out per layer with stride n (this segment's length).
            out.memory_share = Some(floats(&next()));
        }
        if taps.memory {
            out.memory = Some(
                (0..c.n_layers)
                    .map(|_| LayerMemory {
                        m: floats(&next()),
                        z: floats(&next()),
                    })
                    .collect(),
            );
        }
        Ok(out)
    }

    /// Blocking [`Self::segment_async`] for native callers.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn segment(&mut self, segment: &Segment, taps: Taps) -> Result<SegmentOutput, Error> {
        pollster::block_on(self.segment_async(segment, taps))
    }
}
