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
