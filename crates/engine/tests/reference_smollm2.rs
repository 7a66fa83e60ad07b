//! The default model, SmolLM2-135M-Instruct, against mlx-lm: in f32 (dequantized from the
//! GGUF by llama.cpp's own `gguf` package, independently of Minibar), quantized to 4 and 8
//! bits by mlx-lm, straight from the GGUF, and as the folder `minibar import` writes.

mod support;

use std::path::Path;

use minibar_engine::{
    convert::{import_gguf, ImportOptions},
    load, Dequantize, LoadOptions, LoadedModel,
};
use support::*;

/// "What is the capital of France?" through SmolLM2's chat template.
fn prompt(gguf: &Path) -> Vec<u32> {
    let meta = minibar_text::GgufMetadata::open(gguf).unwrap();
    let text = minibar_text::TextModel::from_gguf(&meta).unwrap();
    text.encode_chat(
        &[minibar_text::Message::user(
            "What is the capital of France?",
        )],
        true,
    )
    .unwrap()
}

fn open(path: &Path, dequantize: Dequantize) -> LoadedModel {
    load(
        path,
        &LoadOptions {
            dequantize,
            dtype: None,
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Checks logits (1e-4 relative) and 64 greedy tokens against mlx-lm's.
fn check(label: &str, model: &LoadedModel, reference: &Reference, prompt: &[u32]) {
    let err = relative_error(&logits(model, prompt), &reference.logits);
    eprintln!("{label}: logits relative error {err:.2e}");
    assert!(
        err <= 1e-4,
        "{label}: logits differ from mlx-lm by {err:.2e}"
    );
    assert_eq!(
        greedy(model, prompt, reference.greedy.len()),
        reference.greedy,
        "{label}: greedy tokens differ"
    );
}

#[test]
fn f32_weights_match_mlx_lm_from_folder_and_gguf() {
    let (Some(python), Some(gguf)) = (python(), default_gguf()) else {
        return;
    };
    let dir = smollm2_f32(&python, &gguf);
    let prompt = prompt(&gguf);
    let reference = Reference::of(&python, &dir, &prompt, 64, false);
    check(
        "f32 folder",
        &open(&dir, Dequantize::Never),
        &reference,
        &prompt,
    );
    // Minibar's own GGUF path, expanded to f32, must give the same model.
    check(
        "gguf dequantized",
        &open(&gguf, Dequantize::Always),
        &reference,
        &prompt,
    );
}

#[test]
fn quantized_4_and_8_bit_match_mlx_lm() {
    let (Some(python), Some(gguf)) = (python(), default_gguf()) else {
        return;
    };
    let f32_dir = smollm2_f32(&python, &gguf);
    let prompt = prompt(&gguf);
    for (bits, group) in [(4, 64), (8, 64)] {
        let dir = smollm2_mlx_lm_quantized(&python, &f32_dir, bits, group);
        let reference = Reference::of(&python, &dir, &prompt, 64, false);
        check(
            &format!("{bits}-bit g{group}"),
            &open(&dir, Dequantize::Never),
            &reference,
            &prompt,
        );
    }
}

#[test]
fn imported_folder_loads_in_mlx_lm_with_the_same_logits() {
    let (Some(python), Some(gguf)) = (python(), default_gguf()) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("smollm2-imported");
    let report = import_gguf(&gguf, &dir, &ImportOptions::default()).unwrap();
    assert!(
        (5.0..7.0).contains(&report.bits_per_weight),
        "Q4_1/Q8_0 mix is ~5.9 bits, got {}",
        report.bits_per_weight
    );
    let prompt = prompt(&gguf);
    // mlx-lm keeps the f16 scales unless cast; Minibar computes in f32 on the CPU.
    let reference = Reference::of(&python, &dir, &prompt, 64, true);
    let folder = open(&dir, Dequantize::Never);
    check("imported folder", &folder, &reference, &prompt);
    // The GGUF itself, kept quantized, is the same model as the folder made from it.
    let direct = open(&gguf, Dequantize::Never);
    let err = relative_error(&logits(&direct, &prompt), &logits(&folder, &prompt));
    assert!(err <= 1e-6, "GGUF and imported folder differ by {err:.2e}");
}
