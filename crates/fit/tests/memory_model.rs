//! Counting, KV cache sizing, config.json shapes, budgets, verdicts and the fit table.

use minibar_fit::{
    assess, assess_bytes, count_params, default_gpu_working_set, estimate, fit_table, max_context,
    what_if_table, Budget, Candidate, FitError, FitLevel, KvFormat, LayerType, ModelShape,
    Quantization, Runtime, Thresholds, Workload, MAC_MEMORY_SIZES_GB,
};
use serde_json::json;

const GIB: u64 = 1 << 30;

fn llama_3_3_70b() -> serde_json::Value {
    json!({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": 8192, "intermediate_size": 28672, "num_hidden_layers": 80,
        "num_attention_heads": 64, "num_key_value_heads": 8, "head_dim": 128,
        "vocab_size": 128256, "max_position_embeddings": 131072,
        "tie_word_embeddings": false, "rms_norm_eps": 1e-5, "torch_dtype": "bfloat16"
    })
}

fn gemma3_1b() -> ModelShape {
    ModelShape::from_hf_config(&json!({
        "model_type": "gemma3_text", "hidden_size": 1152, "intermediate_size": 6912,
        "num_hidden_layers": 26, "num_attention_heads": 4, "num_key_value_heads": 1,
        "head_dim": 256, "vocab_size": 262144, "sliding_window": 512,
        "sliding_window_pattern": 6, "max_position_embeddings": 32768
    }))
    .unwrap()
}

#[test]
fn a_64gb_mac_runs_llama_70b_at_4_bits_but_not_at_8() {
    let shape = ModelShape::from_hf_config(&llama_3_3_70b()).unwrap();
    let budget = Budget::what_if(64 * GIB);
    let rt = Runtime::metal();
    let work = Workload::with_context(8192);
    let t = Thresholds::default();
    let q4: Quantization = "4bit".parse().unwrap();
    let a4 = assess(&shape, &q4, &work, &rt, &budget, &t).unwrap();
    let v4 = &a4.verdict;
    assert_eq!(v4.level, FitLevel::Fits, "{}", v4.reason);
    assert!(v4.headroom > 5 * GIB as i64, "headroom {}", v4.headroom);
    let ctx = a4.max_context.unwrap();
    assert!((16_384..131_072).contains(&ctx), "largest context {ctx}");
    let q8: Quantization = "8bit".parse().unwrap();
    let a8 = assess(&shape, &q8, &work, &rt, &budget, &t).unwrap();
    assert_eq!(a8.verdict.level, FitLevel::WontFit, "{}", a8.verdict.reason);
    assert!(a8.verdict.headroom < 0);
    assert!(a8.max_context.is_none());
}

#[test]
fn the_what_if_table_agrees_with_one_assessment_per_size() {
    let shape = ModelShape::from_hf_config(&llama_3_3_70b()).unwrap();
    let cand = |q: &str| Candidate {
        id: "llama-3.3-70b".into(),
        name: "Llama 3.3 70B".into(),
        shape: shape.clone(),
        quant: q.parse().unwrap(),
        repo: None,
    };
    let work = Workload::with_context(8192);
    let t = Thresholds::default();
    let rows = what_if_table(
        &[cand("4bit"), cand("8bit")],
        &MAC_MEMORY_SIZES_GB,
        &work,
        &Runtime::metal(),
        &t,
    )
    .unwrap();
    let at = |row: usize, gb: u64| rows[row].cells.iter().find(|c| c.ram_gb == gb).unwrap();
    assert_eq!(rows[0].cells.len(), 13);
    assert_eq!(at(0, 64).level, FitLevel::Fits);
    assert_eq!(at(1, 64).level, FitLevel::WontFit);
    assert_eq!(at(0, 32).level, FitLevel::WontFit);
    assert_eq!(at(1, 128).level, FitLevel::Fits);
    // More memory never makes a model fit worse, and every cell is what assess says alone.
    for row in &rows {
        for pair in row.cells.windows(2) {
            assert!(pair[0].level >= pair[1].level);
            assert!(pair[0].max_context.unwrap_or(0) <= pair[1].max_context.unwrap_or(0));
        }
        let c = cand(&row.quant);
        for cell in &row.cells {
            let one = assess(
                &c.shape,
                &c.quant,
                &work,
                &Runtime::metal(),
                &Budget::what_if(cell.ram_gb << 30),
                &t,
            )
            .unwrap();
            assert_eq!(one.verdict.level, cell.level);
            assert_eq!(one.max_context, cell.max_context);
        }
    }
}

#[test]
fn the_largest_context_is_the_boundary_of_the_budget() {
    let shape = ModelShape::from_hf_config(&llama_3_3_70b()).unwrap();
    let q: Quantization = "4bit".parse().unwrap();
    let rt = Runtime::metal();
    let work = Workload::default();
    let budget = 45_000_000_000;
    let ctx = max_context(&shape, &q, &work, &rt, budget)
        .unwrap()
        .unwrap();
    let at = |c| {
        estimate(&shape, &q, &Workload::with_context(c), &rt)
            .unwrap()
            .total
    };
    assert!(at(ctx) <= budget);
    assert!(at(ctx + 1) > budget);
    // A budget above the need at the model's maximum returns that maximum.
    let all = max_context(&shape, &q, &work, &rt, u64::MAX / 2).unwrap();
    assert_eq!(all, Some(131_072));
}

#[test]
fn tied_embeddings_are_counted_once() {
    let tied = ModelShape::from_hf_config(&json!({
        "model_type": "llama", "hidden_size": 2048, "intermediate_size": 8192,
        "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8,
        "head_dim": 64, "vocab_size": 128256, "tie_word_embeddings": true
    }))
    .unwrap();
    let untied = ModelShape {
        tied_embeddings: false,
        ..tied.clone()
    };
    let (a, b) = (count_params(&tied), count_params(&untied));
    assert_eq!(a.total, 1_235_814_400); // Llama 3.2 1B's published count
    assert_eq!(b.total - a.total, 128_256 * 2048);
    let q = Quantization::float(minibar_fit::Dtype::Bf16);
    let e = estimate(&tied, &q, &Workload::default(), &Runtime::metal()).unwrap();
    assert!(e
        .weights
        .by_kind
        .iter()
        .all(|(k, _)| k.label() != "lm_head"));
    assert_eq!(e.weights.total, 2 * a.total);
}

#[test]
fn kv_cache_grows_in_steps_of_256_tokens() {
    let shape = ModelShape::from_hf_config(&llama_3_3_70b()).unwrap();
    let q: Quantization = "4bit".parse().unwrap();
    let rt = Runtime::metal();
    let kv = |c| {
        estimate(&shape, &q, &Workload::with_context(c), &rt)
            .unwrap()
            .kv_cache
    };
    assert_eq!(kv(1).total, kv(256).total);
    assert!(kv(257).total > kv(256).total);
    // 80 layers × 8 heads × 128 × (K + V) × 2 bytes per token.
    assert_eq!(kv(256).total, 256 * 80 * 8 * 128 * 2 * 2);
    assert_eq!(kv(4096).bytes_per_token, 80 * 8 * 128 * 2 * 2);
    // Batches multiply the cache.
    let b4 = Workload {
        batch: 4,
        ..Workload::with_context(1024)
    };
    assert_eq!(
        estimate(&shape, &q, &b4, &rt).unwrap().kv_cache.total,
        4 * kv(1024).total
    );
    // An 8-bit cache costs 8 + 32/64 bits per element instead of 16.
    let q8kv = Workload {
        kv: KvFormat::Quantized { bits: 8, group: 64 },
        ..Workload::with_context(1024)
    };
    let small = estimate(&shape, &q, &q8kv, &rt).unwrap().kv_cache.total;
    assert_eq!(small * 16, kv(1024).total * 17 / 2);
}

#[test]
fn sliding_window_layers_stop_growing_at_the_window() {
    let shape = gemma3_1b();
    let types: Vec<_> = (0..shape.layers).map(|i| shape.layer_type(i)).collect();
    assert_eq!(
        types
            .iter()
            .filter(|t| **t == LayerType::FullAttention)
            .count(),
        4
    );
    assert_eq!(types[5], LayerType::FullAttention);
    assert_eq!(types[4], LayerType::SlidingAttention);
    let q: Quantization = "4bit".parse().unwrap();
    let rt = Runtime::metal();
    let kv = |c| {
        estimate(&shape, &q, &Workload::with_context(c), &rt)
            .unwrap()
            .kv_cache
    };
    let (a, b) = (kv(16_384), kv(32_768));
    assert_eq!(a.sliding_layers, 22);
    assert_eq!(
        a.sliding_tokens, b.sliding_tokens,
        "capped at window + chunk"
    );
    // The engine's prefill chunk (the default workload's).
    assert_eq!(a.sliding_tokens, 512 - 1 + 256);
    // Only the 4 global layers grow: 16,384 more tokens × 4 layers × 1 head × 256 × 2 × 2 bytes.
    assert_eq!(b.total - a.total, 16_384 * 4 * 256 * 2 * 2);
    // A full-attention-only estimate of the same model would be far larger.
    let full = ModelShape {
        sliding_window: None,
        sliding_window_pattern: None,
        ..shape.clone()
    };
    let all = estimate(&full, &q, &Workload::with_context(32_768), &rt)
        .unwrap()
        .kv_cache;
    assert!(all.total > 4 * b.total, "{} vs {}", all.total, b.total);
}

#[test]
fn linear_attention_layers_have_no_kv_cache() {
    let mut shape = gemma3_1b();
    shape.layer_types = Some(
        (0..shape.layers)
            .map(|i| {
                if i % 2 == 0 {
                    LayerType::LinearAttention
                } else {
                    LayerType::FullAttention
                }
            })
            .collect(),
    );
    let q: Quantization = "4bit".parse().unwrap();
    let e = estimate(&shape, &q, &Workload::with_context(4096), &Runtime::metal()).unwrap();
    assert_eq!(e.kv_cache.stateless_layers, 13);
    assert_eq!(e.kv_cache.full_layers, 13);
    assert_eq!(e.kv_cache.total, 4096 * 13 * 256 * 2 * 2);
}

#[test]
fn config_json_shapes_for_each_architecture() {
    let llama = ModelShape::from_hf_config(&llama_3_3_70b()).unwrap();
    assert_eq!(count_params(&llama).total, 70_553_706_496);

    let gemma4b = ModelShape::from_hf_config(&json!({
        "model_type": "gemma3", "vocab_size": 262208,
        "text_config": {"model_type": "gemma3_text", "hidden_size": 2560,
            "intermediate_size": 10240, "num_hidden_layers": 34, "sliding_window": 1024,
            "max_position_embeddings": 131072}
    }))
    .unwrap();
    assert_eq!(
        (gemma4b.heads, gemma4b.kv_heads, gemma4b.head_dim()),
        (8, 4, 256)
    );
    assert!(gemma4b.tied_embeddings);

    let phi = ModelShape::from_hf_config(&json!({
        "model_type": "phi3", "hidden_size": 5120, "intermediate_size": 17920,
        "num_hidden_layers": 40, "num_attention_heads": 40, "num_key_value_heads": 10,
        "vocab_size": 100352, "max_position_embeddings": 16384, "tie_word_embeddings": false
    }))
    .unwrap();
    assert!(phi.fused_projections);
    assert_eq!(phi.head_dim(), 128);
    assert!((count_params(&phi).total as f64 / 14.66e9 - 1.0).abs() < 0.01);

    let qwen2 = ModelShape::from_hf_config(&json!({
        "model_type": "qwen2", "hidden_size": 3584, "intermediate_size": 18944,
        "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4,
        "vocab_size": 152064, "max_position_embeddings": 131072, "sliding_window": 4096,
        "use_sliding_window": false, "tie_word_embeddings": false
    }))
    .unwrap();
    assert_eq!(
        qwen2.sliding_window, None,
        "unused sliding_window is ignored"
    );
    assert!((count_params(&qwen2).total as f64 / 7.6156e9 - 1.0).abs() < 0.001);

    let gpt_oss = ModelShape::from_hf_config(&json!({
        "model_type": "gpt_oss", "hidden_size": 2880, "intermediate_size": 2880,
        "num_hidden_layers": 24, "num_attention_heads": 64, "num_key_value_heads": 8,
        "head_dim": 64, "vocab_size": 201088, "num_local_experts": 32,
        "num_experts_per_tok": 4, "sliding_window": 128, "max_position_embeddings": 131072,
        "layer_types": (0..24).map(|i| if i % 2 == 0 { "sliding_attention" } else { "full_attention" }).collect::<Vec<_>>()
    }))
    .unwrap();
    let c = count_params(&gpt_oss);
    assert!(
        (c.total as f64 / 20.91e9 - 1.0).abs() < 0.005,
        "{}",
        c.total
    );
    assert!((c.active - c.embedding) as f64 / 3.61e9 - 1.0 < 0.01);

    let deepseek = ModelShape::from_hf_config(&json!({
        "model_type": "deepseek_v3", "hidden_size": 7168, "intermediate_size": 18432,
        "moe_intermediate_size": 2048, "num_hidden_layers": 61, "num_attention_heads": 128,
        "num_key_value_heads": 128, "n_shared_experts": 1, "n_routed_experts": 256,
        "num_experts_per_tok": 8, "first_k_dense_replace": 3, "q_lora_rank": 1536,
        "kv_lora_rank": 512, "qk_rope_head_dim": 64, "qk_nope_head_dim": 128,
        "v_head_dim": 128, "vocab_size": 129280, "max_position_embeddings": 163840
    }))
    .unwrap();
    assert!((count_params(&deepseek).total as f64 / 671e9 - 1.0).abs() < 0.005);
    // MLA caches the 512-wide latent and the 64-wide rotary key: 576 elements a token.
    assert_eq!(deepseek.kv_elements_per_token(), 576);
    let q: Quantization = "4bit".parse().unwrap();
    let gate = minibar_fit::tensors(&deepseek)
        .into_iter()
        .find(|t| t.path == "model.layers.3.mlp.gate")
        .unwrap();
    assert_eq!(
        q.format_of(&gate, 61),
        minibar_fit::quant::TensorFormat::Float(minibar_fit::Dtype::Bf16)
    );
}

#[test]
fn config_json_errors_name_the_problem() {
    let err = ModelShape::from_hf_config(&json!({"model_type": "mamba"})).unwrap_err();
    assert!(
        matches!(err, FitError::UnknownModelType(ref t) if t == "mamba"),
        "{err}"
    );
    let mut missing = llama_3_3_70b();
    missing.as_object_mut().unwrap().remove("hidden_size");
    let err = ModelShape::from_hf_config(&missing).unwrap_err();
    assert!(err.to_string().contains("hidden_size"), "{err}");
    let mut wrong = llama_3_3_70b();
    wrong["num_key_value_heads"] = json!("eight");
    assert!(ModelShape::from_hf_config(&wrong)
        .unwrap_err()
        .to_string()
        .contains("num_key_value_heads"));
    let mut uneven = llama_3_3_70b();
    uneven["num_key_value_heads"] = json!(7);
    assert!(ModelShape::from_hf_config(&uneven).is_err());
    assert!(ModelShape::from_hf_config(&json!({})).is_err());
    let typo = "model_type = \"llama\"\nlayer = 2";
    assert!(toml::from_str::<ModelShape>(typo).is_err());
}

#[test]
fn gpu_working_set_rule_and_budgets() {
    assert_eq!(default_gpu_working_set(16 * GIB), 16 * GIB / 3 * 2);
    assert_eq!(default_gpu_working_set(64 * GIB), 48 * GIB);
    let b = Budget::what_if(128 * GIB);
    assert_eq!(b.usable, 96 * GIB);
    let snap = minibar_fit::MemorySnapshot {
        total: 64 * GIB,
        available: 30 * GIB,
        used: 34 * GIB,
        swap_total: 0,
        swap_used: 0,
        pressure: minibar_fit::Pressure::Normal,
        gpu_limit: Some(48 * GIB),
    };
    // Limited by what is available now.
    assert_eq!(Budget::this_machine(&snap, 0, None).usable, 30 * GIB);
    // Memory Minibar's models hold counts against the GPU limit.
    assert_eq!(Budget::this_machine(&snap, 25 * GIB, None).usable, 23 * GIB);
    // The engine's measured limit wins over the rule.
    assert_eq!(
        Budget::this_machine(&snap, 0, Some(20 * GIB)).usable,
        20 * GIB
    );
    let linux = minibar_fit::MemorySnapshot {
        gpu_limit: None,
        ..snap
    };
    assert_eq!(Budget::this_machine(&linux, 0, None).usable, 30 * GIB);
}

#[test]
fn verdict_levels_and_reasons() {
    let b = Budget::what_if(16 * GIB); // usable: 2/3 of 16 GiB
    let u = b.usable;
    let t = Thresholds::default();
    let verdict = |n: u64, b: &Budget| assess_bytes(n, b, &t);
    let fits = verdict(u / 2, &b);
    assert_eq!(fits.level, FitLevel::Fits);
    assert_eq!(fits.headroom, (u - u / 2) as i64);
    let tight = verdict(u - u / 20, &b);
    assert_eq!(tight.level, FitLevel::Tight);
    assert!(tight.reason.contains("swap"), "{}", tight.reason);
    let over = verdict(u + GIB, &b);
    assert_eq!(over.level, FitLevel::WontFit);
    assert!(
        over.reason.contains("iogpu.wired_limit_mb"),
        "{}",
        over.reason
    );
    let way_over = verdict(20 * GIB, &b);
    assert!(!way_over.reason.contains("iogpu"), "{}", way_over.reason);
}

#[test]
fn the_table_puts_the_largest_best_quality_comfortable_fit_first() {
    let big = ModelShape::from_hf_config(&llama_3_3_70b()).unwrap();
    let small = ModelShape::from_hf_config(&json!({
        "model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336,
        "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
        "vocab_size": 128256, "max_position_embeddings": 131072, "tie_word_embeddings": false
    }))
    .unwrap();
    let cand = |id: &str, shape: &ModelShape, q: &str| Candidate {
        id: id.into(),
        name: id.into(),
        shape: shape.clone(),
        quant: q.parse().unwrap(),
        repo: None,
    };
    let cands = vec![
        cand("8b", &small, "4bit"),
        cand("70b", &big, "8bit"),
        cand("8b", &small, "bf16"),
        cand("70b", &big, "4bit"),
        cand("8b", &small, "8bit"),
        cand("70b", &big, "bf16"),
    ];
    let rows = fit_table(
        &cands,
        &Workload::default(),
        &Runtime::metal(),
        &Budget::what_if(64 * GIB),
        &Thresholds::default(),
    )
    .unwrap();
    let order: Vec<String> = rows
        .iter()
        .map(|r| format!("{} {}", r.id, r.quant))
        .collect();
    assert_eq!(
        order,
        ["70b 4bit", "8b bf16", "8b 8bit", "8b 4bit", "70b 8bit", "70b bf16"]
    );
    assert!(rows[..4].iter().all(|r| r.verdict.level == FitLevel::Fits));
    assert!(rows[4..]
        .iter()
        .all(|r| r.verdict.level == FitLevel::WontFit));
    assert!(rows[0].max_context.unwrap() > 8192);
}

#[test]
fn bad_workloads_are_errors_not_panics() {
    let shape = gemma3_1b();
    let q: Quantization = "4bit".parse().unwrap();
    let zero = Workload {
        context: 0,
        ..Workload::default()
    };
    assert!(matches!(
        estimate(&shape, &q, &zero, &Runtime::metal()),
        Err(FitError::InvalidWorkload(_))
    ));
}
