//! Text files → tokens → an engine, natively: files are read in blocks of
//! [`BLOCK_BYTES`] (cut between words, so the tokens are those of the whole text), so
//! a text of any size streams at constant memory.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::time::Instant;

use crate::engine::Engine;
use crate::stream::Stream;
use crate::taps::{Segment, SegmentOutput, Taps};
use crate::tokenizer::TextReader;
use crate::{Error, Model};

/// Bytes of text read and tokenized at a time.
pub const BLOCK_BYTES: usize = 1 << 20;

pub fn open(path: &Path) -> Result<File, Error> {
    File::open(path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })
}

/// A small text read whole (prompts, tokenizer training), with the same UTF-8 check.
pub fn read_text(path: &Path) -> Result<String, Error> {
    TextReader::new(BufReader::new(open(path)?), BLOCK_BYTES).collect()
}

/// The first `count` tokens of a text file (fewer if it is shorter; at least two).
pub fn first_tokens(model: &Model, path: &Path, count: usize) -> Result<Vec<u32>, Error> {
    let mut tokens = Vec::new();
    for block in TextReader::new(BufReader::new(open(path)?), BLOCK_BYTES) {
        tokens.extend(model.tokenizer.encode(&block?)?);
        if tokens.len() >= count {
            break;
        }
    }
    tokens.truncate(count);
    if tokens.len() < 2 {
        return Err(Error::Text(format!(
            "{} has fewer than two tokens",
            path.display()
        )));
    }
    Ok(tokens)
}

/// Where a [`read_file`] stands after a segment.
pub struct Progress {
    /// Bytes of the file tokenized so far.
    pub bytes_read: u64,
    /// Seconds spent in the engine so far (tokenizing not counted).
    pub seconds: f64,
}

/// Streams a text file through the engine, a chunk of segments per call, at most
/// `limit` tokens; `each` sees every segment and its output in order. Returns the
/// tokens read (at least two, else an error).
pub fn read_file(
    model: &Model,
    engine: &mut Engine,
    path: &Path,
    limit: usize,
    taps: Taps,
    mut each: impl FnMut(&Segment, &SegmentOutput, &Progress),
) -> Result<usize, Error> {
    let mut blocks = TextReader::new(BufReader::new(open(path)?), BLOCK_BYTES);
    let mut stream = Stream::new(model.config.segment_len);
    let mut progress = Progress {
        bytes_read: 0,
        seconds: 0.0,
    };
    // Seconds between chunks, less what `each` takes.
    let mut run = |stream: &mut Stream, engine: &mut Engine, bytes_read: u64| {
        progress.bytes_read = bytes_read;
        let mut since = Instant::now();
        let most = engine.chunk();
        engine.run_stream(stream, most, taps, |chunk, outputs| {
            progress.seconds += since.elapsed().as_secs_f64();
            for (segment, out) in chunk.iter().zip(&outputs) {
                each(segment, out, &progress);
            }
            since = Instant::now();
        })
    };
    let mut n_tokens = 0usize;
    while n_tokens < limit {
        let Some(block) = blocks.next().transpose()? else {
            break;
        };
        let mut tokens = model.tokenizer.encode(&block)?;
        tokens.truncate(limit - n_tokens);
        n_tokens += tokens.len();
        stream.push(&tokens);
        run(&mut stream, engine, blocks.consumed)?;
    }
    if n_tokens < 2 {
        return Err(Error::Text(if n_tokens == 0 {
            format!("{} is empty: nothing to evaluate", path.display())
        } else {
            format!("{} is a single token: evaluating needs at least two (a token and the one it predicts)", path.display())
        }));
    }
    stream.end();
    run(&mut stream, engine, blocks.consumed)?;
    Ok(n_tokens)
}
