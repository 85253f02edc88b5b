//! `cargo xtask demo` and `cargo xtask test`: the README's two commands. Each first
//! installs what is missing on a fresh Debian machine (lavapipe, the wasm target,
//! wasm-bindgen, Trunk, the npm packages, Chromium), and skips what is already
//! there, so reruns are fast.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let task = std::env::args().nth(1).unwrap_or_default();
    let result = match task.as_str() {
        "demo" => demo(),
        "test" => test(),
        _ => {
            eprintln!("usage: cargo xtask <demo|test>\n  demo  build the web page and serve it on http://127.0.0.1:8080\n  test  install what the tests need, then run them all");
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
    ensure_runtime_dir();
    run("cargo", &["test", "--release", "--workspace"])?;
    // The page, built as `cargo xtask demo` serves it, in headless Chromium.
    trunk("build")?;
    run_in(BROWSER_TESTS, "npm", &["test"])
}
