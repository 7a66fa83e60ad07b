//! Shared by the engine's integration tests: the models they compare (tiny models of every
//! architecture, SmolLM2 in f32), mlx-lm's answers for them, and comparing logits. Finding the
//! reference and caching by content come from minibar-testkit: a folder Minibar writes in a test
//! (a quantization, an import) is deterministic, so mlx-lm runs on it once, and again only when
//! Minibar's output changes.

// Each test binary uses a part of this module.
#![allow(dead_code, unused_imports)]

use std::path::{Path, PathBuf};

use minibar_engine::{
    generate::{CancelToken, Conversation, GenerateOptions},
    sample::SamplingParams,
    LoadedModel,
};

pub use minibar_testkit::{default_gguf, fixture, run_python, script, script_fixture, Key};

/// A memory budget of `usable` bytes on this machine, for the memory gate's tests.
pub fn budget(usable: u64) -> minibar_fit::Budget {
    minibar_fit::Budget {
        total: usable * 4,
        gpu_limit: None,
        available: Some(usable),
        held_by_minibar: 0,
        usable,
        source: minibar_fit::BudgetSource::ThisMachine,
    }
}

/// The reference Python (with mlx-lm), or a skip.
pub fn python() -> Option<PathBuf> {
    minibar_testkit::reference_python()
}

/// The tiny random-weight models of every architecture, written by mlx-lm once and cached.
pub fn tiny_models(python: &Path) -> PathBuf {
    script_fixture("tiny-models", "tiny_models.py", |dir| {
        run_python(python, &[script("tiny_models.py").as_path(), dir]);
    })
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
        let mut args = vec![
            script("mlx_lm_run.py").to_string_lossy().into_owned(),
            dir.to_string_lossy().into_owned(),
            ids.clone(),
            n.clone(),
        ];
        if f32 {
            args.push("--f32".into());
        }
        let mut key = Key::for_script("mlx_lm_run.py");
        key.bytes(ids.as_bytes())
            .bytes(n.as_bytes())
            .bytes(if f32 { b"f32" } else { b"" })
            .dir(dir);
        Reference::parse(&minibar_testkit::cached(&key, || run_python(python, &args)))
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

/// SmolLM2 quantized by mlx-lm (affine, `bits` in groups of `group`) from the f32 folder,
/// built once and cached.
pub fn smollm2_mlx_lm_quantized(python: &Path, f32_dir: &Path, bits: i32, group: i32) -> PathBuf {
    script_fixture(
        &format!("smollm2-q{bits}-g{group}"),
        "mlx_lm_quantize.py",
        |dir| {
            run_python(
                python,
                &[
                    script("mlx_lm_quantize.py").as_os_str(),
                    f32_dir.as_os_str(),
                    dir.as_os_str(),
                    bits.to_string().as_ref(),
                    group.to_string().as_ref(),
                ],
            );
        },
    )
}
