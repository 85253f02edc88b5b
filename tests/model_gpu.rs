//! The whole model on the GPU engine against the CPU reference, segment by segment
//! over more than 8 segments (the last one short), for both update rules.

mod common;

use std::sync::Arc;

use common::{assert_close, gpu, model, odd_config, random_tokens, relative_error, segments_of};
use infiniscope::engine::Engine;
use infiniscope::gpu::{GpuEngine, GpuModel};
use infiniscope::reference::Reference;
use infiniscope::taps::{Segment, SegmentOutput, Taps};
use infiniscope::{Config, MemoryMode, Model, RunOptions, UpdateRule};

fn engines(model: &Arc<Model>, options: RunOptions) -> (Reference, GpuEngine) {
    let shared = GpuModel::upload(gpu(), Arc::clone(model)).expect("upload");
    (
        Reference::new(Arc::clone(model), options),
        GpuEngine::new(shared, options),
    )
}

/// The recall taps of a segment: `[layer][t][head][d]` σ(Q) and A_mem and
/// `[layer][head][d]` Δz, within the tolerances of the activations (σ(Q), A_mem)
/// and of z (Δz).
fn assert_recall_close(at: &str, model: &Model, got: &SegmentOutput, want: &SegmentOutput) {
    let c = &model.config;
    let (g, w) = (got.recall.as_ref().unwrap(), want.recall.as_ref().unwrap());
    let rows = c.n_layers * want.n_tokens * c.d_model;
    assert_eq!(w.sigma_q.len(), rows, "{at}: the CPU's σ(Q)");
    assert_eq!(w.a_mem.len(), rows, "{at}: the CPU's A_mem");
    assert_eq!(
        w.delta_z.len(),
        c.n_layers * c.d_model,
        "{at}: the CPU's Δz"
    );
    assert_close(&format!("{at}: σ(Q)"), &g.sigma_q, &w.sigma_q, 1e-3);
    assert_close(&format!("{at}: A_mem"), &g.a_mem, &w.a_mem, 1e-3);
    assert_close(&format!("{at}: Δz"), &g.delta_z, &w.delta_z, 1e-4);
}

fn compare_over_text(config: Config, memory: MemoryMode) {
    let rule = config.update_rule;
    let model = model(config, 3);
    let c = &model.config;
    let tokens = random_tokens(9 * c.segment_len + 5, c.vocab_size, 4);
    let segments = segments_of(&tokens, c.segment_len);
    assert_eq!(segments.len(), 10);
    assert!(segments.last().unwrap().tokens.len() < c.segment_len);
    let options = RunOptions {
        update_rule: rule,
        memory,
    };
    let (mut cpu, mut gpu) = engines(&model, options);
    for segment in &segments {
        let want = cpu.segment(segment, Taps::ALL).unwrap();
        let got = gpu.segment(segment, Taps::ALL).unwrap();
        let at = format!("{rule:?}, memory {memory:?}, segment {}", segment.index);
        assert_recall_close(&at, &model, &got, &want);
        if segment.index == 0 || memory == MemoryMode::Off {
            let a_mem = &got.recall.as_ref().unwrap().a_mem;
            assert!(a_mem.iter().all(|&x| x == 0.0), "{at}: A_mem is 0");
        }
        assert_close(
            &format!("{at}: logits"),
            got.logits.as_ref().unwrap(),
            want.logits.as_ref().unwrap(),
            1e-3,
        );
        assert_close(
            &format!("{at}: loss"),
            got.loss.as_ref().unwrap(),
            want.loss.as_ref().unwrap(),
            1e-3,
        );
        assert_close(
            &format!("{at}: memory share"),
            got.memory_share.as_ref().unwrap(),
            want.memory_share.as_ref().unwrap(),
            1e-3,
        );
        for (l, (g, w)) in got
            .memory
            .unwrap()
            .iter()
            .zip(want.memory.as_ref().unwrap())
            .enumerate()
        {
            assert_close(&format!("{at}: layer {l} M"), &g.m, &w.m, 1e-4);
            assert_close(&format!("{at}: layer {l} z"), &g.z, &w.z, 1e-4);
        }
        // Argmax may only differ between logits that are equal within the tolerance.
        let logits = want.logits.as_ref().unwrap();
        for (t, (&g, &w)) in got
            .argmax
            .unwrap()
            .iter()
            .zip(want.argmax.as_ref().unwrap())
            .enumerate()
        {
            let row = &logits[t * c.vocab_size..(t + 1) * c.vocab_size];
            assert!(
                (row[g as usize] - row[w as usize]).abs() <= 1e-3 * row[w as usize].abs().max(1.0),
                "{at}: argmax at {t}"
            );
        }
    }
    // An uncommitted segment reads too, and its Δz is what it would add.
    let peek = Segment {
        commit: false,
        ..segments[3].clone()
    };
    let taps = Taps {
        recall: true,
        ..Taps::default()
    };
    let (want, got) = (
        cpu.segment(&peek, taps).unwrap(),
        gpu.segment(&peek, taps).unwrap(),
    );
    assert_recall_close(
        &format!("{rule:?}, memory {memory:?}, peek"),
        &model,
        &got,
        &want,
    );
}

#[test]
fn gpu_matches_cpu_over_ten_segments_delta_rule() {
    compare_over_text(odd_config(UpdateRule::Delta), MemoryMode::On);
}

#[test]
fn gpu_matches_cpu_over_ten_segments_linear_rule() {
    compare_over_text(odd_config(UpdateRule::Linear), MemoryMode::On);
}

#[test]
fn gpu_matches_cpu_with_memory_off() {
    compare_over_text(odd_config(UpdateRule::Delta), MemoryMode::Off);
}

/// The shift variant (beyond the paper): memory keys mixed with the two tokens before,
/// and memory queries with the one before.
fn shifted(rule: UpdateRule) -> Config {
    Config {
        key_shift: 3,
        query_shift: 2,
        ..odd_config(rule)
    }
}

#[test]
fn gpu_matches_cpu_with_shifted_keys_and_queries() {
    compare_over_text(shifted(UpdateRule::Delta), MemoryMode::On);
    compare_over_text(shifted(UpdateRule::Linear), MemoryMode::On);
}

#[test]
fn uncommitted_segment_leaves_memory_alone_and_reset_forgets() {
    let model = model(odd_config(UpdateRule::Delta), 5);
    let c = &model.config;
    let tokens = random_tokens(3 * c.segment_len, c.vocab_size, 6);
    let segments = segments_of(&tokens, c.segment_len);
    let (_, mut gpu) = engines(&model, RunOptions::for_config(c));
    let taps = Taps {
        memory: true,
        logits: true,
        ..Taps::default()
    };
    gpu.segment(&segments[0], taps).unwrap();
    let peek = Segment {
        commit: false,
        ..segments[1].clone()
    };
    let before = gpu.segment(&peek, taps).unwrap();
    let again = gpu.segment(&peek, taps).unwrap();
    assert_eq!(
        before.logits, again.logits,
        "a peek must not change what the next run sees"
    );
    assert_eq!(before.memory, again.memory);
    let committed = gpu.segment(&segments[1], taps).unwrap();
    assert_eq!(
        committed.logits, before.logits,
        "the write happens after the read"
    );
    assert!(
        relative_error(
            &committed.memory.as_ref().unwrap()[0].m,
            &before.memory.as_ref().unwrap()[0].m
        ) > 1e-3
    );

    gpu.reset();
    let fresh = gpu.segment(&segments[0], taps).unwrap();
    let (_, mut other) = engines(&model, RunOptions::for_config(c));
    assert_eq!(
        fresh.logits,
        other.segment(&segments[0], taps).unwrap().logits
    );
}

#[test]
fn gpu_engine_rejects_bad_segments() {
    let model = model(odd_config(UpdateRule::Delta), 7);
    let (_, mut gpu) = engines(&model, RunOptions::for_config(&model.config));
    let too_long = Segment {
        index: 0,
        tokens: vec![1; 14],
        targets: vec![],
        commit: true,
    };
    let out_of_vocab = Segment {
        index: 0,
        tokens: vec![301],
        targets: vec![],
        commit: true,
    };
    let empty = Segment {
        index: 0,
        tokens: vec![],
        targets: vec![],
        commit: true,
    };
    for bad in [too_long, out_of_vocab, empty] {
        let err = gpu.segment(&bad, Taps::ALL).unwrap_err().to_string();
        assert!(
            err.contains("segment holds") || err.contains("outside the vocabulary"),
            "{err}"
        );
    }
    // The engine still works afterwards.
    let ok = Segment {
        index: 0,
        tokens: vec![1, 2, 3],
        targets: vec![2, 3],
        commit: true,
    };
    assert_eq!(gpu.segment(&ok, Taps::ALL).unwrap().loss.unwrap().len(), 2);
}

/// After a lost GPU the page continues on the CPU from the memory it last read back:
/// that continuation must equal a CPU run from the start.
#[test]
fn cpu_continues_from_gpu_memory() {
    let model = model(odd_config(UpdateRule::Delta), 8);
    let c = &model.config;
    let segments = segments_of(
        &random_tokens(6 * c.segment_len, c.vocab_size, 9),
        c.segment_len,
    );
    let options = RunOptions::for_config(c);
    let (mut cpu, mut gpu) = engines(&model, options);
    let mut snapshot = Vec::new();
    for segment in &segments[..3] {
        cpu.segment(segment, Taps::default()).unwrap();
        snapshot = gpu.segment(segment, Taps::ALL).unwrap().memory.unwrap();
    }
    let mut resumed = Engine::cpu_from(Arc::clone(&model), options, snapshot, 3);
    for segment in &segments[3..] {
        let want = cpu.segment(segment, Taps::ALL).unwrap();
        let got = resumed.segment(segment, Taps::ALL).unwrap();
        assert_close(
            "loss after the switch",
            got.loss.as_ref().unwrap(),
            want.loss.as_ref().unwrap(),
            1e-3,
        );
        let (g, w) = (got.memory.unwrap(), want.memory.unwrap());
        assert_close("M after the switch", &g[0].m, &w[0].m, 1e-4);
    }
}

/// A GPU engine that reads up to `chunk` segments at once, as the model was trained.
fn chunked(model: &Arc<Model>, chunk: usize) -> GpuEngine {
    let shared = GpuModel::upload(gpu(), Arc::clone(model)).expect("upload");
    GpuEngine::with_chunk(shared, RunOptions::for_config(&model.config), chunk)
}

/// Chunked prefill: segments run several at a time (chunks of uneven sizes, the
/// text's last short segment alone) give the CPU reference's numbers segment by
/// segment, and M, z after each chunk.
fn chunks_match_cpu(config: Config) {
    let rule = config.update_rule;
    let model = model(config, 5);
    let c = &model.config;
    let tokens = random_tokens(11 * c.segment_len + 5, c.vocab_size, 6);
    let segments = segments_of(&tokens, c.segment_len);
    let options = RunOptions::for_config(c);
    let mut gpu = chunked(&model, 4);
    assert_eq!(gpu.chunk(), 4);
    let mut one_at_a_time = chunked(&model, 1);
    let mut cpu = Reference::new(Arc::clone(&model), options);
    let mut start = 0;
    for size in [3, 4, 1, 2, 1, 1] {
        let chunk = &segments[start..start + size];
        start += size;
        let outputs = gpu.segments(chunk, Taps::ALL).unwrap();
        assert_eq!(outputs.len(), size);
        for (segment, got) in chunk.iter().zip(&outputs) {
            let want = cpu.segment(segment, Taps::ALL).unwrap();
            let at = format!("{rule:?}, chunk of {size}, segment {}", segment.index);
            assert_recall_close(&at, &model, got, &want);
            let alone = one_at_a_time.segment(segment, Taps::ALL).unwrap();
            let (g, a) = (got.recall.as_ref().unwrap(), alone.recall.as_ref().unwrap());
            for (name, g, a) in [
                ("σ(Q)", &g.sigma_q, &a.sigma_q),
                ("A_mem", &g.a_mem, &a.a_mem),
                ("Δz", &g.delta_z, &a.delta_z),
            ] {
                assert_close(&format!("{at}: {name} alone"), g, a, 1e-6);
            }
            for (name, g, w) in [
                ("logits", &got.logits, &want.logits),
                ("loss", &got.loss, &want.loss),
                ("memory share", &got.memory_share, &want.memory_share),
            ] {
                assert_close(
                    &format!("{at}: {name}"),
                    g.as_ref().unwrap(),
                    w.as_ref().unwrap(),
                    1e-3,
                );
            }
        }
        assert!(outputs[..size - 1].iter().all(|o| o.memory.is_none()));
        let memory = outputs[size - 1].memory.as_ref().unwrap();
        for (l, (g, w)) in memory.iter().zip(cpu.memory()).enumerate() {
            assert_close(
                &format!("{rule:?} after chunk: layer {l} M"),
                &g.m,
                &w.m,
                1e-4,
            );
            assert_close(
                &format!("{rule:?} after chunk: layer {l} z"),
                &g.z,
                &w.z,
                1e-4,
            );
        }
    }
    assert_eq!(start, segments.len());
}

#[test]
fn chunks_match_cpu_delta_rule() {
    chunks_match_cpu(odd_config(UpdateRule::Delta));
}

#[test]
fn chunks_match_cpu_linear_rule() {
    chunks_match_cpu(odd_config(UpdateRule::Linear));
}

#[test]
fn chunks_match_cpu_with_shifted_keys_and_queries() {
    chunks_match_cpu(shifted(UpdateRule::Delta));
}

#[test]
fn chunks_are_checked() {
    let model = model(odd_config(UpdateRule::Delta), 5);
    let c = &model.config;
    let segments = segments_of(
        &random_tokens(6 * c.segment_len, c.vocab_size, 7),
        c.segment_len,
    );
    let mut gpu = chunked(&model, 2);
    let too_many = gpu.segments(&segments[..3], Taps::ALL).unwrap_err();
    assert!(too_many.to_string().contains("at most 2"), "{too_many}");
    // The last (short) segment of a text cannot sit in front of full ones.
    let mixed = [segments[5].clone(), segments[0].clone()];
    assert!(gpu.segments(&mixed, Taps::ALL).is_err());
}
