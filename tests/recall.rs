//! The recall decomposition (docs/DESIGN.md §6): a token's shares over the earlier
//! segments sum to 1 against the engine's own z, its contributions sum to the engine's
//! own A_mem, for both update rules, and chunked reading taps what one segment at a
//! time does.

mod common;

use std::sync::Arc;

use infiniscope::engine::Engine;
use infiniscope::recall::{recall, RecallLog, RECALL_WINDOW};
use infiniscope::segment::segments;
use infiniscope::taps::Taps;
use infiniscope::{RunOptions, UpdateRule};

#[test]
fn shares_sum_to_one_and_contributions_to_the_memory_read() {
    for rule in [UpdateRule::Delta, UpdateRule::Linear] {
        let model = common::model(common::odd_config(rule), 11);
        let c = &model.config;
        let tokens = common::random_tokens(9 * c.segment_len + 4, c.vocab_size, 12);
        let (mut engine, _) = Engine::new(Arc::clone(&model), RunOptions::for_config(c), true);
        for token in [3 * c.segment_len + 2, 9 * c.segment_len + 3] {
            let r = recall(&mut engine, c, &tokens, token, true).unwrap();
            assert_eq!(r.segment, token / c.segment_len);
            for l in 0..c.n_layers {
                for h in 0..c.n_heads {
                    let at = format!("{rule:?} token {token} layer {l} head {h}");
                    let sum: f32 = (0..r.segment).map(|j| r.share(c, l, h, j)).sum();
                    assert!((sum - 1.0).abs() < 1e-5, "{at}: shares sum to {sum}");
                    let d = c.head_dim;
                    let mut total = vec![0.0f32; d];
                    for j in 0..r.segment {
                        let c_j = r.contribution(c, l, h, j).unwrap();
                        total.iter_mut().zip(c_j).for_each(|(t, x)| *t += x);
                    }
                    let a_mem = &r.a_mem[(l * c.n_heads + h) * d..][..d];
                    assert!(
                        a_mem.iter().any(|&x| x != 0.0),
                        "{at}: the read is not empty"
                    );
                    common::assert_close(&format!("{at}: Σ c_j"), &total, a_mem, 1e-4);
                }
            }
        }
    }
}

#[test]
fn the_first_segment_recalls_nothing() {
    let model = common::model(common::odd_config(UpdateRule::Delta), 13);
    let c = &model.config;
    let tokens = common::random_tokens(3 * c.segment_len, c.vocab_size, 14);
    let (mut engine, _) = Engine::new(Arc::clone(&model), RunOptions::for_config(c), true);
    let r = recall(&mut engine, c, &tokens, 5, true).unwrap();
    assert_eq!(r.segment, 0);
    assert!(r.shares.is_empty());
    assert!(r.a_mem.iter().all(|&x| x == 0.0));
    let err = recall(&mut engine, c, &tokens, tokens.len(), false).unwrap_err();
    assert!(err.to_string().contains("past the end"), "{err}");
}

#[test]
fn chunked_reading_taps_what_one_segment_at_a_time_does() {
    for rule in [UpdateRule::Delta, UpdateRule::Linear] {
        let model = common::model(common::odd_config(rule), 15);
        let c = &model.config;
        let tokens = common::random_tokens(6 * c.segment_len + 5, c.vocab_size, 16);
        let segments = common::segments_of(&tokens, c.segment_len);
        let taps = Taps {
            recall: true,
            ..Taps::default()
        };
        let (mut one, _) = Engine::new(Arc::clone(&model), RunOptions::for_config(c), true);
        let (mut chunked, _) = Engine::new(Arc::clone(&model), RunOptions::for_config(c), true);
        let want: Vec<_> = segments
            .iter()
            .map(|s| one.segment(s, taps).unwrap().recall.unwrap())
            .collect();
        let mut got = chunked.segments(&segments[..4], taps).unwrap();
        got.extend(chunked.segments(&segments[4..], taps).unwrap());
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            let g = g.recall.as_ref().unwrap();
            let at = format!("{rule:?} segment {i}");
            common::assert_close(&format!("{at}: σ(q)"), &g.sigma_q, &w.sigma_q, 1e-5);
            common::assert_close(&format!("{at}: A_mem"), &g.a_mem, &w.a_mem, 1e-5);
            common::assert_close(&format!("{at}: Δz"), &g.delta_z, &w.delta_z, 1e-5);
        }
    }
}

/// The page's way: one reading in chunks, each segment's tap kept in a `RecallLog`,
/// gives any recent token the shares `infiniscope recall` computes by reading the
/// text again up to it; tokens older than the window get an error that says so.
#[test]
fn a_recall_log_gives_recent_tokens_the_shares_of_a_fresh_reading() {
    let model = common::model(common::odd_config(UpdateRule::Delta), 15);
    let c = &model.config;
    let n = c.segment_len;
    let count = RECALL_WINDOW + 6;
    let tokens = common::random_tokens(count * n - 3, c.vocab_size, 16);
    let (mut engine, _) = Engine::new(Arc::clone(&model), RunOptions::for_config(c), true);
    let mut log = RecallLog::default();
    let taps = Taps {
        recall: true,
        ..Taps::default()
    };
    for chunk in segments(&tokens, n).chunks(5) {
        for (segment, out) in chunk.iter().zip(engine.segments(chunk, taps).unwrap()) {
            log.keep(segment, out.recall.unwrap());
        }
    }
    for token in [7 * n + 1, 40 * n, tokens.len() - 1] {
        let kept = log.shares(c, token).unwrap();
        let fresh = recall(&mut engine, c, &tokens, token, false).unwrap();
        assert_eq!(kept.len(), fresh.shares.len(), "token {token}");
        common::assert_close(&format!("token {token}"), &kept, &fresh.shares, 1e-5);
    }
    let old = log.shares(c, 5 * n).unwrap_err();
    assert!(old.contains("last 64 segments"), "{old}");
    for unread in [tokens.len(), tokens.len() + 10 * n] {
        let err = log.shares(c, unread).unwrap_err();
        assert!(err.contains("has not been read"), "token {unread}: {err}");
    }
}
