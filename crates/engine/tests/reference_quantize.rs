//! `minibar quantize` against mlx-lm: the same weights quantized with the same settings give
//! identical arrays (affine, mxfp4, mxfp8, nvfp4, and mlx-lm's mixed-precision recipes, whose
//! per-layer settings in config.json must equal mlx-lm's too), mlx-lm loads the folder with the
//! same logits, and dequantizing restores a dense model that runs.

mod support;

use std::collections::HashMap;

use minibar_engine::{
    convert::{quantize_folder, Recipe, Target},
    layers::QuantParams,
    load,
    quant_ops::QuantMode,
    Dequantize, LoadOptions,
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
        let theirs_dir = smollm2_mlx_lm_quantized(&python, &f32_dir, bits, group);
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
                    ..Default::default()
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

/// mlx-lm's quantization of `src` with `what` (a mode or a recipe), cached as a fixture.
fn mlx_lm_quantized(
    python: &std::path::Path,
    src: &std::path::Path,
    name: &str,
    what: &str,
    group: i32,
) -> std::path::PathBuf {
    script_fixture(name, "mlx_lm_quantize_mode.py", |dir| {
        run_python(
            python,
            &[
                script("mlx_lm_quantize_mode.py").to_str().unwrap(),
                src.to_str().unwrap(),
                dir.to_str().unwrap(),
                what,
                &group.to_string(),
            ],
        );
    })
}

fn read_json(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Our folder holds exactly mlx-lm's tensors, bit for bit, the same quantization settings in
/// config.json (global and per layer), and the same bits per weight; returns that figure.
fn assert_same_as_mlx_lm(
    what: &str,
    ours_dir: &std::path::Path,
    theirs_dir: &std::path::Path,
    our_bpw: f64,
) -> f64 {
    let (ours, theirs) = (arrays(ours_dir), arrays(theirs_dir));
    let mut a: Vec<&String> = ours.keys().collect();
    let mut b: Vec<&String> = theirs.keys().collect();
    a.sort();
    b.sort();
    assert_eq!(a, b, "{what}: different tensors");
    for name in a {
        let (x, y) = (&ours[name], &theirs[name]);
        assert_eq!(x.shape(), y.shape(), "{what}: {name}");
        assert_eq!(x.dtype(), y.dtype(), "{what}: {name}");
        assert!(
            x.eq_values(y).unwrap(),
            "{what}: {name} differs from mlx-lm's"
        );
    }
    let (ours_cfg, theirs_cfg) = (
        read_json(&ours_dir.join("config.json")),
        read_json(&theirs_dir.join("config.json")),
    );
    for key in ["quantization", "quantization_config"] {
        assert_eq!(
            ours_cfg[key], theirs_cfg[key],
            "{what}: config.json `{key}` differs from mlx-lm's"
        );
    }
    let theirs_bpw = read_json(&theirs_dir.join("reference.json"))["bits_per_weight"]
        .as_f64()
        .unwrap();
    assert!(
        (our_bpw - theirs_bpw).abs() < 1e-9,
        "{what}: {our_bpw} bits per weight, mlx-lm reports {theirs_bpw}"
    );
    eprintln!("{what}: identical to mlx-lm, {our_bpw:.4} bits per weight");
    our_bpw
}

/// mlx-lm loads `dir` and gives the logits Minibar's engine gives, run quantized and
/// dequantized at load; dequantizing the folder to dense f32 keeps them.
fn assert_logits_match(
    what: &str,
    python: &std::path::Path,
    dir: &std::path::Path,
    prompt: &[u32],
    tmp: &std::path::Path,
) {
    let reference = Reference::of(python, dir, prompt, 4, false);
    for dequantize in [Dequantize::Never, Dequantize::Always] {
        let model = load(
            dir,
            &LoadOptions {
                dequantize,
                dtype: None,
                ..Default::default()
            },
        )
        .unwrap();
        let err = relative_error(&logits(&model, prompt), &reference.logits);
        eprintln!("{what} ({dequantize:?}): logits relative error {err:.2e}");
        assert!(
            err <= 1e-4,
            "{what} ({dequantize:?}): logits differ from mlx-lm's by {err:.2e}"
        );
    }
    let dense = tmp.join(format!("{what}-dense"));
    let r = quantize_folder(
        dir,
        &dense,
        Target::Dense(mlx_rs::Dtype::Float32),
        |_, _| true,
    )
    .unwrap();
    assert!(r.converted > 0, "{what}: nothing dequantized");
    let back = load(&dense, &LoadOptions::default()).unwrap();
    assert!(back.model.args.quantization.is_none());
    let err = relative_error(&logits(&back, prompt), &reference.logits);
    eprintln!("{what}: dequantized folder, logits relative error {err:.2e}");
    assert!(
        err <= 1e-4,
        "{what}: dequantized logits differ by {err:.2e}"
    );
}

#[test]
fn microscaling_modes_equal_mlx_lms() {
    let (Some(python), Some(gguf)) = (python(), default_gguf()) else {
        return;
    };
    let f32_dir = smollm2_f32(&python, &gguf);
    let tmp = tempfile::tempdir().unwrap();
    let prompt: Vec<u32> = vec![1, 504, 3458, 282, 4649, 314, 5044, 47];
    for mode in [QuantMode::Mxfp4, QuantMode::Mxfp8, QuantMode::Nvfp4] {
        let theirs = mlx_lm_quantized(
            &python,
            &f32_dir,
            &format!("smollm2-{mode}"),
            mode.name(),
            0,
        );
        let ours = tmp.path().join(mode.name());
        let (group_size, bits) = mode.defaults();
        let report = quantize_folder(
            &f32_dir,
            &ours,
            Target::Quantized(QuantParams {
                group_size,
                bits,
                mode,
            }),
            |_, _| true,
        )
        .unwrap();
        // Every matrix quantizes (576 and 1536 are multiples of 16 and 32): bits plus an
        // 8-bit scale per group, plus the f32 norms.
        let packed = bits as f64 + 8.0 / group_size as f64;
        assert!(
            report.bits_per_weight > packed && report.bits_per_weight < packed + 0.05,
            "{mode}: {} bits per weight",
            report.bits_per_weight
        );
        assert_same_as_mlx_lm(mode.name(), &ours, &theirs, report.bits_per_weight);
        assert_logits_match(mode.name(), &python, &ours, &prompt, tmp.path());
    }
}

#[test]
fn mixed_recipes_equal_mlx_lms() {
    let (Some(python), Some(gguf)) = (python(), default_gguf()) else {
        return;
    };
    let f32_dir = smollm2_f32(&python, &gguf);
    let tiny = tiny_models(&python);
    let tmp = tempfile::tempdir().unwrap();
    let smollm2_prompt: Vec<u32> = vec![1, 504, 3458, 282, 4649, 314, 5044, 47];
    let tiny_prompt: Vec<u32> = vec![3, 17, 42, 7, 99, 128, 5, 64, 200, 11];
    // SmolLM2 (30 layers, tied embeddings); tiny Mistral (untied lm_head, which gets the high
    // bits); tiny Phi-3 (fused qkv_proj, which mlx-lm's test for "v_proj" also matches).
    let cases = [
        ("smollm2", &f32_dir, Recipe::Mixed3_6, 64, &smollm2_prompt),
        ("smollm2", &f32_dir, Recipe::Mixed4_6, 32, &smollm2_prompt),
        (
            "mistral",
            &tiny.join("mistral"),
            Recipe::Mixed2_6,
            32,
            &tiny_prompt,
        ),
        (
            "phi3",
            &tiny.join("phi3"),
            Recipe::Mixed3_4,
            64,
            &tiny_prompt,
        ),
    ];
    for (model, src, recipe, group_size, prompt) in cases {
        let what = format!("{model}-{recipe}-g{group_size}");
        let theirs = mlx_lm_quantized(&python, src, &what, recipe.name(), group_size);
        let ours = tmp.path().join(&what);
        let report = quantize_folder(src, &ours, Target::Mixed { recipe, group_size }, |_, _| {
            true
        })
        .unwrap();
        let (low, high) = recipe.bits();
        let bpw = assert_same_as_mlx_lm(&what, &ours, &theirs, report.bits_per_weight);
        let overhead = 64.0 / group_size as f64;
        assert!(
            bpw > low as f64 + overhead && bpw < high as f64 + overhead,
            "{what}: {bpw} bits per weight"
        );
        // Both bit widths are really used, and the engine reads them back per layer.
        let config = read_json(&ours.join("config.json"));
        let layer_bits: Vec<i64> = config["quantization"]
            .as_object()
            .unwrap()
            .values()
            .filter_map(|v| v.get("bits").and_then(serde_json::Value::as_i64))
            .collect();
        assert!(
            layer_bits.contains(&(low as i64)) && layer_bits.contains(&(high as i64)),
            "{what}: {layer_bits:?}"
        );
        assert_logits_match(&what, &python, &ours, prompt, tmp.path());
    }
}

/// A mixture-of-experts model quantized by us and by mlx-lm, in affine 4-bit and mxfp4 (groups
/// of 32): the same arrays and config.json, the router at 8 bits in groups of 64 (`router`
/// names its layer), the stacked experts quantized (`expert_scales` names one of their
/// arrays), and the same logits. `bits_per_weight` is the figure mlx-lm reports for a report.
fn experts_quantize_like_mlx_lm(
    python: &std::path::Path,
    src: &std::path::Path,
    name: impl Fn(&str) -> String,
    router: &str,
    expert_scales: &str,
    bits_per_weight: impl Fn(&minibar_engine::convert::QuantizeReport) -> f64,
) {
    let tmp = tempfile::tempdir().unwrap();
    let prompt: Vec<u32> = vec![3, 17, 42, 7, 99, 128, 5, 64, 200, 11];
    for (what, target) in [
        (
            "affine",
            Target::Affine {
                bits: 4,
                group_size: 32,
            },
        ),
        (
            "mxfp4",
            Target::Quantized(QuantParams {
                group_size: 32,
                bits: 4,
                mode: QuantMode::Mxfp4,
            }),
        ),
    ] {
        let name = name(what);
        let group = if what == "affine" { 32 } else { 0 };
        let theirs = mlx_lm_quantized(python, src, &name, what, group);
        let ours = tmp.path().join(&name);
        let report = quantize_folder(src, &ours, target, |_, _| true).unwrap();
        assert_same_as_mlx_lm(&name, &ours, &theirs, bits_per_weight(&report));
        let config = read_json(&ours.join("config.json"));
        assert_eq!(
            config["quantization"][router],
            serde_json::json!({"group_size": 64, "bits": 8}),
            "{name}"
        );
        assert!(arrays(&ours).contains_key(expert_scales), "{name}");
        assert_logits_match(&name, python, &ours, &prompt, tmp.path());
    }
}

#[test]
fn mixture_of_experts_quantizes_like_mlx_lm() {
    let Some(python) = python() else { return };
    // Experts stored one matrix each, as Hugging Face checkpoints hold them: both sides stack
    // them (sanitize) and quantize them stacked.
    let src = tiny_models(&python).join("qwen3_moe-hf");
    experts_quantize_like_mlx_lm(
        &python,
        &src,
        |what| format!("qwen3_moe-{what}"),
        "model.layers.0.mlp.gate",
        "model.layers.0.mlp.switch_mlp.down_proj.scales",
        |report| report.bits_per_weight,
    );
}

#[test]
fn unsupported_settings_are_refused_before_writing() {
    let (Some(python), Some(gguf)) = (python(), default_gguf()) else {
        return;
    };
    let f32_dir = smollm2_f32(&python, &gguf);
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("out");
    for params in [
        QuantParams {
            group_size: 64,
            bits: 4,
            mode: QuantMode::Mxfp4,
        },
        QuantParams {
            group_size: 32,
            bits: 4,
            mode: QuantMode::Mxfp8,
        },
        QuantParams {
            group_size: 32,
            bits: 4,
            mode: QuantMode::Nvfp4,
        },
        QuantParams {
            group_size: 64,
            bits: 7,
            mode: QuantMode::Affine,
        },
    ] {
        let e =
            quantize_folder(&f32_dir, &dest, Target::Quantized(params), |_, _| true).unwrap_err();
        assert!(e.to_string().contains(params.mode.name()), "{e}");
        assert!(!dest.exists());
    }
    // A mode MLX does not have, in a config.json, is refused with a reason at load time.
    let ours = tmp.path().join("mxfp4");
    quantize_folder(
        &f32_dir,
        &ours,
        Target::Quantized(QuantParams {
            group_size: 32,
            bits: 4,
            mode: QuantMode::Mxfp4,
        }),
        |_, _| true,
    )
    .unwrap();
    let cfg_path = ours.join("config.json");
    let text = std::fs::read_to_string(&cfg_path)
        .unwrap()
        .replace("\"mxfp4\"", "\"mxfp5\"");
    std::fs::write(&cfg_path, text).unwrap();
    let e = load(&ours, &LoadOptions::default())
        .err()
        .expect("a bad mode is refused");
    assert!(e.to_string().contains("quantization"), "{e}");
}

#[test]
fn gpt_oss_quantizes_like_mlx_lm() {
    let Some(python) = python() else { return };
    let src = tiny_models(&python).join("gpt_oss");
    // Stacked experts with biases, sinks and biased attention: mlx-lm quantizes the linear
    // layers (experts included).
    let key = Key::default().dir(&src).short();
    experts_quantize_like_mlx_lm(
        &python,
        &src,
        |what| format!("gpt_oss-{what}-{key}"),
        "model.layers.0.mlp.router",
        "model.layers.0.mlp.experts.down_proj.scales",
        |report| {
            // mlx-lm's figure counts each layer's YaRN frequencies (8 f32) among the weights'
            // bytes and leaves the sinks (4 per layer, parameters of a module with children)
            // out of the parameter count; ours counts what the folder holds.
            let (layers, rope_bytes, sinks) = (4, 8 * 4, 4);
            (report.weight_bytes + layers * rope_bytes) as f64 * 8.0
                / (report.parameters - (layers * sinks) as u64) as f64
        },
    );
}
