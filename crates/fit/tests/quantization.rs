//! Quantization maths: bits per weight, tensor bytes, names, mixed recipes, what stays float.

use minibar_fit::quant::TensorFormat;
use minibar_fit::{
    estimate, tensors, Dtype, ModelShape, QuantMode, QuantSpec, Quantization, Runtime, TensorKind,
    Workload,
};
use serde_json::json;

fn smollm2_135m() -> ModelShape {
    toml::from_str(
        r#"
        model_type = "llama"
        layers = 30
        hidden = 576
        intermediate = 1536
        heads = 9
        kv_heads = 3
        head_dim = 64
        vocab = 49152
        max_context = 8192
        tied_embeddings = true
        "#,
    )
    .unwrap()
}

#[test]
fn affine_costs_b_plus_two_scales_per_group() {
    assert_eq!(QuantSpec::affine(4, 64).bits_per_weight(Dtype::Bf16), 4.5);
    assert_eq!(QuantSpec::affine(8, 64).bits_per_weight(Dtype::F16), 8.5);
    assert_eq!(QuantSpec::affine(4, 32).bits_per_weight(Dtype::Bf16), 5.0);
    assert_eq!(QuantSpec::affine(3, 128).bits_per_weight(Dtype::Bf16), 3.25);
    // f32 scales, as the CPU backend keeps them.
    assert_eq!(QuantSpec::affine(8, 64).bits_per_weight(Dtype::F32), 9.0);
    assert_eq!(QuantSpec::affine(4, 32).bits_per_weight(Dtype::F32), 6.0);
    assert_eq!(
        QuantSpec::mx(QuantMode::Mxfp4).bits_per_weight(Dtype::Bf16),
        4.25
    );
    assert_eq!(
        QuantSpec::mx(QuantMode::Mxfp8).bits_per_weight(Dtype::Bf16),
        8.25
    );
    assert_eq!(
        QuantSpec::mx(QuantMode::Nvfp4).bits_per_weight(Dtype::Bf16),
        4.5
    );
}

#[test]
fn tensor_bytes_match_mlx_packing() {
    // 4096×4096 at 4 bits: 8 MiB packed + 4096×64 groups × (scale + bias) × 2 bytes.
    let q = QuantSpec::affine(4, 64);
    assert_eq!(
        q.bytes(4096, 4096, Dtype::Bf16),
        8 * 1024 * 1024 + 4096 * 64 * 4
    );
    // 6 bits pack across word boundaries but the total is still 6 bits per weight.
    assert_eq!(
        QuantSpec::affine(6, 64).bytes(64, 64, Dtype::F16),
        64 * 48 + 64 * 4
    );
    // mxfp4: half a byte per weight, one byte per 32.
    assert_eq!(
        QuantSpec::mx(QuantMode::Mxfp4).bytes(32, 64, Dtype::Bf16),
        32 * 32 + 32 * 2
    );
}

#[test]
fn mlx_formats_are_validated() {
    assert!(QuantSpec::affine(7, 64).validate().is_err());
    assert!(QuantSpec::affine(4, 48).validate().is_err());
    for bits in [2, 3, 4, 5, 6, 8] {
        for group in [32, 64, 128] {
            QuantSpec::affine(bits, group).validate().unwrap();
        }
    }
}

#[test]
fn quantization_names_parse_and_print_back() {
    for name in [
        "bf16",
        "f16",
        "f32",
        "4bit",
        "8bit",
        "3bit-g32",
        "6bit-g128",
        "mxfp4",
        "mxfp8",
        "nvfp4",
        "mixed_3_6",
        "mixed_4_6-g32",
        "8bit,experts=mxfp4",
        "bf16,experts=mxfp4",
        "4bit,lm_head=bf16",
    ] {
        let q: Quantization = name.parse().unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(q.to_string(), name);
    }
    assert_eq!("q4".parse::<Quantization>().unwrap().to_string(), "4bit");
    for bad in [
        "7bit",
        "4bit-g48",
        "mixed_5_7",
        "int4",
        "4bit,experts",
        "mixed_3_6-gx",
    ] {
        assert!(
            bad.parse::<Quantization>().is_err(),
            "{bad} should not parse"
        );
    }
}

#[test]
fn norms_stay_float_and_undivisible_inputs_are_skipped() {
    let shape = smollm2_135m();
    let q: Quantization = "4bit-g128".parse().unwrap();
    let ts = tensors(&shape);
    for t in &ts {
        let f = q.format_of(t, shape.layers);
        if t.kind == TensorKind::Norm {
            assert_eq!(f, TensorFormat::Float(Dtype::Bf16), "{}", t.path);
        } else if t.cols == 576 {
            // 576 is a multiple of 64 but not of 128: nn.quantize leaves these layers alone.
            assert_eq!(f, TensorFormat::Float(Dtype::Bf16), "{}", t.path);
        } else {
            assert_eq!(
                f,
                TensorFormat::Quantized(QuantSpec::affine(4, 128)),
                "{}",
                t.path
            );
        }
    }
    let g64: Quantization = "4bit".parse().unwrap();
    assert!(ts
        .iter()
        .filter(|t| t.kind != TensorKind::Norm)
        .all(|t| matches!(g64.format_of(t, shape.layers), TensorFormat::Quantized(_))));
}

#[test]
fn mixed_3_6_follows_mlx_lm_layer_choices() {
    let shape = smollm2_135m(); // 30 layers: n/8 = 3, 7n/8 = 26
    let q: Quantization = "mixed_3_6".parse().unwrap();
    let bits = |path: &str| {
        let t = tensors(&shape)
            .into_iter()
            .find(|t| t.path == path)
            .unwrap();
        match q.format_of(&t, shape.layers) {
            TensorFormat::Quantized(s) => s.bits,
            TensorFormat::Float(_) => 0,
        }
    };
    assert_eq!(bits("model.layers.0.self_attn.v_proj"), 6);
    assert_eq!(bits("model.layers.2.mlp.down_proj"), 6);
    assert_eq!(bits("model.layers.3.self_attn.v_proj"), 3); // (3-3)%3 = 0
    assert_eq!(bits("model.layers.5.self_attn.v_proj"), 6); // (5-3)%3 = 2
    assert_eq!(bits("model.layers.5.self_attn.q_proj"), 3);
    assert_eq!(bits("model.layers.26.mlp.down_proj"), 6);
    assert_eq!(bits("model.layers.26.mlp.up_proj"), 3);
    assert_eq!(bits("model.embed_tokens"), 3);
    let untied = ModelShape {
        tied_embeddings: false,
        ..shape.clone()
    };
    let head = tensors(&untied)
        .into_iter()
        .find(|t| t.path == "lm_head")
        .unwrap();
    assert_eq!(
        q.format_of(&head, untied.layers),
        TensorFormat::Quantized(QuantSpec::affine(6, 64))
    );
    // The mix lands between its low and high bits per weight.
    let est = estimate(&shape, &q, &Workload::default(), &Runtime::metal()).unwrap();
    assert!(
        est.bits_per_weight > 3.5 && est.bits_per_weight < 4.5,
        "{}",
        est.bits_per_weight
    );
}

#[test]
fn moe_routers_are_pinned_to_8_bits_and_deepseek_gates_stay_float() {
    let qwen = ModelShape::from_hf_config(&json!({
        "model_type": "qwen3_moe", "hidden_size": 2048, "intermediate_size": 6144,
        "moe_intermediate_size": 768, "num_hidden_layers": 2, "num_attention_heads": 32,
        "num_key_value_heads": 4, "head_dim": 128, "num_experts": 128,
        "num_experts_per_tok": 8, "vocab_size": 151936, "tie_word_embeddings": false
    }))
    .unwrap();
    let q: Quantization = "4bit".parse().unwrap();
    let gate = tensors(&qwen)
        .into_iter()
        .find(|t| t.path == "model.layers.0.mlp.gate")
        .unwrap();
    assert_eq!(
        q.format_of(&gate, 2),
        TensorFormat::Quantized(QuantSpec::affine(8, 64))
    );
    let experts = tensors(&qwen)
        .into_iter()
        .find(|t| t.path == "model.layers.0.mlp.switch_mlp.down_proj")
        .unwrap();
    assert_eq!(experts.copies, 128);
    assert_eq!(
        q.format_of(&experts, 2),
        TensorFormat::Quantized(QuantSpec::affine(4, 64))
    );
    // Unquantized, the router is plain bf16 too.
    let float = Quantization::float(Dtype::Bf16);
    assert_eq!(float.format_of(&gate, 2), TensorFormat::Float(Dtype::Bf16));
}

#[test]
fn config_json_quantization_with_per_layer_overrides() {
    let config = json!({
        "quantization": {
            "group_size": 64, "bits": 4, "mode": "affine",
            "model.layers.0.mlp.down_proj": {"group_size": 64, "bits": 6},
            "lm_head": {"group_size": 32, "bits": 8},
            "model.layers.1.self_attn.q_proj": false
        }
    });
    let q = Quantization::from_config(&config, Dtype::Bf16)
        .unwrap()
        .unwrap();
    let shape = ModelShape {
        tied_embeddings: false,
        ..smollm2_135m()
    };
    let find = |p: &str| tensors(&shape).into_iter().find(|t| t.path == p).unwrap();
    let fmt = |p: &str| q.format_of(&find(p), shape.layers);
    assert_eq!(
        fmt("model.layers.0.mlp.down_proj"),
        TensorFormat::Quantized(QuantSpec::affine(6, 64))
    );
    assert_eq!(
        fmt("lm_head"),
        TensorFormat::Quantized(QuantSpec::affine(8, 32))
    );
    assert_eq!(
        fmt("model.layers.1.self_attn.q_proj"),
        TensorFormat::Float(Dtype::Bf16)
    );
    assert_eq!(
        fmt("model.layers.1.mlp.down_proj"),
        TensorFormat::Quantized(QuantSpec::affine(4, 64))
    );
    assert!(Quantization::from_config(&json!({}), Dtype::Bf16)
        .unwrap()
        .is_none());
    let hf_mxfp4 = json!({"quantization_config": {"quant_method": "mxfp4"}});
    let q = Quantization::from_config(&hf_mxfp4, Dtype::Bf16)
        .unwrap()
        .unwrap();
    assert_eq!(q.to_string(), "bf16,experts=mxfp4");
    let bad = json!({"quantization": {"bits": 7, "group_size": 64}});
    assert!(Quantization::from_config(&bad, Dtype::Bf16).is_err());
}

#[test]
fn quantized_weights_shrink_by_their_bits_per_weight() {
    let shape = smollm2_135m();
    let work = Workload::default();
    let rt = Runtime::mlx_cpu();
    let f32w = estimate(&shape, &Quantization::float(Dtype::F32), &work, &rt).unwrap();
    // The reference figure: SmolLM2-135M dequantized to f32 is 538 MB.
    assert_eq!(f32w.weights.total, 134_515_008 * 4);
    let q8 = Quantization::uniform(QuantSpec::affine(8, 64)).with_dtype(Dtype::F32);
    let e8 = estimate(&shape, &q8, &work, &rt).unwrap();
    // Everything but the norms is quantized at 9 bits per weight (f32 scales).
    let norms: u64 = tensors(&shape)
        .iter()
        .filter(|t| t.kind == TensorKind::Norm)
        .map(|t| t.params())
        .sum();
    let expected = (134_515_008 - norms) * 9 / 8 + norms * 4;
    assert_eq!(e8.weights.total, expected);
}

#[test]
fn overrides_match_whole_paths_suffixes_or_components() {
    let o = |p: &str| minibar_fit::PathOverride {
        path: p.into(),
        format: None,
    };
    assert!(o("experts").matches("model.layers.0.mlp.experts.down_proj"));
    assert!(!o("experts").matches("model.layers.0.mlp.shared_experts.down_proj"));
    assert!(o("lm_head").matches("lm_head"));
    assert!(o("mlp.down_proj").matches("model.layers.3.mlp.down_proj"));
    assert!(o("model.layers.1.mlp.down_proj").matches("model.layers.1.mlp.down_proj"));
    assert!(!o("model.layers.1.mlp.down_proj").matches("model.layers.11.mlp.down_proj"));
    assert!(!o("layers.1.mlp.gate").matches("model.layers.1.mlp.gate_proj"));
}

#[test]
fn per_layer_entries_equal_to_the_default_are_dropped() {
    let mut q = serde_json::Map::new();
    q.insert("group_size".into(), json!(32));
    q.insert("bits".into(), json!(4));
    for i in 0..30 {
        q.insert(
            format!("model.layers.{i}.mlp.up_proj"),
            json!({"group_size": 32, "bits": 4}),
        );
    }
    q.insert(
        "model.embed_tokens".into(),
        json!({"group_size": 32, "bits": 8}),
    );
    let config = json!({ "quantization": q });
    let quant = Quantization::from_config(&config, Dtype::F32)
        .unwrap()
        .unwrap();
    assert_eq!(quant.overrides.len(), 1);
    assert_eq!(quant.to_string(), "4bit-g32,model.embed_tokens=8bit-g32");
}

#[test]
fn the_cpu_runtime_expands_small_quantized_models_as_the_engine_does() {
    let shape = smollm2_135m();
    let q4 = Quantization::uniform(QuantSpec::affine(4, 32));
    let work = Workload::with_context(640);
    let engine = estimate(&shape, &q4, &work, &Runtime::cpu()).unwrap();
    assert!(engine.dequantized);
    assert_eq!(engine.loaded_as, "f32");
    // The reference figure: SmolLM2-135M dense in f32 is 538 MB.
    assert_eq!(engine.weights.total, 134_515_008 * 4);
    let kept = estimate(&shape, &q4, &work, &Runtime::mlx_cpu()).unwrap();
    assert!(!kept.dequantized);
    assert!(kept.weights.total < engine.weights.total / 5);
    // Metal keeps quantized weights whatever their size.
    assert!(
        !estimate(&shape, &q4, &work, &Runtime::metal())
            .unwrap()
            .dequantized
    );
    // Above the engine's limit (1 GiB dense) the CPU keeps them quantized too.
    let big = ModelShape {
        layers: 200,
        ..smollm2_135m()
    };
    let e = estimate(&big, &q4, &work, &Runtime::cpu()).unwrap();
    assert!(!e.dequantized, "{} dense", 4 * e.params.total);
    assert!(4 * e.params.total > minibar_fit::engine::CPU_DEQUANTIZE_LIMIT);
}

#[test]
fn the_cpu_keeps_a_small_model_quantized_where_only_that_fits() {
    let shape = smollm2_135m();
    let q4 = Quantization::uniform(QuantSpec::affine(4, 32));
    let work = Workload::with_context(640);
    let budget = |usable: u64| minibar_fit::Budget {
        total: usable,
        gpu_limit: None,
        available: Some(usable),
        held_by_minibar: 0,
        usable,
        source: minibar_fit::BudgetSource::WhatIf,
    };
    let t = minibar_fit::Thresholds::default();
    let judge = |usable| {
        minibar_fit::assess(&shape, &q4, &work, &Runtime::cpu(), &budget(usable), &t).unwrap()
    };
    let roomy = judge(4_000_000_000);
    assert!(roomy.estimate.dequantized);
    let kept = estimate(&shape, &q4, &work, &Runtime::mlx_cpu()).unwrap();
    // 300 MB: the f32 expansion (~590 MB) won't fit, the 4-bit codes (~130 MB) do.
    let tight = judge(300_000_000);
    assert!(!tight.estimate.dequantized);
    assert_eq!(tight.estimate.total, kept.total);
    assert_eq!(tight.verdict.level, minibar_fit::FitLevel::Fits);
    assert_eq!(
        tight.max_context,
        minibar_fit::max_context(&shape, &q4, &work, &Runtime::mlx_cpu(), 300_000_000).unwrap()
    );
}

#[test]
fn a_mixture_of_experts_is_expanded_by_all_its_experts_not_the_active_ones() {
    // 64 experts of 512 × 512 in 8 layers: 400 M expert parameters (1.6 GB in f32), while
    // everything else, and the experts a token reads, would be well under the 1 GiB limit.
    let moe: ModelShape = toml::from_str(
        r#"
        model_type = "qwen3_moe"
        layers = 8
        hidden = 512
        intermediate = 1536
        heads = 8
        kv_heads = 4
        vocab = 32000
        max_context = 4096
        qk_norm = true
        [moe]
        experts = 64
        experts_per_token = 8
        moe_intermediate = 512
        "#,
    )
    .unwrap();
    let q4 = Quantization::uniform(QuantSpec::affine(4, 64));
    let e = estimate(&moe, &q4, &Workload::default(), &Runtime::cpu()).unwrap();
    assert!(4 * e.params.active < minibar_fit::engine::CPU_DEQUANTIZE_LIMIT);
    assert!(4 * e.params.total > minibar_fit::engine::CPU_DEQUANTIZE_LIMIT);
    assert!(!e.dequantized, "{} dense", 4 * e.params.total);
}
