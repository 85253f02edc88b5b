//! Text → tokens: the model's byte-level BPE (`tokenizer.json`, HuggingFace
//! `tokenizers` format), and a reader that streams a text of any size in blocks.

use std::collections::HashSet;
use std::io::Read;

use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::models::{ModelWrapper, TrainerWrapper};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::TokenizerBuilder;
use tokenizers::{DecoderWrapper, NormalizerWrapper, PostProcessorWrapper, PreTokenizerWrapper};

use crate::Error;

pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
}

fn tok_err(e: impl std::fmt::Display) -> Error {
    Error::Tokenizer(e.to_string())
}

impl Tokenizer {
    pub fn from_bytes(json: &[u8]) -> Result<Self, Error> {
        // tokenizers 0.22 panics on a JSON syntax error inside "decoder" (an
        // `expect` in its deserializer; on the web a panic kills the page's module):
        // the JSON is read once first (into a Value, which also decodes every string
        // escape, as the decoder's buffering does).
        serde_json::from_slice::<serde_json::Value>(json)
            .map_err(|e| Error::Tokenizer(format!("tokenizer.json is not readable: {e}")))?;
        let inner = tokenizers::Tokenizer::from_bytes(json)
            .map_err(|e| Error::Tokenizer(format!("tokenizer.json is not readable: {e}")))?;
        Ok(Self { inner })
    }

    pub fn to_json(&self) -> Result<String, Error> {
        self.inner.to_string(false).map_err(tok_err)
    }

    /// Ids run from 0 to `vocab_size() - 1`. The largest id plus one, not the count
    /// of entries: a broken tokenizer.json can leave gaps, and every id it can produce
    /// must index the embedding.
    pub fn vocab_size(&self) -> usize {
        let largest = self.inner.get_vocab(true).into_values().max();
        largest.map_or(0, |id| id as usize + 1)
    }

    pub fn encode(&self, text: &str) -> Result<Vec<u32>, Error> {
        Ok(self
            .inner
            .encode_fast(text, false)
            .map_err(tok_err)?
            .get_ids()
            .to_vec())
    }

    pub fn decode(&self, ids: &[u32]) -> Result<String, Error> {
        self.inner.decode(ids, false).map_err(tok_err)
    }

    /// The bytes of the text one token stands for (empty for an unknown id).
    pub fn token_bytes(&self, id: u32) -> Vec<u8> {
        self.inner
            .id_to_token(id)
            .map(|s| s.chars().filter_map(byte_of).collect())
            .unwrap_or_default()
    }

    /// Trains a byte-level BPE with `vocab_size` entries on `texts`. Digits are split
    /// into single tokens first, so numbers (pass keys) are spelled digit by digit.
    pub fn train<I, S>(texts: I, vocab_size: usize) -> Result<Self, Error>
    where
        I: Iterator<Item = S> + Send,
        S: AsRef<str> + Send,
    {
        let pre_tokenizer = Sequence::new(vec![
            Digits::new(true).into(),
            ByteLevel::default().add_prefix_space(false).into(),
        ]);
        let mut tokenizer = TokenizerBuilder::<
            ModelWrapper,
            NormalizerWrapper,
            PreTokenizerWrapper,
            PostProcessorWrapper,
            DecoderWrapper,
        >::new()
        .with_model(BPE::default().into())
        .with_pre_tokenizer(Some(pre_tokenizer.into()))
        .with_decoder(Some(ByteLevel::default().into()))
        .build()
        .map_err(tok_err)?;
        let alphabet: HashSet<char> = ByteLevel::alphabet().into_iter().collect();
        let mut trainer: TrainerWrapper = BpeTrainerBuilder::new()
            .vocab_size(vocab_size)
            .initial_alphabet(alphabet)
            .show_progress(false)
            .build()
            .into();
        tokenizer.train(&mut trainer, texts).map_err(tok_err)?;
        let inner: tokenizers::Tokenizer = tokenizer.into();
        Ok(Self { inner })
    }
}

/// Reads UTF-8 text in blocks of about `block_bytes`, so a text larger than memory is
/// never held whole. Blocks end just before a single space between two non-space
/// characters, where byte-level BPE starts a new word anyway, so tokenizing block by
/// block gives the same tokens as tokenizing the whole text.
pub struct TextReader<R> {
    reader: R,
    block_bytes: usize,
    pending: Vec<u8>,
    /// Bytes of the input handed out so far (for error messages and progress).
    pub consumed: u64,
    eof: bool,
}

impl<R: Read> TextReader<R> {
    pub fn new(reader: R, block_bytes: usize) -> Self {
        Self {
            reader,
            block_bytes: block_bytes.max(16),
            pending: Vec::new(),
            consumed: 0,
            eof: false,
        }
    }

    fn fill(&mut self) -> Result<(), Error> {
        let mut buf = vec![0u8; self.block_bytes];
        while !self.eof && self.pending.len() < self.block_bytes {
            let n = self
                .reader
                .read(&mut buf)
                .map_err(|e| Error::Text(format!("reading the text failed: {e}")))?;
            if n == 0 {
                self.eof = true;
            }
            self.pending.extend_from_slice(&buf[..n]);
        }
        Ok(())
    }

    fn next_block(&mut self) -> Result<Option<String>, Error> {
        self.fill()?;
        if self.pending.is_empty() {
            return Ok(None);
        }
        let valid = match std::str::from_utf8(&self.pending) {
            Ok(_) => self.pending.len(),
            // An incomplete character at the very end continues in the next read.
            Err(e) if e.error_len().is_none() && !self.eof => e.valid_up_to(),
            Err(e) => {
                return Err(Error::Text(format!(
                    "invalid UTF-8 at byte {}: infiniscope reads UTF-8 text",
                    self.consumed + e.valid_up_to() as u64
                )))
            }
        };
        let text = std::str::from_utf8(&self.pending[..valid]).expect("validated above");
        let cut = if self.eof && valid == self.pending.len() {
            valid
        } else {
            word_boundary(text).unwrap_or(valid)
        };
        if cut == 0 {
            // Fewer bytes than one character: read more.
            self.block_bytes *= 2;
            return self.next_block();
        }
        let block = String::from_utf8(self.pending.drain(..cut).collect()).expect("validated");
        self.consumed += cut as u64;
        Ok(Some(block))
    }
}

/// The last byte offset in `text` that holds a space between two non-whitespace
/// characters, if any.
fn word_boundary(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    (1..bytes.len().saturating_sub(1)).rev().find(|&i| {
        bytes[i] == b' '
            && !bytes[i - 1].is_ascii_whitespace()
            && !bytes[i + 1].is_ascii_whitespace()
    })
}

impl<R: Read> Iterator for TextReader<R> {
    type Item = Result<String, Error>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_block().transpose()
    }
}

/// The byte a character of the byte-level alphabet stands for (GPT-2's table:
/// printable Latin-1 bytes are themselves, the other 68 bytes are U+0100.. in order).
fn byte_of(c: char) -> Option<u8> {
    let printable = |b: u32| (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || b >= 0xae;
    let code = c as u32;
    if code < 256 {
        return printable(code).then_some(code as u8);
    }
    (0u32..256)
        .filter(|&b| !printable(b))
        .nth((code - 256) as usize)
        .map(|b| b as u8)
}

/// Turns tokens one at a time into the text each adds. Byte-level BPE can split a
/// character over tokens; its bytes are carried until the character is whole, so
/// the pieces joined are exactly the decoded text.
#[derive(Default)]
pub struct Pieces {
    carry: Vec<u8>,
}

impl Pieces {
    pub fn next(&mut self, tokenizer: &Tokenizer, id: u32) -> String {
        self.carry.extend(tokenizer.token_bytes(id));
        let whole = match std::str::from_utf8(&self.carry) {
            Ok(_) => self.carry.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            // Not UTF-8 and never will be (a model can generate any bytes).
            Err(_) => {
                let text = String::from_utf8_lossy(&self.carry).into_owned();
                self.carry.clear();
                return text;
            }
        };
        let piece: Vec<u8> = self.carry.drain(..whole).collect();
        String::from_utf8(piece).expect("validated above")
    }
}

const MAX_PENDING: usize = 1 << 16;

/// Tokenizes a text handed over in pieces of any size (a 50 MB paste, a few KB at a
/// time), giving the same tokens as the whole text at once: it encodes up to the
/// last word boundary and keeps the rest for the next piece.
#[derive(Default)]
pub struct StreamEncoder {
    pending: String,
}

impl StreamEncoder {
    pub fn push(&mut self, tokenizer: &Tokenizer, text: &str) -> Result<Vec<u32>, Error> {
        self.pending.push_str(text);
        // A long run without spaces (CJK text, garbage) is cut anyway, as TextReader
        // does, so no push takes more than a bounded amount of work.
        let cut = word_boundary(&self.pending).or_else(|| {
            (self.pending.len() > MAX_PENDING).then(|| {
                self.pending
                    .char_indices()
                    .next_back()
                    .map_or(0, |(i, _)| i)
            })
        });
        match cut {
            Some(cut) => {
                let rest = self.pending.split_off(cut);
                let head = std::mem::replace(&mut self.pending, rest);
                tokenizer.encode(&head)
            }
            None => Ok(Vec::new()),
        }
    }

    pub fn finish(&mut self, tokenizer: &Tokenizer) -> Result<Vec<u32>, Error> {
        tokenizer.encode(&std::mem::take(&mut self.pending))
    }
}
