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

/// Writes GGUF v3 bytes for tests.
#[derive(Default)]
pub struct Writer {
    pub kv: Vec<u8>,
    pub n_kv: u64,
    pub tensors: Vec<u8>,
    pub n_tensors: u64,
}

/// A GGUF string: u64 length, then the bytes.
pub fn string(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

impl Writer {
    /// Adds a key with its type id and encoded value.
    pub fn key(&mut self, key: &str, ty: u32, value: &[u8]) -> &mut Self {
        string(&mut self.kv, key);
        self.kv.extend(ty.to_le_bytes());
        self.kv.extend(value);
        self.n_kv += 1;
        self
    }
    /// Adds a tensor directory entry.
    pub fn tensor(&mut self, name: &str, dims: &[u64], ty: u32, offset: u64) -> &mut Self {
        string(&mut self.tensors, name);
        self.tensors.extend((dims.len() as u32).to_le_bytes());
        for d in dims {
            self.tensors.extend(d.to_le_bytes());
        }
        self.tensors.extend(ty.to_le_bytes());
        self.tensors.extend(offset.to_le_bytes());
        self.n_tensors += 1;
        self
    }
    /// Header, metadata, tensor directory, padding to 32 and `data_len` bytes of data.
    pub fn bytes(&self, data_len: usize) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend(3u32.to_le_bytes());
        out.extend(self.n_tensors.to_le_bytes());
        out.extend(self.n_kv.to_le_bytes());
        out.extend(&self.kv);
        out.extend(&self.tensors);
        while !out.len().is_multiple_of(32) {
            out.push(0);
        }
        out.extend(vec![0u8; data_len]);
        out
    }
}
