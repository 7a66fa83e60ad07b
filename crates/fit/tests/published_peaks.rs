//! The estimator against mlx-lm's published peak memory (data/mlx_lm_peaks.toml).

use std::collections::BTreeMap;

use minibar_fit::{
    comparison_table, estimate, Comparison, ModelShape, Quantization, Runtime, Workload,
};
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

/// Predicts every row of a reference file.
fn check(text: &str, runtime: &Runtime) -> Vec<Comparison> {
    let r: Reference = toml::from_str(text).expect("reference file parses");
    let work = Workload {
        context: r.source.prompt_tokens + r.source.generated_tokens,
        prefill_chunk: r.source.prefill_step_size,
        ..Workload::default()
    };
    assert!(!r.peaks.is_empty());
    let mut rows = Vec::new();
    for p in &r.peaks {
        let shape = &r.models[&p.model];
        let quant: Quantization = p.quant.parse().unwrap();
        let est = estimate(shape, &quant, &work, runtime).unwrap();
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
        rows.push(Comparison {
            label: format!("{} ({})", p.repo, p.quant),
            predicted: est.total,
            measured: (p.peak_gb * 1e9) as u64,
        });
    }
    rows
}

#[test]
fn every_published_mlx_lm_peak_is_predicted_within_5_percent() {
    let text = include_str!("../data/mlx_lm_peaks.toml");
    let r: Reference = toml::from_str(text).unwrap();
    assert!(r.peaks.len() >= 7, "the seven rows of the issue at least");
    for c in check(text, &Runtime::metal()) {
        assert!(
            c.error().abs() <= 0.05,
            "{}: {:+.1}%",
            c.label,
            c.error() * 100.0
        );
    }
}

#[test]
fn mlx_lm_cpu_peaks_on_this_machine_kind_are_predicted_within_5_percent_or_50_mb() {
    let text = include_str!("../data/cpu_peaks.toml");
    let r: Reference = toml::from_str(text).unwrap();
    assert_eq!(r.peaks.len(), 3);
    let rows = check(text, &Runtime::mlx_cpu());
    println!("{}", comparison_table(&rows));
    for c in &rows {
        assert!(c.ok(), "{}: {:+.1}%", c.label, c.error() * 100.0);
    }
}
