//! `infiniscope scaling`: infini-attention against the same weights run as a
//! full-attention transformer (memory off, one segment over the whole text).

use std::path::PathBuf;
use std::sync::Arc;

use infiniscope::bench::time_reading;
use infiniscope::engine::Engine;
use infiniscope::text::first_tokens;
use infiniscope::{Error, MemoryMode, Model, RunOptions};

use super::{describe, Source};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    source: Source,
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1024,2048,4096,8192,16384"
    )]
    lengths: Vec<usize>,
    /// Run on the CPU reference instead of a GPU adapter.
    #[arg(long)]
    cpu: bool,
    /// Also write the figures as CSV (tokens, infini tokens/s, full tokens/s; the last
    /// empty where full attention could not run).
    #[arg(long)]
    csv: Option<PathBuf>,
}

pub fn run(args: &Args) -> Result<(), Error> {
    let mut rows = String::from("tokens,infini_tokens_per_s,full_tokens_per_s\n");
    let model = Arc::new(Model::load(&args.source.model)?);
    let options = RunOptions::for_config(&model.config);
    let longest = args.lengths.iter().copied().max().unwrap_or(0);
    let tokens = first_tokens(&model, &args.source.text, longest)?;
    println!("model: {}", describe(&model, &options));
    println!(
        "{:>8} {:>22} {:>22} {:>10}",
        "tokens", "infini-attention tok/s", "full attention tok/s", "infini/full"
    );
    for &length in &args.lengths {
        let text = &tokens[..length.min(tokens.len())];
        let mut engine = super::engine(&model, options, args.cpu);
        let most = engine.chunk();
        let infini = time_reading(&mut engine, text, model.config.segment_len, most)?.seconds;
        // The same weights as a plain transformer: one segment over the whole text.
        let mut full_model = Model::load(&args.source.model)?;
        full_model.config.segment_len = text.len();
        let full_model = Arc::new(full_model);
        let full_options = RunOptions {
            memory: MemoryMode::Off,
            ..options
        };
        let full = if args.cpu {
            Ok(Engine::new(full_model, full_options, true).0)
        } else {
            Engine::gpu(full_model, full_options)
        }
        .and_then(|mut e| time_reading(&mut e, text, text.len(), 1));
        let n = text.len() as f64;
        match full {
            Ok(full) => {
                let full = full.seconds;
                println!(
                    "{:>8} {:>22.1} {:>22.1} {:>10.2}",
                    text.len(),
                    n / infini,
                    n / full,
                    full / infini
                );
                rows += &format!("{},{},{}\n", text.len(), n / infini, n / full);
            }
            // The row stays in the CSV with no full-attention figure, so the plot
            // still has the infini-attention point.
            Err(e) => {
                println!("{:>8} {:>22.1} {:>22} {e}", text.len(), n / infini, "—");
                rows += &format!("{},{},\n", text.len(), n / infini);
            }
        }
    }
    if let Some(path) = &args.csv {
        std::fs::write(path, rows).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
    }
    Ok(())
}
