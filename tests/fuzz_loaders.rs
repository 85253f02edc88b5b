//! Fuzzed loaders: every parser of bytes from outside (config.json, model.safetensors,
//! tokenizer.json, a dropped text, the CLI's text reader) is fed broken files, and
//! must answer with an error that names what is wrong, never a panic, and never an
//! allocation larger than the file justifies.
//!
//! Inputs are the real files of a model mutated deterministically (truncated at every
//! length, bits flipped, bytes spliced, numbers made huge, tensors dropped,
//! duplicated, reshaped, retyped or filled with NaN) and `proptest` strategies (texts
//! and configs). About 300,000 cases by default; `FUZZ_CASES=1000000` scales every
//! target to that total (RELIABILITY.md has the figures).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Read;
use std::path::Path;
use std::time::Instant;

use infiniscope::model::{CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE};
use infiniscope::tokenizer::{Pieces, StreamEncoder, TextReader, Tokenizer};
use infiniscope::weights::{StoredDtype, Weights};
use infiniscope::{Config, Error, Model, UpdateRule};
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestRunner};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

// ---------------------------------------------------------------------------------
// Allocation tracking: the largest single allocation made on this thread.

/// Any single allocation above this is refused (the test aborts) rather than let a
/// broken file swap the machine.
const HARD_CAP: usize = 1 << 30;

struct Tracking;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
}

unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        if layout.size() > HARD_CAP {
            return std::ptr::null_mut();
        }
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        if layout.size() > HARD_CAP {
            return std::ptr::null_mut();
        }
        System.alloc_zeroed(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        if new_size > HARD_CAP {
            return std::ptr::null_mut();
        }
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

/// Runs `parse` on `input_len` bytes of input and checks that no single allocation
/// exceeded what the input justifies: 16 bytes per input byte (f16 → f32 doubles,
/// JSON maps hold more than their text) plus 4 MiB of fixed tables (the BPE cache).
#[track_caller]
fn bounded<T>(input_len: usize, parse: impl FnOnce() -> T) -> T {
    LARGEST.with(|l| l.set(0));
    let out = parse();
    let largest = LARGEST.with(Cell::get);
    let limit = 16 * input_len + (4 << 20);
    assert!(
        largest <= limit,
        "an allocation of {largest} bytes for {input_len} bytes of input (limit {limit})"
    );
    out
}

// ---------------------------------------------------------------------------------
// Case budget and reporting.

/// Cases when FUZZ_CASES is not set: the sum of every target's default below.
const DEFAULT_TOTAL: usize = 300_000;

/// This target's share of FUZZ_CASES (its default when unset).
fn budget(default: usize) -> usize {
    match std::env::var("FUZZ_CASES") {
        Ok(total) => {
            let total: usize = total.parse().expect("FUZZ_CASES is a number of cases");
            (default * total).div_ceil(DEFAULT_TOTAL)
        }
        Err(_) => default,
    }
}

/// One line per target (`--nocapture` shows them): cases, how many of them loaded
/// (the rest were refused with a named error), seconds.
fn report(target: &str, cases: usize, loaded: Option<usize>, began: Instant) {
    let loaded = loaded.map_or(String::new(), |n| format!(" ({n} loaded)"));
    eprintln!(
        "fuzz {target}: {cases} cases{loaded} in {:.1} s",
        began.elapsed().as_secs_f64()
    );
}

fn runner(cases: usize, seed: u8) -> TestRunner {
    let config = RunnerConfig {
        cases: cases as u32,
        failure_persistence: None,
        ..RunnerConfig::default()
    };
    TestRunner::new_with_rng(
        config,
        proptest::test_runner::TestRng::from_seed(
            proptest::test_runner::RngAlgorithm::ChaCha,
            &[seed; 32],
        ),
    )
}

// ---------------------------------------------------------------------------------
// Inputs.

fn tiny_file(name: &str) -> Vec<u8> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/random-tiny");
    std::fs::read(dir.join(name)).unwrap()
}

struct TinyFiles {
    config: Vec<u8>,
    weights: Vec<u8>,
    tokenizer: Vec<u8>,
}

fn tiny_files() -> TinyFiles {
    TinyFiles {
        config: tiny_file(CONFIG_FILE),
        weights: tiny_file(WEIGHTS_FILE),
        tokenizer: tiny_file(TOKENIZER_FILE),
    }
}

/// A model small enough that one safetensors parse takes microseconds: 22 tensors,
/// 248 parameters.
fn micro_config() -> Config {
    Config {
        vocab_size: 6,
        d_model: 4,
        n_layers: 2,
        n_heads: 2,
        head_dim: 2,
        mlp_hidden: 3,
        segment_len: 4,
        update_rule: UpdateRule::Delta,
        rope_base: 10000.0,
        norm_eps: 1e-5,
        train_context: 8,
        key_shift: 0,
        query_shift: 0,
    }
}

fn micro_weights(dtype: StoredDtype) -> Vec<u8> {
    let config = micro_config();
    Weights::random(&config, 5).to_safetensors(&config, dtype)
}

const INTERESTING_BYTES: &[u8] = b"\x00\xff\x7f\x80\"{}[],:09-e.\\n ";
const HUGE_NUMBERS: &[&str] = &[
    "18446744073709551615",
    "18446744073709551616",
    "9223372036854775809",
    "4294967296",
    "1152921504606846976",
    "99999999999999999999999999",
    "-1",
    "0",
    "1e308",
    "1e999",
    "-0.0",
    "NaN",
    "null",
    "\"7\"",
    "[]",
];

/// One to three random edits of `bytes`: bit flips, bytes set to JSON's punctuation,
/// truncation, a range deleted or duplicated, random bytes inserted, or a number
/// replaced by a huge, negative or non-numeric one.
fn mutate(rng: &mut ChaCha8Rng, bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for _ in 0..rng.random_range(1..=3) {
        let len = out.len();
        let at = rng.random_range(0..=len);
        match rng.random_range(0..7) {
            0 if len > 0 => {
                for _ in 0..rng.random_range(1..=8) {
                    let i = rng.random_range(0..len);
                    out[i] ^= 1 << rng.random_range(0..8);
                }
            }
            1 if len > 0 => {
                let i = rng.random_range(0..len);
                out[i] = INTERESTING_BYTES[rng.random_range(0..INTERESTING_BYTES.len())];
            }
            2 => out.truncate(at),
            3 => {
                let end = rng.random_range(at..=len.min(at + 64));
                out.drain(at..end);
            }
            4 => {
                let end = rng.random_range(at..=len.min(at + 64));
                let copy = out[at..end].to_vec();
                let to = rng.random_range(0..=len);
                out.splice(to..to, copy);
            }
            5 => {
                let junk: Vec<u8> = (0..rng.random_range(1..8)).map(|_| rng.random()).collect();
                out.splice(at..at, junk);
            }
            _ => {
                // A run of digits (the first at or after `at`) becomes a huge number.
                if let Some(start) = out[at..].iter().position(u8::is_ascii_digit) {
                    let start = at + start;
                    let end = start
                        + out[start..]
                            .iter()
                            .take_while(|b| b.is_ascii_digit() || **b == b'.')
                            .count();
                    let number = HUGE_NUMBERS[rng.random_range(0..HUGE_NUMBERS.len())];
                    out.splice(start..end, number.bytes());
                }
            }
        }
    }
    out
}

/// The library's messages name the file or layer that failed.
#[track_caller]
fn assert_named(err: &Error) {
    let msg = err.to_string();
    let ok = match err {
        Error::Config(m) => {
            m.contains("config.json")
                || m.contains("vocab_size")
                || m.contains("d_model")
                || m.contains("n_heads")
                || m.contains("head_dim")
                || m.contains("n_layers")
                || m.contains("mlp_hidden")
                || m.contains("segment_len")
                || m.contains("train_context")
                || m.contains("rope_base")
                || m.contains("norm_eps")
                || m.contains("parameters")
        }
        Error::Weights(m) => {
            m.contains("tensor") || m.contains("safetensors") || m.contains("parameters")
        }
        Error::Tokenizer(m) => m.contains("tokenizer"),
        Error::Text(m) => m.contains("UTF-8") || m.contains("reading"),
        _ => false,
    };
    assert!(ok, "an unclear message: {msg}");
}

/// What a model that loaded must be: finite weights of the config's shapes, and a
/// tokenizer whose every id indexes the embedding.
fn assert_sound(model: &Model) {
    let config = &model.config;
    config.validate().unwrap();
    for (name, shape) in infiniscope::weights::tensor_specs(config) {
        let values = model.weights.tensor(&name);
        assert_eq!(values.len(), shape.iter().product::<usize>(), "{name}");
        assert!(values.iter().all(|v| v.is_finite()), "{name} not finite");
    }
    assert!(model.tokenizer.vocab_size() <= config.vocab_size);
    let ids = model
        .tokenizer
        .encode("Of Mans First Disobedience 12")
        .unwrap();
    assert!(ids.iter().all(|&id| (id as usize) < config.vocab_size));
}

/// The web page's and the CLI's entry: three files' bytes to a model.
/// Whether it loaded.
fn check_model(config: &[u8], weights: &[u8], tokenizer: &[u8]) -> bool {
    let len = config.len() + weights.len() + tokenizer.len();
    match bounded(len, || Model::from_bytes(config, weights, tokenizer)) {
        Ok(model) => {
            assert_sound(&model);
            true
        }
        Err(e) => {
            assert_named(&e);
            false
        }
    }
}

fn check_weights(config: &Config, bytes: &[u8]) -> Result<Weights, String> {
    match bounded(bytes.len(), || Weights::from_safetensors(config, bytes)) {
        Ok((weights, _)) => {
            for (name, shape) in infiniscope::weights::tensor_specs(config) {
                let values = weights.tensor(&name);
                assert_eq!(values.len(), shape.iter().product::<usize>(), "{name}");
                assert!(values.iter().all(|v| v.is_finite()), "{name} not finite");
            }
            Ok(weights)
        }
        Err(e) => {
            assert_named(&e);
            Err(e.to_string())
        }
    }
}

#[track_caller]
fn assert_mentions(err: &str, words: &[&str], what: &str) {
    for word in words {
        assert!(
            err.contains(word),
            "{what}: the message does not name {word:?}: {err}"
        );
    }
}

// ---------------------------------------------------------------------------------
// config.json

#[test]
fn config_json_mutations() {
    let began = Instant::now();
    let files = tiny_files();
    let cases = budget(40_000);
    // Every truncation first, then random edits.
    let truncations = files.config.len();
    for n in 0..truncations {
        assert!(!check_model(
            &files.config[..n],
            &files.weights,
            &files.tokenizer
        ));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut loaded = 0;
    for _ in truncations..cases {
        let config = mutate(&mut rng, &files.config);
        loaded += check_model(&config, &files.weights, &files.tokenizer) as usize;
    }
    report(
        "config.json byte mutations",
        cases.max(truncations),
        Some(loaded),
        began,
    );
}

/// A value for a size field: mostly the micro model's (so that one bad field at a
/// time reaches the weights), else zero, small, or huge enough to
/// overflow any product of sizes.
fn size_value(original: usize) -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        20 => Just(serde_json::json!(original)),
        1 => Just(serde_json::json!(0)),
        1 => (1usize..600).prop_map(|v| serde_json::json!(v)),
        1 => prop::sample::select(vec![
            1usize << 32, 1 << 40, 1 << 62, (1 << 63) + 1, usize::MAX, usize::MAX / 2 + 2,
        ]).prop_map(|v| serde_json::json!(v)),
        1 => Just(serde_json::json!(-1)),
        1 => Just(serde_json::json!(1.5)),
        1 => Just(serde_json::json!("64")),
    ]
}

fn float_value(original: f32) -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        20 => Just(serde_json::json!(original)),
        1 => prop::sample::select(vec![0.0f64, -1.0, 1.0, 1e-30, 1e39, f64::MAX, 1e-46])
            .prop_map(|v| serde_json::json!(v)),
        // serde_json writes NaN and infinities as null.
        1 => Just(serde_json::json!(f64::NAN)),
        1 => Just(serde_json::json!("1e-5")),
    ]
}

/// config.json with every field drawn from [`size_value`] / [`float_value`], maybe
/// one removed or an unknown one added: loaded against the micro model's weights.
#[test]
fn config_json_values() {
    let began = Instant::now();
    let cases = budget(40_000);
    let c = micro_config();
    let weights = micro_weights(StoredDtype::F32);
    let fields = (
        (
            size_value(c.vocab_size),
            size_value(c.d_model),
            size_value(c.n_layers),
            size_value(c.n_heads),
            size_value(c.head_dim),
            size_value(c.mlp_hidden),
        ),
        (
            size_value(c.segment_len),
            size_value(c.train_context),
            float_value(c.rope_base),
            float_value(c.norm_eps),
            prop::sample::select(vec!["delta", "linear", "quadratic", ""]),
            0usize..14,
        ),
    );
    runner(cases, 2)
        .run(
            &fields,
            |((v, dm, l, h, hd, f), (n, ctx, rope, eps, rule, edit))| {
                let mut json = serde_json::json!({
                    "vocab_size": v, "d_model": dm, "n_layers": l, "n_heads": h,
                    "head_dim": hd, "mlp_hidden": f, "segment_len": n,
                    "update_rule": rule, "rope_base": rope, "norm_eps": eps,
                    "train_context": ctx,
                });
                let plain = json.to_string();
                let map = json.as_object_mut().unwrap();
                let keys: Vec<String> = map.keys().cloned().collect();
                let removed = keys.get(edit).cloned();
                if let Some(key) = &removed {
                    map.remove(key);
                } else if edit == 12 {
                    map.insert("segment_length".into(), 32.into());
                }
                let text = json.to_string();
                let config = match bounded(text.len(), || Config::from_json(&text)) {
                    Ok(config) => config,
                    Err(e) => {
                        assert_named(&e);
                        let msg = e.to_string();
                        // The one edit of a config that is otherwise valid is named.
                        if Config::from_json(&plain).is_ok() {
                            if let Some(key) = removed {
                                assert_mentions(&msg, &[&key], "a missing field");
                            } else if edit == 12 {
                                assert_mentions(&msg, &["segment_length"], "an unknown field");
                            }
                        }
                        // A value of the wrong type or range names its field.
                        if msg.contains("invalid type")
                            || msg.contains("invalid value")
                            || msg.contains("unknown variant")
                        {
                            assert!(
                                keys.iter()
                                    .any(|k| msg.contains(&format!("config.json: {k}: "))),
                                "no field named: {msg}"
                            );
                        }
                        return Ok(());
                    }
                };
                // What validated can be counted without overflow, and is loaded against
                // a file of 248 parameters without allocating for the config's.
                assert!(config.n_heads.checked_mul(config.head_dim) == Some(config.d_model));
                assert!(config.memory_floats() <= config.n_params());
                let _ = check_weights(&config, &weights);
                Ok(())
            },
        )
        .unwrap();
    report("config.json values (proptest)", cases, None, began);
}

// ---------------------------------------------------------------------------------
// model.safetensors

#[test]
fn safetensors_byte_mutations() {
    let began = Instant::now();
    let config = micro_config();
    let cases = budget(60_000);
    let mut done = 0;
    for dtype in [StoredDtype::F32, StoredDtype::F16] {
        let file = micro_weights(dtype);
        for n in 0..file.len() {
            let err = check_weights(&config, &file[..n]).unwrap_err();
            assert_mentions(&err, &["safetensors"], "a truncated file");
            done += 1;
        }
        // The declared header length, 8 bytes little-endian, made wrong.
        let declared = u64::from_le_bytes(file[..8].try_into().unwrap());
        for claim in [
            0,
            1,
            declared - 1,
            declared + 1,
            file.len() as u64,
            100_000_001,
            1 << 32,
            1 << 60,
            u64::MAX,
        ] {
            let mut bad = file.clone();
            bad[..8].copy_from_slice(&claim.to_le_bytes());
            let err = check_weights(&config, &bad).unwrap_err();
            assert_mentions(&err, &["header"], &format!("a header length of {claim}"));
            done += 1;
        }
    }
    let files = [
        micro_weights(StoredDtype::F32),
        micro_weights(StoredDtype::F16),
    ];
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut loaded = 0;
    while done < cases {
        let file = &files[done % 2];
        loaded += check_weights(&config, &mutate(&mut rng, file)).is_ok() as usize;
        done += 1;
    }
    report(
        "model.safetensors byte mutations",
        done,
        Some(loaded),
        began,
    );
}

/// One tensor of a safetensors file, written back with any dtype, shape or offsets.
#[derive(Clone)]
struct Entry {
    name: String,
    dtype: String,
    shape: Vec<u64>,
    data: Vec<u8>,
    /// Written instead of the true offsets.
    offsets: Option<(u64, u64)>,
}

fn entries(file: &[u8]) -> Vec<Entry> {
    let st = safetensors::SafeTensors::deserialize(file).unwrap();
    let mut out: Vec<Entry> = st
        .tensors()
        .into_iter()
        .map(|(name, view)| Entry {
            name,
            dtype: format!("{:?}", view.dtype()),
            shape: view.shape().iter().map(|&d| d as u64).collect(),
            data: view.data().to_vec(),
            offsets: None,
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// A safetensors file written by hand, so that it can say anything.
fn write(entries: &[Entry]) -> Vec<u8> {
    let mut header = String::from("{");
    let mut data = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let start = data.len() as u64;
        data.extend_from_slice(&e.data);
        let (s, t) = e.offsets.unwrap_or((start, data.len() as u64));
        let sep = if i == 0 { "" } else { "," };
        header += &format!(
            "{sep}\"{}\":{{\"dtype\":\"{}\",\"shape\":{:?},\"data_offsets\":[{s},{t}]}}",
            e.name, e.dtype, e.shape
        );
    }
    header.push('}');
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(header.as_bytes());
    file.extend_from_slice(&data);
    file
}

const DTYPES_OF_SIZE: [&[&str]; 3] = [&["I32", "U32"], &["I16", "U16", "F16"], &["F64", "I64"]];

/// Targeted edits of one tensor at a time, each with the words its error must say.
#[test]
fn safetensors_targeted_mutations() {
    let began = Instant::now();
    let config = micro_config();
    let cases = budget(60_000);
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let originals = [
        entries(&micro_weights(StoredDtype::F32)),
        entries(&micro_weights(StoredDtype::F16)),
    ];
    assert!(check_weights(&config, &write(&originals[0])).is_ok());
    for case in 0..cases {
        let mut file = originals[case % 2].clone();
        let i = rng.random_range(0..file.len());
        let name = file[i].name.clone();
        let width = if file[i].dtype == "F32" { 4 } else { 2 };
        let count = file[i].data.len() / width;
        let kind = (case / 2) % 13;
        let expect: Vec<String> = match kind {
            0 => {
                let at = rng.random_range(0..count);
                let value = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY][rng.random_range(0..3)];
                let bytes = if width == 4 {
                    value.to_le_bytes().to_vec()
                } else {
                    half::f16::from_f32(value).to_le_bytes().to_vec()
                };
                file[i].data[at * width..(at + 1) * width].copy_from_slice(&bytes);
                vec![
                    format!("{name:?}"),
                    format!("element {at}"),
                    "not finite".into(),
                ]
            }
            1 => {
                let same = DTYPES_OF_SIZE[if width == 4 { 0 } else { 1 }];
                let dtype = same[rng.random_range(0..same.len())];
                if dtype == "F16" {
                    continue; // a valid dtype for a 2-byte tensor
                }
                file[i].dtype = dtype.into();
                vec![format!("{name:?}"), "dtype".into(), dtype.into()]
            }
            2 => {
                // Other dtypes, the element count kept: the bytes no longer fit.
                let dtype = ["F64", "I64", "U8", "BOOL", "I8", "F8_E4M3"][rng.random_range(0..6)];
                file[i].dtype = dtype.into();
                vec![format!("{name:?}"), "shape".into(), dtype.into()]
            }
            3 => {
                // The same number of elements in another shape.
                let shape = &mut file[i].shape;
                if shape.len() == 2 && shape[0] != shape[1] {
                    shape.reverse();
                } else if shape.len() == 2 {
                    *shape = vec![shape[0] * shape[1]];
                } else {
                    shape.push(1);
                }
                vec![format!("{name:?}"), "expected shape".into()]
            }
            4 => {
                // A shape whose element count the bytes do not hold.
                let d = rng.random_range(0..file[i].shape.len());
                file[i].shape[d] += rng.random_range(1..5);
                vec![format!("{name:?}"), "shape".into(), "bytes".into()]
            }
            5 => {
                let d = rng.random_range(0..file[i].shape.len());
                file[i].shape[d] = [1 << 62, u64::MAX, 1 << 32][rng.random_range(0..3)];
                vec![format!("{name:?}"), "shape".into()]
            }
            6 => {
                file.remove(i);
                vec![format!("missing tensor {name:?}")]
            }
            7 => {
                let copy = file[i].clone();
                let at = rng.random_range(0..=file.len());
                file.insert(at, copy);
                vec![format!("{name:?}"), "twice".into()]
            }
            8 => {
                let extra = format!("layers.{}.wq", rng.random_range(2..9));
                let mut copy = file[i].clone();
                copy.name = extra.clone();
                file.push(copy);
                vec!["unexpected tensor".into(), format!("{extra:?}")]
            }
            9 => {
                let renamed = format!("{name}_");
                file[i].name = renamed.clone();
                vec!["unexpected tensor".into(), format!("{renamed:?}")]
            }
            10 => {
                let end = [1u64 << 60, u64::MAX, 1 << 33][rng.random_range(0..3)];
                file[i].offsets = Some((0, end));
                vec!["offset".into()]
            }
            11 => {
                let dtype = ["F33", "f32", "", "COMPLEX"][rng.random_range(0..4)];
                file[i].dtype = dtype.into();
                vec!["header".into(), "variant".into()]
            }
            _ => {
                // Bytes missing from the end, or appended.
                let mut bytes = write(&file);
                if rng.random() {
                    let cut = rng.random_range(1..=width * count.min(8));
                    bytes.truncate(bytes.len() - cut);
                } else {
                    bytes.extend(std::iter::repeat_n(0, rng.random_range(1..9)));
                }
                let err = check_weights(&config, &bytes).unwrap_err();
                assert_mentions(&err, &["bytes of tensor data", "the file holds"], "a cut");
                continue;
            }
        };
        let err = check_weights(&config, &write(&file)).unwrap_err();
        let words: Vec<&str> = expect.iter().map(String::as_str).collect();
        assert_mentions(&err, &words, &format!("edit {kind} of {name}"));
    }
    report("model.safetensors targeted edits", cases, Some(0), began);
}

/// A config that asks for far more parameters than the file holds is refused before
/// anything is allocated for it.
#[test]
fn safetensors_huge_configs_allocate_nothing() {
    let weights = micro_weights(StoredDtype::F32);
    for n_layers in [1 << 20, 1 << 40, usize::MAX / 20] {
        let config = Config {
            n_layers,
            ..micro_config()
        };
        let err = check_weights(&config, &weights).unwrap_err();
        assert_mentions(&err, &["parameters"], "a huge n_layers");
    }
}

// ---------------------------------------------------------------------------------
// The whole model from bytes (the web page's `WebModel::load`).

#[test]
fn model_from_bytes_mutations() {
    let began = Instant::now();
    let files = tiny_files();
    let cases = budget(6_000);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut loaded = 0;
    for case in 0..cases {
        loaded += match case % 3 {
            0 => check_model(
                &files.config,
                &mutate(&mut rng, &files.weights),
                &files.tokenizer,
            ),
            1 => check_model(
                &files.config,
                &files.weights,
                &mutate(&mut rng, &files.tokenizer),
            ),
            _ => check_model(
                &mutate(&mut rng, &files.config),
                &files.weights,
                &files.tokenizer,
            ),
        } as usize;
    }
    report(
        "Model::from_bytes (three files)",
        cases,
        Some(loaded),
        began,
    );
}

// ---------------------------------------------------------------------------------
// tokenizer.json

/// Whether it loaded.
fn check_tokenizer(bytes: &[u8]) -> bool {
    match bounded(bytes.len(), || Tokenizer::from_bytes(bytes)) {
        Ok(tokenizer) => {
            // Whatever loaded encodes and decodes without panicking.
            if let Ok(ids) = tokenizer.encode("Of Mans First Disobedience, 12345 🦀") {
                let _ = tokenizer.decode(&ids);
                let mut pieces = Pieces::default();
                for id in ids {
                    assert!((id as usize) < tokenizer.vocab_size(), "id {id}");
                    pieces.next(&tokenizer, id);
                }
            }
            true
        }
        Err(e) => {
            assert_named(&e);
            assert_mentions(&e.to_string(), &["tokenizer.json"], "a broken tokenizer");
            false
        }
    }
}

#[test]
fn tokenizer_json_mutations() {
    let began = Instant::now();
    let json = tiny_file(TOKENIZER_FILE);
    let cases = budget(24_000);
    // Truncations at every 7th length (every length costs as much as 1,200 cases).
    let mut done = 0;
    for n in (0..json.len()).step_by(7) {
        assert!(!check_tokenizer(&json[..n]), "a cut tokenizer.json loaded");
        done += 1;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let mut loaded = 0;
    while done < cases {
        loaded += check_tokenizer(&mutate(&mut rng, &json)) as usize;
        done += 1;
    }
    report("tokenizer.json byte mutations", done, Some(loaded), began);
}

/// Token ids beyond the model's vocabulary, sparse or repeated, are refused at load
/// (not met later as an out-of-range embedding row).
#[test]
fn tokenizer_ids_beyond_the_vocabulary_are_refused() {
    let files = tiny_files();
    let mut json: serde_json::Value = serde_json::from_slice(&files.tokenizer).unwrap();
    let vocab = json["model"]["vocab"].as_object_mut().unwrap();
    let (token, _) = vocab
        .iter()
        .next_back()
        .map(|(k, v)| (k.clone(), v.clone()))
        .unwrap();
    for id in [512u64, 100_000, u32::MAX as u64] {
        json["model"]["vocab"][&token] = id.into();
        let err = Model::from_bytes(&files.config, &files.weights, json.to_string().as_bytes())
            .err()
            .unwrap_or_else(|| panic!("a tokenizer with id {id} loaded"))
            .to_string();
        assert_mentions(
            &err,
            &["tokenizer", "512 (vocab_size)"],
            &format!("id {id}"),
        );
    }
}

// ---------------------------------------------------------------------------------
// Texts: the CLI's reader (TextReader, read_text) and the page's encoder.

/// A text made of pieces that stress tokenizing: words, runs of spaces, digits,
/// emoji, combining marks, CJK, control characters, long runs without a space.
fn text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("Of Mans First Disobedience".to_string()),
        Just(" ".to_string()),
        Just("  ".to_string()),
        Just("\n".to_string()),
        Just("\r\n".to_string()),
        Just("\t".to_string()),
        Just("12345".to_string()),
        Just("🦀".to_string()),
        Just("e\u{301}".to_string()),
        Just("長い文章".to_string()),
        Just("\u{0}\u{7f}\u{feff}".to_string()),
        Just("'s".to_string()),
        "[a-z]{1,12}",
        "\\PC{1,8}",
        any::<char>().prop_map(String::from),
    ];
    prop_oneof![
        4 => prop::collection::vec(piece, 0..40).prop_map(|p| p.concat()),
        1 => any::<String>(),
    ]
}

/// Text bytes, often with a few bytes broken: invalid UTF-8 anywhere, characters
/// cut at the end.
fn text_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => (text(), prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3))
            .prop_map(|(text, edits)| {
                let mut bytes = text.into_bytes();
                for (at, byte) in edits {
                    let at = at.index(bytes.len() + 1);
                    bytes.insert(at, byte);
                }
                bytes
            }),
        1 => prop::collection::vec(any::<u8>(), 0..200),
    ]
}

/// Hands out the input in reads of the given sizes (0 ends it early with an error).
struct Uneven<'a> {
    data: &'a [u8],
    sizes: Vec<usize>,
    step: usize,
    fail: bool,
}

impl Read for Uneven<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.data.is_empty() && self.fail {
            return Err(std::io::Error::other("the disk went away"));
        }
        let n = self.sizes[self.step % self.sizes.len()]
            .min(buf.len())
            .min(self.data.len());
        self.step += 1;
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

#[test]
fn text_reader_on_any_bytes() {
    let began = Instant::now();
    let cases = budget(50_000);
    let input = (
        text_bytes(),
        1usize..40,
        prop::collection::vec(1usize..50, 1..5),
        prop::bool::weighted(0.1),
    );
    runner(cases, 7)
        .run(&input, |(bytes, block, sizes, fail)| {
            let source = Uneven {
                data: &bytes,
                sizes,
                step: 0,
                fail,
            };
            let mut reader = TextReader::new(source, block);
            let mut seen = Vec::new();
            let result = bounded(bytes.len(), || loop {
                match reader.next() {
                    None => break Ok(()),
                    Some(Ok(block)) => {
                        assert!(!block.is_empty(), "an empty block");
                        seen.extend_from_slice(block.as_bytes());
                    }
                    Some(Err(e)) => break Err(e),
                }
            });
            assert!(bytes.starts_with(&seen));
            match (std::str::from_utf8(&bytes), result) {
                (_, Err(e)) if fail && e.to_string().contains("the disk went away") => {
                    assert_mentions(&e.to_string(), &["reading the text failed"], "an I/O error");
                }
                (Ok(_), Ok(())) => {
                    assert!(!fail, "the I/O error was lost");
                    assert_eq!(seen, bytes);
                    assert_eq!(reader.consumed as usize, bytes.len());
                }
                (Err(utf8), Err(e)) => {
                    let at = format!("invalid UTF-8 at byte {}", utf8.valid_up_to());
                    assert_mentions(&e.to_string(), &[&at], "invalid UTF-8");
                }
                (valid, result) => panic!("UTF-8 {valid:?} but read {result:?}"),
            }
            Ok(())
        })
        .unwrap();
    report("TextReader (proptest)", cases, None, began);
}

/// The CLI's `read_text` and `first_tokens` on files.
#[test]
fn cli_text_files() {
    let began = Instant::now();
    let cases = budget(2_000);
    let model = common::random_tiny();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("text.txt");
    runner(cases, 8)
        .run(&text_bytes(), |bytes| {
            std::fs::write(&path, &bytes).unwrap();
            let read = bounded(bytes.len(), || infiniscope::text::read_text(&path));
            let first = infiniscope::text::first_tokens(&model, &path, 64);
            match std::str::from_utf8(&bytes) {
                Ok(text) => {
                    assert_eq!(read.unwrap(), text);
                    match first {
                        Ok(tokens) => assert!(tokens.len() >= 2 && tokens.len() <= 64),
                        Err(e) => {
                            assert_mentions(&e.to_string(), &["fewer than two tokens"], "short")
                        }
                    }
                }
                Err(utf8) => {
                    let at = format!("invalid UTF-8 at byte {}", utf8.valid_up_to());
                    assert_mentions(&read.unwrap_err().to_string(), &[&at], "read_text");
                    if let Err(e) = first {
                        assert_named(&e);
                    }
                }
            }
            Ok(())
        })
        .unwrap();
    let missing = infiniscope::text::read_text(&dir.path().join("nope.txt")).unwrap_err();
    assert_mentions(&missing.to_string(), &["nope.txt"], "a missing file");
    report(
        "read_text and first_tokens on files (proptest)",
        cases,
        None,
        began,
    );
}

/// The page's path for a dropped or pasted text: pieces of any size through the
/// stream encoder give the tokens of the whole text, and their pieces join to it.
#[test]
fn dropped_text_through_the_stream_encoder() {
    let began = Instant::now();
    let cases = budget(18_000);
    let model = common::random_tiny();
    let input = (
        text(),
        prop::collection::vec(any::<prop::sample::Index>(), 0..6),
    );
    runner(cases, 9)
        .run(&input, |(text, cuts)| {
            let mut cuts: Vec<usize> = cuts
                .iter()
                .map(|c| c.index(text.len() + 1))
                .map(|mut c| {
                    while !text.is_char_boundary(c) {
                        c -= 1;
                    }
                    c
                })
                .collect();
            cuts.sort_unstable();
            cuts.push(text.len());
            let mut encoder = StreamEncoder::default();
            let mut pieces = Pieces::default();
            let (mut ids, mut joined, mut from) = (Vec::new(), String::new(), 0);
            for cut in cuts {
                let got = bounded(text.len(), || {
                    encoder.push(&model.tokenizer, &text[from..cut])
                });
                ids.extend(got.unwrap());
                from = cut;
            }
            ids.extend(encoder.finish(&model.tokenizer).unwrap());
            for &id in &ids {
                joined += &pieces.next(&model.tokenizer, id);
            }
            prop_assert_eq!(&ids, &model.tokenizer.encode(&text).unwrap());
            prop_assert_eq!(&joined, &text);
            Ok(())
        })
        .unwrap();
    report(
        "StreamEncoder, the page's dropped text (proptest)",
        cases,
        None,
        began,
    );
}
