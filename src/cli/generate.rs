//! `infiniscope generate`: continue a prompt, streaming the text as it comes.

use std::io::Write;
use std::path::PathBuf;

use infiniscope::generate::Generator;
use infiniscope::stream::Stream;
use infiniscope::taps::Taps;
use infiniscope::text::read_text;
use infiniscope::Error;

use super::ModelArgs;

#[derive(clap::Args)]
pub struct Args {
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
}

pub fn run(args: &Args) -> Result<(), Error> {
    let (model, options) = args.model.load()?;
    let mut stream = Stream::new(model.config.segment_len);
    stream.push(&model.tokenizer.encode(&read_text(&args.prompt_file)?)?);
    let Some(open) = stream.end_open() else {
        return Err(Error::Text(format!(
            "{} is empty: nothing to continue",
            args.prompt_file.display()
        )));
    };
    let mut engine = super::engine(&model, options, args.model.cpu);
    eprintln!("engine: {}", engine.describe());
    let most = engine.chunk();
    engine.run_stream(&mut stream, most, Taps::default(), |_, _| {})?;
    let mut generator = Generator::new(open, args.seed);
    let taps = Taps {
        logits: true,
        ..Taps::default()
    };
    let mut stdout = std::io::stdout();
    for _ in 0..args.tokens {
        let out = engine.segment(&generator.segment(), taps)?;
        let logits = out.logits.expect("logits tapped");
        print!(
            "{}",
            generator.next(&model.tokenizer, &logits, args.temperature)
        );
        let _ = stdout.flush();
    }
    println!();
    Ok(())
}
