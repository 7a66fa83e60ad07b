//! Shared by the engine's integration tests: finding the reference implementation (mlx-lm in
//! the set-up's Python environment) and the default model, caching converted fixtures, and
//! comparing logits.

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
    fixture("tiny-models-v2", |dir| {
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
    std::fs::create_dir_all(&root).unwrap();
    let tmp = root.join(format!(
        ".{name}.{}-{:?}",
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

    /// Runs mlx-lm on `dir` for `prompt`, caching the answer beside the fixture.
    pub fn of(python: &Path, dir: &Path, prompt: &[u32], n: usize, f32: bool) -> Self {
        let ids = serde_json::to_string(prompt).unwrap();
        let n = n.to_string();
        let mut args = vec![
            script("mlx_lm_run.py").to_string_lossy().into_owned(),
            dir.to_string_lossy().into_owned(),
            ids,
            n,
        ];
        if f32 {
            args.push("--f32".into());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Reference::parse(&run_python(python, &args))
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
    fixture("smollm2-f32", |dir| {
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
