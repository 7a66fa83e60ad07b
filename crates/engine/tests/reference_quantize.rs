//! `minibar quantize` against mlx-lm: the same weights quantized with the same settings give
//! identical arrays, mlx-lm loads the folder with the same logits, and dequantizing restores
//! a dense model that runs.

mod support;

use std::collections::HashMap;

use minibar_engine::{
    convert::{quantize_folder, Target},
    load, Dequantize, LoadOptions,
};
use mlx_rs::Array;
use support::*;

fn arrays(dir: &std::path::Path) -> HashMap<String, Array> {
    minibar_engine::weights::safetensors::load_dir(dir).unwrap()
}

#[test]
fn quantized_arrays_equal_mlx_lms() {
    let (Some(python), Some(gguf)) = (python(), default_gguf()) else {
        return;
    };
    let f32_dir = smollm2_f32(&python, &gguf);
    let tmp = tempfile::tempdir().unwrap();
    for (bits, group) in [(4, 64), (8, 32), (3, 128)] {
        let theirs_dir = fixture(&format!("smollm2-q{bits}-g{group}"), |dir| {
            run_python(
                &python,
                &[
                    script("mlx_lm_quantize.py").to_str().unwrap(),
                    f32_dir.to_str().unwrap(),
                    dir.to_str().unwrap(),
                    &bits.to_string(),
                    &group.to_string(),
                ],
            );
        });
        let ours_dir = tmp.path().join(format!("q{bits}-g{group}"));
        let report = quantize_folder(
            &f32_dir,
            &ours_dir,
            Target::Affine {
                bits,
                group_size: group,
            },
            |_, _| true,
        )
        .unwrap();
        // SmolLM2's width (576) is not a multiple of 128, so at g128 only down_proj quantizes.
        let expected_bpw = bits as f64 + 64.0 / group as f64;
        assert!(
            group == 128 || (report.bits_per_weight - expected_bpw).abs() < 0.5,
            "{bits}-bit g{group}: {} bits per weight",
            report.bits_per_weight
        );
        let (ours, theirs) = (arrays(&ours_dir), arrays(&theirs_dir));
        let mut a: Vec<&String> = ours.keys().collect();
        let mut b: Vec<&String> = theirs.keys().collect();
        a.sort();
        b.sort();
        assert_eq!(a, b, "{bits}-bit g{group}: different tensors");
        for name in a {
            let (x, y) = (&ours[name], &theirs[name]);
            assert_eq!(x.shape(), y.shape(), "{name}");
            assert_eq!(x.dtype(), y.dtype(), "{name}");
            let same = x.eq_values(y).unwrap();
            assert!(same, "{bits}-bit g{group}: {name} differs from mlx-lm's");
        }
        if bits == 4 {
            // mlx-lm loads our folder and computes what Minibar computes.
            let prompt: Vec<u32> = vec![1, 504, 3458, 282, 4649, 314, 5044, 47];
            let reference = Reference::of(&python, &ours_dir, &prompt, 8, false);
            let model = load(
                &ours_dir,
                &LoadOptions {
                    dequantize: Dequantize::Never,
                    dtype: None,
                },
            )
            .unwrap();
            let err = relative_error(&logits(&model, &prompt), &reference.logits);
            assert!(err <= 1e-4, "logits differ by {err:.2e}");
            // And back to dense weights.
            let dense = tmp.path().join("dense");
            let r = quantize_folder(
                &ours_dir,
                &dense,
                Target::Dense(mlx_rs::Dtype::Float32),
                |_, _| true,
            )
            .unwrap();
            assert!(r.converted > 200, "{} tensors dequantized", r.converted);
            let back = load(&dense, &LoadOptions::default()).unwrap();
            assert!(back.model.args.quantization.is_none());
            let err = relative_error(&logits(&back, &prompt), &reference.logits);
            assert!(err <= 1e-4, "dequantized logits differ by {err:.2e}");
        }
    }
}

#[test]
fn interrupted_quantization_leaves_nothing_that_looks_complete() {
    let (Some(python), Some(gguf)) = (python(), default_gguf()) else {
        return;
    };
    let f32_dir = smollm2_f32(&python, &gguf);
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("q4");
    let e = quantize_folder(
        &f32_dir,
        &dest,
        Target::Affine {
            bits: 4,
            group_size: 64,
        },
        |done, _| done < 50,
    )
    .unwrap_err();
    assert!(matches!(e, minibar_engine::EngineError::Cancelled));
    assert!(!dest.exists());
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "temporary files left behind"
    );
}
