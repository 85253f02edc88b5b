//! Every WGSL kernel against its CPU reference function, on a real adapter
//! (lavapipe in CI), with shapes that are not multiples of any workgroup size.

mod common;

use common::{assert_close, gpu, random_floats, random_tokens};
use infiniscope::gpu::kernels::{
    AttentionBindings, GateMixBindings, Heads, LossBindings, MemoryBindings, MemoryFlags,
};
use infiniscope::gpu::{floats, uints, Gpu, Kernels, Recorder};
use infiniscope::reference as cpu;
use infiniscope::taps::LayerMemory;
use infiniscope::UpdateRule;

/// Records what `record` asks for, runs it, and reads back `outputs` (buffer, floats).
fn run<'a>(
    gpu: &'a Gpu,
    record: impl FnOnce(&mut Recorder<'a>),
    outputs: &[(&wgpu::Buffer, usize)],
) -> Vec<Vec<u8>> {
    run_with(gpu, &gpu.kernels, record, outputs)
}

/// [`run`] with kernels of a given tiling.
fn run_with<'a>(
    gpu: &'a Gpu,
    kernels: &'a Kernels,
    record: impl FnOnce(&mut Recorder<'a>),
    outputs: &[(&wgpu::Buffer, usize)],
) -> Vec<Vec<u8>> {
    let mut encoder = gpu.device.create_command_encoder(&Default::default());
    let mut rec = Recorder::new(kernels);
    record(&mut rec);
    rec.finish(&mut encoder);
    let reads: Vec<_> = outputs.iter().map(|(b, len)| (*b, len * 4)).collect();
    let out = pollster::block_on(gpu.submit_and_read(encoder, &reads)).expect("GPU run");
    gpu.check().expect("no GPU error");
    out
}

#[test]
fn embed_gathers_rows() {
    let gpu = gpu();
    let (n, d, vocab) = (13, 37, 101);
    let table = random_floats(vocab * d, 1.0, 1);
    let tokens = random_tokens(n, vocab, 2);
    let (t, tb, x) = (
        gpu.buffer_with("t", &tokens),
        gpu.buffer_with("table", &table),
        gpu.buffer("x", n * d * 4),
    );
    let out = run(&gpu, |rec| rec.embed(&t, &tb, &x, n, d), &[(&x, n * d)]);
    assert_eq!(floats(&out[0]), cpu::embed(&table, &tokens, d));
}

#[test]
fn rmsnorm_matches() {
    let gpu = gpu();
    let (rows, cols) = (7, 100);
    let x = random_floats(rows * cols, 3.0, 3);
    let w = random_floats(cols, 1.0, 4);
    let (xb, wb, yb) = (
        gpu.buffer_with("x", &x),
        gpu.buffer_with("w", &w),
        gpu.buffer("y", rows * cols * 4),
    );
    let out = run(
        &gpu,
        |rec| rec.rmsnorm(&xb, &wb, &yb, rows, cols, 1e-5),
        &[(&yb, rows * cols)],
    );
    assert_close(
        "rmsnorm",
        &floats(&out[0]),
        &cpu::rmsnorm(&x, &w, 1e-5),
        1e-5,
    );
}

#[test]
fn matmul_and_transposed_matmul_match() {
    // Odd shapes take the scalar kernel, multiples of 4 the vec4 one (m stays odd).
    check_matmul(13, 37, 29);
    check_matmul(13, 36, 28);
    check_matmul(70, 128, 384);
}

/// Both tilings: for GPUs, and for SIMD (software) adapters like the one CI has.
fn check_matmul(m: usize, k: usize, n: usize) {
    let gpu = gpu();
    let a = random_floats(m * k, 1.0, 5);
    let b = random_floats(k * n, 1.0, 6);
    let (ab, bb) = (gpu.buffer_with("a", &a), gpu.buffer_with("b", &b));
    let (c, ct) = (gpu.buffer("c", m * n * 4), gpu.buffer("ct", m * n * 4));
    for simd in [false, true] {
        let kernels = Kernels::new(&gpu.device, simd);
        let out = run_with(
            &gpu,
            &kernels,
            |rec| {
                rec.matmul(&ab, &bb, &c, m, k, n);
                // b read as [n×k]: the same bytes, another matrix.
                rec.matmul_bt(&ab, &bb, &ct, m, k, n);
            },
            &[(&c, m * n), (&ct, m * n)],
        );
        assert_close(
            &format!("matmul {m}×{k}×{n}, simd {simd}"),
            &floats(&out[0]),
            &cpu::matmul(&a, &b, m, k, n),
            1e-5,
        );
        assert_close(
            &format!("matmul_bt {m}×{k}×{n}, simd {simd}"),
            &floats(&out[1]),
            &cpu::matmul_bt(&a, &b, m, k, n),
            1e-5,
        );
    }
}

/// Rows of `segments` segments of n tokens, each segment processed by `each` on its own.
fn per_segment(x: &[f32], segments: usize, each: impl Fn(&[f32]) -> Vec<f32>) -> Vec<f32> {
    x.chunks(x.len() / segments).flat_map(each).collect()
}

fn heads(n: usize, segments: usize, n_heads: usize, head_dim: usize) -> Heads {
    Heads {
        n,
        segments,
        n_heads,
        head_dim,
    }
}

/// A chunk of three segments: positions restart at 0 in each.
#[test]
fn rope_matches() {
    let gpu = gpu();
    let (n, segments, h, d) = (13, 3, 3, 18);
    let x = random_floats(segments * n * h * d, 2.0, 7);
    let (xb, yb) = (gpu.buffer_with("x", &x), gpu.buffer("y", x.len() * 4));
    let out = run(
        &gpu,
        |rec| rec.rope(&xb, &yb, heads(n, segments, h, d), 10000.0),
        &[(&yb, x.len())],
    );
    let want = per_segment(&x, segments, |x| cpu::rope(x, h, d, 10000.0));
    assert_close("rope", &floats(&out[0]), &want, 1e-5);
}

/// A chunk of three segments: each attends causally to itself only.
#[test]
fn causal_attention_matches() {
    let gpu = gpu();
    let (n, segments, h, d) = (13, 3, 3, 10);
    let len = segments * n * h * d;
    let (q, k, v) = (
        random_floats(len, 2.0, 8),
        random_floats(len, 2.0, 9),
        random_floats(len, 1.0, 10),
    );
    let (qb, kb, vb) = (
        gpu.buffer_with("q", &q),
        gpu.buffer_with("k", &k),
        gpu.buffer_with("v", &v),
    );
    let (probs, ob) = (
        gpu.buffer("probs", segments * h * n * n * 4),
        gpu.buffer("out", len * 4),
    );
    let out = run(
        &gpu,
        |rec| {
            let bindings = AttentionBindings {
                q: &qb,
                k: &kb,
                v: &vb,
                probs: &probs,
                out: &ob,
            };
            rec.attention(bindings, heads(n, segments, h, d))
        },
        &[(&ob, len)],
    );
    let rows = len / segments;
    let want: Vec<f32> = (0..segments)
        .flat_map(|s| {
            let r = s * rows..(s + 1) * rows;
            cpu::attention(&q[r.clone()], &k[r.clone()], &v[r], h, d)
        })
        .collect();
    assert_close("attention", &floats(&out[0]), &want, 1e-5);
}

/// A memory state as after a few linear writes: M of either sign, z positive.
fn some_memory(heads: usize, d: usize, seed: u64) -> LayerMemory {
    let mut mem = LayerMemory::zeros(heads, d);
    let n = 21;
    let k = random_floats(n * heads * d, 2.0, seed);
    let v = random_floats(n * heads * d, 1.0, seed + 1);
    cpu::memory_write(&k, &v, &mut mem, heads, d, UpdateRule::Linear, false);
    mem
}

/// The memory kernel walks a chunk of segments against the CPU's read-then-
/// write per segment: A_mem, the delta rule's retrieval, and M, z after the chunk.
fn check_memory(rule: UpdateRule, segments_written: usize, read: bool, commit: bool) {
    check_memory_shaped(rule, segments_written, read, commit, (13, 3, 3, 17));
}

/// `shape`: tokens per segment, segments, heads, head_dim.
fn check_memory_shaped(
    rule: UpdateRule,
    segments_written: usize,
    read: bool,
    commit: bool,
    (n, segments, h, d): (usize, usize, usize, usize),
) {
    let gpu = gpu();
    let start = if segments_written > 0 {
        some_memory(h, d, 13)
    } else {
        LayerMemory::zeros(h, d)
    };
    let len = segments * n * h * d;
    let q = random_floats(len, 2.0, 12);
    let k = random_floats(len, 2.0, 14);
    let v = random_floats(len, 1.0, 15);
    let flags = MemoryFlags {
        read,
        delta: rule == UpdateRule::Delta,
        commit,
    };
    let mut mem = start.clone();
    let mut a_mem = Vec::new();
    let rows = len / segments;
    for s in 0..segments {
        let has_memory = segments_written + s > 0;
        let r = s * rows..(s + 1) * rows;
        a_mem.extend(cpu::memory_read(
            &q[r.clone()],
            &mem,
            h,
            d,
            has_memory && read,
        ));
        if commit {
            cpu::memory_write(&k[r.clone()], &v[r], &mut mem, h, d, rule, has_memory);
        }
    }
    // Both walks: by columns for GPUs, by heads for SIMD (software) adapters.
    for simd in [false, true] {
        let kernels = Kernels::new(&gpu.device, simd);
        // Fresh buffers: the op replaces Q and K by σ(Q) and σ(K).
        let (qb, kb, vb) = (
            gpu.buffer_with("q", &q),
            gpu.buffer_with("k", &k),
            gpu.buffer_with("v", &v),
        );
        let (mb, zb) = (
            gpu.buffer_with("m", &start.m),
            gpu.buffer_with("z", &start.z),
        );
        let (ab, rb) = (
            gpu.buffer("a_mem", len * 4),
            gpu.buffer("surprise", len * 4),
        );
        let out = run_with(
            &gpu,
            &kernels,
            |rec| {
                let bindings = MemoryBindings {
                    q: &qb,
                    k: &kb,
                    v: &vb,
                    m: &mb,
                    z: &zb,
                    a_mem: &ab,
                    surprise: &rb,
                };
                rec.memory(bindings, heads(n, segments, h, d), flags, segments_written)
            },
            &[(&ab, len), (&mb, start.m.len()), (&zb, start.z.len())],
        );
        let at = format!(
            "{rule:?}, {segments_written} segments written, read {read}, commit {commit}, simd {simd}"
        );
        let got = floats(&out[0]);
        assert_close(&format!("{at}: A_mem"), &got, &a_mem, 1e-5);
        if segments_written == 0 || !read {
            assert!(
                got[..rows].iter().all(|&x| x == 0.0),
                "{at}: no memory must read exactly 0"
            );
        }
        assert_close(&format!("{at}: M"), &floats(&out[1]), &mem.m, 1e-5);
        assert_close(&format!("{at}: z"), &floats(&out[2]), &mem.z, 1e-5);
    }
}

#[test]
fn linear_memory_matches() {
    check_memory(UpdateRule::Linear, 0, true, true);
    check_memory(UpdateRule::Linear, 4, true, true);
}

#[test]
fn delta_memory_matches() {
    check_memory(UpdateRule::Delta, 0, true, true);
    check_memory(UpdateRule::Delta, 4, true, true);
    // The model's shape.
    check_memory_shaped(UpdateRule::Delta, 3, true, true, (32, 5, 4, 64));
}

/// 200 segments of 128 tokens at head_dim 64 take more loop iterations (≈ 78,000)
/// than lavapipe lets one invocation run (65,535): the walk must be split into
/// dispatches, or the later segments come out wrong without any error (checked:
/// with the split disabled this fails).
#[test]
fn a_long_walk_stays_under_lavapipes_loop_limit() {
    check_memory_shaped(UpdateRule::Delta, 2, true, true, (128, 200, 1, 64));
}

#[test]
fn memory_off_reads_zero_and_uncommitted_writes_nothing() {
    check_memory(UpdateRule::Delta, 4, false, true);
    check_memory(UpdateRule::Delta, 4, true, false);
}

#[test]
fn gate_mix_matches() {
    let gpu = gpu();
    let (n, heads, d) = (13, 3, 17);
    let len = n * heads * d;
    let (a_mem, a_dot) = (random_floats(len, 1.0, 16), random_floats(len, 1.0, 17));
    let beta = vec![-3.0, 0.25, 4.0];
    let bufs = [
        gpu.buffer_with("a_mem", &a_mem),
        gpu.buffer_with("a_dot", &a_dot),
        gpu.buffer_with("beta", &beta),
    ];
    let (ob, share) = (
        gpu.buffer("out", len * 4),
        gpu.buffer("share", (5 + n * heads) * 4),
    );
    let out = run(
        &gpu,
        |rec| {
            let bindings = GateMixBindings {
                a_mem: &bufs[0],
                a_dot: &bufs[1],
                beta: &bufs[2],
                out: &ob,
                share: &share,
            };
            rec.gate_mix(bindings, 5, self::heads(n, 1, heads, d))
        },
        &[(&ob, len), (&share, 5 + n * heads)],
    );
    let (want, want_share) = cpu::gate_mix(&a_mem, &a_dot, &beta, d);
    assert_close("gate mix", &floats(&out[0]), &want, 1e-5);
    assert_close("memory share", &floats(&out[1])[5..], &want_share, 1e-5);
}

#[test]
fn swiglu_and_residual_add_match() {
    let gpu = gpu();
    let len = 1001;
    let (g, u, y) = (
        random_floats(len, 4.0, 18),
        random_floats(len, 1.0, 19),
        random_floats(len, 1.0, 20),
    );
    let (gb, ub, yb, ob) = (
        gpu.buffer_with("g", &g),
        gpu.buffer_with("u", &u),
        gpu.buffer_with("y", &y),
        gpu.buffer("o", len * 4),
    );
    let out = run(
        &gpu,
        |rec| {
            rec.swiglu(&gb, &ub, &ob, len);
            rec.add(&ob, &yb, len);
        },
        &[(&ob, len)],
    );
    let mut want = cpu::swiglu(g.clone(), &u);
    cpu::add(&mut want, &y);
    assert_close("swiglu + add", &floats(&out[0]), &want, 1e-5);
}

#[test]
fn loss_and_argmax_match() {
    let gpu = gpu();
    let (n, vocab) = (5, 301);
    let mut logits = random_floats(n * vocab, 8.0, 21);
    logits[..vocab].fill(0.5); // a row of ties: the lowest id wins
    logits[2 * vocab + 7] = 40.0;
    logits[2 * vocab + 250] = 40.0;
    let targets = random_tokens(n - 1, vocab, 22);
    let (lb, tb) = (
        gpu.buffer_with("logits", &logits),
        gpu.buffer_with("targets", &targets),
    );
    let (loss, argmax) = (gpu.buffer("loss", n * 4), gpu.buffer("argmax", n * 4));
    let out = run(
        &gpu,
        |rec| {
            let bindings = LossBindings {
                logits: &lb,
                targets: &tb,
                loss: &loss,
                argmax: &argmax,
            };
            rec.loss(bindings, n, n - 1, vocab)
        },
        &[(&loss, n - 1), (&argmax, n)],
    );
    let (want_loss, want_argmax) = cpu::cross_entropy(&logits, vocab, &targets);
    assert_close("loss", &floats(&out[0]), &want_loss, 1e-5);
    assert_eq!(uints(&out[1]), want_argmax);
    assert_eq!(want_argmax[0], 0);
    assert_eq!(want_argmax[2], 7);
}
