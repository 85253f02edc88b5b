//! `infiniscope random-model`: a model with deterministic random weights.

use std::path::PathBuf;

use infiniscope::model::tiny_config;
use infiniscope::text::read_text;
use infiniscope::weights::StoredDtype;
use infiniscope::{Error, Model};

use super::DEFAULT_TEXT;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Text the tokenizer is trained on.
    #[arg(long, default_value = DEFAULT_TEXT)]
    text: PathBuf,
}

pub fn run(args: &Args) -> Result<(), Error> {
    let model = Model::random(tiny_config(), args.seed, &read_text(&args.text)?)?;
    model.save(&args.out, StoredDtype::F32)?;
    println!(
        "wrote {} ({} parameters)",
        args.out.display(),
        model.config.n_params()
    );
    Ok(())
}
