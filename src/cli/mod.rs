//! The commands of the `infiniscope` binary, one module each (arguments and a short
//! `run`), and what they share: the model arguments, loading and the engine choice.

pub mod bench;
pub mod eval;
pub mod generate;
pub mod long;
pub mod passkey;
pub mod random_model;
pub mod recall;
pub mod scaling;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::ValueEnum;
use indicatif::{ProgressBar, ProgressStyle};

use infiniscope::engine::Engine;
use infiniscope::taps::{Segment, SegmentOutput, Taps};
use infiniscope::text::{read_file, Progress};
use infiniscope::{Error, MemoryMode, Model, RunOptions, UpdateRule};

pub const DEFAULT_MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models/infini-tiny");
pub const DEFAULT_TEXT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/samples/paradise-lost.txt");

#[derive(Clone, Copy, ValueEnum)]
pub enum Switch {
    On,
    Off,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Rule {
    Linear,
    Delta,
}

/// A model and how to run it, for the commands that read one text with one engine.
#[derive(clap::Args)]
pub struct ModelArgs {
    /// Model folder (config.json, model.safetensors, tokenizer.json).
    #[arg(long, default_value = DEFAULT_MODEL)]
    pub model: PathBuf,
    /// Run on the CPU reference instead of a GPU adapter.
    #[arg(long)]
    pub cpu: bool,
    /// Memory read on, or off (the read returns 0: docs/DESIGN.md §1.4).
    #[arg(long, value_enum, default_value = "on")]
    pub memory: Switch,
    /// Memory update rule; default: the one the model was trained with.
    #[arg(long, value_enum)]
    pub rule: Option<Rule>,
}

impl ModelArgs {
    pub fn load(&self) -> Result<(Arc<Model>, RunOptions), Error> {
        let model = Model::load(&self.model)?;
        let mut options = RunOptions::for_config(&model.config);
        if let Some(rule) = self.rule {
            options.update_rule = match rule {
                Rule::Linear => UpdateRule::Linear,
                Rule::Delta => UpdateRule::Delta,
            };
        }
        if let Switch::Off = self.memory {
            options.memory = MemoryMode::Off;
        }
        Ok((Arc::new(model), options))
    }
}

/// A model run as trained and a text, for the benchmarks.
#[derive(clap::Args)]
pub struct Source {
    #[arg(long, default_value = DEFAULT_MODEL)]
    pub model: PathBuf,
    #[arg(long, default_value = DEFAULT_TEXT)]
    pub text: PathBuf,
}

/// [`read_file`] with a progress bar over the text's bytes on stderr (a reading may
/// take minutes).
pub fn read(
    model: &Model,
    engine: &mut Engine,
    text: &Path,
    limit: usize,
    taps: Taps,
    mut each: impl FnMut(&Segment, &SegmentOutput, &Progress),
) -> Result<usize, Error> {
    let size = std::fs::metadata(text).map(|m| m.len()).unwrap_or(0);
    let bar = ProgressBar::new(size).with_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg} ({eta})")
            .expect("a valid template"),
    );
    let read = read_file(
        model,
        engine,
        text,
        limit,
        taps,
        |segment, out, progress| {
            bar.set_message(format!("segment {}", segment.index));
            bar.set_position(progress.bytes_read);
            each(segment, out, progress);
        },
    );
    bar.finish_and_clear();
    read
}

/// The engine asked for, with a note on stderr when it is not the one expected.
pub fn engine(model: &Arc<Model>, options: RunOptions, cpu: bool) -> Engine {
    let (engine, note) = Engine::new(Arc::clone(model), options, cpu);
    if let Some(note) = note {
        eprintln!("note: {note}");
    }
    if let Engine::Gpu(gpu) = &engine {
        if gpu.gpu().adapter.device_type == wgpu::DeviceType::Cpu {
            eprintln!(
                "note: {} is a software adapter that runs on the CPU; --cpu runs the CPU reference, 17× faster on the 2-core machine of BENCHMARKS.md",
                gpu.gpu().describe()
            );
        }
    }
    engine
}

/// One line on the model and the options it runs with, for people.
pub fn describe(model: &Model, options: &RunOptions) -> String {
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
