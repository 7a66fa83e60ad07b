//! The memory gauge checked against the engine: for the default model as the store holds it
//! (the GGUF's Q4_1 imported as 4-bit, loaded as `make run` loads it: expanded to f32 on the
//! CPU), the default model in f32 and in 4- and 8-bit at group sizes 32 and 64 (kept
//! quantized), and the tiny random models of every architecture, at contexts 512, 2048 and
//! 8192, the peak minibar-fit predicts against the peak MLX measures while Minibar's engine
//! fills that context. Prints the table; exits non-zero if a row is outside the tolerance (5%
//! or 50 MB, whichever is larger).
//!
//! usage: cargo bench -p minibar --bench memory_fit [-- --contexts 512,2048 --gen 16 --only stored]
//! The default model comes from MINIBAR_DEFAULT_GGUF (or the model store's copy); the tiny
//! models from the reference tests' fixture (built by mlx-lm through MINIBAR_REFERENCE_PYTHON).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use minibar_engine::{
    convert::{
        import::{import_gguf, ImportOptions},
        quantize::{quantize_folder, Target},
    },
    generate::{Conversation, GenerateOptions, PREFILL_CHUNK},
    load, CancelToken, Dequantize, LoadOptions,
};
use minibar_fit::{
    comparison_table, estimate, model_from_config, Comparison, KvFormat, Runtime, Workload,
};

struct Settings {
    contexts: Vec<u64>,
    generated: usize,
    only: Option<String>,
}

fn settings() -> anyhow::Result<Settings> {
    let mut s = Settings {
        contexts: vec![512, 2048, 8192],
        generated: 16,
        only: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--contexts" => {
                s.contexts = args
                    .next()
                    .context("--contexts needs a list")?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            }
            "--gen" => s.generated = args.next().context("--gen needs a number")?.parse()?,
            "--only" => s.only = Some(args.next().context("--only needs a model name part")?),
            _ => {} // cargo passes `--bench`
        }
    }
    Ok(s)
}

/// Minibar's cache (`scripts/common.sh`'s MINIBAR_CACHE): the set-up's model file lives there.
fn minibar_cache() -> PathBuf {
    std::env::var_os("MINIBAR_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|p| PathBuf::from(p).join("minibar")))
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/minibar")
        })
}

fn cache_dir() -> PathBuf {
    minibar_cache().join("bench/memory-fit")
}

fn default_gguf() -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("MINIBAR_DEFAULT_GGUF")
        .map(PathBuf::from)
        .unwrap_or_else(|| minibar_cache().join("models/SmolLM2-135M-Instruct.Q4_1.gguf"));
    if !path.is_file() {
        bail!(
            "the default model's GGUF is not at {} (run `make setup`, or set MINIBAR_DEFAULT_GGUF)",
            path.display()
        );
    }
    Ok(path)
}

/// A model folder to run, and whether the engine may expand it.
type Row = (String, PathBuf, Dequantize);

/// The default model's folders: as the store holds it, f32 from the GGUF, then each
/// quantization of it.
fn default_model_folders() -> anyhow::Result<Vec<Row>> {
    let dir = cache_dir();
    let f32_dir = dir.join("smollm2-f32");
    if !f32_dir.join("config.json").is_file() {
        eprintln!(
            "importing the default model as f32 into {}",
            f32_dir.display()
        );
        import_gguf(
            &default_gguf()?,
            &f32_dir,
            &ImportOptions { dequantize: true },
        )?;
    }
    // What `minibar import` writes into the store: the GGUF's blocks as MLX 4-bit.
    let stored = dir.join("smollm2-stored-q4_1");
    if !stored.join("config.json").is_file() {
        eprintln!(
            "importing the default model as stored into {}",
            stored.display()
        );
        import_gguf(
            &default_gguf()?,
            &stored,
            &ImportOptions { dequantize: false },
        )?;
    }
    let mut out = vec![
        (
            "SmolLM2-135M Q4_1 as stored".to_owned(),
            stored,
            Dequantize::Auto,
        ),
        (
            "SmolLM2-135M f32".to_owned(),
            f32_dir.clone(),
            Dequantize::Never,
        ),
    ];
    for (bits, group) in [(4, 32), (4, 64), (8, 32), (8, 64)] {
        let target = Target::Affine {
            bits,
            group_size: group,
        };
        let q = dir.join(format!("smollm2-{}", target.label()));
        if !q.join("config.json").is_file() {
            eprintln!("quantizing the default model to {}", target.label());
            quantize_folder(&f32_dir, &q, target, |_, _| true)?;
        }
        out.push((
            format!("SmolLM2-135M {}", target.label()),
            q,
            Dequantize::Never,
        ));
    }
    Ok(out)
}

fn tiny_model_folders() -> Vec<Row> {
    // The same fixture the engine's reference tests build (same script, same key), so every
    // architecture in the engine's table has rows, the mixture-of-experts ones included.
    let Some(python) = minibar_testkit::reference_python() else {
        return Vec::new();
    };
    let root = minibar_testkit::script_fixture("tiny-models", "tiny_models.py", |dir| {
        minibar_testkit::run_python(
            &python,
            &[minibar_testkit::script("tiny_models.py").as_path(), dir],
        );
    });
    let mut v: Vec<_> = std::fs::read_dir(&root)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("config.json").is_file())
        .map(|p| {
            (
                format!("tiny {}", p.file_name().unwrap().to_string_lossy()),
                p,
                Dequantize::Never,
            )
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// What minibar-fit predicts for `folder` filled to `context` tokens by the engine: the
/// engine's CPU runtime, with its expansion of small quantized models when it may expand.
fn predict(folder: &Path, context: u64, dequantize: Dequantize) -> anyhow::Result<u64> {
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(folder.join("config.json"))?)?;
    let (shape, quant) = model_from_config(&config)?;
    let work = Workload {
        context,
        batch: 1,
        kv: KvFormat::Model,
        prefill_chunk: PREFILL_CHUNK as u64,
    };
    let runtime = match dequantize {
        Dequantize::Auto => Runtime::cpu(),
        Dequantize::Never => Runtime::mlx_cpu(),
        Dequantize::Always => bail!("no runtime models an unconditional expansion"),
    };
    Ok(estimate(&shape, &quant, &work, &runtime)?.total)
}

/// Loads `folder` with the `dequantize` policy and fills `context` tokens: a prompt of
/// `context - generated - 1` tokens, then `generated` tokens. Returns MLX's peak bytes.
fn measure(
    folder: &Path,
    context: u64,
    generated: usize,
    dequantize: Dequantize,
) -> anyhow::Result<u64> {
    mlx_rs::memory::clear_cache()?;
    mlx_rs::memory::reset_peak_memory()?;
    let loaded = load(
        folder,
        &LoadOptions {
            dequantize,
            dtype: None,
            ..Default::default()
        },
    )?;
    let model = &loaded.model;
    let vocab = model.args.vocab_size as u32;
    let prompt: Vec<u32> = (0..context as usize - generated - 1)
        .map(|i| (7 + i as u32 * 31) % vocab)
        .collect();
    let mut conversation = Conversation::new(model, context as usize);
    let options = GenerateOptions {
        sampling: Default::default(),
        max_tokens: generated,
        eos: Vec::new(),
        ignore_eos: true,
    };
    conversation.generate(model, &prompt, &options, &CancelToken::new(), |_| true)?;
    Ok(mlx_rs::memory::peak_memory()? as u64)
}

fn main() -> anyhow::Result<()> {
    let s = settings()?;
    let mut models = default_model_folders()?;
    models.extend(tiny_model_folders());
    if let Some(part) = &s.only {
        models.retain(|(name, _, _)| name.contains(part.as_str()));
    }
    let mut rows = Vec::new();
    for (name, folder, dequantize) in &models {
        for &context in &s.contexts {
            let predicted = predict(folder, context, *dequantize)?;
            let measured = measure(folder, context, s.generated, *dequantize)
                .with_context(|| format!("running {name} at context {context}"))?;
            let row = Comparison {
                label: format!("{name} @ {context}"),
                predicted,
                measured,
            };
            eprintln!(
                "{:<28} measured {:>8.1} MB  predicted {:>8.1} MB  {:+.1}%",
                row.label,
                measured as f64 / 1e6,
                predicted as f64 / 1e6,
                row.error() * 100.0
            );
            rows.push(row);
        }
    }
    println!("{}", comparison_table(&rows));
    if rows.iter().any(|r| !r.ok()) {
        bail!("some predictions are outside the tolerance");
    }
    Ok(())
}
