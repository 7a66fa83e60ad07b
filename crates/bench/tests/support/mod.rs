//! Shared by the tests: a synthetic run.

#![allow(dead_code)]

use minibar_bench::{
    record::{Settings, Versions},
    BatchPoint, BatchScaling, BenchRun, MachineInfo, Mode, ModelResult, Summary, TestResult,
};

fn test(label: &str, n_prompt: usize, n_gen: usize, n_depth: usize, ts: Vec<f64>) -> TestResult {
    let ns = ts
        .iter()
        .map(|t| (n_prompt + n_gen) as f64 / t * 1e9)
        .collect();
    TestResult {
        test: label.into(),
        n_prompt,
        n_gen,
        n_depth,
        ts: Summary::of(ts),
        ns: Summary::of(ns),
    }
}

/// A run with two models, a depth test and batch scaling, built without MLX. Names carry
/// characters that exporters must escape (comma, quote, pipe).
pub fn sample_run(scale: f64) -> BenchRun {
    let model = |name: &str, k: f64| ModelResult {
        model: name.into(),
        path: format!("/models/{name}"),
        model_type: "llama".into(),
        params: 134_515_008,
        size_bytes: 538_060_800,
        file_bytes: 98_362_432,
        bits_per_weight: 32.0,
        file_bits_per_weight: 5.85,
        dequantized: true,
        backend: "cpu".into(),
        tests: vec![
            test("pp512", 512, 0, 0, vec![250.0 * k, 260.5 * k, 255.25 * k]),
            test("tg128", 0, 128, 0, vec![30.0 * k, 31.5 * k, 29.75 * k]),
            test(
                "tg128 @ d4096",
                0,
                128,
                4096,
                vec![20.0 * k, 21.0 * k, 19.5 * k],
            ),
        ],
        ttft_ms: Summary::of(vec![2100.0, 2050.5]),
        peak_memory_bytes: 700_000_000,
        roofline_tps: 74.3,
        efficiency: 0.41,
    };
    BenchRun {
        id: None,
        test_time: "2026-11-25T16:53:09Z".into(),
        started_unix: 1_795_625_589,
        machine: MachineInfo {
            cpu: "AMD EPYC \"Genoa\", 2 cores".into(),
            physical_cores: 1,
            logical_cores: 2,
            memory_bytes: 24 << 30,
            os: "Debian GNU/Linux 12".into(),
            backend: "cpu".into(),
            mlx_version: "0.32.2".into(),
            bandwidth_gbs: 40.0,
        },
        versions: Versions {
            minibar: "0.1.0".into(),
            mlx: "0.32.2".into(),
            mlx_rs: "0.33.0".into(),
        },
        settings: Settings {
            mode: Mode::Full,
            repetitions: 3,
            warmup: 1,
            n_prompt: 512,
            n_gen: 128,
            n_depth: 4096,
            batch_sizes: vec![1, 4],
            seed: 7,
        },
        models: vec![
            model("SmolLM2-135M-Instruct.Q4_1", scale),
            model("tiny, \"quoted\" | piped", scale),
        ],
        batch: Some(BatchScaling {
            model: "SmolLM2-135M-Instruct.Q4_1".into(),
            n_prompt: 32,
            n_gen: 32,
            points: vec![
                BatchPoint {
                    batch: 1,
                    wall_s: Summary::of(vec![1.0, 1.1]),
                    total_tps: Summary::of(vec![31.0 * scale, 28.2 * scale]),
                    time_ratio: 1.0,
                    work_ratio: 1.0,
                },
                BatchPoint {
                    batch: 4,
                    wall_s: Summary::of(vec![1.5, 1.6]),
                    total_tps: Summary::of(vec![82.6 * scale, 77.5 * scale]),
                    time_ratio: 1.476,
                    work_ratio: 4.0,
                },
            ],
        }),
        skipped: vec!["big: needs about 40.0 GB".into()],
    }
}
