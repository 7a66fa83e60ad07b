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
