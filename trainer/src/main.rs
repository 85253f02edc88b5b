//! `cargo run --release -p trainer -- train`: trains infini-tiny on the CPU with burn,
//! checkpoints every few minutes, resumes, and exports infiniscope's model folder.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::optim::ModuleOptimizer;
use burn::prelude::*;
use clap::Parser;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use infiniscope::tokenizer::Tokenizer;
use infiniscope::weights::StoredDtype;
use infiniscope::{Config, Model, UpdateRule};
use trainer::data::{self, AnswerWeight, Corpus, Example};
use trainer::model::{InfiniModel, Order, Shape};
use trainer::train::{self, learning_rate, optimizers, LENGTHS, TEXT_SEGMENTS, UNLOCK_ACCURACY};

#[derive(Parser)]
#[command(about = "Train an Infini-Transformer for infiniscope")]
struct Args {
    /// Corpus folder made by `python3 tools/corpus.py`.
    #[arg(long, default_value = "data/corpus")]
    corpus: PathBuf,
    /// Where the model folder (config.json, model.safetensors, tokenizer.json) is written.
    #[arg(long, default_value = "models/infini-tiny")]
    out: PathBuf,
    /// Checkpoints (burnpack model and optimizer state, progress) for resuming.
    #[arg(long, default_value = "data/checkpoints/infini-tiny")]
    checkpoints: PathBuf,
    /// Continue from the checkpoint instead of starting over.
    #[arg(long)]
    resume: bool,
    /// Start from the weights and tokenizer of a model folder (e.g. the shipped
    /// models/infini-tiny) with fresh optimizer state, instead of random weights: how a
    /// session without the checkpoints continues training.
    #[arg(long, conflicts_with = "resume")]
    init: Option<PathBuf>,
    /// With --init: the curriculum stage to start at (0 = 128-token haystacks; each
    /// stage doubles the length), so a continued model keeps the lengths it unlocked.
    #[arg(long, default_value_t = 0, requires = "init")]
    stage: usize,
    /// Stop after this many minutes of wall time (a checkpoint is written first);
    /// with --resume, 0 re-exports the checkpoint without training.
    #[arg(long, default_value_t = 30.0)]
    minutes: f64,
    /// Tokens the learning-rate schedule spans (the run may be split over sessions).
    #[arg(long, default_value_t = 8_000_000)]
    budget: usize,
    /// Train the control model: the memory read returns 0.
    #[arg(long)]
    memory_off: bool,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Model size preset: "tiny" (the shipped model), "micro" (2 heads per layer, the
    /// first shipped model) or "smoke" (a test config).
    #[arg(long, default_value = "tiny")]
    preset: String,
    #[arg(long, default_value_t = 3e-3)]
    lr: f64,
    /// Learning rate of the gate scalars β and of a key-shift model's shifts (no
    /// weight decay on them).
    #[arg(long, default_value_t = 1e-2)]
    gate_lr: f64,
    /// Share of passkey haystacks among training sequences.
    #[arg(long, default_value_t = 0.5, value_parser = share)]
    passkey_share: f64,
    /// Share of haystacks whose filler is a span of a training novel rather than the
    /// paper's repetitive text: prose writes far more distinct keys into memory.
    #[arg(long, default_value_t = 0.5, value_parser = share)]
    prose_filler: f64,
    /// Share of prose-filled haystacks given numbers as distractors (years, dates, counts,
    /// figures of the key's length) spliced into the filler.
    #[arg(long, default_value_t = 0.0, value_parser = share)]
    number_filler: f64,
    /// Share of the haystacks with numbers that also get a burst of 4–12 within a few
    /// segments (a genealogy's dates), half of them right after the needle.
    #[arg(long, default_value_t = 0.0, value_parser = share)]
    number_bursts: f64,
    /// Share of passkey steps at an earlier curriculum stage (one of those unlocked
    /// before, drawn uniformly) rather than the newest, so shorter haystacks are kept.
    #[arg(long, default_value_t = 0.3, value_parser = share)]
    review_share: f64,
    /// Share of each passkey haystack's loss weight on its answer digits, at any length
    /// (e.g. 0.2); without it each digit weighs 5 against 1 for a filler token, a share
    /// that shrinks as haystacks grow (0.15% at 16,384 tokens).
    #[arg(long)]
    answer_share: Option<f32>,
    /// Tokens per optimizer step.
    #[arg(long, default_value_t = 4096)]
    step_tokens: usize,
    /// Minutes between checkpoints.
    #[arg(long, default_value_t = 5.0)]
    checkpoint_minutes: f64,
    /// Export the weights rounded to f16: half the file the page downloads.
    #[arg(long)]
    f16: bool,
    /// Share of steps whose sequences start from the memory the last text step left
    /// (its M and z, detached) instead of an empty one: the model meets memories that
    /// hold far more than one training sequence wrote, as in a long text (docs/DESIGN.md §7).
    #[arg(long, default_value_t = 0.0, value_parser = share)]
    carry: f64,
    /// Carried memories are dropped once they hold this many tokens.
    #[arg(long, default_value_t = 16_384)]
    carry_tokens: usize,
    /// Train the key-shift variant (beyond the paper, `Config::key_shift`) with this many
    /// taps (2 to 8): memory keys mix in the tokens before; with --init, the given
    /// model's keys start as they were (unshifted, or a narrower shift widened by zeros).
    #[arg(long, default_value_t = 0)]
    key_shift: usize,
    /// The same for the queries that read the memory (`Config::query_shift`); with
    /// --init, the given model's queries start unshifted (or as they were).
    #[arg(long, default_value_t = 0)]
    query_shift: usize,
    /// Longest training sequence (the config's `train_context`), for haystacks past
    /// 4,096 tokens; default: the config's (4,096 for the presets).
    #[arg(long)]
    train_context: Option<usize>,
    /// Segment length N (a model property, not a weight shape): with --init, the given
    /// model continues with segments of this many tokens; default: its config's.
    #[arg(long)]
    segment_len: Option<usize>,
    /// Read each sequence segment by segment through the whole stack (the engines'
    /// order) instead of layer by layer: same result, slower; for speed comparisons.
    #[arg(long)]
    by_segment: bool,
}

/// A share of steps or haystacks: a probability, refused outside 0–1 before training
/// starts (a draw with it would panic mid-run).
fn share(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        Ok(p) => Err(format!("{p} is a share, between 0 and 1")),
        Err(e) => Err(e.to_string()),
    }
}

#[derive(Serialize, Deserialize, Default)]
struct Progress {
    step: usize,
    tokens: usize,
    seconds: f64,
    stage: usize,
    /// Recent passkey digit accuracy at the current stage (exponential average).
    passkey_accuracy: f32,
}

fn main() {
    let args = Args::parse();
    if let Err(e) = train(&args) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn train(args: &Args) -> Result<(), String> {
    let rule = UpdateRule::Delta;
    let init = match &args.init {
        Some(dir) => Some(Model::load(dir).map_err(|e| format!("{}: {e}", dir.display()))?),
        None => None,
    };
    let mut config = match &init {
        Some(model) => model.config.clone(),
        None => train::config(&args.preset, rule)?,
    };
    config.key_shift = config.key_shift.max(args.key_shift);
    config.query_shift = config.query_shift.max(args.query_shift);
    config.train_context = args.train_context.unwrap_or(config.train_context);
    config.segment_len = args.segment_len.unwrap_or(config.segment_len);
    config.validate().map_err(|e| e.to_string())?;
    let shape = Shape {
        order: if args.by_segment {
            Order::BySegment
        } else {
            Order::Layered
        },
        ..Shape::of(&config, !args.memory_off)
    };
    let device = Device::flex().autodiff();
    std::fs::create_dir_all(&args.checkpoints).map_err(|e| e.to_string())?;

    let tokenizer_path = args.checkpoints.join("tokenizer.json");
    if let Some(model) = &init {
        let json = model.tokenizer.to_json().map_err(|e| e.to_string())?;
        std::fs::write(&tokenizer_path, json).map_err(|e| e.to_string())?;
    }
    let tokenizer = if tokenizer_path.exists() {
        Tokenizer::from_bytes(&std::fs::read(&tokenizer_path).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?
    } else {
        let start = Instant::now();
        let texts = data::read_texts(&args.corpus.join("train"))?;
        let tokenizer = Tokenizer::train(texts.iter().map(|(_, t)| t.as_str()), config.vocab_size)
            .map_err(|e| e.to_string())?;
        std::fs::write(
            &tokenizer_path,
            tokenizer.to_json().map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?;
        eprintln!(
            "tokenizer: {} tokens trained in {:.1} s",
            tokenizer.vocab_size(),
            start.elapsed().as_secs_f64()
        );
        tokenizer
    };
    let corpus = Corpus::load(&args.corpus, &tokenizer)?;
    let answer_weight = match args.answer_share {
        None => AnswerWeight::PerToken(data::ANSWER_WEIGHT),
        Some(s) if s > 0.0 && s < 1.0 => AnswerWeight::Share(s),
        Some(s) => return Err(format!("--answer-share {s}: a share between 0 and 1")),
    };
    eprintln!(
        "corpus: {} training tokens in {} documents",
        corpus.train_tokens(),
        corpus.train.len()
    );

    let (mut opt_main, mut opt_gates) = optimizers();
    let progress_path = args.checkpoints.join("progress.json");
    let (mut model, mut progress) = if args.resume {
        // Loaded from burnpack, which keeps the parameter ids the optimizer state is keyed by.
        let model = InfiniModel::from_weights(
            &config,
            &train::initial_weights(&config, args.seed),
            &device,
        )
        .try_load_file(args.checkpoints.join("model.bpk"))
        .map_err(|e| format!("{e:?}"))?;
        opt_main = opt_main
            .load(args.checkpoints.join("opt_main.bpk"))
            .map_err(|e| format!("{e:?}"))?;
        opt_gates = opt_gates
            .load(args.checkpoints.join("opt_gates.bpk"))
            .map_err(|e| format!("{e:?}"))?;
        let progress: Progress =
            serde_json::from_slice(&std::fs::read(&progress_path).map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        eprintln!(
            "resumed at step {} ({} tokens)",
            progress.step, progress.tokens
        );
        (model, progress)
    } else {
        let mut weights = match init {
            Some(model) => model.weights,
            None => train::initial_weights(&config, args.seed),
        };
        train::add_shifts(&config, &mut weights);
        (
            InfiniModel::from_weights(&config, &weights, &device),
            Progress {
                stage: args.stage.min(LENGTHS.len() - 1),
                ..Progress::default()
            },
        )
    };
    eprintln!(
        "model: {} parameters, {:?} rule, memory {}",
        config.n_params(),
        config.update_rule,
        if shape.memory { "on" } else { "off" }
    );

    let log_path = args.checkpoints.join("log.csv");
    if args.resume {
        drop_rows_after(&log_path, progress.step)?;
    }
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| e.to_string())?;
    if progress.step == 0 {
        writeln!(
            log,
            "step,tokens,seconds,memory_tokens,loss,passkey_accuracy,lr"
        )
        .map_err(|e| e.to_string())?;
    }
    let session = Instant::now();
    let (seconds_before, tokens_before) = (progress.seconds, progress.tokens);
    let mut last_checkpoint = Instant::now();
    // The memory the last step's first sequence left, and how many tokens wrote it.
    let mut carried = (model.empty_memory(), 0usize);
    while progress.tokens < args.budget && session.elapsed().as_secs_f64() < args.minutes * 60.0 {
        let mut rng = ChaCha8Rng::seed_from_u64(
            args.seed
                .wrapping_mul(1_000_003)
                .wrapping_add(progress.step as u64),
        );
        // A step is all passkey or all text. Passkey lengths follow the curriculum:
        // mostly the newest unlocked one, a share `review_share` an earlier one.
        // Text always spans TEXT_SEGMENTS segments, so memory is trained over that many.
        let passkey_step = rng.random_bool(args.passkey_share);
        let stage = if progress.stage > 0 && rng.random_bool(args.review_share) {
            rng.random_range(0..progress.stage)
        } else {
            progress.stage
        };
        let length = if passkey_step {
            LENGTHS[stage].min(config.train_context)
        } else {
            (TEXT_SEGMENTS * config.segment_len).min(config.train_context)
        };
        let batch = (args.step_tokens / length).max(1);
        let examples: Vec<Example> = (0..batch)
            .map(|_| {
                if passkey_step {
                    data::passkey_example(
                        &corpus,
                        &tokenizer,
                        &mut rng,
                        length,
                        config.segment_len,
                        data::Filler {
                            prose: args.prose_filler,
                            numbers: args.number_filler,
                            bursts: args.number_bursts,
                        },
                        answer_weight,
                    )
                } else {
                    data::text_example(&corpus, &mut rng, length)
                }
            })
            .collect();
        let lr = learning_rate(args.lr, progress.tokens, args.budget);
        let gate_lr = learning_rate(args.gate_lr, progress.tokens, args.budget);
        let carry = rng.random_bool(args.carry) && carried.1 + length <= args.carry_tokens;
        // Tokens that wrote the memory by the end of this step's sequences.
        let memory_tokens = length + if carry { carried.1 } else { 0 };
        let empty = model.empty_memory();
        let stepped = train::step(
            model,
            &shape,
            &examples,
            if carry { &carried.0 } else { &empty },
            (&mut opt_main, &mut opt_gates),
            (lr, gate_lr),
        );
        // Only text leaves a memory to carry: a carried haystack's key would compete
        // with the next haystack's (tried: digit accuracy fell from 0.8 to 0.25).
        if !passkey_step {
            carried = (stepped.memory, memory_tokens);
        }
        model = stepped.model;
        let (loss_value, accuracy) = (stepped.loss, stepped.accuracy);
        if !loss_value.is_finite() {
            return Err(format!(
                "loss became {loss_value} at step {}",
                progress.step
            ));
        }
        progress.step += 1;
        progress.tokens += batch * length;
        if let (Some(acc), true) = (accuracy, stage == progress.stage) {
            progress.passkey_accuracy = 0.9 * progress.passkey_accuracy + 0.1 * acc;
            if progress.passkey_accuracy > UNLOCK_ACCURACY
                && progress.stage + 1 < LENGTHS.len()
                && LENGTHS[progress.stage + 1] <= config.train_context
            {
                progress.stage += 1;
                progress.passkey_accuracy = 0.0;
                eprintln!(
                    "curriculum: sequences of {} tokens unlocked",
                    LENGTHS[progress.stage]
                );
            }
        }
        let elapsed = session.elapsed().as_secs_f64();
        progress.seconds = seconds_before + elapsed;
        writeln!(
            log,
            "{},{},{:.1},{},{:.5},{},{:.6}",
            progress.step,
            progress.tokens,
            progress.seconds,
            memory_tokens,
            loss_value,
            accuracy.map(|a| a.to_string()).unwrap_or_default(),
            lr
        )
        .map_err(|e| e.to_string())?;
        if progress.step % 10 == 0 {
            let rate = (progress.tokens - tokens_before) as f64 / elapsed.max(1e-9);
            let gates: Vec<String> = model
                .layers
                .iter()
                .map(|l| {
                    let b = l.beta.val().try_into_vec_as::<f32>().unwrap();
                    b.iter()
                        .map(|x| format!("{:.2}", infiniscope::gate::sigmoid(*x)))
                        .collect::<Vec<_>>()
                        .join("/")
                })
                .collect();
            // How much of the token before the keys (then the queries) take: mean |c_1|
            // per layer.
            let shifts: Vec<String> = model
                .layers
                .iter()
                .flat_map(|l| l.key_shift.iter().chain(&l.query_shift))
                .map(|s| {
                    let taps = s.val().try_into_vec_as::<f32>().unwrap();
                    let c1 = &taps[config.d_model..2 * config.d_model];
                    format!(
                        "{:.2}",
                        c1.iter().map(|x| x.abs()).sum::<f32>() / c1.len() as f32
                    )
                })
                .collect();
            eprintln!(
                "step {:>6} tokens {:>9} loss {:.4} passkey {:.2} len {:>4} memory {:>5} lr {:.2e} {:.0} tok/s gates {}{}",
                progress.step, progress.tokens, loss_value, progress.passkey_accuracy, length, memory_tokens, lr, rate, gates.join(" "),
                if shifts.is_empty() { String::new() } else { format!(" |c1| {}", shifts.join(" ")) }
            );
        }
        if last_checkpoint.elapsed().as_secs_f64() > args.checkpoint_minutes * 60.0 {
            checkpoint(
                args, &config, &model, &opt_main, &opt_gates, &progress, &tokenizer,
            )?;
            last_checkpoint = Instant::now();
        }
    }
    checkpoint(
        args, &config, &model, &opt_main, &opt_gates, &progress, &tokenizer,
    )?;
    eprintln!(
        "stopped at step {} after {} tokens",
        progress.step, progress.tokens
    );
    Ok(())
}

fn checkpoint(
    args: &Args,
    config: &Config,
    model: &InfiniModel,
    opt_main: &ModuleOptimizer,
    opt_gates: &ModuleOptimizer,
    progress: &Progress,
    tokenizer: &Tokenizer,
) -> Result<(), String> {
    let dir = &args.checkpoints;
    model
        .clone()
        .save_file(dir.join("model.bpk"))
        .map_err(|e| format!("{e:?}"))?;
    opt_main
        .save(dir.join("opt_main.bpk"))
        .map_err(|e| format!("{e:?}"))?;
    opt_gates
        .save(dir.join("opt_gates.bpk"))
        .map_err(|e| format!("{e:?}"))?;
    std::fs::write(
        dir.join("progress.json"),
        serde_json::to_string_pretty(progress).unwrap(),
    )
    .map_err(|e| e.to_string())?;
    let dtype = if args.f16 {
        StoredDtype::F16
    } else {
        StoredDtype::F32
    };
    export(config, model, tokenizer, dtype, &args.out)?;
    eprintln!(
        "checkpoint: step {} → {} and {}",
        progress.step,
        dir.display(),
        args.out.display()
    );
    Ok(())
}

/// Writes infiniscope's model folder.
fn export(
    config: &Config,
    model: &InfiniModel,
    tokenizer: &Tokenizer,
    dtype: StoredDtype,
    out: &Path,
) -> Result<(), String> {
    let tokenizer =
        Tokenizer::from_bytes(tokenizer.to_json().map_err(|e| e.to_string())?.as_bytes())
            .map_err(|e| e.to_string())?;
    let model = Model {
        config: config.clone(),
        weights: model.to_weights(),
        tokenizer,
        stored_dtype: dtype,
    };
    model.save(out, dtype).map_err(|e| e.to_string())
}

/// Steps logged after the last checkpoint were lost with the process that ran them;
/// resuming repeats them, so their old rows go.
fn drop_rows_after(log_path: &std::path::Path, step: usize) -> Result<(), String> {
    let Ok(text) = std::fs::read_to_string(log_path) else {
        return Ok(());
    };
    let kept: String = text
        .lines()
        .filter(|line| {
            line.split(',')
                .next()
                .and_then(|s| s.parse::<usize>().ok())
                .is_none_or(|s| s <= step)
        })
        .map(|line| format!("{line}\n"))
        .collect();
    std::fs::write(log_path, kept).map_err(|e| e.to_string())
}
