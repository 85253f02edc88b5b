//! The passkey haystack: exact length, the key as five bare digit tokens at the end,
//! the needle where the depth says.

mod common;

use infiniscope::passkey::{build, DIGITS, INTRO, REPETITIVE};

#[test]
fn haystacks_have_the_asked_length_and_end_in_the_key() {
    let model = common::random_tiny();
    let filler = model.tokenizer.encode(REPETITIVE).unwrap();
    for (length, depth, key) in [(200, 0.0, 12345), (1000, 0.5, 7), (4096, 1.0, 99999)] {
        let hay = build(&model.tokenizer, length, depth, key, &filler).unwrap();
        assert_eq!(hay.tokens.len(), length);
        assert_eq!(hay.key, format!("{:05}", key));
        let answer = &hay.tokens[hay.answer_at()..];
        assert_eq!(answer.len(), DIGITS);
        assert_eq!(model.tokenizer.decode(answer).unwrap(), hay.key);
        let text = model.tokenizer.decode(&hay.tokens).unwrap();
        assert!(
            text.ends_with(&format!(
                "What is the pass key? The pass key is {}",
                hay.key
            )),
            "{text}"
        );
        assert!(text.contains(&format!("The pass key is {}. Remember it.", hay.key)));
        // Depth 0 puts the needle right after the intro; depth 1 right before the question.
        let intro = model.tokenizer.encode(INTRO).unwrap().len();
        match depth {
            0.0 => assert_eq!(hay.needle_at, intro),
            1.0 => assert!(text.contains(&format!(
                "{} is the pass key.\nWhat is the pass key?",
                hay.key
            ))),
            _ => {
                let middle = (intro + hay.answer_at()) / 2;
                assert!(
                    hay.needle_at.abs_diff(middle) < 40,
                    "depth {depth}: needle at {} of {length}",
                    hay.needle_at
                );
            }
        }
    }
}

#[test]
fn too_short_haystacks_are_refused() {
    let model = common::random_tiny();
    let filler = model.tokenizer.encode(REPETITIVE).unwrap();
    let err = build(&model.tokenizer, 20, 0.5, 1, &filler)
        .unwrap_err()
        .to_string();
    assert!(err.contains("needs at least"), "{err}");
}
