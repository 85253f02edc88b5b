//! `infiniscope long`: one long text read once, a row at each mark.

use std::path::PathBuf;

use infiniscope::bench::rss;
use infiniscope::taps::Taps;
use infiniscope::text::open;
use infiniscope::Error;

use super::{describe, ModelArgs};

#[derive(clap::Args)]
pub struct Args {
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
}

/// A row at each mark: tokens/s so far and since the last mark (time in the engine;
/// tokenizing is not counted), the process's memory now and at its peak, the mean
/// loss so far.
pub fn run(args: &Args) -> Result<(), Error> {
    let (model, options) = args.model.load()?;
    open(&args.text)?; // a missing text fails before the table starts
    let mut engine = super::engine(&model, options, args.model.cpu);
    let mut marks = args.marks.clone();
    marks.sort_unstable();
    let limit = marks.last().copied().unwrap_or(0);
    println!("model: {}", describe(&model, &options));
    println!("engine: {}", engine.describe());
    println!("text: {}", args.text.display());
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
    let read = super::read(
        &model,
        &mut engine,
        &args.text,
        limit,
        taps,
        |segment, out, progress| {
            let seconds = progress.seconds;
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
