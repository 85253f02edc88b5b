//! `infiniscope recall`: where one token's memory read comes from, per layer and head.

use std::path::PathBuf;

use serde_json::json;

use infiniscope::recall::{recall, Recall};
use infiniscope::text::read_text;
use infiniscope::{Error, Model};

use super::ModelArgs;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// UTF-8 text file.
    #[arg(long)]
    text: PathBuf,
    /// Position of the token (0-based) whose memory read is traced; default the
    /// text's last token (whose read predicts what comes next, e.g. a passkey's answer).
    #[arg(long)]
    token: Option<usize>,
    /// Earlier segments listed per head, by share and by contribution.
    #[arg(long, default_value_t = 3)]
    top: usize,
    /// Shares only: skip the second reading the contributions need.
    #[arg(long)]
    shares_only: bool,
    /// Every vector in machine-readable form on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &Args) -> Result<(), Error> {
    let (model, options) = args.model.load()?;
    let tokens = model.tokenizer.encode(&read_text(&args.text)?)?;
    let token = args.token.unwrap_or(tokens.len().saturating_sub(1));
    let mut engine = super::engine(&model, options, args.model.cpu);
    let recall = recall(
        &mut engine,
        &model.config,
        &tokens,
        token,
        !args.shares_only,
    )?;
    let span = |j: usize| -> Result<String, Error> {
        let n = model.config.segment_len;
        model
            .tokenizer
            .decode(&tokens[j * n..((j + 1) * n).min(tokens.len())])
    };
    if args.json {
        let out = json(&model, &recall, &span)?;
        println!("{}", serde_json::to_string_pretty(&out).expect("JSON"));
        return Ok(());
    }
    let quoted = |text: String| {
        let text: String = text.chars().take(48).collect();
        format!("{:?}", text)
    };
    println!(
        "token {} {} in segment {} (reads the memory of segments 0–{})",
        token,
        quoted(model.tokenizer.decode(&tokens[token..token + 1])?),
        recall.segment,
        recall.segment.saturating_sub(1)
    );
    let gates = model.gates();
    for (l, layer) in gates.iter().enumerate() {
        for (h, g) in layer.iter().enumerate() {
            println!("layer {l} head {h}  g = {g:.3}");
            for (what, order) in ranked(&model, &recall, l, h) {
                for &(j, value) in order.iter().take(args.top) {
                    println!("  {what} {value:.4}  segment {j:>6}  {}", quoted(span(j)?));
                }
            }
        }
    }
    Ok(())
}

/// Segment indices with their share, and with the norm of their contribution, each
/// largest first.
fn ranked(model: &Model, r: &Recall, l: usize, h: usize) -> Vec<(&'static str, Vec<(usize, f32)>)> {
    let c = &model.config;
    let mut lists = vec![(
        "share",
        (0..r.segment)
            .map(|j| (j, r.share(c, l, h, j)))
            .collect::<Vec<_>>(),
    )];
    if r.contributions.is_some() {
        let norm = |j| {
            let v = r.contribution(c, l, h, j).expect("computed");
            v.iter().map(|x| x * x).sum::<f32>().sqrt()
        };
        lists.push(("‖c‖ ", (0..r.segment).map(|j| (j, norm(j))).collect()));
    }
    for (_, list) in &mut lists {
        list.sort_by(|a, b| b.1.total_cmp(&a.1));
    }
    lists
}

fn json(
    model: &Model,
    r: &Recall,
    span: &dyn Fn(usize) -> Result<String, Error>,
) -> Result<serde_json::Value, Error> {
    let c = &model.config;
    let (heads, d) = (c.n_heads, c.head_dim);
    let gates = model.gates();
    let mut rows = Vec::new();
    for (l, layer_gates) in gates.iter().enumerate() {
        for (h, gate) in layer_gates.iter().enumerate() {
            let at = (l * heads + h) * d;
            let contributions: Option<Vec<&[f32]>> = r.contributions.as_ref().map(|_| {
                (0..r.segment)
                    .map(|j| r.contribution(c, l, h, j).expect("computed"))
                    .collect()
            });
            rows.push(json!({
                "layer": l,
                "head": h,
                "gate": gate,
                "normaliser": r.normaliser[l * heads + h],
                "sigma_q": &r.sigma_q[at..at + d],
                "a_mem": &r.a_mem[at..at + d],
                "shares": (0..r.segment).map(|j| r.share(c, l, h, j)).collect::<Vec<_>>(),
                "contributions": contributions,
            }));
        }
    }
    let segments = (0..r.segment)
        .map(|j| Ok(json!({"index": j, "text": span(j)?})))
        .collect::<Result<Vec<_>, Error>>()?;
    Ok(json!({
        "token": r.token,
        "segment": r.segment,
        "segments": segments,
        "heads": rows,
    }))
}
