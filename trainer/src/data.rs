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
    /// Share of the spans with numbers that also get a burst of them ([`add_burst`]),
    /// half of the bursts right after the needle.
    pub bursts: f64,
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

/// A number as novels print it: a year, a date, a count, or a figure of the key's length.
fn novel_number(rng: &mut impl Rng) -> String {
    match rng.random_range(0..4) {
        0 => format!(" {}", rng.random_range(1500..2030)),
        1 => format!(
            " {} {}, {}",
            MONTHS[rng.random_range(0..12)],
            rng.random_range(1..29),
            rng.random_range(1700..1900)
        ),
        2 => format!(" {}", rng.random_range(0..1000)),
        _ => format!(" {}", rng.random_range(10_000..1_000_000)),
    }
}

/// Splices `count` numbers into `span` at random places in `within` (its end clamped to
/// the span as it grows), and cuts the span back to its length.
fn splice_numbers(
    span: &mut Vec<u32>,
    tokenizer: &Tokenizer,
    rng: &mut impl Rng,
    count: usize,
    within: std::ops::Range<usize>,
) {
    let length = span.len();
    for _ in 0..count {
        let tokens = tokenizer
            .encode(&novel_number(rng))
            .expect("digits and words encode");
        let at = rng.random_range(within.start.min(span.len())..=within.end.min(span.len()));
        span.splice(at..at, tokens);
    }
    span.truncate(length);
}

/// Numbers spread over `span`, one to one a segment's worth of tokens, at random places.
/// Held-out prose can be full of them, and a model that never saw numbers beside the
/// needle answered with the key's first digits and a year's last ones (58688 → 58108).
pub fn add_numbers(span: &mut Vec<u32>, tokenizer: &Tokenizer, rng: &mut impl Rng) {
    let count = rng.random_range(1..=(span.len() / 32).max(1));
    splice_numbers(span, tokenizer, rng, count, 0..usize::MAX);
}

/// A burst of 4–12 numbers within 32–160 tokens from `at`, as a genealogy or a title
/// page prints them. *Persuasion* opens with one (a dozen birth and marriage dates in
/// ≈ 200 tokens): a needle right before it lost its last digits in half the haystacks,
/// where the same needle with the novel's first 3,000 characters skipped kept them in 19
/// of 20.
pub fn add_burst(span: &mut Vec<u32>, at: usize, tokenizer: &Tokenizer, rng: &mut impl Rng) {
    let count = rng.random_range(4..=12);
    let width = rng.random_range(32..=160);
    splice_numbers(span, tokenizer, rng, count, at..at + width);
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
    let mut burst_after_needle = false;
    let mut span = if rng.random_bool(filler.prose) {
        let mut span = corpus.span(rng, length).to_vec();
        if rng.random_bool(filler.numbers) {
            add_numbers(&mut span, tokenizer, rng);
            // Without bursts no draw is made: earlier runs' haystacks stay as they were.
            if filler.bursts > 0.0 && rng.random_bool(filler.bursts) {
                if rng.random_bool(0.5) {
                    burst_after_needle = true;
                } else {
                    let at = rng.random_range(0..span.len());
                    add_burst(&mut span, at, tokenizer, rng);
                }
            }
        }
        span
    } else {
        corpus.repetitive.clone()
    };
    let total = length + 1;
    let last_segment_start = (total - passkey::DIGITS - 1) / segment_len * segment_len;
    let late = rng.random_bool(LATE_NEEDLE_SHARE);
    let mut tries = 0;
    let (mut hay, depth, key) = loop {
        let depth = if late {
            1.0
        } else {
            rng.random_range(0.0..1.0f32)
        };
        let key = rng.random_range(0..100_000u32);
        let hay =
            passkey::build(tokenizer, total, depth, key, &span).expect("lengths fit a haystack");
        tries += 1;
        // Otherwise the needle (about 27 tokens) must end before the question's segment.
        if late || hay.needle_at + 32 < last_segment_start || tries == 8 {
            break (hay, depth, key);
        }
    };
    if burst_after_needle {
        // The filler after the needle starts at this index of the span (a prose span
        // is as long as the haystack, so it is never cycled); the needle keeps its place.
        let intro = tokenizer.encode(passkey::INTRO).expect("the intro encodes");
        let after = hay.needle_at - intro.len() + rng.random_range(0..=64);
        add_burst(&mut span, after, tokenizer, rng);
        hay = passkey::build(tokenizer, total, depth, key, &span).expect("lengths fit a haystack");
    }
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
