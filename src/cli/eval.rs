//! `infiniscope eval`: per-segment loss and perplexity, the gate table and the
//! memory footprint of one text.

use std::path::PathBuf;

use serde_json::json;

use infiniscope::engine::Engine;
use infiniscope::eval::Evaluation;
use infiniscope::gate::{HeadKind, LOCAL_BELOW, MEMORY_ABOVE};
use infiniscope::taps::Taps;
use infiniscope::units::bytes;
use infiniscope::{Error, MemoryMode, Model, RunOptions};

use super::{describe, ModelArgs, DEFAULT_TEXT};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// UTF-8 text file; read in blocks, so it may be larger than memory.
    #[arg(long, default_value = DEFAULT_TEXT)]
    text: PathBuf,
    /// Stop after this many tokens.
    #[arg(long)]
    max_tokens: Option<usize>,
    /// Machine-readable output on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &Args) -> Result<(), Error> {
    let (model, options) = args.model.load()?;
    let mut engine = super::engine(&model, options, args.model.cpu);
    let taps = Taps {
        loss: true,
        memory_share: true,
        ..Taps::default()
    };
    let mut evaluation = Evaluation::new(&model.config);
    let limit = args.max_tokens.unwrap_or(usize::MAX);
    super::read(
        &model,
        &mut engine,
        &args.text,
        limit,
        taps,
        |segment, out, _| evaluation.add(segment, out),
    )?;
    let report = Report {
        model: &model,
        options: &options,
        engine: &engine,
        text: &args.text,
        evaluation: &evaluation,
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report.json()).expect("JSON values serialise")
        );
    } else {
        report.print();
    }
    Ok(())
}

struct Report<'a> {
    model: &'a Model,
    options: &'a RunOptions,
    engine: &'a Engine,
    text: &'a std::path::Path,
    evaluation: &'a Evaluation,
}

impl Report<'_> {
    fn json(&self) -> serde_json::Value {
        let (c, e) = (&self.model.config, self.evaluation);
        let mean_share = e.mean_share();
        let mean_loss = e.mean_loss();
        let segments: Vec<_> = e
            .segments
            .iter()
            .map(|r| json!({"index": r.index, "tokens": r.tokens, "loss": r.loss, "perplexity": r.loss.map(f32::exp)}))
            .collect();
        let heads: Vec<Vec<_>> = self
            .model
            .gates()
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
        let (memory_bytes, kv_bytes) = (c.memory_floats() * 4, c.kv_cache_floats(e.tokens) * 4);
        json!({
            "model": describe(self.model, self.options),
            "engine": self.engine.describe(),
            "memory": self.options.memory == MemoryMode::On,
            "update_rule": self.options.update_rule,
            "text": self.text.display().to_string(),
            "tokens": e.tokens,
            "loss": mean_loss,
            "perplexity": mean_loss.exp(),
            "segments": segments,
            "heads": heads,
            "thresholds": {"local_below": LOCAL_BELOW, "memory_above": MEMORY_ABOVE},
            "memory_bytes": memory_bytes,
            "kv_cache_bytes": kv_bytes,
            "compression": kv_bytes as f64 / memory_bytes as f64,
        })
    }

    fn print(&self) {
        let (c, e) = (&self.model.config, self.evaluation);
        let n_tokens = e.tokens;
        println!("model: {}", describe(self.model, self.options));
        println!("engine: {}", self.engine.describe());
        println!(
            "text: {} → {n_tokens} tokens in {} segments",
            self.text.display(),
            e.segments.len()
        );
        println!();
        println!(
            "{:>8} {:>7} {:>8} {:>10}",
            "segment", "tokens", "loss", "perplexity"
        );
        // Long texts: at most 40 rows, each the token-weighted mean of consecutive segments.
        let per_row = e.segments.len().div_ceil(40);
        for rows in e.segments.chunks(per_row) {
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
        let mean_loss = e.mean_loss();
        println!(
            "overall: loss {mean_loss:.4} nats, perplexity {:.2} over {} predicted tokens",
            mean_loss.exp(),
            n_tokens - 1
        );
        println!();
        println!("gates g = sigmoid(β) and mean memory share per head ({} if g < {LOCAL_BELOW}, {} if g > {MEMORY_ABOVE}, else {}):",
            HeadKind::SpecializedLocal.label(), HeadKind::SpecializedMemory.label(), HeadKind::Mixer.label());
        let mean_share = e.mean_share();
        let mut counts = [0usize; 3];
        for (l, layer) in self.model.gates().iter().enumerate() {
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
        let (memory_bytes, kv_bytes) = (c.memory_floats() * 4, c.kv_cache_floats(n_tokens) * 4);
        println!(
            "memory state: {} (constant); a KV cache for {n_tokens} tokens: {}; {:.1}× smaller",
            bytes(memory_bytes as u64),
            bytes(kv_bytes as u64),
            kv_bytes as f64 / memory_bytes as f64
        );
    }
}
