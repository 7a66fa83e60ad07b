//! The environment `make test` sets up: the default model, the reference Python, the checkout.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Why a test cannot run here: fails it when `MINIBAR_REQUIRE_REFERENCE` is set, else prints
/// the reason (naming the test, which libtest runs on a thread of that name) and returns
/// `None` for the test to return early as skipped.
pub fn required<T>(reason: &str) -> Option<T> {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("test");
    if std::env::var_os("MINIBAR_REQUIRE_REFERENCE").is_some() {
        panic!("{test}: {reason}, and MINIBAR_REQUIRE_REFERENCE is set");
    }
    eprintln!("SKIPPED {test}: {reason}; `make test` sets it up");
    None
}

/// The default model's GGUF (`MINIBAR_DEFAULT_GGUF`), or a skip.
pub fn default_gguf() -> Option<PathBuf> {
    match std::env::var_os("MINIBAR_DEFAULT_GGUF") {
        Some(p) if Path::new(&p).is_file() => Some(PathBuf::from(p)),
        Some(p) => panic!(
            "MINIBAR_DEFAULT_GGUF={} is not a file",
            Path::new(&p).display()
        ),
        None => required("MINIBAR_DEFAULT_GGUF is not set"),
    }
}

/// The reference implementations' Python (`MINIBAR_REFERENCE_PYTHON`), or a skip.
pub fn reference_python() -> Option<PathBuf> {
    match std::env::var_os("MINIBAR_REFERENCE_PYTHON") {
        Some(p) => Some(PathBuf::from(p)),
        None => required("MINIBAR_REFERENCE_PYTHON is not set"),
    }
}

/// The root of the checkout being tested. Found from the run-time `CARGO_MANIFEST_DIR` that
/// `cargo test` sets, because a target folder shared by clones elsewhere may hold a test binary
/// built in one of them, whose compile-time path is gone.
pub fn repo_root() -> PathBuf {
    let start = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    start
        .ancestors()
        .find(|d| d.join("Cargo.lock").is_file())
        .unwrap_or_else(|| panic!("no Cargo.lock above {}", start.display()))
        .to_path_buf()
}

/// A reference script under `tests/reference`.
pub fn script(name: &str) -> PathBuf {
    repo_root().join("tests/reference").join(name)
}

/// Runs the reference Python with `args` and returns its standard output; panics with its
/// standard error when it fails.
pub fn run_python<S: AsRef<std::ffi::OsStr>>(python: &Path, args: &[S]) -> String {
    let out = Command::new(python)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    let shown: Vec<_> = args.iter().map(|a| a.as_ref().to_string_lossy()).collect();
    assert!(
        out.status.success(),
        "reference script failed ({}): {shown:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("the reference prints UTF-8")
}
