//! One WGSL shader per op (`shaders/*.wgsl`), compiled once per device into
//! pipelines cached by op (each op names a shader, an entry point and its override
//! constants), and a [`Recorder`] that collects a whole segment's dispatches and
//! records them into one compute pass.
//!
//! Every kernel binds a uniform of eight 32-bit words at binding 0 (its shape, in
//! the order of its `struct Params`) and storage buffers from binding 1 on.
//! Per-head kernels work on a chunk of segments at once: `segments` segments of `n`
//! tokens each, stacked row after row.

use std::collections::HashMap;
use std::sync::Mutex;

use wgpu::util::DeviceExt;

/// The ops of the model, each a kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    Embed,
    RmsNorm,
    Matmul,
    /// `a · bᵀ`: the logits against the tied embedding.
    MatmulBt,
    /// Matmul and MatmulBt with vec4 loads, for k and n multiples of 4.
    MatmulVec4,
    MatmulBtVec4,
    Rope,
    AttentionScores,
    AttentionSoftmax,
    AttentionValues,
    /// σ in place on Q and K, ahead of the memory.
    Sigma,
    /// Reads and writes of the compressive memory, segment by segment.
    Memory,
    GateMix,
    SwiGlu,
    Add,
    Loss,
}

/// Access of each storage binding, from binding 1 on.
#[derive(Clone, Copy)]
enum Access {
    Read,
    ReadWrite,
}
use Access::{Read, ReadWrite};

struct Spec {
    source: &'static str,
    entry: &'static str,
    constants: &'static [(&'static str, f64)],
    storage: &'static [Access],
}

macro_rules! shader {
    ($name:literal) => {
        include_str!(concat!("../../shaders/", $name, ".wgsl"))
    };
    // The memory kernels share σ.
    (sigma $name:literal) => {
        concat!(shader!("sigma"), shader!($name))
    };
}

impl Op {
    /// `simd`: see [`Kernels::new`].
    fn spec(self, simd: bool) -> Spec {
        let matmul_vec4 = if simd { "simd" } else { "main" };
        let spec = |source, entry, storage| Spec {
            source,
            entry,
            constants: &[],
            storage,
        };
        match self {
            Op::Embed => spec(shader!("embed"), "main", &[Read, Read, ReadWrite]),
            Op::RmsNorm => spec(shader!("rmsnorm"), "main", &[Read, Read, ReadWrite]),
            Op::Matmul => spec(shader!("matmul"), "main", &[Read, Read, ReadWrite]),
            Op::MatmulBt => Spec {
                constants: &[("TRANSPOSE_B", 1.0)],
                ..spec(shader!("matmul"), "main", &[Read, Read, ReadWrite])
            },
            Op::MatmulVec4 => spec(
                shader!("matmul_vec4"),
                matmul_vec4,
                &[Read, Read, ReadWrite],
            ),
            Op::MatmulBtVec4 => Spec {
                constants: &[("TRANSPOSE_B", 1.0)],
                ..spec(
                    shader!("matmul_vec4"),
                    matmul_vec4,
                    &[Read, Read, ReadWrite],
                )
            },
            Op::Rope => spec(shader!("rope"), "main", &[Read, ReadWrite]),
            Op::AttentionScores => spec(
                shader!("attention"),
                "scores",
                &[Read, Read, Read, ReadWrite, ReadWrite],
            ),
            Op::AttentionSoftmax => spec(
                shader!("attention"),
                "softmax",
                &[Read, Read, Read, ReadWrite, ReadWrite],
            ),
            Op::AttentionValues => spec(
                shader!("attention"),
                "weighted_values",
                &[Read, Read, Read, ReadWrite, ReadWrite],
            ),
            Op::Sigma => spec(
                shader!(sigma "sigma_apply"),
                "main",
                &[ReadWrite, ReadWrite],
            ),
            Op::Memory => spec(
                shader!(sigma "memory"),
                "main",
                &[Read, Read, Read, ReadWrite, ReadWrite, ReadWrite, ReadWrite],
            ),
            Op::GateMix => spec(
                shader!("gate_mix"),
                "main",
                &[Read, Read, Read, ReadWrite, ReadWrite],
            ),
            Op::SwiGlu => spec(shader!("swiglu"), "main", &[Read, Read, ReadWrite]),
            Op::Add => spec(shader!("add"), "main", &[ReadWrite, Read]),
            Op::Loss => spec(shader!("loss"), "main", &[Read, Read, ReadWrite, ReadWrite]),
        }
    }
}

#[derive(Clone)]
struct Pipeline {
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
}

/// The compiled kernels of one device.
pub struct Kernels {
    device: wgpu::Device,
    simd: bool,
    pipelines: Mutex<HashMap<Op, Pipeline>>,
}

/// Bytes between two ops' parameters in the per-segment uniform buffer (the
/// WebGPU minimum for `minUniformBufferOffsetAlignment`).
const PARAMS_STRIDE: u64 = 256;
const PARAMS_SIZE: u64 = 32;
type Params = [u32; 8];

impl Kernels {
    /// `simd`: the adapter runs invocations as the SIMD lanes of a CPU (a software
    /// adapter such as lavapipe), where kernels tiled for loads rather than
    /// registers are faster (shaders/matmul_vec4.wgsl says why).
    pub fn new(device: &wgpu::Device, simd: bool) -> Self {
        Self {
            device: device.clone(),
            simd,
            pipelines: Mutex::new(HashMap::new()),
        }
    }

    /// Workgroups of a matmul kernel: each covers a 32×32 block of the output, or
    /// with the vec4 kernel 128 columns × 8 rows (16 rows on a SIMD adapter).
    fn blocks(&self, m: usize, n: usize, vec4: bool) -> [u32; 3] {
        match (vec4, self.simd) {
            (false, _) => [u(n).div_ceil(32), u(m).div_ceil(32), 1],
            (true, false) => [u(n).div_ceil(128), u(m).div_ceil(8), 1],
            (true, true) => [u(n).div_ceil(128), u(m).div_ceil(16), 1],
        }
    }

    fn pipeline(&self, op: Op) -> Pipeline {
        let mut cache = self.pipelines.lock().unwrap();
        cache.entry(op).or_insert_with(|| self.compile(op)).clone()
    }

    fn compile(&self, op: Op) -> Pipeline {
        let spec = op.spec(self.simd);
        let mut entries = vec![wgpu::BindGroupLayoutEntry {
            binding: 0,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        }];
        for (i, access) in spec.storage.iter().enumerate() {
            entries.push(wgpu::BindGroupLayoutEntry {
                binding: i as u32 + 1,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage {
                        read_only: matches!(access, Read),
                    },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            });
        }
        let label = format!("{op:?}");
        let layout = self
            .device
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(&label),
                entries: &entries,
            });
        let pipeline_layout = self
            .device
            .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(&label),
                bind_group_layouts: &[Some(&layout)],
                immediate_size: 0,
            });
        let module = self
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(&label),
                source: wgpu::ShaderSource::Wgsl(spec.source.into()),
            });
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(&label),
                layout: Some(&pipeline_layout),
                module: &module,
                entry_point: Some(spec.entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: spec.constants,
                    ..Default::default()
                },
                cache: None,
            });
        Pipeline { pipeline, layout }
    }
}

struct Dispatch<'a> {
    op: Op,
    buffers: Vec<&'a wgpu::Buffer>,
    workgroups: [u32; 3],
}

/// Collects dispatches, then records them in order into one compute pass; their
/// parameters travel in one uniform buffer. wgpu orders storage accesses between
/// the dispatches of a pass, so each op sees the previous one's results.
pub struct Recorder<'a> {
    kernels: &'a Kernels,
    params: Vec<u8>,
    dispatches: Vec<Dispatch<'a>>,
}

/// The per-head shape of a chunk: `segments` segments of n tokens, each token
/// n_heads heads of head_dim.
#[derive(Clone, Copy, Debug)]
pub struct Heads {
    pub n: usize,
    pub segments: usize,
    pub n_heads: usize,
    pub head_dim: usize,
}

impl Heads {
    /// A per-head kernel's parameters: n, n_heads, head_dim, `fourth`, segments, `sixth`.
    fn params(self, fourth: u32, sixth: u32) -> Params {
        [
            u(self.n),
            u(self.n_heads),
            u(self.head_dim),
            fourth,
            u(self.segments),
            sixth,
            0,
            0,
        ]
    }

    /// Rows of the chunk: segments · n.
    pub fn rows(self) -> usize {
        self.segments * self.n
    }

    /// rows · n_heads · head_dim: the elements of a `[t][d_model]` activation.
    fn elements(self) -> usize {
        self.rows() * self.n_heads * self.head_dim
    }
}

/// Four leading words, the rest zero.
fn params4(words: [u32; 4]) -> Params {
    [words[0], words[1], words[2], words[3], 0, 0, 0, 0]
}

/// What the memory kernel does besides walking the segments.
#[derive(Clone, Copy, Debug)]
pub struct MemoryFlags {
    /// The read feeds A_mem (memory on); otherwise A_mem = 0.
    pub read: bool,
    /// Delta rule: subtract what the memory already returns for K before writing.
    pub delta: bool,
    /// Write the chunk into M and z.
    pub commit: bool,
}

/// Workgroups for `count` invocations of a 64-wide kernel (or `count` rows of a
/// one-workgroup-per-row kernel with `per_group = 1`), spread over x and y so no
/// dimension exceeds the WebGPU limit of 65535.
fn groups(count: u32, per_group: u32) -> [u32; 3] {
    let total = count.div_ceil(per_group).max(1);
    let x = total.min(65535);
    [x, total.div_ceil(x), 1]
}

/// Loop iterations of one memory-kernel invocation per segment of n tokens, counted
/// from shaders/memory.wgsl's loops (generously: constant loops count too): the
/// reads' token quads, each a row loop and 52 iterations of stores; the write's
/// token loop and 44 iterations of stores.
fn walk_iterations(n: usize, head_dim: usize) -> usize {
    1 + n.div_ceil(32) * (head_dim + 53) + n + 45
}

/// Iterations one memory-kernel dispatch may spend on its segments: lavapipe's
/// 65,535 less the copies of z in and out and a margin.
const WALK_LOOP_BUDGET: usize = 60_000;

/// Whether a matmul can take the vec4 kernel.
fn vec4(k: usize, n: usize) -> bool {
    k.is_multiple_of(4) && n.is_multiple_of(4)
}

fn u(value: usize) -> u32 {
    u32::try_from(value).expect("GPU sizes fit in 32 bits")
}

impl<'a> Recorder<'a> {
    pub fn new(kernels: &'a Kernels) -> Self {
        Self {
            kernels,
            params: Vec::new(),
            dispatches: Vec::new(),
        }
    }

    /// Number of dispatches recorded so far.
    pub fn len(&self) -> usize {
        self.dispatches.len()
    }

    pub fn is_empty(&self) -> bool {
        self.dispatches.is_empty()
    }

    /// The ops recorded, each once, in order of first use.
    pub fn ops(&self) -> Vec<Op> {
        let mut ops = Vec::new();
        for d in &self.dispatches {
            if !ops.contains(&d.op) {
                ops.push(d.op);
            }
        }
        ops
    }

    /// Drops every dispatch but those of `op` (to time one op on its own).
    pub fn keep_only(&mut self, op: Op) {
        let stride = PARAMS_STRIDE as usize;
        let (mut params, mut dispatches) = (Vec::new(), Vec::new());
        for (i, d) in std::mem::take(&mut self.dispatches).into_iter().enumerate() {
            if d.op == op {
                params.extend_from_slice(&self.params[i * stride..(i + 1) * stride]);
                dispatches.push(d);
            }
        }
        self.params = params;
        self.dispatches = dispatches;
    }

    fn dispatch(
        &mut self,
        op: Op,
        params: Params,
        buffers: &[&'a wgpu::Buffer],
        workgroups: [u32; 3],
    ) {
        debug_assert_eq!(
            buffers.len(),
            op.spec(self.kernels.simd).storage.len(),
            "{op:?} bindings"
        );
        self.params.extend_from_slice(bytemuck::cast_slice(&params));
        self.params.resize(
            self.dispatches.len() * PARAMS_STRIDE as usize + PARAMS_STRIDE as usize,
            0,
        );
        self.dispatches.push(Dispatch {
            op,
            buffers: buffers.to_vec(),
            workgroups,
        });
    }

    /// Records every collected dispatch into `encoder`.
    pub fn finish(self, encoder: &mut wgpu::CommandEncoder) {
        if self.dispatches.is_empty() {
            return;
        }
        let device = &self.kernels.device;
        let params = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("op params"),
            contents: &self.params,
            usage: wgpu::BufferUsages::UNIFORM,
        });
        let prepared: Vec<(Pipeline, wgpu::BindGroup, [u32; 3])> = self
            .dispatches
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let pipeline = self.kernels.pipeline(d.op);
                let mut entries = vec![wgpu::BindGroupEntry {
                    binding: 0,
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: &params,
                        offset: i as u64 * PARAMS_STRIDE,
                        size: wgpu::BufferSize::new(PARAMS_SIZE),
                    }),
                }];
                for (b, buffer) in d.buffers.iter().enumerate() {
                    entries.push(wgpu::BindGroupEntry {
                        binding: b as u32 + 1,
                        resource: buffer.as_entire_binding(),
                    });
                }
                let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: None,
                    layout: &pipeline.layout,
                    entries: &entries,
                });
                (pipeline, bind_group, d.workgroups)
            })
            .collect();
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
        for (pipeline, bind_group, [x, y, z]) in &prepared {
            pass.set_pipeline(&pipeline.pipeline);
            pass.set_bind_group(0, bind_group, &[]);
            pass.dispatch_workgroups(*x, *y, *z);
        }
    }

    /// x[t] = table[tokens[t]] for n tokens of width d_model.
    pub fn embed(
        &mut self,
        tokens: &'a wgpu::Buffer,
        table: &'a wgpu::Buffer,
        x: &'a wgpu::Buffer,
        n: usize,
        d_model: usize,
    ) {
        self.dispatch(
            Op::Embed,
            params4([u(n), u(d_model), 0, 0]),
            &[tokens, table, x],
            groups(u(n * d_model), 64),
        );
    }

    pub fn rmsnorm(
        &mut self,
        x: &'a wgpu::Buffer,
        w: &'a wgpu::Buffer,
        y: &'a wgpu::Buffer,
        rows: usize,
        cols: usize,
        eps: f32,
    ) {
        self.dispatch(
            Op::RmsNorm,
            params4([u(rows), u(cols), eps.to_bits(), 0]),
            &[x, w, y],
            groups(u(rows), 1),
        );
    }

    /// c = a [m×k] · b [k×n].
    pub fn matmul(
        &mut self,
        a: &'a wgpu::Buffer,
        b: &'a wgpu::Buffer,
        c: &'a wgpu::Buffer,
        m: usize,
        k: usize,
        n: usize,
    ) {
        let params = params4([u(m), u(k), u(n), 0]);
        let op = if vec4(k, n) {
            Op::MatmulVec4
        } else {
            Op::Matmul
        };
        let groups = self.kernels.blocks(m, n, op == Op::MatmulVec4);
        self.dispatch(op, params, &[a, b, c], groups);
    }

    /// c = a [m×k] · bᵀ with b stored [n×k].
    pub fn matmul_bt(
        &mut self,
        a: &'a wgpu::Buffer,
        b: &'a wgpu::Buffer,
        c: &'a wgpu::Buffer,
        m: usize,
        k: usize,
        n: usize,
    ) {
        let op = if vec4(k, n) {
            Op::MatmulBtVec4
        } else {
            Op::MatmulBt
        };
        let groups = self.kernels.blocks(m, n, op == Op::MatmulBtVec4);
        self.dispatch(op, params4([u(m), u(k), u(n), 0]), &[a, b, c], groups);
    }

    pub fn rope(&mut self, x: &'a wgpu::Buffer, y: &'a wgpu::Buffer, heads: Heads, base: f32) {
        let count = u(heads.elements() / 2);
        self.dispatch(
            Op::Rope,
            heads.params(base.to_bits(), 0),
            &[x, y],
            groups(count, 64),
        );
    }

    /// Causal attention within each segment; `probs` holds segments·n_heads·n·n scratch floats.
    #[allow(clippy::too_many_arguments)]
    pub fn attention(
        &mut self,
        q: &'a wgpu::Buffer,
        k: &'a wgpu::Buffer,
        v: &'a wgpu::Buffer,
        probs: &'a wgpu::Buffer,
        out: &'a wgpu::Buffer,
        heads: Heads,
    ) {
        let Heads {
            n,
            segments,
            n_heads,
            head_dim,
        } = heads;
        let params = heads.params((1.0 / (head_dim as f32).sqrt()).to_bits(), 0);
        let buffers = [q, k, v, probs, out];
        self.dispatch(
            Op::AttentionScores,
            params,
            &buffers,
            groups(u(segments * n_heads * n * n), 64),
        );
        self.dispatch(
            Op::AttentionSoftmax,
            params,
            &buffers,
            groups(u(segments * n_heads * n), 64),
        );
        self.dispatch(
            Op::AttentionValues,
            params,
            &buffers,
            groups(u(heads.elements()), 64),
        );
    }

    /// The memory through a chunk, segment by segment: A_mem (0 without memory or
    /// unless `flags.read`) into `a_mem`, V − R (R the delta rule's retrieval, else
    /// 0) into the scratch `surprise`, then, if `flags.commit`, M += σ(K)ᵀ(V − R)
    /// and z += Σσ(K).
    /// `written` is how many segments the memory already holds. Q and K are
    /// replaced by σ(Q) and σ(K) on the way.
    #[allow(clippy::too_many_arguments)]
    pub fn memory(
        &mut self,
        [q, k, v]: [&'a wgpu::Buffer; 3],
        m: &'a wgpu::Buffer,
        z: &'a wgpu::Buffer,
        a_mem: &'a wgpu::Buffer,
        surprise: &'a wgpu::Buffer,
        heads: Heads,
        flags: MemoryFlags,
        written: usize,
    ) {
        let bits = flags.read as u32 | (flags.delta as u32) << 1 | (flags.commit as u32) << 2;
        let len = heads.elements();
        self.dispatch(
            Op::Sigma,
            params4([u(len), 0, 0, 0]),
            &[q, k],
            groups(u(len), 64),
        );
        // Lavapipe stops an invocation's loops after 65,535 iterations in all
        // (gallivm's LP_MAX_TGSI_LOOP_ITERATIONS), silently: a long chunk is walked
        // in several dispatches that each stay under that.
        let per_walk = (WALK_LOOP_BUDGET / walk_iterations(heads.n, heads.head_dim)).max(1);
        for from in (0..heads.segments).step_by(per_walk) {
            let walk = Heads {
                segments: per_walk.min(heads.segments - from),
                ..heads
            };
            let mut params = walk.params(bits, u(written + from));
            params[6] = u(from);
            self.dispatch(
                Op::Memory,
                params,
                &[q, k, v, m, z, a_mem, surprise],
                [u(heads.n_heads), 1, 1],
            );
        }
    }

    /// A = g·A_mem + (1−g)·A_dot; memory shares go to `share[share_offset..][t][head]`.
    #[allow(clippy::too_many_arguments)]
    pub fn gate_mix(
        &mut self,
        a_mem: &'a wgpu::Buffer,
        a_dot: &'a wgpu::Buffer,
        beta: &'a wgpu::Buffer,
        out: &'a wgpu::Buffer,
        share: &'a wgpu::Buffer,
        share_offset: usize,
        heads: Heads,
    ) {
        let count = groups(u(heads.rows() * heads.n_heads), 64);
        self.dispatch(
            Op::GateMix,
            heads.params(u(share_offset), 0),
            &[a_mem, a_dot, beta, out, share],
            count,
        );
    }

    pub fn swiglu(
        &mut self,
        gate: &'a wgpu::Buffer,
        up: &'a wgpu::Buffer,
        out: &'a wgpu::Buffer,
        len: usize,
    ) {
        self.dispatch(
            Op::SwiGlu,
            params4([u(len), 0, 0, 0]),
            &[gate, up, out],
            groups(u(len), 64),
        );
    }

    /// x += y.
    pub fn add(&mut self, x: &'a wgpu::Buffer, y: &'a wgpu::Buffer, len: usize) {
        let params = params4([u(len), 0, 0, 0]);
        self.dispatch(Op::Add, params, &[x, y], groups(u(len), 64));
    }

    /// Argmax of each of n rows, and the cross-entropy of the first n_targets.
    #[allow(clippy::too_many_arguments)]
    pub fn loss(
        &mut self,
        logits: &'a wgpu::Buffer,
        targets: &'a wgpu::Buffer,
        loss: &'a wgpu::Buffer,
        argmax: &'a wgpu::Buffer,
        n: usize,
        n_targets: usize,
        vocab: usize,
    ) {
        let params = params4([u(n), u(n_targets), u(vocab), 0]);
        self.dispatch(
            Op::Loss,
            params,
            &[logits, targets, loss, argmax],
            groups(u(n), 1),
        );
    }
}
