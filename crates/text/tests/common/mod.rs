//! Shared helpers: locating the default GGUF and the reference Python, running reference scripts.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Skips a reference test with its reason, or fails it where `MINIBAR_REQUIRE_REFERENCE` is set
/// (as `make test` and CI set it), so a missing reference never passes silently there.
fn skip(test: &str, reason: &str) {
    if std::env::var_os("MINIBAR_REQUIRE_REFERENCE").is_some() {
        panic!("{test}: {reason}, and MINIBAR_REQUIRE_REFERENCE is set");
    }
    println!("SKIPPED {test}: {reason} (make test sets it)");
}

/// The default model file (`MINIBAR_DEFAULT_GGUF`, set by the Makefile and CI), or `None` with
/// the reason printed so a local run shows what it skipped.
pub fn default_gguf(test: &str) -> Option<PathBuf> {
    match std::env::var_os("MINIBAR_DEFAULT_GGUF") {
        Some(p) if Path::new(&p).is_file() => Some(PathBuf::from(p)),
        Some(p) => panic!(
            "MINIBAR_DEFAULT_GGUF={} is not a file",
            Path::new(&p).display()
        ),
        None => {
            skip(test, "MINIBAR_DEFAULT_GGUF is not set");
            None
        }
    }
}

/// The reference virtual environment's python (`MINIBAR_REFERENCE_PYTHON`), or `None` with the
/// reason printed.
pub fn reference_python(test: &str) -> Option<PathBuf> {
    match std::env::var_os("MINIBAR_REFERENCE_PYTHON") {
        Some(p) => Some(PathBuf::from(p)),
        None => {
            skip(test, "MINIBAR_REFERENCE_PYTHON is not set");
            None
        }
    }
}

/// This crate's folder in the checkout being tested. `cargo test` sets the variable when it
/// runs the test; the compile-time value is only a fallback, because a cargo target folder
/// shared by clones in other places may hold a test binary built in one of them.
pub fn crate_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// `tests/reference/<name>` at the workspace root.
pub fn reference_script(name: &str) -> PathBuf {
    crate_dir().join("../../tests/reference").join(name)
}

/// A fixture file of this crate's tests.
pub fn fixture(name: &str) -> PathBuf {
    crate_dir().join("tests/fixtures").join(name)
}

/// The shared tokenization corpus.
pub fn corpus() -> Vec<String> {
    let text = std::fs::read_to_string(fixture("corpus.json")).expect("corpus.json is readable");
    serde_json::from_str(&text).expect("corpus.json is a JSON list of strings")
}

/// Runs a reference script and parses the JSON it prints.
pub fn run_reference(python: &Path, script: &str, args: &[&std::ffi::OsStr]) -> serde_json::Value {
    let out = Command::new(python)
        .arg(reference_script(script))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    assert!(
        out.status.success(),
        "{script} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{script} printed invalid JSON ({e}); stderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}
