//! What the benchmarks measure besides the engines themselves: timed readings, this
//! machine's FMA peak, the process's memory and the FLOP rates of a GPU profile.

use std::time::Instant;

use crate::engine::Engine;
use crate::gpu::kernels::Op;
use crate::stream::Stream;
use crate::taps::{SegmentOutput, Taps};
use crate::{Config, Error};

/// A timed reading of a text from an empty memory.
pub struct Reading {
    pub seconds: f64,
    /// Calls to the engine, one chunk each, as (segments, tokens per segment).
    pub chunks: Vec<(usize, usize)>,
    /// Σ loss over every predicted token.
    pub loss_sum: f32,
}

/// Reads `tokens` with `engine` in chunks of up to `most` segments, timed, after one
/// untimed segment that compiles the GPU pipelines.
pub fn time_reading(
    engine: &mut Engine,
    tokens: &[u32],
    segment_len: usize,
    most: usize,
) -> Result<Reading, Error> {
    let taps = Taps {
        loss: true,
        ..Taps::default()
    };
    let mut warm = Stream::new(segment_len);
    warm.push(&tokens[..2]);
    warm.end();
    engine.run_stream(&mut warm, 1, Taps::default(), |_, _| {})?;
    engine.reset();
    let mut stream = Stream::new(segment_len);
    stream.push(tokens);
    stream.end();
    let mut chunks = Vec::new();
    let mut loss_sum = 0.0;
    let start = Instant::now();
    engine.run_stream(
        &mut stream,
        most,
        taps,
        |chunk, outputs: Vec<SegmentOutput>| {
            chunks.push((chunk.len(), chunk[0].tokens.len()));
            for (segment, out) in chunk.iter().zip(outputs) {
                loss_sum += out.mean_loss().unwrap_or(0.0) * segment.targets.len() as f32;
            }
        },
    )?;
    Ok(Reading {
        seconds: start.elapsed().as_secs_f64(),
        chunks,
        loss_sum,
    })
}

/// Memory of this process in bytes, (now, peak), from /proc (Linux only).
pub fn rss() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kb: u64 = line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kb * 1024)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// This machine's f32 FMA peak in FLOP/s and the threads it took: every hardware
/// thread runs independent chains of 256-bit FMAs, enough to hide their latency.
pub fn cpu_peak() -> Option<(f64, usize)> {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        const STEPS: usize = 100_000_000;
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let start = Instant::now();
        std::thread::scope(|scope| {
            for _ in 0..threads {
                // SAFETY: the CPU has AVX2 and FMA (checked above).
                scope.spawn(|| std::hint::black_box(unsafe { fma_chains(STEPS) }));
            }
        });
        let flops = (threads * STEPS * FMA_CHAINS * 8 * 2) as f64;
        return Some((flops / start.elapsed().as_secs_f64(), threads));
    }
    None
}

/// Independent FMA chains per thread: at least latency × FMA ports (5 × 2 on Zen).
#[cfg(target_arch = "x86_64")]
const FMA_CHAINS: usize = 12;

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fma_chains(steps: usize) -> f32 {
    use std::arch::x86_64::*;
    let (a, b) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
    let mut acc = [_mm256_set1_ps(1.0); FMA_CHAINS];
    for _ in 0..steps {
        for x in &mut acc {
            *x = _mm256_fmadd_ps(*x, a, b);
        }
    }
    let mut lanes = [0.0f32; 8];
    let sum = acc
        .iter()
        .fold(_mm256_setzero_ps(), |s, x| _mm256_add_ps(s, *x));
    // SAFETY: lanes holds 8 floats.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), sum) };
    lanes.iter().sum()
}

/// FLOP/s of the matmul kernels in a GPU profile of a chunk of `segments` full
/// segments (as `GpuEngine::profile` returns it): (the layers' products, the logits).
pub fn matmul_rates(c: &Config, segments: usize, ops: &[(Op, usize, f64)]) -> (f64, f64) {
    let rows = (segments * c.segment_len) as f64;
    let (dm, f) = (c.d_model as f64, c.mlp_hidden as f64);
    // Either kernel variant (scalar or vec4) may have run each matmul.
    let seconds_of = |kind: [Op; 2]| -> f64 {
        ops.iter()
            .filter(|(o, _, _)| kind.contains(o))
            .map(|x| x.2)
            .sum()
    };
    let matmul = 2.0 * rows * (4.0 * dm * dm + 3.0 * dm * f) * c.n_layers as f64
        / seconds_of([Op::Matmul, Op::MatmulVec4]);
    let logits =
        2.0 * rows * dm * c.vocab_size as f64 / seconds_of([Op::MatmulBt, Op::MatmulBtVec4]);
    (matmul, logits)
}
