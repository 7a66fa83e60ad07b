//! The estimator against mlx-lm's published peak memory (data/mlx_lm_peaks.toml).

use std::collections::BTreeMap;

use minibar_fit::{estimate, ModelShape, Quantization, Runtime, Workload};
use serde::Deserialize;

#[derive(Deserialize)]
struct Source {
    prompt_tokens: u64,
    generated_tokens: u64,
    prefill_step_size: u64,
}

#[derive(Deserialize)]
struct Peak {
    model: String,
    quant: String,
    repo: String,
    peak_gb: f64,
}

#[derive(Deserialize)]
struct Reference {
    source: Source,
    models: BTreeMap<String, ModelShape>,
    peaks: Vec<Peak>,
}

#[test]
fn every_published_mlx_lm_peak_is_predicted_within_5_percent() {
    let text = include_str!("../data/mlx_lm_peaks.toml");
    let r: Reference = toml::from_str(text).expect("reference file parses");
    assert!(r.peaks.len() >= 7, "the seven rows of the issue at least");
    let work = Workload {
        context: r.source.prompt_tokens + r.source.generated_tokens,
        prefill_chunk: r.source.prefill_step_size,
        ..Workload::default()
    };
    let mut worst: f64 = 0.0;
    for p in &r.peaks {
        let shape = &r.models[&p.model];
        let quant: Quantization = p.quant.parse().unwrap();
        let est = estimate(shape, &quant, &work, &Runtime::metal()).unwrap();
        let predicted = est.total as f64 / 1e9;
        let err = (predicted - p.peak_gb) / p.peak_gb;
        println!(
            "{:<48} measured {:>6.2} GB predicted {:>6.2} GB ({:+.1}%) weights {:.2} kv {:.3} act {:.3}",
            p.repo,
            p.peak_gb,
            predicted,
            err * 100.0,
            est.weights.total as f64 / 1e9,
            est.kv_cache.total as f64 / 1e9,
            est.activations as f64 / 1e9
        );
        worst = worst.max(err.abs());
    }
    assert!(
        worst <= 0.05,
        "worst error {:.1}% exceeds 5%",
        worst * 100.0
    );
}
