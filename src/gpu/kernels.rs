//! One WGSL shader per op (`shaders/*.wgsl`), compiled once per device into
//! pipelines cached by op (each op names a shader, an entry point and its override
//! constants), and a [`Recorder`] that collects a whole segment's dispatches and
//! records them into one compute pass.
//!
//! Every kernel binds its parameters at binding 0, a uniform whose Rust struct
//! ([`EmbedParams`] … [`LossParams`]) is its shader's `struct Params` field for field
//! (a test compares them), and storage buffers from binding 1 on. Each recording
//! method documents the shape of every buffer and checks the sizes before binding.
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
    /// The key-shift variant's memory keys (`Config::key_shift`).
    KeyShift,
    AttentionScores,
    AttentionSoftmax,
    AttentionValues,
    /// σ in place on Q and K, ahead of the memory.
    Sigma,
    /// Reads and writes of the compressive memory, segment by segment: one
    /// workgroup per head, for software adapters.
    Memory,
    /// The same walk for GPUs: one workgroup per head and block of M's columns.
    MemoryColumns,
    /// z += Σ σ(K) over the segments a [`Op::MemoryColumns`] walk wrote.
    MemoryZ,
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
            Op::KeyShift => spec(shader!("key_shift"), "main", &[Read, Read, ReadWrite]),
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
            Op::Memory | Op::MemoryColumns | Op::MemoryZ => spec(
                shader!(sigma "memory"),
                match self {
                    Op::Memory => "main",
                    Op::MemoryColumns => "columns",
                    _ => "z_sum",
                },
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
/// Bytes bound for each op's parameters: room for the largest `struct Params`.
const PARAMS_SIZE: u64 = 32;

/// A kernel's uniform parameters, `#[repr(C)]` like its WGSL `struct Params`.
pub trait Params: bytemuck::Pod {
    /// The shaders whose `struct Params` this is, and its fields as written in Rust.
    const SHADERS: &'static [&'static str];
    const FIELDS: &'static str;
}

/// Declares a kernel's parameters; the fields must be those of the shaders' `struct
/// Params`, in order (checked by a test) and no larger than [`PARAMS_SIZE`].
macro_rules! params {
    ($(#[$doc:meta])* $name:ident in $($shader:literal),+ { $($field:ident: $ty:ty),+ $(,)? }) => {
        $(#[$doc])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
        pub struct $name {
            $(pub $field: $ty),+
        }
        impl Params for $name {
            const SHADERS: &'static [&'static str] = &[$(shader!($shader)),+];
            const FIELDS: &'static str = stringify!($($field: $ty),+);
        }
        const _: () = assert!(std::mem::size_of::<$name>() <= PARAMS_SIZE as usize);
    };
}

params!(EmbedParams in "embed" { n: u32, d_model: u32 });
params!(RmsNormParams in "rmsnorm" { rows: u32, cols: u32, eps: f32 });
params!(
    /// Both matmul shaders, and both with `TRANSPOSE_B`.
    MatmulParams in "matmul", "matmul_vec4" { m: u32, k: u32, n: u32 }
);
params!(RopeParams in "rope" { n: u32, n_heads: u32, head_dim: u32, base: f32, segments: u32 });
params!(KeyShiftParams in "key_shift" { n: u32, d_model: u32, rows: u32, taps: u32 });
params!(AttentionParams in "attention" { n: u32, n_heads: u32, head_dim: u32, scale: f32, segments: u32 });
params!(SigmaParams in "sigma_apply" { len: u32 });
params!(
    /// `flags`: [`MemoryFlags::bits`]; `first`: the dispatch's first segment in the chunk.
    MemoryParams in "memory" {
        n: u32,
        n_heads: u32,
        head_dim: u32,
        flags: u32,
        segments: u32,
        segments_written: u32,
        first: u32,
    }
);
params!(GateMixParams in "gate_mix" { n: u32, n_heads: u32, head_dim: u32, share_offset: u32, segments: u32 });
params!(SwiGluParams in "swiglu" { len: u32 });
params!(AddParams in "add" { len: u32 });
params!(LossParams in "loss" { n: u32, n_targets: u32, vocab: u32 });

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
    /// Rows of the chunk: segments · n.
    pub fn rows(self) -> usize {
        self.segments * self.n
    }

    /// rows · n_heads · head_dim: the elements of a `[t][d_model]` activation.
    fn elements(self) -> usize {
        self.rows() * self.n_heads * self.head_dim
    }
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

impl MemoryFlags {
    /// As shaders/memory.wgsl reads them: READ = 1, DELTA = 2, COMMIT = 4.
    fn bits(self) -> u32 {
        self.read as u32 | (self.delta as u32) << 1 | (self.commit as u32) << 2
    }
}

/// The buffers of [`Recorder::attention`], all `[rows][n_heads·head_dim]` but `probs`.
pub struct AttentionBindings<'a> {
    /// RoPE(Q) and RoPE(K).
    pub q: &'a wgpu::Buffer,
    pub k: &'a wgpu::Buffer,
    pub v: &'a wgpu::Buffer,
    /// Scratch: softmax weights, `[segment][head][query][key]`.
    pub probs: &'a wgpu::Buffer,
    /// A_dot.
    pub out: &'a wgpu::Buffer,
}

/// The buffers of [`Recorder::memory`]: Q, K, V, A_mem and the surprise are
/// `[rows][n_heads·head_dim]`; M is `[head][i][j]`, z `[head][i]`.
pub struct MemoryBindings<'a> {
    /// Q and K without RoPE; replaced by σ(Q) and σ(K).
    pub q: &'a wgpu::Buffer,
    pub k: &'a wgpu::Buffer,
    pub v: &'a wgpu::Buffer,
    pub m: &'a wgpu::Buffer,
    pub z: &'a wgpu::Buffer,
    pub a_mem: &'a wgpu::Buffer,
    /// Scratch: V − what the memory returns for K (the delta rule), else V.
    pub surprise: &'a wgpu::Buffer,
}

/// The buffers of [`Recorder::gate_mix`].
pub struct GateMixBindings<'a> {
    /// `[rows][n_heads·head_dim]` each.
    pub a_mem: &'a wgpu::Buffer,
    pub a_dot: &'a wgpu::Buffer,
    /// `[n_heads]`: the layer's β.
    pub beta: &'a wgpu::Buffer,
    /// A, `[rows][n_heads·head_dim]`.
    pub out: &'a wgpu::Buffer,
    /// Memory shares of every layer, `[layer][rows][n_heads]`.
    pub share: &'a wgpu::Buffer,
}

/// The buffers of [`Recorder::loss`].
pub struct LossBindings<'a> {
    /// `[rows][vocab]`.
    pub logits: &'a wgpu::Buffer,
    /// `[n_targets]` token ids.
    pub targets: &'a wgpu::Buffer,
    /// `[n_targets]` nats.
    pub loss: &'a wgpu::Buffer,
    /// `[rows]` token ids.
    pub argmax: &'a wgpu::Buffer,
}

/// Panics unless `buffer` holds `elements` 4-byte values: a wrong shape fails here,
/// naming the op and the buffer, instead of reading out of bounds on the device.
fn check(op: Op, name: &str, buffer: &wgpu::Buffer, elements: usize) {
    assert!(
        buffer.size() >= 4 * elements as u64,
        "{op:?}: {name} holds {} bytes, the op needs {} ({elements} values)",
        buffer.size(),
        4 * elements
    );
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
/// from shaders/memory.wgsl's loops (generously: constant loops count too). `main`:
/// the reads' token quads, each a row loop and 52 iterations of stores; the write's
/// token loop and 44 iterations of stores. `columns`: the reads' tokens, each a row
/// loop and 2 stores; the write's token loop and 4 stores; loading and storing the
/// block (once a walk, counted here for every segment); `z_sum`'s token loop.
fn walk_iterations(n: usize, head_dim: usize, columns: bool) -> usize {
    if columns {
        1 + n.div_ceil(32) * (head_dim + 3) + (n + 4) + 2 * head_dim.div_ceil(16) + n
    } else {
        1 + n.div_ceil(32) * (head_dim + 53) + n + 45
    }
}

/// Largest head_dim either memory walk takes, and the `columns` walk's block of
/// columns (shaders/memory.wgsl's MAX_HEAD_DIM and COLUMNS).
pub const MAX_HEAD_DIM: usize = 64;
const COLUMNS: usize = 16;

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

    fn dispatch<P: Params>(
        &mut self,
        op: Op,
        params: P,
        buffers: &[&'a wgpu::Buffer],
        workgroups: [u32; 3],
    ) {
        debug_assert_eq!(
            buffers.len(),
            op.spec(self.kernels.simd).storage.len(),
            "{op:?} bindings"
        );
        self.params.extend_from_slice(bytemuck::bytes_of(&params));
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

    /// x[t] = table[tokens[t]]: `tokens` `[n]` ids, `table` `[vocab][d_model]`,
    /// `x` `[n][d_model]`.
    pub fn embed(
        &mut self,
        tokens: &'a wgpu::Buffer,
        table: &'a wgpu::Buffer,
        x: &'a wgpu::Buffer,
        n: usize,
        d_model: usize,
    ) {
        check(Op::Embed, "tokens", tokens, n);
        check(Op::Embed, "table", table, d_model);
        check(Op::Embed, "x", x, n * d_model);
        let params = EmbedParams {
            n: u(n),
            d_model: u(d_model),
        };
        self.dispatch(
            Op::Embed,
            params,
            &[tokens, table, x],
            groups(u(n * d_model), 64),
        );
    }

    /// y = RMSNorm(x) · w: `x` and `y` `[rows][cols]`, `w` `[cols]`.
    pub fn rmsnorm(
        &mut self,
        x: &'a wgpu::Buffer,
        w: &'a wgpu::Buffer,
        y: &'a wgpu::Buffer,
        rows: usize,
        cols: usize,
        eps: f32,
    ) {
        check(Op::RmsNorm, "x", x, rows * cols);
        check(Op::RmsNorm, "w", w, cols);
        check(Op::RmsNorm, "y", y, rows * cols);
        let params = RmsNormParams {
            rows: u(rows),
            cols: u(cols),
            eps,
        };
        self.dispatch(Op::RmsNorm, params, &[x, w, y], groups(u(rows), 1));
    }

    /// c = a · b: `a` `[m][k]`, `b` `[k][n]`, `c` `[m][n]`.
    pub fn matmul(
        &mut self,
        a: &'a wgpu::Buffer,
        b: &'a wgpu::Buffer,
        c: &'a wgpu::Buffer,
        m: usize,
        k: usize,
        n: usize,
    ) {
        let op = if vec4(k, n) {
            Op::MatmulVec4
        } else {
            Op::Matmul
        };
        self.matmul_op(op, [a, b, c], [m, k, n]);
    }

    /// c = a · bᵀ: `a` `[m][k]`, `b` `[n][k]` (the tied embedding), `c` `[m][n]`.
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
        self.matmul_op(op, [a, b, c], [m, k, n]);
    }

    fn matmul_op(&mut self, op: Op, [a, b, c]: [&'a wgpu::Buffer; 3], [m, k, n]: [usize; 3]) {
        check(op, "a", a, m * k);
        check(op, "b", b, k * n);
        check(op, "c", c, m * n);
        let vec4 = matches!(op, Op::MatmulVec4 | Op::MatmulBtVec4);
        let groups = self.kernels.blocks(m, n, vec4);
        let params = MatmulParams {
            m: u(m),
            k: u(k),
            n: u(n),
        };
        self.dispatch(op, params, &[a, b, c], groups);
    }

    /// y = RoPE(x) per head, positions restarting in every segment: `x` and `y`
    /// `[rows][n_heads·head_dim]`.
    pub fn rope(&mut self, x: &'a wgpu::Buffer, y: &'a wgpu::Buffer, heads: Heads, base: f32) {
        check(Op::Rope, "x", x, heads.elements());
        check(Op::Rope, "y", y, heads.elements());
        let params = RopeParams {
            n: u(heads.n),
            n_heads: u(heads.n_heads),
            head_dim: u(heads.head_dim),
            base,
            segments: u(heads.segments),
        };
        let count = u(heads.elements() / 2);
        self.dispatch(Op::Rope, params, &[x, y], groups(count, 64));
    }

    /// out = Σ_i c_i ⊙ K_{t−i} inside each segment of `n` rows: `k` and `out`
    /// `[rows][d_model]`, `shift` `[taps][d_model]` = c_0 … c_{taps−1}. A query-shift
    /// model shifts its memory queries with the same op.
    #[allow(clippy::too_many_arguments)]
    pub fn key_shift(
        &mut self,
        k: &'a wgpu::Buffer,
        shift: &'a wgpu::Buffer,
        out: &'a wgpu::Buffer,
        n: usize,
        rows: usize,
        d_model: usize,
        taps: usize,
    ) {
        check(Op::KeyShift, "k", k, rows * d_model);
        check(Op::KeyShift, "shift", shift, taps * d_model);
        check(Op::KeyShift, "out", out, rows * d_model);
        let params = KeyShiftParams {
            n: u(n),
            d_model: u(d_model),
            rows: u(rows),
            taps: u(taps),
        };
        let count = u(rows * d_model);
        self.dispatch(Op::KeyShift, params, &[k, shift, out], groups(count, 64));
    }

    /// A_dot: causal attention within each segment (shapes: [`AttentionBindings`]).
    pub fn attention(&mut self, b: AttentionBindings<'a>, heads: Heads) {
        let Heads {
            n,
            segments,
            n_heads,
            head_dim,
        } = heads;
        let op = Op::AttentionScores;
        for (name, buffer) in [("q", b.q), ("k", b.k), ("v", b.v), ("out", b.out)] {
            check(op, name, buffer, heads.elements());
        }
        check(op, "probs", b.probs, segments * n_heads * n * n);
        let params = AttentionParams {
            n: u(n),
            n_heads: u(n_heads),
            head_dim: u(head_dim),
            scale: 1.0 / (head_dim as f32).sqrt(),
            segments: u(segments),
        };
        let buffers = [b.q, b.k, b.v, b.probs, b.out];
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

    /// The memory through a chunk, segment by segment (shapes: [`MemoryBindings`]):
    /// A_mem (0 unless `flags.read` and the memory holds something), the surprise,
    /// then, if `flags.commit`, M += σ(K)ᵀ·surprise and z += Σσ(K).
    /// `segments_written` is how many segments the memory already holds.
    pub fn memory(
        &mut self,
        b: MemoryBindings<'a>,
        heads: Heads,
        flags: MemoryFlags,
        segments_written: usize,
    ) {
        let len = heads.elements();
        let per_head = heads.n_heads * heads.head_dim;
        for (name, buffer) in [
            ("q", b.q),
            ("k", b.k),
            ("v", b.v),
            ("a_mem", b.a_mem),
            ("surprise", b.surprise),
        ] {
            check(Op::Memory, name, buffer, len);
        }
        check(Op::Memory, "m", b.m, per_head * heads.head_dim);
        check(Op::Memory, "z", b.z, per_head);
        self.dispatch(
            Op::Sigma,
            SigmaParams { len: u(len) },
            &[b.q, b.k],
            groups(u(len), 64),
        );
        assert!(
            heads.head_dim <= MAX_HEAD_DIM,
            "Memory: heads of {} dimensions, the walks take up to {MAX_HEAD_DIM}",
            heads.head_dim
        );
        let columns = !self.kernels.simd;
        let (walk, workgroups) = if columns {
            let blocks = heads.head_dim.div_ceil(COLUMNS);
            (Op::MemoryColumns, [u(heads.n_heads * blocks), 1, 1])
        } else {
            (Op::Memory, [u(heads.n_heads), 1, 1])
        };
        // Lavapipe stops an invocation's loops after 65,535 iterations in all
        // (gallivm's LP_MAX_TGSI_LOOP_ITERATIONS), silently: a long chunk is walked
        // in several dispatches that each stay under that.
        let per_walk =
            (WALK_LOOP_BUDGET / walk_iterations(heads.n, heads.head_dim, columns)).max(1);
        for first in (0..heads.segments).step_by(per_walk) {
            let params = MemoryParams {
                n: u(heads.n),
                n_heads: u(heads.n_heads),
                head_dim: u(heads.head_dim),
                flags: flags.bits(),
                segments: u(per_walk.min(heads.segments - first)),
                segments_written: u(segments_written + first),
                first: u(first),
            };
            let buffers = [b.q, b.k, b.v, b.m, b.z, b.a_mem, b.surprise];
            self.dispatch(walk, params, &buffers, workgroups);
            if columns && flags.commit {
                self.dispatch(Op::MemoryZ, params, &buffers, [u(per_head), 1, 1]);
            }
        }
    }

    /// A = g·A_mem + (1−g)·A_dot, g = sigmoid(β); memory shares go to
    /// `share[share_offset..]` as `[rows][n_heads]` (shapes: [`GateMixBindings`]).
    pub fn gate_mix(&mut self, b: GateMixBindings<'a>, share_offset: usize, heads: Heads) {
        let op = Op::GateMix;
        for (name, buffer) in [("a_mem", b.a_mem), ("a_dot", b.a_dot), ("out", b.out)] {
            check(op, name, buffer, heads.elements());
        }
        check(op, "beta", b.beta, heads.n_heads);
        check(
            op,
            "share",
            b.share,
            share_offset + heads.rows() * heads.n_heads,
        );
        let params = GateMixParams {
            n: u(heads.n),
            n_heads: u(heads.n_heads),
            head_dim: u(heads.head_dim),
            share_offset: u(share_offset),
            segments: u(heads.segments),
        };
        self.dispatch(
            op,
            params,
            &[b.a_mem, b.a_dot, b.beta, b.out, b.share],
            groups(u(heads.rows() * heads.n_heads), 64),
        );
    }

    /// out = silu(gate) · up: all three `[len]`.
    pub fn swiglu(
        &mut self,
        gate: &'a wgpu::Buffer,
        up: &'a wgpu::Buffer,
        out: &'a wgpu::Buffer,
        len: usize,
    ) {
        for (name, buffer) in [("gate", gate), ("up", up), ("out", out)] {
            check(Op::SwiGlu, name, buffer, len);
        }
        let params = SwiGluParams { len: u(len) };
        self.dispatch(Op::SwiGlu, params, &[gate, up, out], groups(u(len), 64));
    }

    /// x += y: both `[len]`.
    pub fn add(&mut self, x: &'a wgpu::Buffer, y: &'a wgpu::Buffer, len: usize) {
        check(Op::Add, "x", x, len);
        check(Op::Add, "y", y, len);
        let params = AddParams { len: u(len) };
        self.dispatch(Op::Add, params, &[x, y], groups(u(len), 64));
    }

    /// The argmax of each of `n` rows, and the cross-entropy of the first
    /// `n_targets` (shapes: [`LossBindings`]).
    pub fn loss(&mut self, b: LossBindings<'a>, n: usize, n_targets: usize, vocab: usize) {
        check(Op::Loss, "logits", b.logits, n * vocab);
        check(Op::Loss, "targets", b.targets, n_targets);
        check(Op::Loss, "loss", b.loss, n_targets);
        check(Op::Loss, "argmax", b.argmax, n);
        let params = LossParams {
            n: u(n),
            n_targets: u(n_targets),
            vocab: u(vocab),
        };
        self.dispatch(
            Op::Loss,
            params,
            &[b.logits, b.targets, b.loss, b.argmax],
            groups(u(n), 1),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fields of a shader's `struct Params`, without spaces.
    fn wgsl_fields(source: &str) -> String {
        let start = source.find("struct Params {").expect("a struct Params") + 15;
        let end = start + source[start..].find('}').expect("its end");
        source[start..end].split_whitespace().collect::<String>()
    }

    fn same_as_wgsl<P: Params>() {
        let rust: String = P::FIELDS.split_whitespace().collect();
        for source in P::SHADERS {
            assert_eq!(rust, wgsl_fields(source).trim_end_matches(','));
        }
    }

    #[test]
    fn params_are_ordered_like_their_shaders() {
        same_as_wgsl::<EmbedParams>();
        same_as_wgsl::<RmsNormParams>();
        same_as_wgsl::<MatmulParams>();
        same_as_wgsl::<RopeParams>();
        same_as_wgsl::<KeyShiftParams>();
        same_as_wgsl::<AttentionParams>();
        same_as_wgsl::<SigmaParams>();
        same_as_wgsl::<MemoryParams>();
        same_as_wgsl::<GateMixParams>();
        same_as_wgsl::<SwiGluParams>();
        same_as_wgsl::<AddParams>();
        same_as_wgsl::<LossParams>();
    }

    #[test]
    fn the_column_walks_sizes_are_the_shaders() {
        let source = shader!("memory");
        assert!(source.contains(&format!("const COLUMNS: u32 = {COLUMNS}u;")));
        assert!(source.contains(&format!("const MAX_HEAD_DIM: u32 = {MAX_HEAD_DIM}u;")));
        let block = COLUMNS * MAX_HEAD_DIM;
        assert!(source.contains(&format!("m_block: array<f32, {block}>")));
        assert!(source.contains(&format!("z_block: array<f32, {MAX_HEAD_DIM}>")));
    }
}
