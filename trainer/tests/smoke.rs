//! The trainer's model agrees with infiniscope's engines, is causal, and learns.

use std::sync::Arc;

use burn::prelude::*;
use burn::tensor::{Int, TensorData};

use infiniscope::reference::Reference;
use infiniscope::taps::Taps;
use infiniscope::tokenizer::Tokenizer;
use infiniscope::weights::{StoredDtype, Weights};
use infiniscope::{Model, RunOptions, UpdateRule};
use trainer::data::Example;
use trainer::model::{InfiniModel, Order, Shape};
use trainer::train;

const TEXT: &str = include_str!("../../samples/paradise-lost.txt");

fn smoke(rule: UpdateRule) -> (infiniscope::Config, Tokenizer) {
    let config = train::config("smoke", rule).unwrap();
    let tokenizer =
        Tokenizer::train(TEXT[..20_000].split_inclusive('\n'), config.vocab_size).unwrap();
    (config, tokenizer)
}

/// Both update rules, and the shift variant (beyond the paper, three taps on the keys,
/// two on the queries) with the delta rule: (rule, key_shift, query_shift).
const VARIANTS: [(UpdateRule, usize, usize); 3] = [
    (UpdateRule::Delta, 0, 0),
    (UpdateRule::Linear, 0, 0),
    (UpdateRule::Delta, 3, 2),
];

fn tokens_tensor(tokens: &[u32], device: &Device) -> Tensor<2, Int> {
    let ids: Vec<i64> = tokens.iter().map(|&t| t as i64).collect();
    Tensor::from_data(TensorData::new(ids, [1, tokens.len()]), device)
}

/// Per-position loss of the burn model, and the engine's, on the same text.
#[test]
fn engines_reproduce_the_trainers_loss() {
    for (rule, key_shift, query_shift) in VARIANTS {
        let (mut config, tokenizer) = smoke(rule);
        config.key_shift = key_shift;
        config.query_shift = query_shift;
        let device = Device::flex();
        let mut weights = Weights::random(&config, 5);
        for layer in &mut weights.layers {
            layer.beta = vec![1.5, -0.5]; // memory matters in the mix
        }
        let burn_model = InfiniModel::from_weights(&config, &weights, &device);
        let tokens = tokenizer.encode(&TEXT[30_000..31_000]).unwrap();
        let tokens = &tokens[..5 * config.segment_len + 4]; // last segment short
        let logits = burn_model.forward(
            tokens_tensor(&tokens[..tokens.len() - 1], &device),
            &Shape::of(&config, true),
        );
        let [_, t, v] = logits.dims();
        let logits = logits.try_into_vec_as::<f32>().unwrap();
        let want: Vec<f32> = (0..t)
            .map(|i| {
                let row = &logits[i * v..(i + 1) * v];
                let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let lse = row.iter().map(|x| (x - max).exp()).sum::<f32>().ln() + max;
                lse - row[tokens[i + 1] as usize]
            })
            .collect();
        let trainer_loss = want.iter().sum::<f32>() / want.len() as f32;

        // Through the file format, as the engines load it.
        let dir = tempfile::tempdir().unwrap();
        let model = Model {
            config: config.clone(),
            weights: burn_model.to_weights(),
            tokenizer,
            stored_dtype: StoredDtype::F32,
        };
        model.save(dir.path(), StoredDtype::F32).unwrap();
        let model = Arc::new(Model::load(dir.path()).unwrap());
        let segments = infiniscope::segment::segments(&tokens[..tokens.len()], config.segment_len);
        let mut cpu = Reference::new(Arc::clone(&model), RunOptions::for_config(&config));
        let mut gpu =
            infiniscope::engine::Engine::gpu(Arc::clone(&model), RunOptions::for_config(&config))
                .expect("a GPU adapter (lavapipe in CI)");
        let taps = Taps {
            loss: true,
            ..Taps::default()
        };
        let (mut cpu_losses, mut gpu_losses) = (Vec::new(), Vec::new());
        for segment in &segments {
            cpu_losses.extend(cpu.segment(segment, taps).unwrap().loss.unwrap());
            gpu_losses.extend(gpu.segment(segment, taps).unwrap().loss.unwrap());
        }
        for (name, got) in [("CPU reference", &cpu_losses), ("GPU engine", &gpu_losses)] {
            assert_eq!(got.len(), want.len());
            let mean = got.iter().sum::<f32>() / got.len() as f32;
            assert!(
                (mean - trainer_loss).abs() <= 1e-3 * trainer_loss,
                "{rule:?} shifts {key_shift}/{query_shift} {name}: {mean} vs trainer {trainer_loss}"
            );
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g - w).abs() <= 1e-3 * w.abs().max(1.0),
                    "{rule:?} shifts {key_shift}/{query_shift} {name} position {i}: {g} vs {w}"
                );
            }
        }
    }
}

#[test]
fn trainer_model_is_causal_across_segments() {
    let (config, _) = smoke(UpdateRule::Delta);
    let device = Device::flex();
    let model = InfiniModel::from_weights(&config, &Weights::random(&config, 6), &device);
    let shape = Shape::of(&config, true);
    let tokens: Vec<u32> = (0..4 * config.segment_len as u32)
        .map(|i| (i * 37 + 11) % config.vocab_size as u32)
        .collect();
    let before = model
        .forward(tokens_tensor(&tokens, &device), &shape)
        .try_into_vec_as::<f32>()
        .unwrap();
    let changed = 2 * config.segment_len + 3;
    let mut edited = tokens.clone();
    edited[changed] = (edited[changed] + 1) % config.vocab_size as u32;
    let after = model
        .forward(tokens_tensor(&edited, &device), &shape)
        .try_into_vec_as::<f32>()
        .unwrap();
    let split = changed * config.vocab_size;
    let leak = before[..split]
        .iter()
        .zip(&after[..split])
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        leak < 1e-5,
        "a later token changed an earlier logit by {leak}"
    );
    assert!(
        before[split..] != after[split..],
        "the edit must change later logits"
    );
}

#[test]
fn a_few_steps_lower_the_loss_and_move_the_gates() {
    let (config, tokenizer) = smoke(UpdateRule::Delta);
    let device = Device::flex().autodiff();
    let mut model = InfiniModel::from_weights(&config, &Weights::random(&config, 7), &device);
    let shape = Shape::of(&config, true);
    let tokens = tokenizer.encode(&TEXT[40_000..44_000]).unwrap();
    let length = 4 * config.segment_len;
    let examples: Vec<Example> = (0..4)
        .map(|i| Example {
            tokens: tokens[i * length..(i + 1) * length + 1].to_vec(),
            weights: vec![1.0; length],
            answer_at: None,
            needle_at: None,
        })
        .collect();
    let (mut opt_main, mut opt_gates) = train::optimizers();
    let beta_before: Vec<f32> = model
        .layers
        .iter()
        .flat_map(|l| l.beta.val().try_into_vec_as::<f32>().unwrap())
        .collect();
    let mut losses = Vec::new();
    // Every other step starts from the memory the step before left (`--carry`).
    let mut carried = model.empty_memory();
    for i in 0..12 {
        let empty = model.empty_memory();
        let stepped = train::step(
            model,
            &shape,
            &examples,
            if i % 2 == 1 { &carried } else { &empty },
            (&mut opt_main, &mut opt_gates),
            (3e-3, 1e-2),
        );
        model = stepped.model;
        carried = stepped.memory;
        assert!(stepped.loss.is_finite());
        losses.push(stepped.loss);
    }
    let beta_after: Vec<f32> = model
        .layers
        .iter()
        .flat_map(|l| l.beta.val().try_into_vec_as::<f32>().unwrap())
        .collect();
    assert!(losses[11] < losses[0] - 0.5, "loss {losses:?}");
    assert!(
        beta_before.iter().zip(&beta_after).all(|(a, b)| a != b),
        "every gate gets gradient: {beta_before:?} → {beta_after:?}"
    );
}

/// The layer-by-layer forward (every segment's projections, attention and MLP at once,
/// only M and z walked in order) gives the logits and the gradients of the definition:
/// one segment at a time through the whole stack. Both rules, two sequences, a short
/// last segment, gates away from 0.5 so the memory read matters.
#[test]
fn layered_forward_and_gradients_equal_segment_by_segment() {
    for (rule, key_shift, query_shift) in VARIANTS {
        let (mut config, _) = smoke(rule);
        config.key_shift = key_shift;
        config.query_shift = query_shift;
        let device = Device::flex().autodiff();
        let mut weights = Weights::random(&config, 8);
        for layer in &mut weights.layers {
            layer.beta = vec![2.0, -1.0];
        }
        let model = InfiniModel::from_weights(&config, &weights, &device);
        let layered = Shape::of(&config, true);
        let by_segment = Shape {
            order: Order::BySegment,
            ..layered
        };
        // Ten segments: the layered walk cuts them in groups of four, the last of two.
        let length = 9 * config.segment_len + 3;
        let ids: Vec<i64> = (0..2 * length)
            .map(|i| ((i * 53 + 7) % config.vocab_size) as i64)
            .collect();
        let tokens = Tensor::<2, Int>::from_data(TensorData::new(ids, [2, length]), &device);
        // A loss that weighs every logit differently, so every gradient path counts.
        let mix = Tensor::<3>::from_data(
            TensorData::new(
                (0..2 * length * config.vocab_size)
                    .map(|i| ((i * 7919) % 101) as f32 / 101.0 - 0.5)
                    .collect::<Vec<f32>>(),
                [2, length, config.vocab_size],
            ),
            &device,
        );
        let run = |shape: &Shape| {
            let logits = model.forward(tokens.clone(), shape);
            let grads = (logits.clone() * mix.clone()).sum().backward();
            let grad_of = |p: &burn::module::Param<Tensor<2>>| -> Vec<f32> {
                p.val()
                    .grad(&grads)
                    .unwrap()
                    .try_into_vec_as::<f32>()
                    .unwrap()
            };
            let mut g = grad_of(&model.embed);
            for l in &model.layers {
                g.extend(grad_of(&l.wq));
                g.extend(grad_of(&l.wk));
                g.extend(grad_of(&l.wv));
                for shift in l.key_shift.iter().chain(&l.query_shift) {
                    g.extend(grad_of(shift));
                }
                g.extend(
                    l.beta
                        .val()
                        .grad(&grads)
                        .unwrap()
                        .try_into_vec_as::<f32>()
                        .unwrap(),
                );
            }
            (logits.try_into_vec_as::<f32>().unwrap(), g)
        };
        let (layered, layered_grads) = run(&layered);
        let (by_segment, by_segment_grads) = run(&by_segment);
        let close = |a: &[f32], b: &[f32], what: &str| {
            assert_eq!(a.len(), b.len());
            let scale = b.iter().fold(0.0f32, |m, x| m.max(x.abs()));
            let worst = a
                .iter()
                .zip(b)
                .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
            assert!(
                worst <= 1e-4 * scale.max(1.0),
                "{rule:?} shifts {key_shift}/{query_shift} {what}: differ by {worst} (scale {scale})"
            );
        };
        close(&layered, &by_segment, "logits");
        close(&layered_grads, &by_segment_grads, "gradients");
    }
}

/// A sequence started from the memory another one left reads exactly as the second
/// half of the two read as one text, for each sequence it is given to: what `--carry`
/// relies on.
#[test]
fn a_sequence_continues_from_a_carried_memory() {
    for rule in [UpdateRule::Delta, UpdateRule::Linear] {
        let (config, _) = smoke(rule);
        let device = Device::flex();
        let mut weights = Weights::random(&config, 9);
        for layer in &mut weights.layers {
            layer.beta = vec![1.5, -0.5];
        }
        let model = InfiniModel::from_weights(&config, &weights, &device);
        let n = config.segment_len;
        let tokens: Vec<u32> = (0..6 * n as u32)
            .map(|i| (i * 29 + 5) % config.vocab_size as u32)
            .collect();
        for order in [Order::Layered, Order::BySegment] {
            let shape = Shape {
                order,
                ..Shape::of(&config, true)
            };
            let whole = model
                .forward(tokens_tensor(&tokens, &device), &shape)
                .narrow(1, 3 * n, 3 * n)
                .try_into_vec_as::<f32>()
                .unwrap();
            let (_, left) = model.forward_from(
                tokens_tensor(&tokens[..3 * n], &device),
                &shape,
                model.empty_memory(),
            );
            let carried = left
                .iter()
                .map(|m| m.as_ref().map(|m| m.first_detached().repeat(2)))
                .collect();
            let second = tokens_tensor(&tokens[3 * n..], &device);
            let (continued, _) = model.forward_from(
                Tensor::cat(vec![second.clone(), second], 0),
                &shape,
                carried,
            );
            let continued = continued.try_into_vec_as::<f32>().unwrap();
            for copy in continued.chunks(whole.len()) {
                let worst = whole
                    .iter()
                    .zip(copy)
                    .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
                assert!(
                    worst < 1e-4,
                    "{rule:?} {order:?}: carried read differs by {worst}"
                );
            }
        }
    }
}

/// A corpus of the sample's first 70,000 characters: 60,000 to train on, the rest held out.
fn sample_corpus(tokenizer: &Tokenizer) -> trainer::data::Corpus {
    let dir = tempfile::tempdir().unwrap();
    for (split, text) in [("train", &TEXT[..60_000]), ("valid", &TEXT[60_000..70_000])] {
        std::fs::create_dir(dir.path().join(split)).unwrap();
        std::fs::write(dir.path().join(split).join("book.txt"), text).unwrap();
    }
    trainer::data::Corpus::load(dir.path(), tokenizer).unwrap()
}

/// Passkey haystacks put the needle in a segment before the question's, except a share
/// `LATE_NEEDLE_SHARE` that puts it right before the question (the evaluation's depth 1).
#[test]
fn passkey_haystacks_place_the_needle_before_the_question_or_right_at_it() {
    use rand::SeedableRng;
    use trainer::data::{passkey_example, AnswerWeight, Filler, ANSWER_WEIGHT, LATE_NEEDLE_SHARE};
    let (config, tokenizer) = smoke(UpdateRule::Delta);
    let corpus = sample_corpus(&tokenizer);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let (length, n, draws) = (512, config.segment_len, 400);
    // From a needle right before the question to the answer: the needle and the question.
    let filler = &corpus.train[0].tokens;
    let hay = infiniscope::passkey::build(&tokenizer, length + 1, 1.0, 12345, filler).unwrap();
    let late_gap = hay.answer_at() - hay.needle_at;
    let mut late = 0;
    for _ in 0..draws {
        let filler = Filler {
            prose: 0.5,
            numbers: 0.5,
            bursts: 0.5,
        };
        let weight = AnswerWeight::PerToken(ANSWER_WEIGHT);
        let example = passkey_example(&corpus, &tokenizer, &mut rng, length, n, filler, weight);
        let (needle, answer) = (example.needle_at.unwrap(), example.answer_at.unwrap());
        if answer - needle == late_gap {
            late += 1;
        } else {
            let question_segment = (answer - 1) / n * n;
            assert!(
                needle + 32 < question_segment,
                "needle at {needle}, answer at {answer}"
            );
        }
    }
    let share = late as f64 / draws as f64;
    assert!(
        (share - LATE_NEEDLE_SHARE).abs() < 0.06,
        "{late} of {draws} needles right before the question"
    );
}

/// `--answer-share`: the answer digits carry the same share of a haystack's loss weight
/// at every length; without it each digit weighs 5, whatever the length.
#[test]
fn the_answer_share_holds_at_every_length() {
    use rand::SeedableRng;
    use trainer::data::{passkey_example, AnswerWeight, Filler, ANSWER_WEIGHT};
    let (config, tokenizer) = smoke(UpdateRule::Delta);
    let corpus = sample_corpus(&tokenizer);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let filler = Filler {
        prose: 0.5,
        numbers: 0.0,
        bursts: 0.0,
    };
    for length in [256, 1024, 4096] {
        let n = config.segment_len;
        let share = passkey_example(
            &corpus,
            &tokenizer,
            &mut rng,
            length,
            n,
            filler,
            AnswerWeight::Share(0.2),
        );
        let fixed = passkey_example(
            &corpus,
            &tokenizer,
            &mut rng,
            length,
            n,
            filler,
            AnswerWeight::PerToken(ANSWER_WEIGHT),
        );
        let answer_share = |e: &trainer::data::Example| {
            let answer: f32 = e.weights[e.answer_at.unwrap() - 1..].iter().sum();
            answer / e.weights.iter().sum::<f32>()
        };
        assert!(
            (answer_share(&share) - 0.2).abs() < 1e-4,
            "{length}: {}",
            answer_share(&share)
        );
        let digits = length + 1 - fixed.answer_at.unwrap();
        let answer = ANSWER_WEIGHT * digits as f32;
        let expected = answer / ((length - digits) as f32 + answer);
        assert!(
            (answer_share(&fixed) - expected).abs() < 1e-5,
            "{length}: {}",
            answer_share(&fixed)
        );
    }
}

/// Numbers spliced into prose filler (`--number-filler`): the span keeps its length and
/// gains digits, and the haystack still asks for its own key.
#[test]
fn number_filler_adds_digits_and_keeps_the_key() {
    use rand::SeedableRng;
    use trainer::data::{add_numbers, passkey_example, AnswerWeight, Filler, ANSWER_WEIGHT};
    let (config, tokenizer) = smoke(UpdateRule::Delta);
    let corpus = sample_corpus(&tokenizer);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let digits = |tokens: &[u32]| {
        let text = tokenizer.decode(tokens).unwrap();
        text.chars().filter(char::is_ascii_digit).count()
    };
    let mut span = corpus.train[0].tokens[..512].to_vec();
    let before = digits(&span);
    add_numbers(&mut span, &tokenizer, &mut rng);
    assert_eq!(span.len(), 512);
    assert!(
        digits(&span) > before,
        "{before} digits before, {} after",
        digits(&span)
    );

    let filler = Filler {
        prose: 1.0,
        numbers: 1.0,
        bursts: 0.0,
    };
    for _ in 0..20 {
        let example = passkey_example(
            &corpus,
            &tokenizer,
            &mut rng,
            512,
            config.segment_len,
            filler,
            AnswerWeight::PerToken(ANSWER_WEIGHT),
        );
        let answer = example.answer_at.unwrap();
        let key = tokenizer
            .decode(&example.tokens[answer..answer + 5])
            .unwrap();
        assert!(
            key.len() == 5 && key.chars().all(|c| c.is_ascii_digit()),
            "answer {key:?}"
        );
        let needle = tokenizer
            .decode(&example.tokens[example.needle_at.unwrap()..answer])
            .unwrap();
        assert!(
            needle.contains(&format!("is {key}")),
            "the needle holds {key}: {needle:?}"
        );
    }
}

/// `--number-bursts`: a burst puts 4–12 numbers within a few segments, and half the
/// bursts land right after the needle, as *Persuasion*'s dated opening follows a needle
/// at depth 0; the haystack still asks for its own key.
#[test]
fn number_bursts_crowd_the_needle() {
    use rand::SeedableRng;
    use trainer::data::{add_burst, passkey_example, AnswerWeight, Filler, ANSWER_WEIGHT};
    let (config, tokenizer) = smoke(UpdateRule::Delta);
    let corpus = sample_corpus(&tokenizer);
    let groups = |tokens: &[u32]| {
        let text = tokenizer.decode(tokens).unwrap();
        text.split(|c: char| !c.is_ascii_digit())
            .filter(|g| !g.is_empty())
            .count()
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(13);
    let mut span = corpus.train[0].tokens[..1024].to_vec();
    let before = groups(&span[100..400]);
    add_burst(&mut span, 100, &tokenizer, &mut rng);
    assert_eq!(span.len(), 1024);
    assert!(
        groups(&span[100..400]) >= before + 4,
        "{before} numbers before, {} after",
        groups(&span[100..400])
    );

    // Numbers in the 250 tokens after the needle (its own two keys not counted), on
    // average over the same 40 haystacks drawn with and without bursts.
    let after_needle = |bursts: f64| {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(17);
        let filler = Filler {
            prose: 1.0,
            numbers: 1.0,
            bursts,
        };
        let mut total = 0;
        for _ in 0..40 {
            let weight = AnswerWeight::PerToken(ANSWER_WEIGHT);
            let n = config.segment_len;
            let example = passkey_example(&corpus, &tokenizer, &mut rng, 2048, n, filler, weight);
            let (needle, answer) = (example.needle_at.unwrap(), example.answer_at.unwrap());
            let key = tokenizer
                .decode(&example.tokens[answer..answer + 5])
                .unwrap();
            let text = tokenizer
                .decode(&example.tokens[needle..(needle + 280).min(answer)])
                .unwrap();
            assert!(
                text.contains(&format!("is {key}")),
                "the needle holds {key}: {text:?}"
            );
            total += groups(&example.tokens[needle..(needle + 280).min(answer)]) - 2;
        }
        total as f64 / 40.0
    };
    let (with, without) = (after_needle(1.0), after_needle(0.0));
    assert!(
        with > without + 4.0,
        "numbers after the needle: {with} with bursts, {without} without"
    );
}

/// A share outside 0–1 (`--number-bursts 1.5`) is refused with a message before
/// anything is read or trained, not a panic at the first haystack drawn.
#[test]
fn shares_outside_zero_to_one_are_refused() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["--number-bursts", "1.5", "--minutes", "0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("1.5 is a share, between 0 and 1"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
