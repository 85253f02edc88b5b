//! `infiniscope bench`: tokens/s of the GPU engine (one segment per submission and
//! chunked) and the CPU reference on the same text, the CPU's share of its FMA
//! peak, and where a GPU chunk's time goes.

use std::sync::Arc;

use infiniscope::bench::{cpu_peak, matmul_rates, time_reading};
use infiniscope::engine::{Engine, CPU_CHUNK};
use infiniscope::gpu::CHUNK_SEGMENTS;
use infiniscope::text::first_tokens;
use infiniscope::{Error, Model, RunOptions};

use super::{describe, Source};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    source: Source,
    /// Tokens to run through each engine.
    #[arg(long, default_value_t = 2048)]
    tokens: usize,
    /// Most segments the chunked GPU engine takes a submission (fewer where the
    /// device's buffer limit says so).
    #[arg(long, default_value_t = CHUNK_SEGMENTS)]
    chunk: usize,
}

pub fn run(args: &Args) -> Result<(), Error> {
    let model = Arc::new(Model::load(&args.source.model)?);
    let options = RunOptions::for_config(&model.config);
    let tokens = first_tokens(&model, &args.source.text, args.tokens)?;
    let n = model.config.segment_len;
    println!("model: {}", describe(&model, &options));
    println!(
        "text: {} tokens of {} in {} segments",
        tokens.len(),
        args.source.text.display(),
        tokens.len().div_ceil(n)
    );
    let mut rates = Vec::new();
    let chunked = Engine::gpu_chunked(Arc::clone(&model), options, args.chunk)?;
    let chunk = chunked.chunk();
    let engines = [
        (
            "one segment per submission",
            Engine::gpu(Arc::clone(&model), options)?,
            1,
        ),
        ("chunked", chunked, chunk),
        (
            "chunked",
            Engine::new(Arc::clone(&model), options, true).0,
            CPU_CHUNK,
        ),
    ];
    for (mode, mut engine, most) in engines {
        let reading = time_reading(&mut engine, &tokens, n, most)?;
        let rate = tokens.len() as f64 / reading.seconds;
        println!(
            "{:<70} {:>9.3} s {:>10.1} tokens/s   loss {:.4}",
            format!("{} {mode}", engine.describe()),
            reading.seconds,
            rate,
            reading.loss_sum / (tokens.len() - 1) as f32
        );
        if let Engine::Gpu(gpu) = &engine {
            let per_1k = 1000.0 / tokens.len() as f64;
            let dispatches: usize = reading
                .chunks
                .iter()
                .map(|&(segments, len)| gpu.dispatches(len, segments, true))
                .sum();
            println!(
                "{:<70} {:.0} dispatches and {:.1} submissions per 1K tokens ({} segments per submission)",
                "",
                dispatches as f64 * per_1k,
                reading.chunks.len() as f64 * per_1k,
                most
            );
        }
        rates.push(rate);
    }
    println!(
        "chunked / one-at-a-time: {:.2}×; GPU (chunked) / CPU tokens/s: {:.3}",
        rates[1] / rates[0],
        rates[1] / rates[2]
    );
    let cpu_rate = rates[2] * model.config.flops_per_token() as f64;
    match cpu_peak() {
        Some((peak, threads)) => println!(
            "CPU f32 FMA peak {:.1} GFLOP/s ({threads} threads of 256-bit FMA chains, measured now); the CPU reference (all {threads} threads) {:.2} GFLOP/s = {:.1}% of it",
            peak / 1e9,
            cpu_rate / 1e9,
            100.0 * cpu_rate / peak,
        ),
        None => println!(
            "the CPU reference {:.2} GFLOP/s (no AVX2/FMA here to measure a peak with)",
            cpu_rate / 1e9
        ),
    }
    profile(&model, options, chunk, rates[1])
}

/// Where a chunk's time goes on the GPU, op by op, and the FLOP rates of the
/// matmul kernel and of the whole model.
fn profile(model: &Arc<Model>, options: RunOptions, chunk: usize, rate: f64) -> Result<(), Error> {
    let Engine::Gpu(engine) = Engine::gpu_chunked(Arc::clone(model), options, chunk)? else {
        unreachable!("Engine::gpu_chunked is a GPU engine")
    };
    engine.profile(1, 1)?; // compiles every pipeline
    let ops = engine.profile(chunk, 3)?;
    let total: f64 = ops.iter().map(|(_, _, t)| t).sum();
    println!("time per op, a chunk of {chunk} segments, each op run on its own (best of 3):");
    for (op, dispatches, seconds) in &ops {
        println!(
            "  {:<18} {:>4} dispatches {:>9.2} ms {:>5.1}%",
            format!("{op:?}"),
            dispatches,
            seconds * 1e3,
            100.0 * seconds / total
        );
    }
    let (matmul, logits) = matmul_rates(&model.config, chunk, &ops);
    let model_rate = rate * model.config.flops_per_token() as f64;
    println!(
        "matmul kernel {:.2} GFLOP/s (logits, transposed: {:.2}); the whole model (chunked run above) {:.2} GFLOP/s = {:.0}% of the matmul kernel",
        matmul / 1e9,
        logits / 1e9,
        model_rate / 1e9,
        100.0 * model_rate / matmul
    );
    Ok(())
}
