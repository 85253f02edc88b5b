//! The passkey retrieval task of the paper (§4.2): a five-digit key hidden at a given
//! depth of filler text, then asked for at the end. Built at the token level so the
//! trainer, the CLI and the page all make exactly the same haystacks.

use crate::tokenizer::Tokenizer;
use crate::Error;

pub const INTRO: &str = "There is an important info hidden inside a lot of irrelevant text. \
Find it and memorize it. I will quiz you about the important information there.\n";
/// The paper's repetitive filler.
pub const REPETITIVE: &str =
    "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.\n";
/// Ends in a space, so each of the five answer digits is a bare digit token.
pub const QUESTION: &str = "What is the pass key? The pass key is ";
pub const DIGITS: usize = 5;

fn needle(key: &str) -> String {
    format!("The pass key is {key}. Remember it. {key} is the pass key.\n")
}

/// A haystack of exactly `length` tokens whose last [`DIGITS`] tokens are the key.
#[derive(Clone, Debug)]
pub struct Passkey {
    pub tokens: Vec<u32>,
    pub key: String,
    /// Token position where the needle starts.
    pub needle_at: usize,
}

impl Passkey {
    /// Position of the first answer digit: the prediction for it is made at `answer_at() - 1`.
    pub fn answer_at(&self) -> usize {
        self.tokens.len() - DIGITS
    }
}

/// Builds a haystack of `length` tokens: the intro, filler tokens (repeated from
/// `filler`), the needle at `depth` ∈ [0, 1] of the filler, the question and the
/// key's digits. Fails if `length` cannot hold the fixed parts.
pub fn build(
    tokenizer: &Tokenizer,
    length: usize,
    depth: f32,
    key: u32,
    filler: &[u32],
) -> Result<Passkey, Error> {
    let key = format!("{:05}", key % 100_000);
    let intro = tokenizer.encode(INTRO)?;
    let needle_tokens = tokenizer.encode(&needle(&key))?;
    let question = tokenizer.encode(QUESTION)?;
    let answer = tokenizer.encode(&key)?;
    if answer.len() != DIGITS {
        return Err(Error::Tokenizer(format!(
            "the key {key} is {} tokens, not one per digit",
            answer.len()
        )));
    }
    let fixed = intro.len() + needle_tokens.len() + question.len() + DIGITS;
    if length < fixed || filler.is_empty() {
        return Err(Error::Text(format!(
            "a passkey haystack needs at least {fixed} tokens and some filler"
        )));
    }
    let fill = length - fixed;
    let before = ((fill as f32) * depth.clamp(0.0, 1.0)).round() as usize;
    let mut tokens = intro;
    tokens.extend(filler.iter().cycle().take(before));
    let needle_at = tokens.len();
    tokens.extend(needle_tokens);
    tokens.extend(filler.iter().cycle().skip(before).take(fill - before));
    tokens.extend(question);
    tokens.extend(answer);
    debug_assert_eq!(tokens.len(), length);
    Ok(Passkey {
        tokens,
        key,
        needle_at,
    })
}

/// The key of trial `trial` at a length and depth: fixed, so every run (and every
/// engine) asks for the same keys.
pub fn trial_key(trial: usize, length: usize, depth: f32) -> u32 {
    (trial as u32 * 7919 + length as u32 * 31 + (depth * 1000.0) as u32) * 104_729 % 100_000
}

/// What the model answers for one haystack, measured two ways.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// Teacher-forced: digits whose argmax is right with the earlier key digits given.
    /// This overstates retrieval (a model can get each digit right given the others).
    pub digits_right: usize,
    /// Free-running: the text of the [`DIGITS`] tokens greedy generation writes after
    /// the question.
    pub generated: String,
    /// Whether `generated` is the key, all five digits: what counts as retrieval.
    pub whole: bool,
}

/// Reads `haystack` up to the question's segment once, from an empty memory, through
/// the chunked stream (a 1M-token haystack reads at `eval`'s speed), then answers
/// twice from that memory: the question's segment with the answer given
/// (teacher-forced digits), and, the memory put back, greedy generation of
/// [`DIGITS`] tokens after the question (free-running).
#[cfg(not(target_arch = "wasm32"))]
pub fn ask(
    engine: &mut crate::engine::Engine,
    tokenizer: &Tokenizer,
    haystack: &Passkey,
    segment_len: usize,
) -> Result<Answer, Error> {
    use crate::generate::{Generator, OpenSegment};
    use crate::stream::Stream;
    use crate::taps::Taps;

    let at = haystack.answer_at();
    // The question's last segment starts here: the answer's first digit is predicted
    // from its last token.
    let open = (at - 1) / segment_len * segment_len;
    engine.reset();
    let mut stream = Stream::new(segment_len);
    // One token more, so that the segment before the question is complete (the
    // segmenter holds a segment back until its last target is known); that token
    // stays with the segmenter, never run.
    stream.push(&haystack.tokens[..=open]);
    engine.run_stream(&mut stream, engine.chunk(), Taps::default(), |_, _| {})?;
    let before = engine.save();

    let loss = Taps {
        loss: true,
        ..Taps::default()
    };
    let mut argmax = Vec::with_capacity(haystack.tokens.len() - open);
    for mut segment in crate::segment::segments(&haystack.tokens[open..], segment_len) {
        segment.index += open / segment_len;
        argmax.extend(
            engine
                .segment(&segment, loss)?
                .argmax
                .expect("argmax tapped"),
        );
    }
    let digits_right = (at..haystack.tokens.len())
        .filter(|&i| argmax[i - 1 - open] == haystack.tokens[i])
        .count();

    engine.restore(&before)?;
    let logits = Taps {
        logits: true,
        ..Taps::default()
    };
    let question = haystack.tokens[open..at].to_vec();
    // Temperature 0 never draws from the seeded generator.
    let mut generator = Generator::new(
        OpenSegment::new(open / segment_len, question, segment_len),
        0,
    );
    let mut generated = String::new();
    for _ in 0..DIGITS {
        let out = engine.segment(&generator.segment(), logits)?;
        generated += &generator.next(tokenizer, &out.logits.expect("logits tapped"), 0.0);
    }
    let whole = generated == haystack.key;
    Ok(Answer {
        digits_right,
        generated,
        whole,
    })
}
