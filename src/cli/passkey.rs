//! `infiniscope passkey`: the paper's passkey retrieval (§4.2) over lengths and depths.

use std::path::PathBuf;

use serde_json::json;

use infiniscope::passkey::{build, digits_right, trial_key, DIGITS, REPETITIVE};
use infiniscope::text::read_text;
use infiniscope::Error;

use super::ModelArgs;

#[derive(clap::Args)]
pub struct Args {
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
}

pub fn run(args: &Args) -> Result<(), Error> {
    let (model, options) = args.model.load()?;
    let filler = match &args.filler {
        Some(path) => model.tokenizer.encode(&read_text(path)?)?,
        None => model.tokenizer.encode(REPETITIVE)?,
    };
    let mut engine = super::engine(&model, options, args.model.cpu);
    let mut rows = Vec::new();
    for &length in &args.lengths {
        for &depth in &args.depths {
            let (mut right, mut exact) = (0, 0);
            for trial in 0..args.trials {
                let key = trial_key(trial, length, depth);
                let haystack = build(&model.tokenizer, length, depth, key, &filler)?;
                let hits = digits_right(&mut engine, &haystack, model.config.segment_len)?;
                right += hits;
                exact += (hits == DIGITS) as usize;
            }
            let digits = right as f64 / (args.trials * DIGITS) as f64;
            let keys = exact as f64 / args.trials as f64;
            if !args.json {
                println!(
                    "length {length:>7}  depth {depth:.2}  digits right {digits:.2}  keys exact {keys:.2}"
                );
            }
            rows.push(
                json!({"length": length, "depth": depth, "digit_accuracy": digits, "exact": keys}),
            );
        }
    }
    if args.json {
        let out = json!({"engine": engine.describe(), "trials": args.trials, "results": rows});
        println!("{}", serde_json::to_string_pretty(&out).expect("JSON"));
    }
    Ok(())
}
