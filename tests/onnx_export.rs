//! The ONNX export (tools/export_onnx.py) run in onnxruntime gives the CPU
//! reference's loss for every segment of a text: the exported graph is the model of
//! docs/DESIGN.md §1, its memory carried from chunk to chunk. Without python3 and its
//! packages this test fails (it never skips): `cargo xtask test` installs them.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use infiniscope::engine::Engine;
use infiniscope::taps::Taps;
use infiniscope::text::read_file;
use infiniscope::{Model, RunOptions};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const MODEL: &str = "models/infini-tiny";
const TEXT: &str = "tests/fixtures/paradise-lost-12k.txt";
/// Largest |ONNX − CPU reference| allowed for a segment's mean loss, in nats.
const TOLERANCE: f64 = 1e-4;
const INSTALL: &str = "python3 -m pip install onnx==1.23.2 onnxruntime==1.32.0 numpy==2.4.6 tokenizers==0.23.3 \
     (on Debian's own python3 add --break-system-packages), or run `cargo xtask test`, which installs them";

fn python_packages_present() {
    let probe = Command::new("python3")
        .args(["-c", "import onnx, onnxruntime, numpy, tokenizers"])
        .output();
    match probe {
        Err(e) => panic!("the ONNX export test needs python3 ({e}); then: {INSTALL}"),
        Ok(out) if !out.status.success() => panic!(
            "the ONNX export test needs the PyPI packages onnx, onnxruntime, numpy and tokenizers:\n{}\ninstall them: {INSTALL}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Ok(_) => {}
    }
}

/// (tokens, per-segment mean loss) from the CPU reference, read as `eval` reads.
fn reference_losses(model: &Path, text: &Path) -> (usize, Vec<Option<f32>>) {
    let model = Arc::new(Model::load(model).expect("the model loads"));
    let options = RunOptions::for_config(&model.config);
    let (mut engine, _) = Engine::new(Arc::clone(&model), options, true);
    let taps = Taps {
        loss: true,
        ..Taps::default()
    };
    let mut losses = Vec::new();
    let tokens = read_file(
        &model,
        &mut engine,
        text,
        usize::MAX,
        taps,
        |segment, out, _| {
            assert_eq!(segment.index, losses.len());
            losses.push(out.mean_loss());
        },
    )
    .expect("the CPU reference reads the text");
    (tokens, losses)
}

#[test]
fn onnx_export_gives_the_cpu_reference_losses() {
    python_packages_present();
    let root = Path::new(ROOT);
    let dir = tempfile::tempdir().unwrap();
    let (graph, report) = (
        dir.path().join("model.onnx"),
        dir.path().join("losses.json"),
    );
    let out = Command::new("python3")
        .current_dir(root)
        .args(["tools/export_onnx.py", MODEL, "--out"])
        .arg(&graph)
        .args(["--check", TEXT, "--json"])
        .arg(&report)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "tools/export_onnx.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(graph.metadata().unwrap().len() > 0, "no graph written");
    let onnx: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).unwrap()).expect("valid JSON");

    let (tokens, want) = reference_losses(&root.join(MODEL), &root.join(TEXT));
    assert_eq!(
        onnx["tokens"].as_u64().unwrap() as usize,
        tokens,
        "the Python tokenizers package and infiniscope tokenize the text differently"
    );
    let got = onnx["segments"].as_array().unwrap();
    assert_eq!(got.len(), want.len(), "segment counts differ");
    // Two full chunks of 32 segments and a short last one: the memory is carried.
    assert!(want.len() > 64, "{} segments", want.len());
    let mut worst = 0.0f64;
    for (i, (segment, want)) in got.iter().zip(&want).enumerate() {
        match (segment["loss"].as_f64(), want) {
            (Some(got), Some(want)) => {
                let diff = (got - *want as f64).abs();
                assert!(
                    diff <= TOLERANCE,
                    "segment {i}: ONNX loss {got} vs CPU reference {want} (|Δ| {diff:e})"
                );
                worst = worst.max(diff);
            }
            (None, None) => {}
            (_, want) => panic!(
                "segment {i}: ONNX loss {} vs CPU reference {want:?}",
                segment["loss"]
            ),
        }
    }
    eprintln!(
        "{} segments agree, max |Δ loss| {worst:e} nats; onnxruntime {:.0} tokens/s",
        want.len(),
        onnx["tokens_per_second"].as_f64().unwrap()
    );
}
