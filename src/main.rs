//! `infiniscope`: evaluate, generate and benchmark an Infini-Transformer natively.

use std::fs::File;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use serde_json::json;

use infiniscope::engine::{Engine, CPU_CHUNK};
use infiniscope::gate::{HeadKind, LOCAL_BELOW, MEMORY_ABOVE};
use infiniscope::generate::{sample, OpenSegment};
use infiniscope::gpu::kernels::Op;
use infiniscope::segment::Segmenter;
use infiniscope::taps::{Segment, SegmentOutput, Taps};
use infiniscope::tokenizer::TextChunks;
use infiniscope::weights::StoredDtype;
use infiniscope::{Error, MemoryMode, Model, RunOptions, UpdateRule};

const DEFAULT_MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models/infini-tiny");
const DEFAULT_TEXT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/samples/paradise-lost.txt");
/// Text is read and tokenized in pieces of this size, so any length streams.
const CHUNK_BYTES: usize = 1 << 20;

#[derive(Parser)]
#[command(
    name = "infiniscope",
    version,
    about = "Infini-attention made visible: run an Infini-Transformer on a long text"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Switch {
    On,
    Off,
}

#[derive(Clone, Copy, ValueEnum)]
enum Rule {
    Linear,
    Delta,
}

#[derive(clap::Args)]
struct ModelArgs {
    /// Model folder (config.json, model.safetensors, tokenizer.json).
    #[arg(long, default_value = DEFAULT_MODEL)]
    model: PathBuf,
    /// Run on the CPU reference instead of a GPU adapter.
    #[arg(long)]
    cpu: bool,
    /// Memory read on, or off (the read returns 0: the local-only baseline).
    #[arg(long, value_enum, default_value = "on")]
    memory: Switch,
    /// Memory update rule; default: the one the model was trained with.
    #[arg(long, value_enum)]
    rule: Option<Rule>,
}

#[derive(Subcommand)]
enum Command {
    /// Per-segment loss and perplexity, the gate table and the memory footprint.
    Eval {
        #[command(flatten)]
        model: ModelArgs,
        /// UTF-8 text file; read in pieces, so it may be larger than memory.
        #[arg(long, default_value = DEFAULT_TEXT)]
        text: PathBuf,
        /// Stop after this many tokens.
        #[arg(long)]
        max_tokens: Option<usize>,
        /// Machine-readable output on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Read one long text once at constant memory: tokens/s and the process's
    /// memory at each mark (for the length-scaling benchmark).
    Long {
        #[command(flatten)]
        model: ModelArgs,
        #[arg(long)]
        text: PathBuf,
        /// Token counts at which to report; the run stops at the last.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "4096,16384,65536,262144,1048576"
        )]
        marks: Vec<usize>,
    },
    /// Continue a prompt.
    Generate {
        #[command(flatten)]
        model: ModelArgs,
        #[arg(long)]
        prompt_file: PathBuf,
        /// Tokens to generate.
        #[arg(long, default_value_t = 64)]
        tokens: usize,
        /// 0 picks the most likely token every time.
        #[arg(long, default_value_t = 0.0)]
        temperature: f32,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Tokens per second of the GPU engine and the CPU reference on the same text.
    Bench {
        #[arg(long, default_value = DEFAULT_MODEL)]
        model: PathBuf,
        #[arg(long, default_value = DEFAULT_TEXT)]
        text: PathBuf,
        /// Tokens to run through each engine.
        #[arg(long, default_value_t = 2048)]
        tokens: usize,
    },
    /// Infini-attention against full attention: the same weights with the memory off
    /// and one segment spanning the whole text (a plain causal transformer whose
    /// cost per token grows with the length), tokens/s at each length.
    Scaling {
        #[arg(long, default_value = DEFAULT_MODEL)]
        model: PathBuf,
        #[arg(long, default_value = DEFAULT_TEXT)]
        text: PathBuf,
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "1024,2048,4096,8192,16384"
        )]
        lengths: Vec<usize>,
        /// Run on the CPU reference instead of a GPU adapter.
        #[arg(long)]
        cpu: bool,
        /// Also write the figures as CSV (tokens, infini tokens/s, full tokens/s).
        #[arg(long)]
        csv: Option<PathBuf>,
    },
    /// Passkey retrieval (the paper's §4.2): a key hidden at a depth of filler text,
    /// asked for at the end; per-digit accuracy of the model's argmax (each digit
    /// predicted with the earlier digits given).
    Passkey {
        #[command(flatten)]
        model: ModelArgs,
        /// Haystack lengths in tokens.
        #[arg(long, value_delimiter = ',', default_value = "1024,4096")]
        lengths: Vec<usize>,
        /// Needle depths, 0 = start of the filler, 1 = just before the question.
        #[arg(long, value_delimiter = ',', default_value = "0,0.25,0.5,0.75,1")]
        depths: Vec<f32>,
        /// Haystacks (different keys) per length and depth.
        #[arg(long, default_value_t = 5)]
        trials: usize,
        /// Filler text; default: the paper's repetitive sentences.
        #[arg(long)]
        filler: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Write a model with deterministic random weights and a BPE trained on a text.
    RandomModel {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Text the tokenizer is trained on.
        #[arg(long, default_value = DEFAULT_TEXT)]
        text: PathBuf,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Eval {
            model,
            text,
            max_tokens,
            json,
        } => eval(&model, &text, max_tokens, json),
        Command::Long { model, text, marks } => long(&model, &text, &marks),
        Command::Generate {
            model,
            prompt_file,
            tokens,
            temperature,
            seed,
        } => generate(&model, &prompt_file, tokens, temperature, seed),
        Command::Bench {
            model,
            text,
            tokens,
        } => bench(&model, &text, tokens),
        Command::Scaling {
            model,
            text,
            lengths,
            cpu,
            csv,
        } => scaling(&model, &text, &lengths, cpu, csv.as_deref()),
        Command::Passkey {
            model,
            lengths,
            depths,
            trials,
            filler,
            json,
        } => passkey(&model, &lengths, &depths, trials, filler.as_deref(), json),
        Command::RandomModel { out, seed, text } => {
            let text = read_text(&text)?;
            let model = Model::random(infiniscope::model::tiny_config(), seed, &text)?;
            model.save(&out, StoredDtype::F32)?;
            println!(
                "wrote {} ({} parameters)",
                out.display(),
                model.config.n_params()
            );
            Ok(())
        }
    }
}

fn load(args: &ModelArgs) -> Result<(Arc<Model>, RunOptions), Error> {
    let model = Model::load(&args.model)?;
    let mut options = RunOptions::for_config(&model.config);
    if let Some(rule) = args.rule {
        options.update_rule = match rule {
            Rule::Linear => UpdateRule::Linear,
            Rule::Delta => UpdateRule::Delta,
        };
    }
    if let Switch::Off = args.memory {
        options.memory = MemoryMode::Off;
    }
    Ok((Arc::new(model), options))
}

fn open(path: &Path) -> Result<File, Error> {
    File::open(path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })
}

/// A small text read whole (prompts, tokenizer training), with the same UTF-8 check.
fn read_text(path: &Path) -> Result<String, Error> {
    TextChunks::new(BufReader::new(open(path)?), CHUNK_BYTES).collect()
}

fn engine(model: &Arc<Model>, options: RunOptions, cpu: bool) -> Engine {
    let (engine, note) = Engine::new(Arc::clone(model), options, cpu);
    if let Some(note) = note {
        eprintln!("note: {note}");
    }
    if let Engine::Gpu(gpu) = &engine {
        if gpu.gpu().adapter.device_type == wgpu::DeviceType::Cpu {
            eprintln!(
                "note: {} is a software adapter that runs on the CPU; --cpu runs the CPU reference, 27× faster on the 2-core machine of BENCHMARKS.md",
                gpu.gpu().describe()
            );
        }
    }
    engine
}

fn describe(model: &Model, options: &RunOptions) -> String {
    let c = &model.config;
    format!(
        "{} layers × {} heads, d = {}, segments of {} tokens, {:?} rule, {:?} weights, {} parameters; memory {}",
        c.n_layers,
        c.n_heads,
        c.head_dim,
        c.segment_len,
        options.update_rule,
        model.stored_dtype,
        c.n_params(),
        if options.memory == MemoryMode::On { "on" } else { "off (read returns 0)" },
    )
}

struct SegmentResult {
    index: usize,
    tokens: usize,
    /// Positions whose next token is known: the loss is their mean.
    targets: usize,
    loss: Option<f32>,
}

fn eval(
    args: &ModelArgs,
    path: &Path,
    max_tokens: Option<usize>,
    as_json: bool,
) -> Result<(), Error> {
    let (model, options) = load(args)?;
    let h = model.config.n_heads;
    let mut engine = engine(&model, options, args.cpu);
    let taps = Taps {
        loss: true,
        memory_share: true,
        ..Taps::default()
    };
    let mut share_sum = vec![0.0f64; model.config.n_layers * h];
    let mut results = Vec::new();
    let n_tokens = read_through(
        &model,
        &mut engine,
        path,
        max_tokens.unwrap_or(usize::MAX),
        taps,
        |segment, out, _| {
            let share = out.memory_share.as_ref().expect("share tapped");
            for (i, s) in share.iter().enumerate() {
                // share is [layer][t][head]
                let (layer, head) = (i / (segment.tokens.len() * h), i % h);
                share_sum[layer * h + head] += *s as f64;
            }
            results.push(SegmentResult {
                index: segment.index,
                tokens: segment.tokens.len(),
                targets: segment.targets.len(),
                loss: out.mean_loss(),
            });
        },
    )?;
    report(
        &model, &options, &engine, path, n_tokens, &results, &share_sum, as_json,
    );
    Ok(())
}

/// Streams a text file through the engine, a chunk of segments per run, at most
/// `limit` tokens; `each` sees every segment and its output in order, and the
/// seconds spent in the engine so far (tokenizing not counted). Returns the tokens
/// read (at least two, else an error).
fn read_through(
    model: &Model,
    engine: &mut Engine,
    path: &Path,
    limit: usize,
    taps: Taps,
    mut each: impl FnMut(&Segment, &SegmentOutput, f64),
) -> Result<usize, Error> {
    let file = open(path)?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let progress = ProgressBar::new(size).with_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg} ({eta})")
            .expect("a valid template"),
    );
    let mut in_engine = 0.0;
    let mut run = |segments: &[Segment], engine: &mut Engine| -> Result<(), Error> {
        let start = Instant::now();
        let outputs = engine.segments(segments, taps)?;
        in_engine += start.elapsed().as_secs_f64();
        for (segment, out) in segments.iter().zip(outputs) {
            each(segment, &out, in_engine);
        }
        Ok(())
    };
    let per_run = engine.chunk();
    let mut pending = Vec::with_capacity(per_run);
    let mut segmenter = Segmenter::new(model.config.segment_len);
    let mut chunks = TextChunks::new(BufReader::new(file), CHUNK_BYTES);
    let mut n_tokens = 0usize;
    while n_tokens < limit {
        let Some(chunk) = chunks.next().transpose()? else {
            break;
        };
        let mut tokens = model.tokenizer.encode(&chunk)?;
        tokens.truncate(limit - n_tokens);
        n_tokens += tokens.len();
        for segment in segmenter.push(&tokens) {
            progress.set_message(format!("segment {}", segment.index));
            pending.push(segment);
            if pending.len() == per_run {
                run(&pending, engine)?;
                pending.clear();
            }
        }
        progress.set_position(chunks.consumed);
    }
    if n_tokens < 2 {
        progress.finish_and_clear();
        return Err(Error::Text(if n_tokens == 0 {
            format!("{} is empty: nothing to evaluate", path.display())
        } else {
            format!("{} is a single token: evaluating needs at least two (a token and the one it predicts)", path.display())
        }));
    }
    run(&pending, engine)?;
    if let Some(segment) = segmenter.finish() {
        run(&[segment], engine)?;
    }
    progress.finish_and_clear();
    Ok(n_tokens)
}

/// Memory of this process in bytes, (now, peak), from /proc (Linux only).
fn rss() -> Option<(u64, u64)> {
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

/// One long text read once, a row at each mark: tokens/s so far and since the
/// last mark (time in the engine; tokenizing the text in 1 MB pieces is not
/// counted), the process's memory now and at its peak, the mean loss so far.
fn long(args: &ModelArgs, path: &Path, marks: &[usize]) -> Result<(), Error> {
    let (model, options) = load(args)?;
    open(path)?; // a missing text fails before the table starts
    let mut engine = engine(&model, options, args.cpu);
    let mut marks = marks.to_vec();
    marks.sort_unstable();
    let limit = marks.last().copied().unwrap_or(0);
    println!("model: {}", describe(&model, &options));
    println!("engine: {}", engine.describe());
    println!("text: {}", path.display());
    println!(
        "{:>9} {:>9} {:>13} {:>19} {:>10} {:>10} {:>9} {:>10}",
        "tokens",
        "seconds",
        "tokens/s",
        "tokens/s since last",
        "RSS MB",
        "peak MB",
        "mean loss",
        "non-finite"
    );
    let taps = Taps {
        loss: true,
        ..Taps::default()
    };
    let (mut tokens, mut loss, mut scored, mut bad) = (0usize, 0.0f64, 0usize, 0usize);
    let (mut last_tokens, mut last_seconds, mut next) = (0usize, 0.0f64, 0usize);
    let read = read_through(
        &model,
        &mut engine,
        path,
        limit,
        taps,
        |segment, out, seconds| {
            tokens += segment.tokens.len();
            match out.mean_loss() {
                Some(l) if l.is_finite() => {
                    loss += l as f64 * segment.targets.len() as f64;
                    scored += segment.targets.len();
                }
                Some(_) => bad += 1,
                None => {}
            }
            while next < marks.len() && tokens >= marks[next] {
                let (now, peak) = rss().unwrap_or((0, 0));
                println!(
                "{tokens:>9} {seconds:>9.1} {:>13.1} {:>19.1} {:>10.1} {:>10.1} {:>9.4} {bad:>10}",
                tokens as f64 / seconds,
                (tokens - last_tokens) as f64 / (seconds - last_seconds),
                now as f64 / 1e6,
                peak as f64 / 1e6,
                loss / scored.max(1) as f64,
            );
                (last_tokens, last_seconds) = (tokens, seconds);
                next += 1;
            }
        },
    )?;
    if read < limit {
        println!("the text ended after {read} tokens, before the last mark ({limit})");
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn report(
    model: &Model,
    options: &RunOptions,
    engine: &Engine,
    path: &Path,
    n_tokens: usize,
    results: &[SegmentResult],
    share_sum: &[f64],
    as_json: bool,
) {
    let c = &model.config;
    let predicted = n_tokens - 1;
    let total_loss: f64 = results
        .iter()
        .filter_map(|r| r.loss.map(|loss| loss as f64 * r.targets as f64))
        .sum();
    let mean_loss = total_loss / predicted as f64;
    let gates = model.gates();
    let mean_share: Vec<f64> = share_sum.iter().map(|s| s / n_tokens as f64).collect();
    let memory_bytes = c.memory_floats() * 4;
    let kv_bytes = c.kv_cache_floats(n_tokens) * 4;
    if as_json {
        let segments: Vec<_> = results
            .iter()
            .map(|r| json!({"index": r.index, "tokens": r.tokens, "loss": r.loss, "perplexity": r.loss.map(f32::exp)}))
            .collect();
        let heads: Vec<Vec<_>> = gates
            .iter()
            .enumerate()
            .map(|(l, layer)| {
                layer
                    .iter()
                    .enumerate()
                    .map(|(h, &g)| {
                        json!({"gate": g, "kind": HeadKind::of_gate(g).label(), "memory_share": mean_share[l * c.n_heads + h]})
                    })
                    .collect()
            })
            .collect();
        let out = json!({
            "model": describe(model, options),
            "engine": engine.describe(),
            "memory": options.memory == MemoryMode::On,
            "update_rule": options.update_rule,
            "text": path.display().to_string(),
            "tokens": n_tokens,
            "loss": mean_loss,
            "perplexity": mean_loss.exp(),
            "segments": segments,
            "heads": heads,
            "thresholds": {"local_below": LOCAL_BELOW, "memory_above": MEMORY_ABOVE},
            "memory_bytes": memory_bytes,
            "kv_cache_bytes": kv_bytes,
            "compression": kv_bytes as f64 / memory_bytes as f64,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&out).expect("JSON values serialise")
        );
        return;
    }
    println!("model: {}", describe(model, options));
    println!("engine: {}", engine.describe());
    println!(
        "text: {} → {n_tokens} tokens in {} segments",
        path.display(),
        results.len()
    );
    println!();
    println!(
        "{:>8} {:>7} {:>8} {:>10}",
        "segment", "tokens", "loss", "perplexity"
    );
    // Long texts: at most 40 rows, each the token-weighted mean of consecutive segments.
    let per_row = results.len().div_ceil(40);
    for rows in results.chunks(per_row) {
        let (first, last) = (rows[0].index, rows[rows.len() - 1].index);
        let label = if first == last {
            first.to_string()
        } else {
            format!("{first}-{last}")
        };
        let tokens: usize = rows.iter().map(|r| r.tokens).sum();
        let scored: Vec<(f32, usize)> = rows
            .iter()
            .filter_map(|r| r.loss.map(|l| (l, r.targets)))
            .collect();
        let weight: usize = scored.iter().map(|(_, t)| t).sum();
        if weight == 0 {
            println!("{label:>8} {tokens:>7} {:>8} {:>10}", "-", "-");
            continue;
        }
        let loss = scored.iter().map(|(l, t)| l * *t as f32).sum::<f32>() / weight as f32;
        println!("{label:>8} {tokens:>7} {loss:>8.4} {:>10.2}", loss.exp());
    }
    println!(
        "overall: loss {mean_loss:.4} nats, perplexity {:.2} over {predicted} predicted tokens",
        mean_loss.exp()
    );
    println!();
    println!("gates g = sigmoid(β) and mean memory share per head ({} if g < {LOCAL_BELOW}, {} if g > {MEMORY_ABOVE}, else {}):",
        HeadKind::SpecializedLocal.label(), HeadKind::SpecializedMemory.label(), HeadKind::Mixer.label());
    let mut counts = [0usize; 3];
    for (l, layer) in gates.iter().enumerate() {
        let cells: Vec<String> = layer
            .iter()
            .enumerate()
            .map(|(h, &g)| {
                let kind = HeadKind::of_gate(g);
                counts[kind as usize] += 1;
                format!(
                    "{g:.3} {:<18} share {:.3}",
                    kind.label(),
                    mean_share[l * c.n_heads + h]
                )
            })
            .collect();
        println!("  layer {l}: {}", cells.join(" | "));
    }
    println!(
        "  {} specialized-local, {} mixer, {} specialized-memory",
        counts[HeadKind::SpecializedLocal as usize],
        counts[HeadKind::Mixer as usize],
        counts[HeadKind::SpecializedMemory as usize]
    );
    println!();
    println!(
        "memory state: {} (constant); a KV cache for {n_tokens} tokens: {}; {:.1}× smaller",
        bytes(memory_bytes),
        bytes(kv_bytes),
        kv_bytes as f64 / memory_bytes as f64
    );
}

fn bytes(n: usize) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.2} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.2} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

fn generate(
    args: &ModelArgs,
    prompt: &Path,
    count: usize,
    temperature: f32,
    seed: u64,
) -> Result<(), Error> {
    let (model, options) = load(args)?;
    let n = model.config.segment_len;
    let prompt_text = read_text(prompt)?;
    let mut context = model.tokenizer.encode(&prompt_text)?;
    if context.is_empty() {
        return Err(Error::Text(format!(
            "{} is empty: nothing to continue",
            prompt.display()
        )));
    }
    let mut engine = engine(&model, options, args.cpu);
    eprintln!("engine: {}", engine.describe());
    // Full segments of the prompt go into memory; the rest is the open segment.
    let mut index = 0;
    while context.len() > n {
        let rest = context.split_off(n);
        engine.segment(
            &Segment {
                index,
                tokens: context,
                targets: Vec::new(),
                commit: true,
            },
            Taps::default(),
        )?;
        context = rest;
        index += 1;
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut open = OpenSegment::new(index, context, n);
    let mut generated = Vec::new();
    let mut printed = String::new();
    let mut stdout = std::io::stdout();
    for _ in 0..count {
        let taps = Taps {
            logits: true,
            ..Taps::default()
        };
        let out = engine.segment(&open.segment(), taps)?;
        let logits = out.logits.expect("logits tapped");
        let next = sample(
            open.last(&logits, model.config.vocab_size),
            temperature,
            &mut rng,
        );
        open.push(next);
        generated.push(next);
        let text = model.tokenizer.decode(&generated)?;
        // Byte-level BPE can split a character over tokens: print only whole ones.
        if let Some(new) = text
            .strip_prefix(printed.as_str())
            .filter(|s| !s.ends_with('\u{fffd}'))
        {
            print!("{new}");
            let _ = stdout.flush();
            printed = text;
        }
    }
    println!();
    Ok(())
}

/// The first `count` tokens of a text file (fewer if it is shorter; at least two).
fn first_tokens(model: &Model, path: &Path, count: usize) -> Result<Vec<u32>, Error> {
    let file = open(path)?;
    let mut tokens = Vec::new();
    for chunk in TextChunks::new(BufReader::new(file), CHUNK_BYTES) {
        tokens.extend(model.tokenizer.encode(&chunk?)?);
        if tokens.len() >= count {
            break;
        }
    }
    tokens.truncate(count);
    if tokens.len() < 2 {
        return Err(Error::Text(format!(
            "{} has fewer than two tokens",
            path.display()
        )));
    }
    Ok(tokens)
}

/// A text's segments in runs an engine takes at once: `per_run` full segments at a
/// time, then the last (perhaps shorter) segment on its own.
fn runs(segments: &[Segment], per_run: usize) -> impl Iterator<Item = &[Segment]> {
    let (full, last) = segments.split_at(segments.len().saturating_sub(1));
    full.chunks(per_run)
        .chain([last])
        .filter(|run| !run.is_empty())
}

/// Seconds to read `tokens` with `engine`, a chunk at a time, after one untimed
/// segment that compiles the GPU pipelines.
fn time_reading(engine: &mut Engine, tokens: &[u32], segment_len: usize) -> Result<f64, Error> {
    let segments = infiniscope::segment::segments(tokens, segment_len);
    engine.segment(
        &infiniscope::segment::segments(&tokens[..2], segment_len)[0],
        Taps::default(),
    )?;
    engine.reset();
    let taps = Taps {
        loss: true,
        ..Taps::default()
    };
    let start = Instant::now();
    for run in runs(&segments, engine.chunk()) {
        engine.segments(run, taps)?;
    }
    Ok(start.elapsed().as_secs_f64())
}

fn scaling(
    model_dir: &Path,
    path: &Path,
    lengths: &[usize],
    cpu: bool,
    csv: Option<&Path>,
) -> Result<(), Error> {
    let mut rows = String::from("tokens,infini_tokens_per_s,full_tokens_per_s\n");
    let model = Arc::new(Model::load(model_dir)?);
    let options = RunOptions::for_config(&model.config);
    let longest = lengths.iter().copied().max().unwrap_or(0);
    let tokens = first_tokens(&model, path, longest)?;
    println!("model: {}", describe(&model, &options));
    println!(
        "{:>8} {:>22} {:>22} {:>10}",
        "tokens", "infini-attention tok/s", "full attention tok/s", "infini/full"
    );
    for &length in lengths {
        let text = &tokens[..length.min(tokens.len())];
        let infini = time_reading(
            &mut engine(&model, options, cpu),
            text,
            model.config.segment_len,
        )?;
        // The same weights as a plain transformer: one segment over the whole text.
        let mut full_model = Model::load(model_dir)?;
        full_model.config.segment_len = text.len();
        let full_model = Arc::new(full_model);
        let full_options = RunOptions {
            memory: MemoryMode::Off,
            ..options
        };
        let full = if cpu {
            time_reading(
                &mut Engine::new(full_model, full_options, true).0,
                text,
                text.len(),
            )
        } else {
            Engine::gpu(full_model, full_options)
                .and_then(|mut e| time_reading(&mut e, text, text.len()))
        };
        let n = text.len() as f64;
        match full {
            Ok(full) => {
                println!(
                    "{:>8} {:>22.1} {:>22.1} {:>10.2}",
                    text.len(),
                    n / infini,
                    n / full,
                    full / infini
                );
                rows += &format!("{},{},{}\n", text.len(), n / infini, n / full);
            }
            Err(e) => println!("{:>8} {:>22.1} {:>22} {e}", text.len(), n / infini, "—"),
        }
    }
    if let Some(path) = csv {
        std::fs::write(path, rows).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
    }
    Ok(())
}

fn bench(model_dir: &Path, path: &Path, count: usize) -> Result<(), Error> {
    let model = Arc::new(Model::load(model_dir)?);
    let options = RunOptions::for_config(&model.config);
    let tokens = first_tokens(&model, path, count)?;
    let segments = infiniscope::segment::segments(&tokens, model.config.segment_len);
    let taps = Taps {
        loss: true,
        ..Taps::default()
    };
    println!("model: {}", describe(&model, &options));
    println!(
        "text: {} tokens of {} in {} segments",
        tokens.len(),
        path.display(),
        segments.len()
    );
    let mut rates = Vec::new();
    let gpu = Engine::gpu(Arc::clone(&model), options)?;
    let chunk = gpu.chunk();
    let engines = [
        ("one segment per submission", gpu, 1),
        ("chunked", Engine::gpu(Arc::clone(&model), options)?, chunk),
        (
            "chunked",
            Engine::new(Arc::clone(&model), options, true).0,
            CPU_CHUNK,
        ),
    ];
    for (mode, mut engine, per_run) in engines {
        // One untimed chunk compiles the GPU pipelines.
        engine.segments(&segments[..per_run.min(segments.len() - 1)], taps)?;
        engine.reset();
        let start = Instant::now();
        let mut loss = 0.0;
        let mut submissions = 0;
        for run in runs(&segments, per_run) {
            for (segment, out) in run.iter().zip(engine.segments(run, taps)?) {
                loss += out.mean_loss().unwrap_or(0.0) * segment.targets.len() as f32;
            }
            submissions += 1;
        }
        let seconds = start.elapsed().as_secs_f64();
        let rate = tokens.len() as f64 / seconds;
        println!(
            "{:<70} {:>9.3} s {:>10.1} tokens/s   loss {:.4}",
            format!("{} {mode}", engine.describe()),
            seconds,
            rate,
            loss / (tokens.len() - 1) as f32
        );
        if let Engine::Gpu(gpu) = &engine {
            let per_1k = 1000.0 / tokens.len() as f64;
            let dispatches: usize = runs(&segments, per_run)
                .map(|run| gpu.dispatches(run[0].tokens.len(), run.len(), true))
                .sum();
            println!(
                "{:<70} {:.0} dispatches and {:.1} submissions per 1K tokens ({} segments per submission)",
                "",
                dispatches as f64 * per_1k,
                submissions as f64 * per_1k,
                per_run
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

/// This machine's f32 FMA peak in FLOP/s and the threads it took: every hardware
/// thread runs independent chains of 256-bit FMAs, enough to hide their latency.
fn cpu_peak() -> Option<(f64, usize)> {
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

/// Where a chunk's time goes on the GPU, op by op, and the FLOP rates of the
/// matmul kernel and of the whole model.
fn profile(model: &Arc<Model>, options: RunOptions, chunk: usize, rate: f64) -> Result<(), Error> {
    let Engine::Gpu(engine) = Engine::gpu(Arc::clone(model), options)? else {
        unreachable!("Engine::gpu is a GPU engine")
    };
    let c = &model.config;
    engine.profile(1, 1)?; // compiles every pipeline
    let ops = engine.profile(chunk, 3)?;
    let total: f64 = ops.iter().map(|(_, _, t)| t).sum();
    let rows = (chunk * c.segment_len) as f64;
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
    let model_rate = rate * c.flops_per_token() as f64;
    println!(
        "matmul kernel {:.2} GFLOP/s (logits, transposed: {:.2}); the whole model (chunked run above) {:.2} GFLOP/s = {:.0}% of the matmul kernel",
        matmul / 1e9,
        logits / 1e9,
        model_rate / 1e9,
        100.0 * model_rate / matmul
    );
    Ok(())
}

fn passkey(
    args: &ModelArgs,
    lengths: &[usize],
    depths: &[f32],
    trials: usize,
    filler: Option<&Path>,
    as_json: bool,
) -> Result<(), Error> {
    let (model, options) = load(args)?;
    let filler_tokens = match filler {
        Some(path) => model.tokenizer.encode(&read_text(path)?)?,
        None => model.tokenizer.encode(infiniscope::passkey::REPETITIVE)?,
    };
    let mut engine = engine(&model, options, args.cpu);
    let taps = Taps {
        loss: true,
        ..Taps::default()
    };
    let mut rows = Vec::new();
    for &length in lengths {
        for &depth in depths {
            let (mut right, mut exact) = (0, 0);
            for trial in 0..trials {
                let key = (trial as u32 * 7919 + length as u32 * 31 + (depth * 1000.0) as u32)
                    * 104_729
                    % 100_000;
                let hay = infiniscope::passkey::build(
                    &model.tokenizer,
                    length,
                    depth,
                    key,
                    &filler_tokens,
                )?;
                engine.reset();
                let mut argmax = Vec::with_capacity(length);
                let segments =
                    infiniscope::segment::segments(&hay.tokens, model.config.segment_len);
                for run in runs(&segments, engine.chunk()) {
                    for out in engine.segments(run, taps)? {
                        argmax.extend(out.argmax.expect("argmax tapped"));
                    }
                }
                let at = hay.answer_at();
                let hits = (at..length)
                    .filter(|&i| argmax[i - 1] == hay.tokens[i])
                    .count();
                right += hits;
                exact += (hits == length - at) as usize;
            }
            let digits = (trials * infiniscope::passkey::DIGITS) as f64;
            rows.push((
                length,
                depth,
                right as f64 / digits,
                exact as f64 / trials as f64,
            ));
            if !as_json {
                println!(
                    "length {length:>7}  depth {depth:.2}  digits right {:.2}  keys exact {:.2}",
                    right as f64 / digits,
                    exact as f64 / trials as f64
                );
            }
        }
    }
    if as_json {
        let rows: Vec<_> = rows
            .iter()
            .map(|(l, d, digit, key)| json!({"length": l, "depth": d, "digit_accuracy": digit, "exact": key}))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({"engine": engine.describe(), "trials": trials, "results": rows})
            )
            .expect("JSON")
        );
    }
    Ok(())
}
