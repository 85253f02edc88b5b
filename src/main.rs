//! `infiniscope`: evaluate, generate and benchmark an Infini-Transformer natively.
//! This file only parses the command line and dispatches: each command is a module
//! of `cli/` with its arguments and a short `run` that calls the library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli;

use cli::{bench, eval, generate, long, passkey, random_model, recall, scaling};

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

#[derive(Subcommand)]
enum Command {
    /// Per-segment loss and perplexity, the gate table and the memory footprint.
    Eval(eval::Args),
    /// Read one long text once at constant memory: tokens/s and the process's
    /// memory at each mark (for the length-scaling benchmark).
    Long(long::Args),
    /// Continue a prompt.
    Generate(generate::Args),
    /// Tokens per second of the GPU engine and the CPU reference on the same text.
    Bench(bench::Args),
    /// Infini-attention against full attention: the same weights with the memory off
    /// and one segment spanning the whole text (a plain causal transformer whose
    /// cost per token grows with the length), tokens/s at each length.
    Scaling(scaling::Args),
    /// Passkey retrieval (the paper's §4.2): a key hidden at a depth of filler text,
    /// asked for at the end; the share of keys greedy generation returns whole, and
    /// the teacher-forced per-digit accuracy (each digit with the earlier ones given).
    Passkey(passkey::Args),
    /// Where one token's memory read comes from: each earlier segment's recall share
    /// and contribution, per layer and head (docs/DESIGN.md §6).
    Recall(recall::Args),
    /// Write a model with deterministic random weights and a BPE trained on a text.
    RandomModel(random_model::Args),
}

fn main() -> ExitCode {
    match try_main(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn try_main(cli: Cli) -> Result<(), infiniscope::Error> {
    match cli.command {
        Command::Eval(args) => eval::run(&args),
        Command::Long(args) => long::run(&args),
        Command::Generate(args) => generate::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Scaling(args) => scaling::run(&args),
        Command::Passkey(args) => passkey::run(&args),
        Command::Recall(args) => recall::run(&args),
        Command::RandomModel(args) => random_model::run(&args),
    }
}
