//! GGUF files of every type Minibar maps, made here by llama.cpp itself from the default model
//! (`llama_model_quantize`), and small gemma3 / phi3 / llama-with-`rope_freqs` GGUFs written by
//! llama.cpp's `gguf` package, checked three ways:
//!
//! - weights: Minibar's reading of one tensor per GGUF type equals `gguf.quants`' dequantization,
//!   and the MLX form it maps to (kept codes, or requantized) stays within a measured error;
//! - next-token logits against llama.cpp at every position of a few prompts: top-1 agreement
//!   and the largest logit difference (relative to the largest logit);
//! - `import` then load gives the model the GGUF gives, and a Q4_K_M SmolLM2 answers "Paris".
//!
//! llama.cpp multiplies quantized weights by activations it quantizes to 8 bits, and F16/BF16
//! weights by activations rounded to 16 bits; Minibar keeps activations in f32. So the logits
//! of quantized files differ from llama.cpp's by that rounding, not by the weights (which the
//! first check shows are the same). The thresholds below sit above the measured figures
//! (printed by the test; the README's GGUF table has them) with a margin.
//!
//! About 45 s of the logits test is running eight SmolLM2 files (one per group of GGUF types,
//! quantized as they load) over 28 positions; the first run also builds the fixtures (~80 s
//! of llama.cpp quantizing), cached afterwards.

mod support;

use std::path::{Path, PathBuf};

use minibar_engine::{
    convert::{import_gguf, ImportOptions},
    load,
    weights::gguf::{self, blocks::Mapping},
    Dequantize, LoadOptions, LoadedModel,
};
use serde_json::Value;
use support::*;

fn fixtures(python: &Path, gguf: &Path) -> PathBuf {
    script_fixture("gguf-quants", "gguf_quants.py", |dir| {
        run_python(
            python,
            &[
                script("gguf_quants.py").as_os_str(),
                gguf.as_os_str(),
                dir.as_os_str(),
            ],
        );
    })
}

fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// Kept quantized: the MLX form under test (and loading stays fast).
fn open(path: &Path) -> LoadedModel {
    let options = LoadOptions {
        dequantize: Dequantize::Never,
        ..Default::default()
    };
    load(path, &options).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Logits at every position of `prompt`, `[positions][vocab]`.
fn all_logits(model: &LoadedModel, prompt: &[u32]) -> Vec<Vec<f32>> {
    let mut caches = model.model.make_caches();
    let ids = mlx_rs::Array::from_slice(prompt, &[1, prompt.len() as i32]);
    let out = model
        .model
        .forward(&ids, &mut caches, None)
        .unwrap()
        .as_dtype(mlx_rs::Dtype::Float32)
        .unwrap();
    out.eval().unwrap();
    let vocab = out.shape()[2] as usize;
    out.as_slice::<f32>()
        .chunks_exact(vocab)
        .map(<[f32]>::to_vec)
        .collect()
}

fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold(
            (0, f32::MIN),
            |(bi, bv), (i, &x)| {
                if x > bv {
                    (i, x)
                } else {
                    (bi, bv)
                }
            },
        )
        .0
}

/// Top-1 agreement and largest relative logit difference against llama.cpp.
struct Agreement {
    same: usize,
    positions: usize,
    logit_error: f32,
}

fn against_llama_cpp(model: &LoadedModel, entry: &Value, dir: &Path) -> Agreement {
    let vocab = entry["vocab"].as_u64().unwrap() as usize;
    let mut a = Agreement {
        same: 0,
        positions: 0,
        logit_error: 0.0,
    };
    for (prompt, file) in entry["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .zip(entry["logits"].as_array().unwrap())
    {
        let ids: Vec<u32> = prompt
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect();
        let theirs = read_f32(&dir.join(file.as_str().unwrap()));
        let ours = all_logits(model, &ids);
        for (pos, row) in ours.iter().enumerate() {
            let reference = &theirs[pos * vocab..(pos + 1) * vocab];
            a.same += usize::from(argmax(row) == argmax(reference));
            a.positions += 1;
            a.logit_error = a.logit_error.max(relative_error(row, reference));
        }
    }
    a
}

/// (largest |a - b| / largest |b|, root-mean-square of a - b / that of b).
fn weight_error(ours: &[f32], exact: &[f32]) -> (f32, f32) {
    assert_eq!(ours.len(), exact.len());
    let max = exact.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-30);
    let worst = ours
        .iter()
        .zip(exact)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    let diff: f64 = ours
        .iter()
        .zip(exact)
        .map(|(a, b)| f64::from(a - b).powi(2))
        .sum();
    let norm: f64 = exact.iter().map(|b| f64::from(*b).powi(2)).sum();
    (worst / max, (diff / norm.max(1e-30)).sqrt() as f32)
}

/// Per GGUF type: the relative RMS error its MLX form may add to ggml's weights. Kept codes
/// lose only the f16 rounding of their scales (measured at most 6.7e-4); requantizing adds
/// MLX's own rounding (measured 1.6e-2 to 6 bits, 4.8e-3 to 8 bits).
fn weight_bound(mapping: Mapping) -> f32 {
    match mapping {
        Mapping::Dense => 0.0,
        Mapping::Affine { .. } => 1e-3,
        Mapping::Requantize { bits: 8 } => 1e-2,
        Mapping::Requantize { .. } => 3e-2,
    }
}

/// The least top-1 agreement and the largest logit error (relative to the largest logit)
/// accepted against llama.cpp, per file; the measured figures are in the README.
fn logit_bounds(stem: &str) -> (f32, f32) {
    match stem {
        // f32 weights and activations on both sides (Gemma's GELU goes through ggml's f16
        // table: 1.7e-4 measured, 5e-7 for the others).
        "tiny-gemma3" | "tiny-phi3" | "tiny-llama-rope" => (1.0, 1e-3),
        // llama.cpp rounds activations to 16 bits against 16-bit weights (2.3e-3 and 1.3e-2).
        "smollm2-F16" | "smollm2-BF16" => (0.95, 0.03),
        // Two-bit weights make a model whose top choices are near ties: 8-bit activations
        // flip half of them.
        "smollm2-Q2_K" => (0.4, 0.6),
        // 8-bit activations against quantized weights (measured 24 to 28 of 28, at most
        // 0.17).
        _ => (0.8, 0.25),
    }
}

fn index(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap()).unwrap()
}

#[test]
fn gguf_weights_match_ggml_and_their_mlx_form() {
    let (Some(python), Some(default)) = (python(), default_gguf()) else {
        return;
    };
    let dir = fixtures(&python, &default);
    let index = index(&dir);
    let mut failures = Vec::new();
    eprintln!("| file | GGUF type | MLX form | weight max err | weight rms err |");
    for (stem, entry) in index["models"].as_object().unwrap() {
        let path = match entry["file"].as_str() {
            Some(f) => dir.join(f),
            None => default.clone(),
        };
        let samples = entry["dequant"].as_object().unwrap();
        let names: Vec<&str> = samples
            .values()
            .map(|s| s["tensor"].as_str().unwrap())
            .collect();
        let seen = gguf::inspect(&path, &names).unwrap();
        for ((ty, sample), seen) in samples.iter().zip(seen) {
            let theirs = read_f32(&dir.join(sample["file"].as_str().unwrap()));
            assert_eq!(seen.ty, ty);
            // Minibar's decoding of the blocks is ggml's, bit for bit.
            let (decode_err, _) = weight_error(&seen.exact, &theirs);
            if decode_err != 0.0 {
                failures.push(format!(
                    "{stem} {ty}: decoding differs from gguf.quants by {decode_err:.2e}"
                ));
            }
            let (max, rms) = weight_error(&seen.mapped, &seen.exact);
            eprintln!(
                "| {stem} | {ty} | {:?} | {max:.2e} | {rms:.2e} |",
                seen.mapping
            );
            if rms > weight_bound(seen.mapping) {
                failures.push(format!("{stem} {ty}: MLX form off by {rms:.2e} rms"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn gguf_logits_match_llama_cpp() {
    let (Some(python), Some(default)) = (python(), default_gguf()) else {
        return;
    };
    let dir = fixtures(&python, &default);
    let index = index(&dir);
    let mut failures = Vec::new();
    eprintln!("| file | top-1 agreement | max logit error | GGUF tensors |");
    for (stem, entry) in index["models"].as_object().unwrap() {
        let path = match entry["file"].as_str() {
            Some(f) => dir.join(f),
            None => default.clone(),
        };
        let started = std::time::Instant::now();
        let model = open(&path);
        // minibar-fit predicts what the load holds from the tensor table alone: each GGUF
        // type in its MLX form (Q2_K/Q3_K at 6 bits, Q6_K at 8), scales in f32 on the CPU.
        let predicted = minibar_fit::GgufWeights::open(&path)
            .unwrap()
            .load(&minibar_fit::Runtime::mlx_cpu(), false)
            .loaded_bytes;
        let held = model.weight_bytes() as u64;
        eprintln!("({stem}: {held} bytes held, {predicted} predicted)");
        // Llama 3's `rope_freqs` (a few hundred bytes) is held beside the weights, not in them.
        if model.backend == minibar_engine::Backend::Cpu && held.abs_diff(predicted) > 4096 {
            failures.push(format!(
                "{stem}: holds {held} bytes of weights, minibar-fit predicts {predicted}"
            ));
        }
        let a = against_llama_cpp(&model, entry, &dir);
        eprintln!("({stem}: {:.1} s)", started.elapsed().as_secs_f32());
        let share = a.same as f32 / a.positions as f32;
        eprintln!(
            "| {stem} | {}/{} | {:.2e} | {} |",
            a.same, a.positions, a.logit_error, entry["types"]
        );
        let (least, most) = logit_bounds(stem);
        if share < least || a.logit_error > most {
            failures.push(format!(
                "{stem}: top-1 {}/{} (least {least}), logit error {:.2e} (most {most:.0e})",
                a.same, a.positions, a.logit_error
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn imported_small_architectures_load_as_their_gguf() {
    let (Some(python), Some(default)) = (python(), default_gguf()) else {
        return;
    };
    let dir = fixtures(&python, &default);
    let tmp = tempfile::tempdir().unwrap();
    for stem in ["tiny-gemma3", "tiny-phi3", "tiny-llama-rope"] {
        let src = dir.join(format!("{stem}.gguf"));
        let dest = tmp.path().join(stem);
        import_gguf(&src, &dest, &ImportOptions::default()).unwrap();
        let config: Value =
            serde_json::from_str(&std::fs::read_to_string(dest.join("config.json")).unwrap())
                .unwrap();
        if stem == "tiny-llama-rope" {
            // The per-frequency factors became Llama 3's rope_scaling.
            assert_eq!(config["rope_scaling"]["rope_type"], "llama3", "{config}");
        }
        let prompt = [5u32, 17, 260, 42, 9, 100, 3, 77];
        let direct = all_logits(&open(&src), &prompt);
        let folder = all_logits(&open(&dest), &prompt);
        for (a, b) in folder.iter().zip(&direct) {
            let err = relative_error(a, b);
            assert!(err <= 1e-5, "{stem}: folder and GGUF differ by {err:.2e}");
        }
    }
}

#[test]
fn imported_q4_k_m_smollm2_answers_paris() {
    let (Some(python), Some(default)) = (python(), default_gguf()) else {
        return;
    };
    let dir = fixtures(&python, &default);
    let src = dir.join("smollm2-Q4_K_M.gguf");
    let tmp = tempfile::tempdir().unwrap();
    let report = import_gguf(&src, &tmp.path().join("q4km"), &ImportOptions::default()).unwrap();
    assert!(report.source_types.contains_key("Q4_K"), "{report:?}");
    let model = open(&report.path);
    // The prompt llama.cpp got (SmolLM2's chat format, no system prompt): llama.cpp answers
    // "The capital of France is Paris." on this file. (With SmolLM2's default system prompt
    // both answer "L'Étoile": this Q4_K_M is re-quantized from the Q4_1, twice rounded.)
    let prompt: Vec<u32> = index(&dir)["models"]["smollm2-Q4_K_M"]["prompts"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect();
    let meta = minibar_text::GgufMetadata::open(&src).unwrap();
    let text = minibar_text::TextModel::from_gguf(&meta).unwrap();
    let answer = text.decode(&greedy(&model, &prompt, 8), true).unwrap();
    assert!(answer.contains("Paris"), "answered {answer:?}");
}
