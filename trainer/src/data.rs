//! Training data: spans of whole documents from the corpus (`tools/corpus.py`), and
//! passkey haystacks (infiniscope's `passkey` module) on a curriculum of lengths.

use std::path::Path;

use rand::Rng;

use infiniscope::passkey;
use infiniscope::tokenizer::Tokenizer;

pub struct Document {
    pub name: String,
    pub tokens: Vec<u32>,
}

pub struct Corpus {
    pub train: Vec<Document>,
    pub valid: Vec<Document>,
    /// The paper's repetitive filler, tokenized once.
    repetitive: Vec<u32>,
}

/// Every `.txt` in `dir`, sorted by name (deterministic order).
pub fn read_texts(dir: &Path) -> Result<Vec<(String, String)>, String> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| {
            format!(
                "{}: {e} (run `python3 tools/corpus.py` first)",
                dir.display()
            )
        })?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            Ok((p.file_stem().unwrap().to_string_lossy().into_owned(), text))
        })
        .collect()
}

impl Corpus {
    pub fn load(dir: &Path, tokenizer: &Tokenizer) -> Result<Self, String> {
        let split = |name: &str| -> Result<Vec<Document>, String> {
            read_texts(&dir.join(name))?
                .into_iter()
                .map(|(name, text)| {
                    Ok(Document {
                        name,
                        tokens: tokenizer.encode(&text).map_err(|e| e.to_string())?,
                    })
                })
                .collect()
        };
        let repetitive = tokenizer
            .encode(passkey::REPETITIVE)
            .map_err(|e| e.to_string())?;
        Ok(Self {
            train: split("train")?,
            valid: split("valid")?,
            repetitive,
        })
    }

    pub fn train_tokens(&self) -> usize {
        self.train.iter().map(|d| d.tokens.len()).sum()
    }

    /// A random span of `len` tokens from a training document at least that long,
    /// documents drawn in proportion to their length.
    fn span(&self, rng: &mut impl Rng, len: usize) -> &[u32] {
        let eligible: Vec<&Document> = self.train.iter().filter(|d| d.tokens.len() > len).collect();
        let total: usize = eligible.iter().map(|d| d.tokens.len()).sum();
        let mut pick = rng.random_range(0..total);
        let doc = eligible
            .iter()
            .find(|d| {
                if pick < d.tokens.len() {
                    return true;
                }
                pick -= d.tokens.len();
                false
            })
            .expect("pick < total");
        let start = rng.random_range(0..doc.tokens.len() - len);
        &doc.tokens[start..start + len]
    }
}

/// One training sequence: `tokens` has one more element than `weights`; position t is
/// trained to predict `tokens[t + 1]` with weight `weights[t]`.
pub struct Example {
    pub tokens: Vec<u32>,
    pub weights: Vec<f32>,
    /// For passkey examples: where the answer digits sit in `tokens`.
    pub answer_at: Option<usize>,
    /// For passkey examples: where the needle starts in `tokens`.
    pub needle_at: Option<usize>,
}

/// Weight of each answer digit's loss: one number among hundreds of text tokens.
pub const ANSWER_WEIGHT: f32 = 5.0;

/// How much a haystack's answer weighs in its loss, against 1 for each filler token.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AnswerWeight {
    /// Each answer token weighs this much (`ANSWER_WEIGHT` in every run up to 2026-12-03):
    /// at 16,384 tokens the answer is then 0.15% of the haystack's loss, so the prose
    /// filler's next-token loss, not the retrieval, steers passkey steps.
    PerToken(f32),
    /// The answer tokens together carry this share of the haystack's weight, at any length.
    Share(f32),
}

impl AnswerWeight {
    /// Each answer token's weight, for `answer` answer tokens after `filler` other ones.
    pub fn per_token(self, filler: usize, answer: usize) -> f32 {
        match self {
            Self::PerToken(w) => w,
            Self::Share(s) => s / (1.0 - s) * filler as f32 / answer as f32,
        }
    }
}

pub fn text_example(corpus: &Corpus, rng: &mut impl Rng, length: usize) -> Example {
    Example {
        tokens: corpus.span(rng, length + 1).to_vec(),
        weights: vec![1.0; length],
        answer_at: None,
        needle_at: None,
    }
}

/// Share of passkey haystacks whose needle sits right before the question (depth 1, as
/// `infiniscope passkey` places it), in the question's segment or the one before: there
/// the key is read through local attention and the newest memory, which haystacks with an
/// earlier needle never ask for (without them, depth 1 was the one depth keys failed at).
pub const LATE_NEEDLE_SHARE: f64 = 0.15;

/// What passkey haystacks are filled with.
#[derive(Clone, Copy)]
pub struct Filler {
    /// Share of haystacks whose filler is a span of a training novel rather than the
    /// paper's repetitive text.
    pub prose: f64,
    /// Share of those spans given numbers as distractors (see [`add_numbers`]).
    pub numbers: f64,
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// Numbers as novels print them (years, dates, counts, long figures like the key), one
/// to one a segment's worth of tokens, spliced into `span` at random places and the span
/// cut back to its length. Held-out prose can be full of them (*Persuasion* opens with a
/// family's birth dates), and a model that never saw numbers beside the needle answered
/// with the key's first digits and a year's last ones (58688 → 58108).
pub fn add_numbers(span: &mut Vec<u32>, tokenizer: &Tokenizer, rng: &mut impl Rng) {
    let length = span.len();
    for _ in 0..rng.random_range(1..=(length / 32).max(1)) {
        let number = match rng.random_range(0..4) {
            0 => format!(" {}", rng.random_range(1500..2030)),
            1 => format!(
                " {} {}, {}",
                MONTHS[rng.random_range(0..12)],
                rng.random_range(1..29),
                rng.random_range(1700..1900)
            ),
            2 => format!(" {}", rng.random_range(0..1000)),
            _ => format!(" {}", rng.random_range(10_000..1_000_000)),
        };
        let tokens = tokenizer.encode(&number).expect("digits and words encode");
        let at = rng.random_range(0..=span.len());
        span.splice(at..at, tokens);
    }
    span.truncate(length);
}

/// A passkey haystack of `length + 1` tokens. Its needle lies in an earlier segment than
/// the question, so the key can only be recalled through memory, except in a share
/// `LATE_NEEDLE_SHARE` of haystacks where it sits right before the question. Filler is
/// a span of a novel, some with numbers added, or the paper's repetitive text.
pub fn passkey_example(
    corpus: &Corpus,
    tokenizer: &Tokenizer,
    rng: &mut impl Rng,
    length: usize,
    segment_len: usize,
    filler: Filler,
    answer_weight: AnswerWeight,
) -> Example {
    let filler = if rng.random_bool(filler.prose) {
        let mut span = corpus.span(rng, length).to_vec();
        if rng.random_bool(filler.numbers) {
            add_numbers(&mut span, tokenizer, rng);
        }
        span
    } else {
        corpus.repetitive.clone()
    };
    let total = length + 1;
    let last_segment_start = (total - passkey::DIGITS - 1) / segment_len * segment_len;
    let late = rng.random_bool(LATE_NEEDLE_SHARE);
    let mut tries = 0;
    let hay = loop {
        let depth = if late {
            1.0
        } else {
            rng.random_range(0.0..1.0f32)
        };
        let key = rng.random_range(0..100_000u32);
        let hay =
            passkey::build(tokenizer, total, depth, key, &filler).expect("lengths fit a haystack");
        tries += 1;
        // Otherwise the needle (about 27 tokens) must end before the question's segment.
        if late || hay.needle_at + 32 < last_segment_start || tries == 8 {
            break hay;
        }
    };
    let mut weights = vec![1.0; length];
    let answer_at = hay.answer_at();
    let answer = answer_weight.per_token(answer_at - 1, length + 1 - answer_at);
    for w in &mut weights[answer_at - 1..] {
        *w = answer;
    }
    Example {
        tokens: hay.tokens,
        weights,
        answer_at: Some(answer_at),
        needle_at: Some(hay.needle_at),
    }
}
