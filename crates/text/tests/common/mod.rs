//! Shared helpers: the crate's fixtures and corpus, running reference scripts (found, skipped
//! and cached through minibar-testkit), and a GGUF writer.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// This crate's folder in the checkout being tested. `cargo test` sets the variable when it
/// runs the test; the compile-time value is only a fallback, because a cargo target folder
/// shared by clones in other places may hold a test binary built in one of them.
pub fn crate_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
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
    parse(script, &run(python, script, args))
}

/// [`run_reference`], with the output cached under `key`: `Key::for_script(script)` plus the
/// contents of everything the script reads.
pub fn run_reference_cached(
    python: &Path,
    script: &str,
    args: &[&std::ffi::OsStr],
    key: &minibar_testkit::Key,
) -> serde_json::Value {
    parse(
        script,
        &minibar_testkit::cached(key, || run(python, script, args)),
    )
}

fn run(python: &Path, script: &str, args: &[&std::ffi::OsStr]) -> String {
    let mut all = vec![minibar_testkit::script(script).into_os_string()];
    all.extend(args.iter().map(|a| a.to_os_string()));
    minibar_testkit::run_python(python, &all)
}

fn parse(script: &str, out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{script} printed invalid JSON ({e})"))
}
