//! Properties of the math, checked on the CPU reference.

mod common;

use std::sync::Arc;

use common::{model, odd_config, random_floats, random_tokens, segments_of};
use infiniscope::reference::{self as cpu, Reference};
use infiniscope::segment::Segmenter;
use infiniscope::taps::{LayerMemory, SegmentOutput, Taps};
use infiniscope::{MemoryMode, Model, RunOptions, UpdateRule};
use rand::{Rng, SeedableRng};

fn run_all(model: &Arc<Model>, options: RunOptions, tokens: &[u32]) -> Vec<SegmentOutput> {
    let mut engine = Reference::new(Arc::clone(model), options);
    segments_of(tokens, model.config.segment_len)
        .iter()
        .map(|s| engine.segment(s, Taps::ALL).unwrap())
        .collect()
}

#[test]
fn streaming_in_uneven_pieces_equals_one_call() {
    for rule in [UpdateRule::Linear, UpdateRule::Delta] {
        let model = model(odd_config(rule), 11);
        let c = &model.config;
        let tokens = random_tokens(7 * c.segment_len + 3, c.vocab_size, 12);
        let whole = run_all(&model, RunOptions::for_config(c), &tokens);

        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(13);
        let mut engine = Reference::new(Arc::clone(&model), RunOptions::for_config(c));
        let mut segmenter = Segmenter::new(c.segment_len);
        let mut streamed = Vec::new();
        let mut rest = &tokens[..];
        while !rest.is_empty() {
            let (piece, tail) = rest.split_at(rng.random_range(1..=rest.len().min(20)));
            for segment in segmenter.push(piece) {
                streamed.push(engine.segment(&segment, Taps::ALL).unwrap());
            }
            rest = tail;
        }
        streamed.extend(
            segmenter
                .finish()
                .map(|s| engine.segment(&s, Taps::ALL).unwrap()),
        );
        assert_eq!(streamed, whole, "{rule:?}");
    }
}

#[test]
fn changing_a_later_token_never_changes_an_earlier_logit() {
    let model = model(odd_config(UpdateRule::Delta), 14);
    let c = &model.config;
    let n = c.segment_len;
    let tokens = random_tokens(6 * n, c.vocab_size, 15);
    let before = run_all(&model, RunOptions::for_config(c), &tokens);
    // Inside the fourth segment, and at the first position of the second.
    for changed in [3 * n + 5, n] {
        let mut edited = tokens.clone();
        edited[changed] = (edited[changed] + 1) % c.vocab_size as u32;
        let after = run_all(&model, RunOptions::for_config(c), &edited);
        let flat = |outs: &[SegmentOutput]| -> Vec<f32> {
            outs.iter()
                .flat_map(|o| o.logits.clone().unwrap())
                .collect()
        };
        let (a, b) = (flat(&before), flat(&after));
        let split = changed * c.vocab_size;
        assert_eq!(
            a[..split],
            b[..split],
            "logits before position {changed} changed"
        );
        assert_ne!(
            a[split..],
            b[split..],
            "the edit must change something (else this test checks nothing)"
        );
    }
}

#[test]
fn first_segment_reads_exactly_zero_memory() {
    let mem = LayerMemory::zeros(3, 16);
    let q = random_floats(13 * 48, 3.0, 16);
    assert!(cpu::memory_read(&q, &mem, 3, 16, false)
        .iter()
        .all(|&v| v == 0.0));

    let model = model(odd_config(UpdateRule::Delta), 17);
    let c = &model.config;
    let tokens = random_tokens(2 * c.segment_len, c.vocab_size, 18);
    let on = run_all(&model, RunOptions::for_config(c), &tokens);
    let off = run_all(
        &model,
        RunOptions {
            memory: MemoryMode::Off,
            ..RunOptions::for_config(c)
        },
        &tokens,
    );
    assert!(
        on[0]
            .memory_share
            .as_ref()
            .unwrap()
            .iter()
            .all(|&s| s == 0.0),
        "first segment memory share"
    );
    assert_eq!(on[0].logits, off[0].logits, "segment 0 must see no memory");
    assert!(
        on[1]
            .memory_share
            .as_ref()
            .unwrap()
            .iter()
            .all(|&s| s > 0.0),
        "segment 1 reads memory"
    );
    assert_ne!(on[1].logits, off[1].logits);
}

#[test]
fn delta_write_leaves_memory_unchanged_when_the_binding_exists() {
    let (heads, d, n) = (3, 16, 13);
    let mut mem = LayerMemory::zeros(heads, d);
    let k0 = random_floats(40 * heads * d, 2.0, 19);
    let v0 = random_floats(40 * heads * d, 1.0, 20);
    cpu::memory_write(&k0, &v0, &mut mem, heads, d, UpdateRule::Delta, false);
    // Values exactly as memory already returns them for these keys.
    let k = random_floats(n * heads * d, 2.0, 21);
    let v = cpu::memory_read(&k, &mem, heads, d, true);
    let before = mem.clone();
    cpu::memory_write(&k, &v, &mut mem, heads, d, UpdateRule::Delta, true);
    assert_eq!(
        mem.m, before.m,
        "delta write of an existing binding changed M"
    );
    // The linear rule adds it again.
    let mut linear = before.clone();
    cpu::memory_write(&k, &v, &mut linear, heads, d, UpdateRule::Linear, true);
    assert_ne!(linear.m, before.m);
}

/// The key-shift variant's keys: K̃_t = Σ_i c_i ⊙ K_{t−i}, with nothing from before a
/// segment's first row.
#[test]
fn key_shift_mixes_in_the_tokens_before_within_a_segment() {
    // d_model 2; five rows in two segments, starting at rows 0 and 3; three taps
    // c_0 = [2, 1], c_1 = [0.5, −1], c_2 = [1, 2].
    let k = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0];
    let shift = [2.0, 1.0, 0.5, -1.0, 1.0, 2.0];
    let got = cpu::key_shift(&k, &shift, 2, &[0, 3]);
    assert_eq!(got, [2.0, 2.0, 6.5, 2.0, 12.5, 6.0, 14.0, 8.0, 21.5, 2.0]);
}

/// With c_0 = 1 and the other taps 0 the variant is the paper's model, bit for bit,
/// for shifted keys and for shifted queries.
#[test]
fn unshifted_keys_and_queries_read_as_the_papers_model() {
    let config = odd_config(UpdateRule::Delta);
    let d = config.d_model;
    // The paper's weights with three taps [1; b; b] on the keys or on the queries.
    let shifted = |queries: bool, b: f32| {
        let mut model = Model::random(config.clone(), 31, common::TRAINING_TEXT).unwrap();
        let taps = Some([vec![1.0; d], vec![b; d], vec![b; d]].concat());
        for layer in &mut model.weights.layers {
            if queries {
                model.config.query_shift = 3;
                layer.query_shift = taps.clone();
            } else {
                model.config.key_shift = 3;
                layer.key_shift = taps.clone();
            }
        }
        Arc::new(model)
    };
    let tokens = random_tokens(5 * config.segment_len + 3, config.vocab_size, 32);
    let options = RunOptions::for_config(&config);
    let want = run_all(&model(config.clone(), 31), options, &tokens);
    for queries in [false, true] {
        let got = run_all(&shifted(queries, 0.0), options, &tokens);
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.logits, w.logits, "segment logits (queries {queries})");
            assert_eq!(g.memory, w.memory, "M and z (queries {queries})");
        }
        // A key shift changes what memory holds, a query shift what is read from it;
        // either changes later segments' logits.
        let got = run_all(&shifted(queries, 0.5), options, &tokens);
        assert_eq!(
            got[0].logits, want[0].logits,
            "the first segment reads no memory"
        );
        assert_ne!(got[4].logits, want[4].logits, "queries {queries}");
        if queries {
            // The first layer's keys and values come from the embeddings alone; later
            // layers' follow what the shifted reads below them changed.
            let first = |out: &SegmentOutput| out.memory.as_ref().unwrap()[0].clone();
            assert_eq!(first(&got[4]), first(&want[4]), "queries only read");
        }
    }
}

#[test]
fn gate_zero_is_pure_local_attention() {
    let mut config = odd_config(UpdateRule::Delta);
    config.segment_len = 11;
    let mut random = Model::random(config, 22, common::TRAINING_TEXT).unwrap();
    for layer in &mut random.weights.layers {
        layer.beta.fill(-1e4); // sigmoid(−1e4) is exactly 0 in f32
    }
    let model = Arc::new(random);
    let c = &model.config;
    let tokens = random_tokens(4 * c.segment_len, c.vocab_size, 23);
    let read = run_all(&model, RunOptions::for_config(c), &tokens);
    for (segment, out) in segments_of(&tokens, c.segment_len).iter().zip(&read) {
        // The same segment alone, with nothing in memory.
        let mut alone = Reference::new(Arc::clone(&model), RunOptions::for_config(c));
        let fresh = alone.segment(segment, Taps::ALL).unwrap();
        assert_eq!(out.logits, fresh.logits, "segment {}", segment.index);
    }
}

#[test]
fn no_nan_or_inf_after_ten_thousand_segments() {
    for rule in [UpdateRule::Delta, UpdateRule::Linear] {
        let mut config = odd_config(rule);
        config.segment_len = 8;
        let model = model(config, 24);
        let c = &model.config;
        let mut engine = Reference::new(Arc::clone(&model), RunOptions::for_config(c));
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(25);
        let taps = Taps {
            loss: true,
            ..Taps::default()
        };
        for index in 0..10_000 {
            let tokens: Vec<u32> = (0..=c.segment_len)
                .map(|_| rng.random_range(0..c.vocab_size as u32))
                .collect();
            let segment = infiniscope::taps::Segment {
                index,
                tokens: tokens[..c.segment_len].to_vec(),
                targets: tokens[1..].to_vec(),
                commit: true,
            };
            let loss = engine.segment(&segment, taps).unwrap().loss.unwrap();
            assert!(
                loss.iter().all(|l| l.is_finite()),
                "{rule:?}: non-finite loss at segment {index}"
            );
        }
        for (l, mem) in engine.memory().iter().enumerate() {
            assert!(
                mem.m.iter().chain(&mem.z).all(|v| v.is_finite()),
                "{rule:?}: layer {l} memory"
            );
            // z sums σ(k) over 80,000 tokens: past what f16 holds (65,504), fine in f32.
            let mean_z = mem.z.iter().sum::<f32>() / mem.z.len() as f32;
            assert!(
                mean_z > 65_504.0 / 4.0,
                "{rule:?}: layer {l} mean z {mean_z} should keep growing"
            );
        }
    }
}

#[test]
fn chunks_of_segments_equal_one_segment_at_a_time() {
    for rule in [UpdateRule::Linear, UpdateRule::Delta] {
        let model = model(odd_config(rule), 26);
        let c = &model.config;
        let tokens = random_tokens(12 * c.segment_len + 5, c.vocab_size, 27);
        let mut segments = segments_of(&tokens, c.segment_len);
        // A peek at the end: evaluated, not written into memory.
        let mut peek = segments[3].clone();
        peek.index = segments.len();
        peek.commit = false;
        segments.push(peek);
        let options = RunOptions::for_config(c);
        let one_by_one = run_all(&model, options, &tokens);
        let mut single = Reference::new(Arc::clone(&model), options);
        for segment in &segments[..segments.len() - 1] {
            single.segment(segment, Taps::default()).unwrap();
        }
        let peeked = single.segment(segments.last().unwrap(), Taps::ALL).unwrap();

        let mut chunked = Reference::new(Arc::clone(&model), options);
        let mut outputs = Vec::new();
        let mut rest = &segments[..];
        // 10 segments are 130 rows: enough for the reference to use threads.
        for size in [10, 1, 3] {
            let (chunk, tail) = rest.split_at(size);
            let out = chunked.segments(chunk, Taps::ALL).unwrap();
            assert!(out[..size - 1].iter().all(|o| o.memory.is_none()));
            assert_eq!(
                out[size - 1].memory.as_ref(),
                Some(&chunked.memory().to_vec())
            );
            outputs.extend(out);
            rest = tail;
        }
        assert!(rest.is_empty());
        assert_eq!(outputs.len(), one_by_one.len() + 1);
        for (i, (got, want)) in outputs
            .iter()
            .zip(one_by_one.iter().chain([&peeked]))
            .enumerate()
        {
            let what = format!("{rule:?} segment {i}");
            for (name, got, want) in [
                ("logits", &got.logits, &want.logits),
                ("loss", &got.loss, &want.loss),
                ("memory share", &got.memory_share, &want.memory_share),
            ] {
                let error = common::relative_error(got.as_ref().unwrap(), want.as_ref().unwrap());
                assert!(error < 1e-5, "{what}: {name} differs by {error}");
            }
        }
        // The peek left the memory as the last committed segment did.
        for (got, want) in chunked.memory().iter().zip(single.memory()) {
            assert!(
                common::relative_error(&got.m, &want.m) < 1e-5,
                "{rule:?}: M"
            );
            assert!(
                common::relative_error(&got.z, &want.z) < 1e-5,
                "{rule:?}: z"
            );
        }
    }
}

/// The page's two-worker pipeline: the model cut into two parts at every block, the
/// first part's residual stream handed to the second, reads exactly as the whole model
/// (the taps of the two parts, layer-major, side by side).
#[test]
fn two_parts_chained_read_as_the_whole_model() {
    let model = model(odd_config(UpdateRule::Delta), 28);
    let c = &model.config;
    let tokens = random_tokens(9 * c.segment_len + 4, c.vocab_size, 29);
    let segments = segments_of(&tokens, c.segment_len);
    let options = RunOptions::for_config(c);
    let mut whole = Reference::new(Arc::clone(&model), options);
    let chunks = [5, 1, 4];
    let mut want = Vec::new();
    let mut rest = &segments[..];
    for size in chunks {
        let (chunk, tail) = rest.split_at(size);
        want.extend(whole.segments(chunk, Taps::ALL).unwrap());
        rest = tail;
    }
    let n_blocks = cpu::blocks(c);
    for cut in 1..n_blocks {
        let mut front = Reference::new(Arc::clone(&model), options);
        let mut back = Reference::new(Arc::clone(&model), options);
        let mut rest = &segments[..];
        let mut got = Vec::new();
        for size in chunks {
            let (chunk, tail) = rest.split_at(size);
            let (first, x) = front.part(chunk, None, 0..cut, Taps::ALL).unwrap();
            assert!(first.iter().all(|o| o.loss.is_none() && o.logits.is_none()));
            let (second, none) = back.part(chunk, x, cut..n_blocks, Taps::ALL).unwrap();
            assert!(none.is_none(), "the last part reads out");
            got.extend(first.into_iter().zip(second).map(|(a, b)| {
                SegmentOutput {
                    memory_share: Some([a.memory_share.unwrap(), b.memory_share.unwrap()].concat()),
                    memory: a.memory.map(|m| [m, b.memory.unwrap()].concat()),
                    recall: a
                        .recall
                        .zip(b.recall)
                        .map(|(a, b)| infiniscope::taps::RecallTap {
                            sigma_q: [a.sigma_q, b.sigma_q].concat(),
                            a_mem: [a.a_mem, b.a_mem].concat(),
                            delta_z: [a.delta_z, b.delta_z].concat(),
                        }),
                    ..b
                }
            }));
            rest = tail;
        }
        assert_eq!(got, want, "cut at block {cut}");
    }
    // A part is given the residual stream exactly when it does not start the model.
    let mut engine = Reference::new(Arc::clone(&model), options);
    let one = &segments[..1];
    let x = Some(vec![0.0; one[0].tokens.len() * c.d_model]);
    assert!(engine.part(one, x.clone(), 0..2, Taps::ALL).is_err());
    assert!(engine.part(one, None, 1..2, Taps::ALL).is_err());
    assert!(engine
        .part(one, Some(vec![0.0; 3]), 1..2, Taps::ALL)
        .is_err());
    assert!(engine.part(one, x, 1..n_blocks + 1, Taps::ALL).is_err());
}

#[test]
fn the_balanced_cut_splits_the_work_in_about_half() {
    let shipped = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/models/infini-tiny/config.json"
    );
    let tiny = infiniscope::Config::from_json(&std::fs::read_to_string(shipped).unwrap()).unwrap();
    // Per token: attention blocks 327,680 multiply-adds, MLP blocks 589,824, readout
    // 1,048,576: blocks 0–4 are 2,162,688 against 2,555,904 after them.
    assert_eq!(cpu::balanced_cut(&tiny), 5);
    // Without a readout to speak of, the cut falls between the layers' halves.
    let small_vocab = infiniscope::Config {
        vocab_size: 2,
        ..tiny.clone()
    };
    assert_eq!(cpu::balanced_cut(&small_vocab), 4);
}
