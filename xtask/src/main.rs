//! `cargo xtask demo` and `cargo xtask test`: the README's two commands (and
//! `cargo xtask bench`, the benchmarks of BENCHMARKS.md in one run; `cargo xtask
//! wasm-relaxed` is Trunk's post-build hook, not run by hand). Each first
//! installs what is missing on a fresh Debian machine (lavapipe, the wasm target,
//! wasm-bindgen, Trunk, the npm packages, Chromium, the PyPI packages of the ONNX
//! export test), and skips what is already there, so reruns are fast.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let task = std::env::args().nth(1).unwrap_or_default();
    let result = match task.as_str() {
        "demo" => demo(),
        "test" => test(),
        "bench" if std::env::args().nth(2).as_deref() == Some("--gpu-quick") => gpu_quick(),
        "bench" => bench(),
        "wasm-relaxed" => wasm_relaxed(),
        _ => {
            eprintln!("usage: cargo xtask <demo|test|bench|wasm-relaxed>\n  demo   build the web page and serve it on http://127.0.0.1:8080\n  test   install what the tests need, then run them all\n  bench  run every benchmark of BENCHMARKS.md and RELIABILITY.md (about 95 minutes on 2 cores), output in target/bench/\n  bench --gpu-quick  the GPU engine alone, for a machine with a real GPU (minutes), output in target/bench/gpu-quick.md\n  wasm-relaxed  (Trunk's post-build hook) the engine's WebAssembly with relaxed SIMD, beside Trunk's");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    run_in(".", program, args)
}

/// Runs `program` in `dir` (relative to the workspace root).
fn run_in(dir: &str, program: &str, args: &[&str]) -> Result<(), String> {
    eprintln!("$ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .current_dir(root().join(dir))
        .status()
        .map_err(|e| format!("could not start {program}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{program} {} failed ({status})", args.join(" ")))
    }
}

fn succeeds(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Lavapipe (Vulkan on the CPU) so the GPU engine runs on a machine without a GPU.
fn ensure_lavapipe() -> Result<(), String> {
    if succeeds("dpkg", &["-s", "mesa-vulkan-drivers"]) || !Path::new("/usr/bin/apt-get").exists() {
        return Ok(());
    }
    run("apt-get", &["update", "-qq"])?;
    run(
        "apt-get",
        &[
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            "mesa-vulkan-drivers",
            "libvulkan1",
        ],
    )
}

fn ensure_wasm_target() -> Result<(), String> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("wasm32-unknown-unknown"))
        .unwrap_or(false);
    if installed {
        return Ok(());
    }
    run("rustup", &["target", "add", "wasm32-unknown-unknown"])
}

/// Lavapipe complains (harmlessly) without a private runtime folder.
fn ensure_runtime_dir() {
    if std::env::var_os("XDG_RUNTIME_DIR").is_some() {
        return;
    }
    let dir = std::env::temp_dir().join("infiniscope-runtime");
    if std::fs::create_dir_all(&dir).is_ok() {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
        }
        std::env::set_var("XDG_RUNTIME_DIR", dir);
    }
}

/// Versions the web build needs: wasm-bindgen's CLI must equal the crate in
/// Cargo.lock; Trunk 0.22 needs a newer rustc than this machine's.
const WASM_BINDGEN: &str = "0.2.130";
const TRUNK: &str = "0.21.14";
const BROWSER_TESTS: &str = "tests/browser";

fn version_of(program: &str) -> String {
    Command::new(program)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// wasm-bindgen, Trunk (built once, then found on PATH) and the npm packages
/// (wasm-opt from binaryen 132: Debian's binaryen 108 breaks the output).
fn ensure_web_tools() -> Result<(), String> {
    ensure_wasm_target()?;
    if !version_of("wasm-bindgen").contains(WASM_BINDGEN) {
        // Not --locked: its lock file pins a crate version the registry no longer has.
        run(
            "cargo",
            &["install", "wasm-bindgen-cli", "--version", WASM_BINDGEN],
        )?;
    }
    if !version_of("trunk").contains(TRUNK) {
        run(
            "cargo",
            &["install", "trunk", "--version", TRUNK, "--locked"],
        )?;
    }
    if !root().join(BROWSER_TESTS).join("node_modules").exists() {
        run_in(BROWSER_TESTS, "npm", &["ci", "--no-audit", "--no-fund"])?;
    }
    // Trunk finds wasm-opt on PATH.
    let bin = root().join(BROWSER_TESTS).join("node_modules/.bin");
    let path = std::env::var("PATH").unwrap_or_default();
    std::env::set_var("PATH", format!("{}:{path}", bin.display()));
    Ok(())
}

/// Debian's Chromium for the headless browser tests (never a downloaded browser).
fn ensure_chromium() -> Result<(), String> {
    if Path::new("/usr/bin/chromium").exists() || !Path::new("/usr/bin/apt-get").exists() {
        return Ok(());
    }
    run("apt-get", &["update", "-qq"])?;
    run("apt-get", &["install", "-y", "-qq", "chromium"])
}

/// The PyPI packages tests/onnx_export.rs runs tools/export_onnx.py with, pinned to
/// versions that install together on Python 3.11: (the modules imported, packages).
const PYTHON_PACKAGES: (&str, &[&str]) = (
    "onnx, onnxruntime, numpy, tokenizers",
    &[
        "onnx==1.23.2",
        "onnxruntime==1.32.0",
        "numpy==2.4.6",
        "tokenizers==0.23.3",
    ],
);

/// What the benchmark adds: tools/plot_scaling.py draws docs/scaling.png.
const PLOT_PACKAGES: (&str, &[&str]) = ("matplotlib", &["matplotlib==3.10.8"]);

/// Python packages for python3 unless their modules import (pip from Debian if missing).
fn ensure_python_packages((modules, packages): (&str, &[&str])) -> Result<(), String> {
    if succeeds("python3", &["-c", &format!("import {modules}")]) {
        return Ok(());
    }
    if !succeeds("python3", &["-m", "pip", "--version"]) && Path::new("/usr/bin/apt-get").exists() {
        run("apt-get", &["update", "-qq"])?;
        run("apt-get", &["install", "-y", "-qq", "python3-pip"])?;
    }
    // Debian's own python3 refuses pip installs outside a virtual environment (PEP
    // 668) unless told; the pip of any other Python ignores the variable.
    std::env::set_var("PIP_BREAK_SYSTEM_PACKAGES", "1");
    let mut args = vec!["-m", "pip", "install", "--quiet"];
    args.extend_from_slice(packages);
    run("python3", &args)
}

/// onnxruntime-web, the page's peer in the browser benchmark: installed into
/// target/ort-web (148 MB of wasm builds) rather than the tests' node_modules, which
/// every CI run installs.
const ORT_WEB: &str = "onnxruntime-web@1.30.0";

fn ensure_onnxruntime_web() -> Result<(), String> {
    let dir = root().join("target/ort-web");
    if dir.join("node_modules/onnxruntime-web").exists() {
        return Ok(());
    }
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let dir = dir.display().to_string();
    run(
        "npm",
        &[
            "install",
            "--prefix",
            &dir,
            "--no-audit",
            "--no-fund",
            ORT_WEB,
        ],
    )
}

fn trunk(command: &str) -> Result<(), String> {
    run("trunk", &[command, "--skip-version-check"])
}

/// Builds the page with Trunk and serves it (with the bundled model and sample).
fn demo() -> Result<(), String> {
    ensure_web_tools()?;
    eprintln!("serving the demo on http://127.0.0.1:8080 (the first build takes a few minutes)");
    trunk("serve")
}

fn test() -> Result<(), String> {
    ensure_lavapipe()?;
    ensure_web_tools()?;
    ensure_chromium()?;
    ensure_python_packages(PYTHON_PACKAGES)?;
    ensure_runtime_dir();
    run("cargo", &["test", "--release", "--workspace"])?;
    // The page, built as `cargo xtask demo` serves it, in headless Chromium.
    trunk("build")?;
    run_in(BROWSER_TESTS, "npm", &["test"])
}

/// Where the relaxed-SIMD build compiles: a target folder of its own, since other
/// RUSTFLAGS in `target/` would rebuild every crate at each switch.
const RELAXED_TARGET: &str = "target/wasm-relaxed";

/// The engine's WebAssembly built again with relaxed SIMD (the products' fused
/// multiply-add), written as `infiniscope_relaxed_bg.wasm` beside Trunk's SIMD128
/// build in Trunk's staging folder; the page's worker loads it where the browser
/// validates relaxed SIMD (web/scope/wasm-build.js). Both share Trunk's JavaScript
/// glue, which this checks. Run by the post-build hook in Trunk.toml.
fn wasm_relaxed() -> Result<(), String> {
    let staging = PathBuf::from(
        std::env::var("TRUNK_STAGING_DIR")
            .map_err(|_| "TRUNK_STAGING_DIR is not set: Trunk's post-build hook runs this")?,
    );
    let target = root().join(RELAXED_TARGET);
    eprintln!("$ cargo build (relaxed SIMD) into {RELAXED_TARGET}");
    let status = Command::new("cargo")
        .args(["build", "--release", "--target", "wasm32-unknown-unknown"])
        .args(["--no-default-features", "--lib"])
        .env("CARGO_TARGET_DIR", &target)
        // Replaces .cargo/config.toml's flags for this target, so SIMD128 is named again.
        .env("RUSTFLAGS", "-C target-feature=+simd128,+relaxed-simd")
        .current_dir(root())
        .status()
        .map_err(|e| format!("could not start cargo: {e}"))?;
    if !status.success() {
        return Err(format!("the relaxed-SIMD build failed ({status})"));
    }
    let wasm = target.join("wasm32-unknown-unknown/release/infiniscope.wasm");
    let bindgen = target.join("bindgen");
    let path = |p: &Path| p.to_str().expect("UTF-8 paths").to_string();
    run(
        "wasm-bindgen",
        &[
            "--target",
            "web",
            "--no-typescript",
            "--out-dir",
            &path(&bindgen),
            &path(&wasm),
        ],
    )?;
    let glue = |dir: &Path| std::fs::read(dir.join("infiniscope.js")).map_err(|e| e.to_string());
    if glue(&bindgen)? != glue(&staging)? {
        return Err(
            "the relaxed-SIMD build's JavaScript glue differs from Trunk's: \
                    the two builds must export the same functions"
                .into(),
        );
    }
    let out = staging.join("infiniscope_relaxed_bg.wasm");
    run(
        "wasm-opt",
        &[
            "--enable-simd",
            "--enable-relaxed-simd",
            "-Oz",
            &path(&bindgen.join("infiniscope_bg.wasm")),
            "-o",
            &path(&out),
        ],
    )
}

/// Bytes of training text the long-text benchmarks read (≈ 1.45M tokens).
const LONG_TEXT_BYTES: usize = 5_200_000;

/// The first LONG_TEXT_BYTES of the training corpus, documents in name order.
fn long_text(path: &Path) -> Result<(), String> {
    let corpus = root().join("data/corpus/train");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&corpus)
        .map_err(|e| {
            format!(
                "{}: {e} (run `python3 tools/corpus.py` first)",
                corpus.display()
            )
        })?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    let mut text = String::new();
    for file in files {
        text += &std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        if text.len() >= LONG_TEXT_BYTES {
            break;
        }
    }
    let mut end = LONG_TEXT_BYTES.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    std::fs::write(path, &text[..end]).map_err(|e| format!("{}: {e}", path.display()))
}

/// Runs one benchmark step, echoing its output and appending the command and its
/// output to the report, which is written to `out` (under target/bench/) as it grows.
fn record(
    report: &mut String,
    out: &str,
    dir: &str,
    program: &str,
    args: &[&str],
) -> Result<(), String> {
    let line = format!("$ {program} {}", args.join(" "));
    eprintln!("{line}");
    let start = std::time::Instant::now();
    let output = Command::new(program)
        .args(args)
        .current_dir(root().join(dir))
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("could not start {program}: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    print!("{stdout}");
    *report += &format!(
        "```\n{line}\n{stdout}```\n({:.0} s, {})\n\n",
        start.elapsed().as_secs_f64(),
        output.status
    );
    std::fs::write(root().join("target/bench").join(out), report.as_bytes())
        .map_err(|e| e.to_string())?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!("{line} failed ({})", output.status))
    }
}

/// For a machine with a real GPU and a Vulkan (or Metal, DX12) driver: the GPU engine's
/// tokens/s one segment per submission and chunked (with the CPU reference beside it),
/// the matmul kernel's GFLOP/s and where a chunk's time goes, at 32 and 256 segments a
/// submission, then one text read to 4K, 64K and 1M tokens at constant memory, each
/// line naming the adapter. A few minutes on a real GPU; output in
/// target/bench/gpu-quick.md.
fn gpu_quick() -> Result<(), String> {
    run("cargo", &["build", "--release", "--bin", "infiniscope"])?;
    std::fs::create_dir_all(root().join("target/bench")).map_err(|e| e.to_string())?;
    let text = root().join("target/bench/long.txt");
    if long_text(&text).is_err() {
        // No corpus on this machine: the bundled sample, repeated past 1M tokens
        // (speed does not depend on what the text says).
        let sample = std::fs::read_to_string(root().join("samples/paradise-lost.txt"))
            .map_err(|e| e.to_string())?;
        std::fs::write(&text, sample.repeat(8)).map_err(|e| e.to_string())?;
    }
    let text = text.display().to_string();
    let cli = root()
        .join("target/release/infiniscope")
        .display()
        .to_string();
    let mut report = String::from("# cargo xtask bench --gpu-quick\n\n");
    let steps: Vec<Vec<&str>> = vec![
        vec!["bench", "--text", &text, "--tokens", "16384"],
        // Longer submissions: on an H200, 256 segments read 1.85× what 32 did.
        vec![
            "bench", "--text", &text, "--tokens", "65536", "--chunk", "256",
        ],
        vec!["long", "--text", &text, "--marks", "4096,65536,1048576"],
    ];
    for args in steps {
        record(&mut report, "gpu-quick.md", ".", &cli, &args)?;
    }
    Ok(())
}

/// The page as it was when the speed issue was filed (the engine on the main thread,
/// the crate built without SIMD128), the benchmark's baseline for the page's CPU path, and
/// the worktree it is built in.
const PAGE_THEN: &str = "f10be2d";
const THEN_DIR: &str = "target/bench/then";

/// Every benchmark of BENCHMARKS.md, one after the other on this machine: the
/// commands and their output go to target/bench/run.md, the scaling plot to
/// docs/scaling.png. A step that fails is reported and the others still run.
fn bench() -> Result<(), String> {
    ensure_lavapipe()?;
    ensure_web_tools()?;
    ensure_chromium()?;
    ensure_python_packages(PYTHON_PACKAGES)?;
    ensure_python_packages(PLOT_PACKAGES)?;
    ensure_onnxruntime_web()?;
    ensure_runtime_dir();
    run("cargo", &["build", "--release", "--bin", "infiniscope"])?;
    std::fs::create_dir_all(root().join("target/bench")).map_err(|e| e.to_string())?;
    let text = root().join("target/bench/long.txt");
    long_text(&text)?;
    let text = text.display().to_string();
    let cli = root()
        .join("target/release/infiniscope")
        .display()
        .to_string();
    let marks = "4096,16384,65536,262144,1048576";
    let (cpu_csv, gpu_csv) = (
        "target/bench/scaling-cpu.csv",
        "target/bench/scaling-gpu.csv",
    );
    let (cpu_series, gpu_series) = (
        format!("CPU reference={cpu_csv}"),
        format!("GPU engine, lavapipe={gpu_csv}"),
    );
    // A deleted target/ leaves the worktree registered, which `worktree add` refuses.
    let then_worktree =
        format!("test -d {THEN_DIR} || {{ git worktree prune && git worktree add --detach {THEN_DIR} {PAGE_THEN}; }}");
    let then_dist = root()
        .join(THEN_DIR)
        .join("target/dist")
        .display()
        .to_string();
    // The page's CPU path reading 16K tokens, three rounds.
    let page_cpu = ["bench.mjs", "16384", "--cpu", "--rounds", "3"];
    let mut report = String::from("# cargo xtask bench\n\n");
    let steps: Vec<(&str, &str, Vec<&str>)> = vec![
        ("uname", ".", vec!["-a"]),
        (
            "sh",
            ".",
            vec![
                "-c",
                "date -u; lscpu | grep -E 'Model name|^CPU\\(s\\)'; free -g | head -2",
            ],
        ),
        // 1. length scaling at constant memory
        (&cli, ".", vec!["long", "--text", &text, "--marks", marks]),
        (
            &cli,
            ".",
            vec!["long", "--cpu", "--text", &text, "--marks", marks],
        ),
        // 2. against full attention
        (
            &cli,
            ".",
            vec![
                "scaling",
                "--cpu",
                "--text",
                &text,
                "--lengths",
                "64,128,256,512,1024,2048,4096,8192,16384",
                "--csv",
                cpu_csv,
            ],
        ),
        (
            &cli,
            ".",
            vec![
                "scaling",
                "--text",
                &text,
                "--lengths",
                "256,512,1024,2048,4096",
                "--csv",
                gpu_csv,
            ],
        ),
        (
            "python3",
            ".",
            vec![
                "tools/plot_scaling.py",
                "docs/scaling.png",
                &cpu_series,
                &gpu_series,
            ],
        ),
        // the CPU reference against ONNX Runtime, 1 and 2 threads, interleaved
        ("python3", ".", vec!["tools/peer_bench.py", "--rounds", "7"]),
        // 3. and 4. FLOP rates, time per op, dispatches and submissions
        (
            &cli,
            ".",
            // Enough tokens that the CPU reference runs for a fraction of a second.
            vec!["bench", "--text", &text, "--tokens", "8192"],
        ),
        // 5. the page in headless Chromium
        ("trunk", ".", vec!["build", "--skip-version-check"]),
        ("node", BROWSER_TESTS, vec!["bench.mjs", "512"]),
        // the page's CPU path against the page the speed issue was filed on, built
        // from its commit in a worktree, read in turn in the same Chromium
        ("sh", ".", vec!["-c", &then_worktree]),
        ("trunk", THEN_DIR, vec!["build", "--skip-version-check"]),
        (
            "node",
            BROWSER_TESTS,
            [&page_cpu[..], &["--then", &then_dist]].concat(),
        ),
        // the same page with its CPU path in one worker: what the second one adds
        (
            "node",
            BROWSER_TESTS,
            [&page_cpu[..], &["--workers", "1"]].concat(),
        ),
        // the page's CPU path against onnxruntime-web in the same Chromium
        ("node", BROWSER_TESTS, vec!["ort-bench.mjs", "16384", "3"]),
        // the ceiling of one thread's WebAssembly multiply-adds on this host
        (
            "node",
            BROWSER_TESTS,
            vec!["--experimental-wasm-relaxed-simd", "fma-peak.mjs"],
        ),
        // the page's memory over ten runs, each cancelled and followed by a new text:
        // on WebGPU, and a million tokens on the CPU reference (RELIABILITY.md)
        ("node", BROWSER_TESTS, vec!["soak.mjs", "10", "4096"]),
        (
            "node",
            BROWSER_TESTS,
            vec!["soak.mjs", "10", "100000", "cpu"],
        ),
        // 6. passkey at 256K and 1M tokens
        (
            &cli,
            ".",
            vec![
                "passkey",
                "--cpu",
                "--lengths",
                "262144,1048576",
                "--depths",
                "0,0.5,1",
                "--trials",
                "1",
            ],
        ),
    ];
    let failed: Vec<String> = steps
        .iter()
        .filter_map(|(program, dir, args)| record(&mut report, "run.md", dir, program, args).err())
        .collect();
    eprintln!("report: target/bench/run.md");
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join("\n"))
    }
}
