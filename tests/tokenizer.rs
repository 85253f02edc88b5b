//! The byte-level BPE: lossless, digits one by one, and the same tokens whether a
//! text is tokenized whole or streamed in chunks.

mod common;

use infiniscope::tokenizer::{TextChunks, Tokenizer};

const SAMPLE: &str = include_str!("../samples/paradise-lost.txt");

#[test]
fn encode_decode_is_lossless() {
    let model = common::random_tiny();
    let hard = "Emoji 🦀👩‍👩‍👧, combining e\u{301}\u{308}, CJK 無限, tabs\t\tand\r\nCRLF, <script>alert(1)</script>, \u{0}";
    for text in [SAMPLE, hard, "", " ", "\n\n\n"] {
        let ids = model.tokenizer.encode(text).unwrap();
        assert_eq!(model.tokenizer.decode(&ids).unwrap(), text);
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
    for chunk in TextChunks::new(SAMPLE.as_bytes(), 4096) {
        chunked.extend(model.tokenizer.encode(&chunk.unwrap()).unwrap());
    }
    assert_eq!(chunked, whole);
}
