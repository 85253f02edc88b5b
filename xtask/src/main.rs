//! `cargo xtask demo` and `cargo xtask test`: the README's two commands. Each first
//! installs what is missing on a fresh Debian machine (lavapipe, the wasm target),
//! and skips what is already there, so reruns are fast.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let task = std::env::args().nth(1).unwrap_or_default();
    let result = match task.as_str() {
        "demo" => demo(),
        "test" => test(),
        _ => {
            eprintln!("usage: cargo xtask <demo|test>\n  demo  run the bundled model over the bundled sample text\n  test  install what the tests need, then run them all");
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
    eprintln!("$ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .current_dir(root())
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

fn demo() -> Result<(), String> {
    ensure_lavapipe()?;
    ensure_runtime_dir();
    run(
        "cargo",
        &[
            "run",
            "--release",
            "--bin",
            "infiniscope",
            "--",
            "eval",
            "--max-tokens",
            "4096",
        ],
    )
}

fn test() -> Result<(), String> {
    ensure_lavapipe()?;
    ensure_wasm_target()?;
    ensure_runtime_dir();
    run("cargo", &["test", "--release", "--workspace"])?;
    // The library must also build for the browser (WebGPU).
    run(
        "cargo",
        &[
            "build",
            "--release",
            "--lib",
            "--target",
            "wasm32-unknown-unknown",
        ],
    )
}
