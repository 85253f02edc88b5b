//! Bad input gets a clear error, never a panic: model files, configs, texts.

mod common;

use std::io::Read;
use std::path::Path;

use common::{model, odd_config};
use infiniscope::model::{CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE};
use infiniscope::tokenizer::TextReader;
use infiniscope::weights::StoredDtype;
use infiniscope::{Model, UpdateRule};

fn saved_model(dtype: StoredDtype) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    model(odd_config(UpdateRule::Delta), 31)
        .save(dir.path(), dtype)
        .unwrap();
    dir
}

fn load_error(dir: &Path) -> String {
    match Model::load(dir) {
        Ok(_) => panic!("loading {} should fail", dir.display()),
        Err(e) => e.to_string(),
    }
}

fn edit_config(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join(CONFIG_FILE);
    let mut value: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut value);
    std::fs::write(path, value.to_string()).unwrap();
}

#[test]
fn f32_and_f16_models_round_trip() {
    let original = model(odd_config(UpdateRule::Delta), 31);
    for dtype in [StoredDtype::F32, StoredDtype::F16] {
        let dir = saved_model(dtype);
        let loaded = Model::load(dir.path()).unwrap();
        assert_eq!(loaded.stored_dtype, dtype);
        assert_eq!(loaded.config, original.config);
        let (a, b) = (&loaded.weights.layers[1].wv, &original.weights.layers[1].wv);
        let tolerance = if dtype == StoredDtype::F32 { 0.0 } else { 1e-3 };
        assert!(a
            .iter()
            .zip(b)
            .all(|(x, y)| (x - y).abs() <= tolerance * y.abs().max(1.0)));
    }
}

#[test]
fn missing_folder_and_files_name_the_path() {
    let err = load_error(Path::new("/nonexistent/model"));
    assert!(
        err.contains("/nonexistent/model") && err.contains("no such model folder"),
        "{err}"
    );
    for file in [CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_FILE] {
        let dir = saved_model(StoredDtype::F32);
        std::fs::remove_file(dir.path().join(file)).unwrap();
        let err = load_error(dir.path());
        assert!(err.contains(file), "{file}: {err}");
    }
}

#[test]
fn corrupt_and_truncated_weights_are_reported() {
    let dir = saved_model(StoredDtype::F32);
    let path = dir.path().join(WEIGHTS_FILE);
    let bytes = std::fs::read(&path).unwrap();

    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = load_error(dir.path());
    assert!(
        err.contains("invalid weights") && err.contains("safetensors"),
        "truncated: {err}"
    );

    std::fs::write(
        &path,
        b"\x07\x00\x00\x00\x00\x00\x00\x00garbage and more garbage",
    )
    .unwrap();
    let err = load_error(dir.path());
    assert!(
        err.contains("not a readable safetensors file"),
        "garbage: {err}"
    );

    std::fs::write(&path, []).unwrap();
    assert!(load_error(dir.path()).contains("safetensors"));
}

#[test]
fn shape_mismatch_names_tensor_and_both_shapes() {
    let dir = saved_model(StoredDtype::F32);
    edit_config(dir.path(), |c| c["mlp_hidden"] = 80.into());
    let err = load_error(dir.path());
    assert!(
        err.contains("layers.0.w_gate") && err.contains("[48, 80]") && err.contains("[48, 75]"),
        "{err}"
    );
}

#[test]
fn missing_and_unexpected_tensors_are_named() {
    let dir = saved_model(StoredDtype::F32);
    edit_config(dir.path(), |c| c["n_layers"] = 3.into());
    assert!(load_error(dir.path()).contains("missing tensor \"layers.2.attn_norm\""));
    edit_config(dir.path(), |c| c["n_layers"] = 1.into());
    assert!(load_error(dir.path()).contains("unexpected tensor \"layers.1."));
}

#[test]
fn unknown_config_keys_and_values_are_rejected() {
    let dir = saved_model(StoredDtype::F32);
    edit_config(dir.path(), |c| c["segment_length"] = 32.into());
    let err = load_error(dir.path());
    assert!(err.contains("unknown field `segment_length`"), "{err}");

    let dir = saved_model(StoredDtype::F32);
    edit_config(dir.path(), |c| c["update_rule"] = "quadratic".into());
    assert!(load_error(dir.path()).contains("quadratic"));

    let dir = saved_model(StoredDtype::F32);
    edit_config(dir.path(), |c| c["n_heads"] = 4.into());
    assert!(load_error(dir.path()).contains("must equal n_heads"));

    let dir = saved_model(StoredDtype::F32);
    edit_config(dir.path(), |c| c["segment_len"] = 0.into());
    assert!(load_error(dir.path()).contains("segment_len must be positive"));

    // A key or query shift of one tap or of more than eight; and one the weights do
    // not have.
    for name in ["key_shift", "query_shift"] {
        for taps in [1, 9] {
            let dir = saved_model(StoredDtype::F32);
            edit_config(dir.path(), |c| c[name] = taps.into());
            let err = load_error(dir.path());
            assert!(err.contains(&format!("{name} is the taps")), "{err}");
        }
        let dir = saved_model(StoredDtype::F32);
        edit_config(dir.path(), |c| c[name] = 2.into());
        let err = load_error(dir.path());
        assert!(
            err.contains(&format!("missing tensor \"layers.0.{name}\"")),
            "{err}"
        );
    }

    let dir = saved_model(StoredDtype::F32);
    std::fs::write(dir.path().join(CONFIG_FILE), b"{\"vocab_size\": ").unwrap();
    assert!(load_error(dir.path()).contains("config.json"));
}

#[test]
fn corrupt_tokenizer_and_oversized_vocabulary_are_reported() {
    let dir = saved_model(StoredDtype::F32);
    std::fs::write(dir.path().join(TOKENIZER_FILE), b"{not json").unwrap();
    assert!(load_error(dir.path()).contains("tokenizer.json is not readable"));

    let dir = saved_model(StoredDtype::F32);
    let bigger = Model::random(
        infiniscope::Config {
            vocab_size: 400,
            ..odd_config(UpdateRule::Delta)
        },
        1,
        &common::TRAINING_TEXT.repeat(20),
    )
    .unwrap();
    std::fs::write(
        dir.path().join(TOKENIZER_FILE),
        bigger.tokenizer.to_json().unwrap(),
    )
    .unwrap();
    let err = load_error(dir.path());
    assert!(err.contains("tokens but the model only 301"), "{err}");
}

#[test]
fn non_finite_weights_are_rejected() {
    let mut m = Model::random(odd_config(UpdateRule::Delta), 2, common::TRAINING_TEXT).unwrap();
    m.weights.layers[0].wk[5] = f32::NAN;
    let dir = tempfile::tempdir().unwrap();
    m.save(dir.path(), StoredDtype::F32).unwrap();
    assert!(load_error(dir.path()).contains("\"layers.0.wk\": element 5 is NaN"));
}

#[test]
fn invalid_utf8_is_reported_with_its_offset() {
    let mut text = b"Of Mans First Disobedience ".repeat(100);
    text.extend_from_slice(b"\xff\xfe and the Fruit");
    let err = TextReader::new(&text[..], 64)
        .collect::<Result<String, _>>()
        .unwrap_err()
        .to_string();
    assert!(err.contains("invalid UTF-8 at byte 2700"), "{err}");
    // A character cut by a chunk boundary is not an error.
    let emoji = "🦀 e\u{301}".repeat(50);
    let joined: String = TextReader::new(emoji.as_bytes(), 7)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(joined, emoji);
}

/// 256 MiB of text made on the fly: more than is ever held at once.
struct EndlessProse {
    left: usize,
}

impl Read for EndlessProse {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let line = b"Of Mans First Disobedience, and the Fruit of that Forbidden Tree\n";
        let n = buf.len().min(self.left);
        for (i, b) in buf[..n].iter_mut().enumerate() {
            *b = line[(self.left - n + i) % line.len()];
        }
        self.left -= n;
        Ok(n)
    }
}

#[test]
fn a_huge_text_streams_in_bounded_chunks() {
    let total = 256 << 20;
    let mut chunks = TextReader::new(EndlessProse { left: total }, 1 << 20);
    let mut largest = 0;
    let mut seen = 0;
    for chunk in &mut chunks {
        let chunk = chunk.unwrap();
        largest = largest.max(chunk.len());
        seen += chunk.len();
    }
    assert_eq!(seen, total);
    assert_eq!(chunks.consumed as usize, total);
    assert!(largest <= 2 << 20, "largest chunk {largest} bytes");
}
