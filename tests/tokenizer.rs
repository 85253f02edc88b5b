//! The byte-level BPE: lossless, digits one by one, and the same tokens whether a
//! text is tokenized whole or streamed in chunks.

mod common;

use infiniscope::tokenizer::{Pieces, StreamEncoder, TextReader, Tokenizer};

const SAMPLE: &str = include_str!("../samples/paradise-lost.txt");

const HARD: &str = "Emoji 🦀👩‍👩‍👧, combining e\u{301}\u{308}, CJK 無限, tabs\t\tand\r\nCRLF, <script>alert(1)</script>, \u{0}";

#[test]
fn encode_decode_is_lossless() {
    let model = common::random_tiny();
    for text in [SAMPLE, HARD, "", " ", "\n\n\n"] {
        let ids = model.tokenizer.encode(text).unwrap();
        assert_eq!(model.tokenizer.decode(&ids).unwrap(), text);
    }
}

/// The page tints each token's own text: the pieces must add up to the text exactly,
/// characters split over tokens included.
#[test]
fn token_pieces_join_to_the_text() {
    let model = common::random_tiny();
    for text in [&SAMPLE[..20_000], HARD] {
        let ids = model.tokenizer.encode(text).unwrap();
        let mut pieces = Pieces::default();
        let joined: String = ids
            .iter()
            .map(|&id| pieces.next(&model.tokenizer, id))
            .collect();
        assert_eq!(joined, text);
    }
    // Somewhere a character is split: its first token's piece is empty.
    let ids = model.tokenizer.encode("無限無限").unwrap();
    let mut pieces = Pieces::default();
    let split: Vec<String> = ids
        .iter()
        .map(|&id| pieces.next(&model.tokenizer, id))
        .collect();
    assert!(
        ids.len() > 4 && split.iter().any(String::is_empty),
        "{split:?}"
    );
}

#[test]
fn streamed_pieces_tokenize_like_the_whole() {
    let model = common::random_tiny();
    let text = format!("{}{HARD}", &SAMPLE[..30_000]);
    let whole = model.tokenizer.encode(&text).unwrap();
    let chars: Vec<char> = text.chars().collect();
    for size in [1, 7, 100, 4096] {
        let mut encoder = StreamEncoder::default();
        let mut streamed = Vec::new();
        for piece in chars.chunks(size) {
            let piece: String = piece.iter().collect();
            streamed.extend(encoder.push(&model.tokenizer, &piece).unwrap());
        }
        streamed.extend(encoder.finish(&model.tokenizer).unwrap());
        assert_eq!(streamed, whole, "pieces of {size} characters");
    }
}

#[test]
fn digits_are_single_tokens() {
    let tokenizer = Tokenizer::train(
        ["pass key 12345 then 67890 and 12345 again 12345"].iter(),
        300,
    )
    .unwrap();
    let ids = tokenizer.encode("The pass key is 90125.").unwrap();
    let pieces: Vec<String> = ids
        .iter()
        .map(|&i| tokenizer.decode(&[i]).unwrap())
        .collect();
    for digit in ["9", "0", "1", "2", "5"] {
        assert!(pieces.iter().any(|p| p == digit), "{digit} in {pieces:?}");
    }
    assert!(
        pieces
            .iter()
            .all(|p| p.chars().filter(char::is_ascii_digit).count() <= 1),
        "{pieces:?}"
    );
}

#[test]
fn chunked_tokenization_equals_whole() {
    let model = common::random_tiny();
    let whole = model.tokenizer.encode(SAMPLE).unwrap();
    let mut chunked = Vec::new();
    for chunk in TextReader::new(SAMPLE.as_bytes(), 4096) {
        chunked.extend(model.tokenizer.encode(&chunk.unwrap()).unwrap());
    }
    assert_eq!(chunked, whole);
}
