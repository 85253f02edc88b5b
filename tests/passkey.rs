//! The passkey haystack: exact length, the key as five bare digit tokens at the end,
//! the needle where the depth says.

mod common;

use std::sync::Arc;

use infiniscope::engine::Engine;
use infiniscope::gpu::GpuModel;
use infiniscope::passkey::{ask, build, DIGITS, INTRO, REPETITIVE};
use infiniscope::reference::Reference;
use infiniscope::taps::Taps;
use infiniscope::{Model, RunOptions};

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

/// `ask`'s two answers, checked against plain full reads of the haystack: the
/// teacher-forced digits are the argmax after each given digit, and the free-running
/// answer is greedy generation, each token the argmax after the question and the
/// tokens generated before it. The shipped model, with haystacks of many segments so
/// the chunked prefill, the memory saved and put back between the two answers, and
/// the open segment all count; the needle at depth 1 lies in the segment before the
/// question's.
fn ask_matches_full_reads(mut engine: Engine, model: &Model) {
    let n = model.config.segment_len;
    let filler = model.tokenizer.encode(REPETITIVE).unwrap();
    // The last position to predict: every next-token argmax of a full read of `tokens`.
    let argmax = |engine: &mut Engine, tokens: &[u32]| -> Vec<u32> {
        engine.reset();
        let taps = Taps {
            loss: true,
            ..Taps::default()
        };
        let mut out = Vec::new();
        for segment in infiniscope::segment::segments(tokens, n) {
            out.extend(engine.segment(&segment, taps).unwrap().argmax.unwrap());
        }
        out
    };
    for (length, depth, key) in [
        (7 * n + 5, 0.3, 40213),
        (5 * n, 1.0, 12345),
        (6 * n + 20, 1.0, 77951),
    ] {
        let hay = build(&model.tokenizer, length, depth, key, &filler).unwrap();
        let answer = ask(&mut engine, &model.tokenizer, &hay, n).unwrap();
        let at = hay.answer_at();
        let forced = argmax(&mut engine, &hay.tokens);
        let right = (at..length)
            .filter(|&i| forced[i - 1] == hay.tokens[i])
            .count();
        assert_eq!(
            answer.digits_right, right,
            "teacher-forced digits of {}",
            hay.key
        );
        let mut greedy = hay.tokens[..at].to_vec();
        for _ in 0..DIGITS {
            let next = *argmax(&mut engine, &greedy).last().unwrap();
            greedy.push(next);
        }
        let want = model.tokenizer.decode(&greedy[at..]).unwrap();
        assert_eq!(answer.generated, want, "greedy answer for {}", hay.key);
        assert_eq!(answer.whole, want == hay.key);
    }
}

fn shipped() -> Arc<Model> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/models/infini-tiny");
    Arc::new(Model::load(std::path::Path::new(path)).unwrap())
}

#[test]
fn ask_reports_teacher_forced_digits_and_greedy_generation() {
    let model = shipped();
    let options = RunOptions::for_config(&model.config);
    ask_matches_full_reads(
        Engine::Cpu(Reference::new(Arc::clone(&model), options)),
        &model,
    );
}

#[test]
fn ask_on_the_gpu_engine_puts_its_memory_back() {
    let model = shipped();
    let shared = GpuModel::upload(common::gpu(), Arc::clone(&model)).expect("upload");
    ask_matches_full_reads(
        Engine::on(shared, RunOptions::for_config(&model.config)),
        &model,
    );
}
