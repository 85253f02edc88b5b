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

/// Digits of the key the model gets right reading `haystack` from an empty memory:
/// its argmax at each answer position, every digit predicted with the earlier ones given.
#[cfg(not(target_arch = "wasm32"))]
pub fn digits_right(
    engine: &mut crate::engine::Engine,
    haystack: &Passkey,
    segment_len: usize,
) -> Result<usize, Error> {
    let taps = crate::taps::Taps {
        loss: true,
        ..Default::default()
    };
    engine.reset();
    let mut stream = crate::stream::Stream::new(segment_len);
    stream.push(&haystack.tokens);
    stream.end();
    let mut argmax = Vec::with_capacity(haystack.tokens.len());
    let most = engine.chunk();
    engine.run_stream(&mut stream, most, taps, |_, outputs| {
        for out in outputs {
            argmax.extend(out.argmax.expect("argmax tapped"));
        }
    })?;
    let at = haystack.answer_at();
    Ok((at..haystack.tokens.len())
        .filter(|&i| argmax[i - 1] == haystack.tokens[i])
        .count())
}
