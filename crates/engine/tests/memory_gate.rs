//! Every load goes through minibar-fit's gate: a model that won't fit is refused with the
//! numbers, a forced one loads, and MLX's memory and cache limits follow the verdict either
//! way, and the weights the engine holds (expanded on the CPU or not) are the ones the gate
//! predicted. One test in its own binary: MLX's limits are process-wide.

mod support;

use minibar_engine::{EngineError, LoadOptions};
use minibar_fit::{FitLevel, LoadRequest};
use support::budget;

fn options(usable: u64, force: bool) -> LoadOptions {
    LoadOptions {
        memory: LoadRequest {
            force,
            budget: Some(budget(usable)),
            ..LoadRequest::default()
        },
        ..LoadOptions::default()
    }
}

/// MLX's cache limit, read by setting it (mlx-c has no getter) and putting it back.
fn cache_limit() -> u64 {
    let limit = mlx_rs::memory::set_cache_limit(0).unwrap();
    mlx_rs::memory::set_cache_limit(limit).unwrap();
    limit as u64
}

#[test]
fn loads_are_gated_and_mlx_limits_follow_the_verdict() {
    quantized_tiny_models_hold_what_the_gate_predicted();
    let Some(gguf) = support::default_gguf() else {
        return;
    };
    let on_disk = std::fs::metadata(&gguf).unwrap().len();
    // The gate judges the weights as the engine will hold them, not the file's bytes: on the
    // CPU, SmolLM2's Q4_1 is expanded to 538 MB of f32 when that fits, else kept as 115 MB of
    // 4-bit codes with f32 scales.
    let weights = minibar_fit::GgufWeights::open(&gguf).unwrap();
    let (dense, quantized) = if minibar_engine::Backend::detect() == minibar_engine::Backend::Cpu {
        (
            weights.load(&minibar_fit::Runtime::cpu(), true),
            weights.load(&minibar_fit::Runtime::mlx_cpu(), false),
        )
    } else {
        let metal = weights.load(&minibar_fit::Runtime::metal(), true);
        (metal, metal)
    };

    // Half the file's bytes: refused, with both numbers, before anything is read.
    let small = on_disk / 2;
    let err = match minibar_engine::load(&gguf, &options(small, false)) {
        Err(e) => e,
        Ok(_) => panic!("a model twice the budget loaded unforced"),
    };
    let EngineError::WontFit(refusal) = &err else {
        panic!("expected a refusal, got {err}");
    };
    assert_eq!(refusal.verdict.needed, dense.loaded_bytes);
    assert_eq!(refusal.verdict.usable, small);
    assert!(err.to_string().contains("won't fit"), "{err}");

    // Forced: it loads, and MLX is still held to the budget, with no room for a cache.
    let forced = minibar_engine::load(&gguf, &options(small, true)).unwrap();
    assert!(forced.admission.forced);
    assert_eq!(forced.admission.verdict.level, FitLevel::WontFit);
    assert_eq!(minibar_engine::memory::memory_limit().unwrap(), small);
    assert_eq!(cache_limit(), 0);
    drop(forced);

    // Room for the codes but not the expansion: kept quantized, holding what was predicted.
    if dense.dequantized {
        let middle = (dense.loaded_bytes + quantized.loaded_bytes) / 2;
        let kept = minibar_engine::load(&gguf, &options(middle, false)).unwrap();
        assert!(!kept.admission.dequantize && !kept.dequantized);
        assert_eq!(kept.admission.verdict.needed, quantized.loaded_bytes);
        assert_eq!(kept.weight_bytes() as u64, quantized.loaded_bytes);
        drop(kept);
    }

    // A roomy budget: the limit is the budget, the cache what the model leaves spare, and
    // the weights held are the ones predicted.
    let roomy = 2 * dense.loaded_bytes;
    let fits = minibar_engine::load(&gguf, &options(roomy, false)).unwrap();
    assert!(!fits.admission.forced);
    assert_eq!(fits.dequantized, dense.dequantized);
    assert_eq!(fits.weight_bytes() as u64, dense.loaded_bytes);
    assert_eq!(minibar_engine::memory::memory_limit().unwrap(), roomy);
    assert_eq!(cache_limit(), roomy - dense.loaded_bytes);
}

/// The quantized tiny models (mixture-of-experts ones included: their experts count towards
/// the expansion rule in both the engine and the estimate) load as the gate decided: expanded
/// to f32 on the CPU when that fits, kept quantized when only that fits, and holding exactly
/// the weight bytes minibar-fit predicted either way.
fn quantized_tiny_models_hold_what_the_gate_predicted() {
    let Some(python) = support::python() else {
        return;
    };
    if minibar_engine::Backend::detect() != minibar_engine::Backend::Cpu {
        return;
    }
    let root = support::tiny_models(&python);
    for name in ["llama-q4", "qwen3-q8", "qwen3_moe-q4", "gpt_oss-mxfp4"] {
        let dir = root.join(name);
        let config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap())
                .unwrap();
        let (shape, quant) = minibar_fit::model_from_config(&config).unwrap();
        let work = minibar_fit::Workload::default();
        let predict = |runtime: &minibar_fit::Runtime| {
            minibar_fit::estimate(&shape, &quant, &work, runtime).unwrap()
        };
        let (dense, kept) = (
            predict(&minibar_fit::Runtime::cpu()),
            predict(&minibar_fit::Runtime::mlx_cpu()),
        );
        assert!(dense.dequantized, "{name}: a tiny model expands");
        let roomy = minibar_engine::load(&dir, &options(4 * dense.total, false)).unwrap();
        eprintln!(
            "{name}: f32 {} bytes held, {} predicted",
            roomy.weight_bytes(),
            dense.weights.total
        );
        assert!(roomy.dequantized, "{name}");
        assert_eq!(
            roomy.weight_bytes() as u64,
            dense.weights.total,
            "{name}: f32 weights held and predicted"
        );
        drop(roomy);
        let middle = (dense.total + kept.total) / 2;
        let tight = minibar_engine::load(&dir, &options(middle, false)).unwrap();
        eprintln!(
            "{name}: quantized {} bytes held, {} predicted",
            tight.weight_bytes(),
            kept.weights.total
        );
        assert!(!tight.dequantized, "{name}: only the quantized form fits");
        assert_eq!(tight.admission.verdict.needed, kept.total, "{name}");
        assert_eq!(
            tight.weight_bytes() as u64,
            kept.weights.total,
            "{name}: quantized weights held and predicted"
        );
    }
}
