//! Shared by the engine's integration tests: finding the reference implementation (mlx-lm in
//! the set-up's Python environment) and the default model, caching converted fixtures and
//! reference outputs, and comparing logits.
//!
//! The cache is keyed by content, so it never answers for something that changed: a fixture by
//! the reference script that builds it and the pinned versions (scripts/versions.env), an
//! mlx-lm output by its script, its arguments and every byte of the model folder it ran on.
//! A folder Minibar writes in a test (a quantization, an import) is deterministic, so mlx-lm
//! runs on it once, and again only when Minibar's output changes.

#![allow(dead_code)]

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use minibar_engine::{
    generate::{CancelToken, Conversation, GenerateOptions},
    sample::SamplingParams,
    LoadedModel,
};

/// Why a reference check cannot run; fails the test when `MINIBAR_REQUIRE_REFERENCE` is set
/// (as `make test` and CI set it), else prints the reason and lets the test pass as skipped.
pub fn skip(reason: &str) -> Option<()> {
    if std::env::var_os("MINIBAR_REQUIRE_REFERENCE").is_some() {
        panic!("{reason} (MINIBAR_REQUIRE_REFERENCE is set)");
    }
    eprintln!("SKIPPED: {reason}; `make test` sets it up");
    None
}

/// The reference Python (with mlx-lm), or a skip.
pub fn python() -> Option<PathBuf> {
    match std::env::var_os("MINIBAR_REFERENCE_PYTHON") {
        Some(p) => Some(PathBuf::from(p)),
        None => skip("MINIBAR_REFERENCE_PYTHON is not set").map(|_| unreachable!()),
    }
}

/// The default model's GGUF, or a skip.
pub fn default_gguf() -> Option<PathBuf> {
    match std::env::var_os("MINIBAR_DEFAULT_GGUF") {
        Some(p) => Some(PathBuf::from(p)),
        None => skip("MINIBAR_DEFAULT_GGUF is not set").map(|_| unreachable!()),
    }
}

/// The repository's root, in the checkout being tested: `cargo test` sets the variable at
/// run time, and a target folder shared by clones elsewhere may hold a binary built in one.
pub fn repo() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join("../..")
}

/// The tiny random-weight models of every architecture, written by mlx-lm once and cached.
pub fn tiny_models(python: &Path) -> PathBuf {
    script_fixture("tiny-models", "tiny_models.py", |dir| {
        run_python(
            python,
            &[
                script("tiny_models.py").to_str().unwrap(),
                dir.to_str().unwrap(),
            ],
        );
    })
}

/// A reference script under tests/reference.
pub fn script(name: &str) -> PathBuf {
    repo().join("tests/reference").join(name)
}

/// Runs the reference Python; panics with its output on failure.
pub fn run_python(python: &Path, args: &[&str]) -> String {
    let out = Command::new(python)
        .args(args)
        .output()
        .expect("the reference Python runs");
    assert!(
        out.status.success(),
        "reference script failed: {args:?}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// A fixture built by the reference script `script_name` (by `build`), under a name that
/// carries a hash of the script and the pinned versions: editing either builds it again.
pub fn script_fixture(name: &str, script_name: &str, build: impl FnOnce(&Path)) -> PathBuf {
    let mut key = Key::default();
    key.file(&script(script_name));
    key.file(&repo().join("scripts/versions.env"));
    fixture(&format!("{name}-{}", key.short()), build)
}

/// A content hash for cache keys.
#[derive(Default)]
pub struct Key(sha2::Sha256);

impl Key {
    /// Adds bytes, length-prefixed so that consecutive parts cannot run into each other.
    pub fn bytes(&mut self, bytes: &[u8]) {
        use sha2::Digest;
        self.0.update((bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
    }

    /// Adds a file's contents.
    pub fn file(&mut self, path: &Path) {
        let bytes = std::fs::read(path)
            .unwrap_or_else(|e| panic!("cannot read {} for a cache key: {e}", path.display()));
        self.bytes(&bytes);
    }

    /// Adds every file under `dir`: relative names and contents, in sorted order.
    pub fn dir(&mut self, dir: &Path) {
        let mut files = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    files.push(path);
                }
            }
        }
        files.sort();
        for f in files {
            self.bytes(f.strip_prefix(dir).unwrap().to_string_lossy().as_bytes());
            self.file(&f);
        }
    }

    /// The first 16 hex digits of the hash.
    pub fn short(self) -> String {
        use sha2::Digest;
        self.0.finalize()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// A fixture folder built once by `build` (into a temporary sibling, then renamed, so
/// concurrent tests and interrupted runs never see half a fixture) and reused afterwards.
pub fn fixture(name: &str, build: impl FnOnce(&Path)) -> PathBuf {
    let root = std::env::var_os("MINIBAR_TEST_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("minibar-fixtures"));
    let dest = root.join(name);
    if dest.exists() {
        return dest;
    }
    let parent = dest.parent().unwrap();
    std::fs::create_dir_all(parent).unwrap();
    let tmp = parent.join(format!(
        ".{}.{}-{:?}",
        dest.file_name().unwrap().to_string_lossy(),
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    build(&tmp);
    if std::fs::rename(&tmp, &dest).is_err() {
        // Another test built it first.
        let _ = std::fs::remove_dir_all(&tmp);
    }
    dest
}

/// mlx-lm's last-position logits and greedy continuation, as its run script prints them.
pub struct Reference {
    /// Logits after the prompt.
    pub logits: Vec<f32>,
    /// Greedy continuation.
    pub greedy: Vec<u32>,
}

impl Reference {
    /// Parses the reference JSON.
    pub fn parse(text: &str) -> Self {
        let v: serde_json::Value = serde_json::from_str(text).expect("reference JSON");
        Reference {
            logits: v["logits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect(),
            greedy: v["greedy"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect(),
        }
    }

    /// Runs mlx-lm on `dir` for `prompt`, or reads its answer from the cache of reference
    /// outputs, keyed by the script, the pinned versions, the arguments and `dir`'s contents.
    pub fn of(python: &Path, dir: &Path, prompt: &[u32], n: usize, f32: bool) -> Self {
        let ids = serde_json::to_string(prompt).unwrap();
        let n = n.to_string();
        let run = script("mlx_lm_run.py");
        let mut key = Key::default();
        key.file(&run);
        key.file(&repo().join("scripts/versions.env"));
        for part in [ids.as_str(), n.as_str(), if f32 { "f32" } else { "" }] {
            key.bytes(part.as_bytes());
        }
        key.dir(dir);
        let cached = fixture(&format!("mlx-lm-outputs/{}", key.short()), |out| {
            let mut args = vec![
                run.to_string_lossy().into_owned(),
                dir.to_string_lossy().into_owned(),
                ids.clone(),
                n.clone(),
            ];
            if f32 {
                args.push("--f32".into());
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let answer = run_python(python, &args);
            std::fs::create_dir_all(out).unwrap();
            std::fs::write(out.join("reference.json"), answer).unwrap();
        });
        Reference::parse(&std::fs::read_to_string(cached.join("reference.json")).unwrap())
    }
}

/// Largest absolute difference relative to the reference's largest magnitude.
pub fn relative_error(ours: &[f32], theirs: &[f32]) -> f32 {
    assert_eq!(ours.len(), theirs.len(), "vocabulary sizes differ");
    let scale = theirs.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-6);
    ours.iter()
        .zip(theirs)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()))
        / scale
}

/// Our last-position logits for `prompt`.
pub fn logits(model: &LoadedModel, prompt: &[u32]) -> Vec<f32> {
    use mlx_rs::ops::indexing::IndexOp;
    let mut caches = model.model.make_caches();
    let ids = mlx_rs::Array::from_slice(prompt, &[1, prompt.len() as i32]);
    let out = model.model.forward(&ids, &mut caches, None).unwrap();
    let last = out.index((0, -1)).as_dtype(mlx_rs::Dtype::Float32).unwrap();
    last.eval().unwrap();
    last.as_slice::<f32>().to_vec()
}

/// Our greedy continuation of `prompt`, EOS ignored.
pub fn greedy(model: &LoadedModel, prompt: &[u32], n: usize) -> Vec<u32> {
    let mut conv = Conversation::new(&model.model, 4096);
    let opts = GenerateOptions {
        sampling: SamplingParams::default(),
        max_tokens: n,
        eos: Vec::new(),
        ignore_eos: true,
    };
    let mut out = Vec::new();
    conv.generate(&model.model, prompt, &opts, &CancelToken::new(), |t| {
        out.push(t);
        true
    })
    .unwrap();
    out
}

/// SmolLM2 in f32, dequantized from the GGUF by llama.cpp's own `gguf` package (independent
/// of Minibar), built once and cached.
pub fn smollm2_f32(python: &Path, gguf: &Path) -> PathBuf {
    script_fixture("smollm2-f32", "gguf_to_hf.py", |dir| {
        run_python(
            python,
            &[
                script("gguf_to_hf.py").to_str().unwrap(),
                gguf.to_str().unwrap(),
                dir.to_str().unwrap(),
            ],
        );
    })
}
