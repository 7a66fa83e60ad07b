//! minibar-bench's records in the UI's types: runs, history rows and reference figures.

use minibar_bench::record::{Summary, TestResult};
use minibar_bench::{BenchError, ReferenceData};

use crate::models::library::Installed;
use crate::types::{
    AppError, AppErrorKind, BatchPoint, BenchMachine, BenchMetric, BenchMode, BenchModelResult,
    BenchRun, BenchRunSummary, ComputeBackend, ReferenceFigure, Stat,
};

/// The variant id and display name of a model the suite ran, found from its path.
pub trait Identify {
    /// `(variant id, display name)` of the model at `path` that the suite called `name`.
    fn identify(&self, path: &str, name: &str) -> (String, String);
}

/// Identifies models among the installed ones; models since deleted are named from their path
/// the way the library would have named them.
pub struct ByPath<'a> {
    /// Installed models.
    pub installed: &'a [Installed],
    /// The catalog, for models no longer installed.
    pub catalog: &'a minibar_catalog::Catalog,
}

impl Identify for ByPath<'_> {
    fn identify(&self, path: &str, name: &str) -> (String, String) {
        let p = std::path::Path::new(path);
        let found = self.installed.iter().find(|i| i.path == p).cloned();
        let i = found.unwrap_or_else(|| crate::models::library::describe(self.catalog, name, p));
        (i.variant_id, i.name)
    }
}

/// A benchmark failure as the UI's error.
pub fn app_error(e: BenchError) -> AppError {
    match e {
        BenchError::Cancelled => AppError::new(AppErrorKind::Cancelled, "Benchmark cancelled."),
        BenchError::WontFit { .. } => AppError::new(AppErrorKind::ModelTooLarge, e.to_string()),
        BenchError::Invalid(_) => AppError::invalid(e.to_string()),
        BenchError::Sqlite { .. } | BenchError::Io { .. } | BenchError::Format(_) => {
            AppError::io(e.to_string())
        }
        BenchError::Engine(_) | BenchError::Mlx(_) => AppError::engine(e.to_string()),
    }
}

fn stat(s: &Summary) -> Stat {
    Stat {
        mean: s.mean,
        std: s.stddev,
        n: s.samples.len() as u32,
    }
}

fn mode(m: minibar_bench::Mode) -> BenchMode {
    match m {
        minibar_bench::Mode::Quick => BenchMode::Quick,
        minibar_bench::Mode::Full => BenchMode::Full,
    }
}

/// The app's mode in minibar-bench's terms.
pub fn suite_mode(m: BenchMode) -> minibar_bench::Mode {
    match m {
        BenchMode::Quick => minibar_bench::Mode::Quick,
        BenchMode::Full => minibar_bench::Mode::Full,
    }
}

/// The prompt test, the generation test and the generation-at-depth test of a model.
fn tests(
    t: &[TestResult],
) -> (
    Option<&TestResult>,
    Option<&TestResult>,
    Option<&TestResult>,
) {
    let pp = t.iter().find(|t| t.n_prompt > 0 && t.n_depth == 0);
    let tg = t.iter().find(|t| t.n_gen > 0 && t.n_depth == 0);
    let depth = t.iter().find(|t| t.n_gen > 0 && t.n_depth > 0);
    (pp, tg, depth)
}

fn model(m: &minibar_bench::ModelResult, who: &dyn Identify) -> BenchModelResult {
    let (variant_id, name) = who.identify(&m.path, &m.model);
    let (pp, tg, depth) = tests(&m.tests);
    let zero = Stat {
        mean: 0.0,
        std: 0.0,
        n: 0,
    };
    BenchModelResult {
        variant_id,
        name,
        model_type: m.model_type.clone(),
        params: m.params,
        bits_per_weight: m.file_bits_per_weight,
        weight_bytes: m.size_bytes,
        dequantized: m.dequantized,
        pp512: pp.map_or(zero.clone(), |t| stat(&t.ts)),
        tg128: tg.map_or(zero.clone(), |t| stat(&t.ts)),
        tg_depth4096: depth.map(|t| stat(&t.ts)),
        ttft_ms: stat(&m.ttft_ms),
        peak_memory_bytes: m.peak_memory_bytes,
        roofline_tps: m.roofline_tps,
        efficiency: m.efficiency,
    }
}

/// The default model of a run: the one batch scaling ran on, else the first of the ladder
/// (the suite always puts the default model first).
fn default_index(run: &minibar_bench::BenchRun) -> Option<usize> {
    run.batch
        .as_ref()
        .and_then(|b| run.models.iter().position(|m| m.model == b.model))
        .or(if run.models.is_empty() { None } else { Some(0) })
}

/// A stored run (it must have been saved: its id is the history's) in the UI's shape.
pub fn run(r: &minibar_bench::BenchRun, who: &dyn Identify) -> BenchRun {
    let models: Vec<BenchModelResult> = r.models.iter().map(|m| model(m, who)).collect();
    let default_model = default_index(r)
        .and_then(|i| models.get(i))
        .map(|m| m.variant_id.clone())
        .unwrap_or_default();
    let batch = r
        .batch
        .as_ref()
        .map(|b| {
            b.points
                .iter()
                .map(|p| BatchPoint {
                    batch: p.batch as u32,
                    total_tps: p.total_tps.mean,
                    wall_seconds: p.wall_s.mean,
                    time_ratio: p.time_ratio,
                    work_ratio: p.work_ratio,
                })
                .collect()
        })
        .unwrap_or_default();
    let m = &r.machine;
    BenchRun {
        id: r.id.map(|i| i.to_string()).unwrap_or_default(),
        started_at_ms: r.started_unix * 1000,
        mode: mode(r.settings.mode),
        machine: BenchMachine {
            chip: m.cpu.clone(),
            cpu_cores: m.logical_cores as u32,
            physical_cores: m.physical_cores as u32,
            gpu_cores: None,
            memory_bytes: m.memory_bytes,
            os: m.os.clone(),
            mlx_version: m.mlx_version.clone(),
            backend: if m.backend == "metal" {
                ComputeBackend::Metal
            } else {
                ComputeBackend::Cpu
            },
            bandwidth_gbs: m.bandwidth_gbs,
        },
        minibar_version: r.versions.minibar.clone(),
        repetitions: r.settings.repetitions as u32,
        default_model,
        models,
        batch,
        batch_gen_tokens: r.batch.as_ref().map_or(0, |b| b.n_gen as u32),
        skipped: r.skipped.clone(),
    }
}

/// The history row of a stored run: its default model's pp512 and tg128.
pub fn summary(r: &BenchRun) -> BenchRunSummary {
    let d = r
        .models
        .iter()
        .find(|m| m.variant_id == r.default_model)
        .or(r.models.first());
    BenchRunSummary {
        id: r.id.clone(),
        started_at_ms: r.started_at_ms,
        mode: r.mode,
        chip: r.machine.chip.clone(),
        default_model: r.default_model.clone(),
        pp512: d.map_or(0.0, |m| m.pp512.mean),
        tg128: d.map_or(0.0, |m| m.tg128.mean),
    }
}

/// The published figures the charts can compare with (speeds of pp512, tg128 and pp2048;
/// memory-only and batch entries are left out).
pub fn references(data: &ReferenceData) -> Vec<ReferenceFigure> {
    data.entries
        .iter()
        .filter_map(|e| {
            let metric = match e.test.as_str() {
                "pp512" => BenchMetric::Pp512,
                "tg128" => BenchMetric::Tg128,
                "pp2048" => BenchMetric::Pp2048,
                _ => return None,
            };
            let source = data.sources.iter().find(|s| s.key == e.source);
            Some(ReferenceFigure {
                chip: e.chip.clone(),
                model: e.model.clone(),
                metric,
                quant: e.quant.clone(),
                engine: e.engine.clone(),
                tokens_per_second: e.ts?,
                source: source.map_or_else(|| e.source.clone(), |s| s.title.clone()),
                url: source.map(|s| s.url.clone()).unwrap_or_default(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Names;
    impl Identify for Names {
        fn identify(&self, _path: &str, name: &str) -> (String, String) {
            (format!("local-{name}@x"), name.to_string())
        }
    }

    fn summary_of(samples: &[f64]) -> Summary {
        Summary::of(samples.to_vec())
    }

    fn test(label: &str, n_prompt: usize, n_gen: usize, n_depth: usize, ts: &[f64]) -> TestResult {
        TestResult {
            test: label.into(),
            n_prompt,
            n_gen,
            n_depth,
            ts: summary_of(ts),
            ns: summary_of(&[1.0]),
        }
    }

    fn bench_run() -> minibar_bench::BenchRun {
        let machine = minibar_bench::MachineInfo {
            cpu: "Test CPU".into(),
            physical_cores: 2,
            logical_cores: 4,
            memory_bytes: 8 << 30,
            os: "Linux".into(),
            backend: "cpu".into(),
            mlx_version: "0.32.2".into(),
            bandwidth_gbs: 30.0,
        };
        let model = |name: &str| minibar_bench::ModelResult {
            model: name.into(),
            path: format!("/m/{name}"),
            model_type: "llama".into(),
            params: 100,
            size_bytes: 400,
            file_bytes: 60,
            bits_per_weight: 32.0,
            file_bits_per_weight: 4.8,
            dequantized: true,
            backend: "cpu".into(),
            tests: vec![
                test("pp512", 512, 0, 0, &[100.0, 110.0]),
                test("tg128", 0, 128, 0, &[10.0, 12.0]),
                test("tg128 @ d4096", 0, 128, 4096, &[8.0]),
            ],
            ttft_ms: summary_of(&[5.0]),
            peak_memory_bytes: 1000,
            roofline_tps: 75.0,
            efficiency: 0.15,
        };
        serde_json::from_value(serde_json::json!({
            "id": 7,
            "test_time": "2026-11-25T18:00:00Z",
            "started_unix": 1_800_000_000u64,
            "machine": machine,
            "versions": { "minibar": "0.1.0", "mlx": "0.32.2", "mlx_rs": "0.33.0" },
            "settings": { "mode": "full", "repetitions": 5, "warmup": 1, "n_prompt": 512, "n_gen": 128, "n_depth": 4096, "batch_sizes": [1, 2], "seed": 0 },
            "models": [model("small"), model("big")],
            "batch": { "model": "big", "n_prompt": 32, "n_gen": 16, "points": [
                { "batch": 1, "wall_s": summary_of(&[1.0]), "total_tps": summary_of(&[15.0]), "time_ratio": 1.0, "work_ratio": 1.0 },
                { "batch": 2, "wall_s": summary_of(&[1.5]), "total_tps": summary_of(&[20.0]), "time_ratio": 1.5, "work_ratio": 2.0 }
            ] },
            "skipped": ["huge: would not fit"]
        }))
        .unwrap()
    }

    #[test]
    fn runs_map_every_figure() {
        let r = run(&bench_run(), &Names);
        assert_eq!(r.id, "7");
        assert_eq!(r.started_at_ms, 1_800_000_000_000);
        assert_eq!(r.mode, BenchMode::Full);
        assert_eq!(r.machine.cpu_cores, 4);
        assert_eq!(r.machine.backend, ComputeBackend::Cpu);
        assert_eq!(
            r.default_model, "local-big@x",
            "the batch model is the default"
        );
        let m = &r.models[0];
        assert_eq!((m.pp512.mean, m.pp512.n), (105.0, 2));
        assert_eq!(m.tg128.mean, 11.0);
        assert_eq!(m.tg_depth4096.as_ref().unwrap().mean, 8.0);
        assert_eq!(m.bits_per_weight, 4.8);
        assert!(m.dequantized);
        assert_eq!(r.batch.len(), 2);
        assert_eq!(r.batch[1].time_ratio, 1.5);
        assert_eq!(r.batch_gen_tokens, 16);
        assert_eq!(r.skipped, ["huge: would not fit"]);
        let s = summary(&r);
        assert_eq!((s.pp512, s.tg128), (105.0, 11.0));
    }

    #[test]
    fn references_keep_speeds_with_their_sources() {
        let refs = references(&minibar_bench::apple_reference().unwrap());
        assert!(refs.iter().any(|r| r.metric == BenchMetric::Tg128));
        for r in &refs {
            assert!(r.tokens_per_second > 0.0);
            assert!(r.url.starts_with("https://"), "{r:?}");
        }
    }

    #[test]
    fn cancellation_and_fit_errors_keep_their_kinds() {
        assert_eq!(
            app_error(BenchError::Cancelled).kind,
            AppErrorKind::Cancelled
        );
        let e = BenchError::WontFit {
            model: "m".into(),
            needed_gb: 9.0,
            available_gb: 1.0,
        };
        assert_eq!(app_error(e).kind, AppErrorKind::ModelTooLarge);
    }
}
