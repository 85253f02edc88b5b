//! `infiniscope passkey`: the paper's passkey retrieval (§4.2) over lengths and depths.

use std::path::PathBuf;

use serde_json::json;

use infiniscope::passkey::{ask, build, trial_key, DIGITS, REPETITIVE};
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
            let (mut right, mut whole) = (0, 0);
            let mut answers = Vec::new();
            for trial in 0..args.trials {
                let key = trial_key(trial, length, depth);
                let haystack = build(&model.tokenizer, length, depth, key, &filler)?;
                let answer = ask(
                    &mut engine,
                    &model.tokenizer,
                    &haystack,
                    model.config.segment_len,
                )?;
                right += answer.digits_right;
                whole += answer.whole as usize;
                answers.push((haystack.key, answer.generated));
            }
            let digits = right as f64 / (args.trials * DIGITS) as f64;
            let keys = whole as f64 / args.trials as f64;
            if !args.json {
                let shown: Vec<String> =
                    answers.iter().map(|(k, a)| format!("{k}→{a:?}")).collect();
                println!(
                    "length {length:>7}  depth {depth:.2}  keys whole {keys:.2}  digits right (teacher-forced) {digits:.2}  {}",
                    shown.join(" ")
                );
            }
            let answers: Vec<_> = answers
                .iter()
                .map(|(key, answer)| json!({"key": key, "answer": answer}))
                .collect();
            rows.push(json!({
                "length": length, "depth": depth, "keys_whole": keys,
                "digit_accuracy": digits, "answers": answers,
            }));
        }
    }
    if args.json {
        let out = json!({"engine": engine.describe(), "trials": args.trials, "results": rows});
        println!("{}", serde_json::to_string_pretty(&out).expect("JSON"));
    }
    Ok(())
}
