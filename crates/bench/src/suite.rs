//! The benchmark suite: machine, then per model pp/tg/depth/TTFT/peak memory, then batch
//! scaling of the default model. Methodology after llama-bench and mlx_lm.benchmark: a
//! warm-up, repeated runs, mean ± standard deviation, synthetic random tokens, EOS ignored,
//! tokenization excluded.

use std::path::{Path, PathBuf};

use minibar_engine::{
    generate::{Conversation, GenerateOptions},
    layers::Linear,
    models::Transformer,
    sample::SamplingParams,
    CancelToken, EngineError, FinishReason, GenerationStats, LoadOptions,
};
use rand::{rngs::StdRng, Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::{
    batch::generate_batch,
    error::{BenchError, Result},
    machine::{measure_bandwidth, MachineInfo},
    record::{
        BatchPoint, BatchScaling, BenchRun, ModelResult, Settings, Summary, TestResult, Versions,
    },
    timefmt,
};

/// How thorough a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Under a minute on a small machine: 2 repetitions, no depth test, batch 1, 4, 16.
    Quick,
    /// 5 repetitions, generation at depth 4096, batch 1 to 32.
    Full,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct SuiteConfig {
    /// Quick or full (recorded; the fields below carry its settings).
    pub mode: Mode,
    /// Models to run; the first is the default model, used for batch scaling.
    pub models: Vec<PathBuf>,
    /// Timed repetitions per test.
    pub repetitions: usize,
    /// Prompt length of the pp test (and of the tg test's prompt, as in mlx_lm.benchmark).
    pub n_prompt: usize,
    /// Tokens generated in the tg test.
    pub n_gen: usize,
    /// Context depth for generation at depth (0 skips it).
    pub n_depth: usize,
    /// Batch sizes for the scaling test (empty skips it).
    pub batch_sizes: Vec<usize>,
    /// Prompt tokens per sequence in the scaling test.
    pub batch_prompt: usize,
    /// Tokens generated per sequence in the scaling test.
    pub batch_gen: usize,
    /// Timed repetitions per batch size.
    pub batch_repetitions: usize,
    /// f32 elements per array of the bandwidth kernels.
    pub bandwidth_elements: usize,
    /// Seed of the synthetic prompts.
    pub seed: u64,
    /// Models the user chose to load although minibar-fit says they won't fit; MLX's
    /// limits still hold them to the budget.
    pub forced: Vec<PathBuf>,
}

impl SuiteConfig {
    /// Quick mode: under a minute for the default model on a 2-core machine.
    pub fn quick(models: Vec<PathBuf>) -> Self {
        Self {
            mode: Mode::Quick,
            models,
            repetitions: 2,
            n_prompt: 512,
            n_gen: 128,
            n_depth: 0,
            batch_sizes: vec![1, 4, 16],
            batch_prompt: 32,
            batch_gen: 16,
            batch_repetitions: 1,
            // 24 MiB arrays: larger ones are mmapped and unmapped by malloc on every
            // allocation, and page faults then dominate (3-4 GB/s measured at 128 MiB
            // against 29 GB/s at 24 MiB, same machine and minute).
            bandwidth_elements: 6 << 20,
            seed: 0,
            forced: Vec::new(),
        }
    }

    /// Full mode: 5 repetitions, depth 4096, batch 1 to 32.
    pub fn full(models: Vec<PathBuf>) -> Self {
        Self {
            mode: Mode::Full,
            repetitions: 5,
            n_depth: 4096,
            batch_sizes: vec![1, 2, 4, 8, 16, 32],
            batch_prompt: 128,
            batch_gen: 128,
            batch_repetitions: 3,
            ..Self::quick(models)
        }
    }

    fn settings(&self) -> Settings {
        Settings {
            mode: self.mode,
            repetitions: self.repetitions,
            warmup: 1,
            n_prompt: self.n_prompt,
            n_gen: self.n_gen,
            n_depth: self.n_depth,
            batch_sizes: self.batch_sizes.clone(),
            seed: self.seed,
        }
    }

    fn validate(&self) -> Result<()> {
        if self.models.is_empty() {
            return Err(BenchError::Invalid("no model to benchmark".into()));
        }
        if self.repetitions == 0 || self.n_prompt == 0 || self.n_gen < 2 {
            return Err(BenchError::Invalid(
                "repetitions and n_prompt must be at least 1, n_gen at least 2".into(),
            ));
        }
        if self.batch_sizes.contains(&0)
            || (!self.batch_sizes.is_empty() && (self.batch_gen < 2 || self.batch_prompt == 0))
        {
            return Err(BenchError::Invalid(
                "batch sizes, batch_prompt must be at least 1, batch_gen at least 2".into(),
            ));
        }
        Ok(())
    }
}

/// What the suite is doing, for a live view. Serialized with a `kind` tag so the app can
/// forward events as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Progress {
    /// A step began; `done` of `total` steps are finished.
    Step {
        /// Finished steps.
        done: usize,
        /// All steps of the run.
        total: usize,
        /// What is running, for display.
        label: String,
    },
    /// The machine was described and its bandwidth measured.
    Machine(MachineInfo),
    /// One timed sample.
    Sample {
        /// Model name.
        model: String,
        /// Test label (`pp512`, `tg128`, `tg128 @ d4096`, `batch 4`).
        test: String,
        /// Repetition, from 0.
        repetition: usize,
        /// Tokens per second.
        ts: f64,
    },
    /// A model was skipped.
    Skipped {
        /// The model.
        model: String,
        /// Why.
        reason: String,
    },
    /// A model's results are complete.
    ModelDone(ModelResult),
    /// One batch size is complete.
    BatchDone(BatchPoint),
}

struct Steps<'a> {
    done: usize,
    total: usize,
    sink: &'a mut dyn FnMut(Progress),
}

impl Steps<'_> {
    fn begin(&mut self, label: impl Into<String>) {
        (self.sink)(Progress::Step {
            done: self.done,
            total: self.total,
            label: label.into(),
        });
        self.done += 1;
    }

    fn emit(&mut self, p: Progress) {
        (self.sink)(p);
    }
}

/// Runs the suite. `on_progress` receives events as they happen; `cancel` stops the run
/// between (and inside) tests with [`BenchError::Cancelled`]. Models that would not fit in
/// memory, or fail to load, are skipped and listed in `BenchRun::skipped`.
pub fn run_suite(
    config: &SuiteConfig,
    cancel: &CancelToken,
    on_progress: &mut dyn FnMut(Progress),
) -> Result<BenchRun> {
    config.validate()?;
    let per_model =
        2 + config.repetitions + usize::from(config.n_depth > 0) * (1 + config.repetitions);
    let mut steps = Steps {
        done: 0,
        total: 1 + config.models.len() * per_model + config.batch_sizes.len(),
        sink: on_progress,
    };
    let started_unix = timefmt::now_unix();
    steps.begin("measuring memory bandwidth");
    let mut machine = MachineInfo::detect();
    machine.bandwidth_gbs = measure_bandwidth(config.bandwidth_elements, 10)?;
    steps.emit(Progress::Machine(machine.clone()));

    let mut run = BenchRun {
        id: None,
        test_time: timefmt::iso8601(started_unix),
        started_unix,
        machine,
        versions: Versions {
            minibar: env!("CARGO_PKG_VERSION").into(),
            mlx: crate::machine::mlx_version(),
            mlx_rs: "0.33.0".into(),
        },
        settings: config.settings(),
        models: Vec::new(),
        batch: None,
        skipped: Vec::new(),
    };

    for (i, path) in config.models.iter().enumerate() {
        check_cancel(cancel)?;
        let name = minibar_fit::model_name(path);
        // Called after the loading step began: it counted one of the model's steps.
        let skip = |steps: &mut Steps, run: &mut BenchRun, reason: String| {
            steps.done += per_model - 1 + if i == 0 { config.batch_sizes.len() } else { 0 };
            steps.emit(Progress::Skipped {
                model: name.clone(),
                reason: reason.clone(),
            });
            run.skipped.push(format!("{name}: {reason}"));
        };
        steps.begin(format!("loading {name}"));
        let loaded = match minibar_engine::load(path, &load_options(path, config)) {
            Ok(m) => m,
            Err(EngineError::WontFit(refusal)) => {
                let e = BenchError::WontFit {
                    model: name.clone(),
                    needed_gb: refusal.verdict.needed as f64 / 1e9,
                    available_gb: refusal.verdict.usable as f64 / 1e9,
                };
                skip(&mut steps, &mut run, e.to_string());
                continue;
            }
            Err(e) => {
                skip(&mut steps, &mut run, e.to_string());
                continue;
            }
        };
        let result = bench_model(
            &loaded,
            &name,
            path,
            config,
            run.machine.bandwidth_gbs,
            cancel,
            &mut steps,
        )?;
        steps.emit(Progress::ModelDone(result.clone()));
        run.models.push(result);
        if i == 0 && !config.batch_sizes.is_empty() {
            let scaling = bench_batch(&loaded.model, &name, config, cancel, &mut steps)?;
            run.batch = Some(scaling);
        }
    }
    Ok(run)
}

fn check_cancel(cancel: &CancelToken) -> Result<()> {
    if cancel.is_cancelled() {
        Err(BenchError::Cancelled)
    } else {
        Ok(())
    }
}

/// Bytes of the model on disk (the GGUF, or the folder's safetensors).
fn file_bytes(path: &Path) -> u64 {
    if path.is_file() {
        return std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    }
    std::fs::read_dir(path)
        .map(|dir| {
            dir.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "safetensors"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// How a model loads for the suite: minibar-fit's gate judges it at the longest test's
/// context, and lets it past a "won't fit" only when the user forced it.
fn load_options(path: &Path, config: &SuiteConfig) -> LoadOptions {
    LoadOptions {
        memory: minibar_fit::LoadRequest {
            context: Some((config.n_depth.max(config.n_prompt) + config.n_gen) as u64),
            force: config.forced.iter().any(|f| f == path),
            ..Default::default()
        },
        ..LoadOptions::default()
    }
}

/// Parameters of the model: dense weights by element, quantized ones unpacked.
pub fn count_params(model: &Transformer) -> u64 {
    let linear = |l: &Linear| -> u64 {
        match l {
            Linear::Dense { weight, bias } => {
                (weight.size() + bias.as_ref().map_or(0, |b| b.size())) as u64
            }
            Linear::Quantized {
                weight,
                bias,
                params,
                ..
            } => {
                (weight.size() as u64 * 32 / params.bits as u64)
                    + bias.as_ref().map_or(0, |b| b.size() as u64)
            }
        }
    };
    let mut n = model.embed.as_ref().map_or(0, |e| linear(&e.table))
        + model.norm.as_ref().map_or(0, |n| n.weight.size() as u64);
    if let Some(h) = &model.lm_head {
        n += linear(h);
    }
    for b in &model.blocks {
        for l in b.linears() {
            n += linear(l);
        }
        for norm in [
            Some(&b.input_norm),
            b.post_attn_norm.as_ref(),
            Some(&b.pre_mlp_norm),
            b.post_mlp_norm.as_ref(),
            b.attn.q_norm.as_ref(),
            b.attn.k_norm.as_ref(),
        ]
        .into_iter()
        .flatten()
        {
            n += norm.weight.size() as u64;
        }
    }
    n
}

/// Synthetic prompt tokens, uniform over the vocabulary as in mlx_lm.benchmark.
pub fn random_tokens(rng: &mut StdRng, vocab: i32, n: usize) -> Vec<u32> {
    (0..n)
        .map(|_| rng.random_range(0..vocab.max(1) as u32))
        .collect()
}

fn options(n_gen: usize) -> GenerateOptions {
    GenerateOptions {
        sampling: SamplingParams::default(),
        max_tokens: n_gen,
        eos: Vec::new(),
        ignore_eos: true,
    }
}

/// One generation, mapping cancellation to [`BenchError::Cancelled`].
fn timed_generate(
    conv: &mut Conversation,
    model: &Transformer,
    prompt: &[u32],
    n_gen: usize,
    cancel: &CancelToken,
) -> Result<GenerationStats> {
    match conv.generate(model, prompt, &options(n_gen), cancel, |_| true) {
        Ok((FinishReason::Cancelled, _)) | Err(EngineError::Cancelled) => {
            Err(BenchError::Cancelled)
        }
        Ok((_, stats)) => Ok(stats),
        Err(e) => Err(e.into()),
    }
}

fn test_result(
    test: String,
    n_prompt: usize,
    n_gen: usize,
    n_depth: usize,
    ts: Vec<f64>,
    ns: Vec<f64>,
) -> TestResult {
    TestResult {
        test,
        n_prompt,
        n_gen,
        n_depth,
        ts: Summary::of(ts),
        ns: Summary::of(ns),
    }
}

fn bench_model(
    loaded: &minibar_engine::LoadedModel,
    name: &str,
    path: &Path,
    config: &SuiteConfig,
    bandwidth_gbs: f64,
    cancel: &CancelToken,
    steps: &mut Steps,
) -> Result<ModelResult> {
    let model = &loaded.model;
    let vocab = model.args.vocab_size;
    let mut rng = StdRng::seed_from_u64(config.seed);
    let context = config.n_prompt + config.n_gen + 8;
    mlx_rs::memory::reset_peak_memory()?;

    steps.begin(format!("{name}: warm-up"));
    let warm = random_tokens(&mut rng, vocab, config.n_prompt.min(64));
    timed_generate(
        &mut Conversation::new(model, context),
        model,
        &warm,
        8.min(config.n_gen),
        cancel,
    )?;

    let pp_label = format!("pp{}", config.n_prompt);
    let tg_label = format!("tg{}", config.n_gen);
    let (mut pp_ts, mut pp_ns, mut tg_ts, mut tg_ns, mut ttft) =
        (vec![], vec![], vec![], vec![], vec![]);
    for rep in 0..config.repetitions {
        check_cancel(cancel)?;
        steps.begin(format!(
            "{name}: {pp_label} + {tg_label}, run {} of {}",
            rep + 1,
            config.repetitions
        ));
        let prompt = random_tokens(&mut rng, vocab, config.n_prompt);
        let s = timed_generate(
            &mut Conversation::new(model, context),
            model,
            &prompt,
            config.n_gen,
            cancel,
        )?;
        pp_ts.push(s.prefill_tps());
        pp_ns.push(s.prefill_time.as_nanos() as f64);
        tg_ts.push(s.decode_tps());
        tg_ns.push(s.decode_time.as_nanos() as f64);
        ttft.push(s.time_to_first_token.as_secs_f64() * 1e3);
        for (test, ts) in [(&pp_label, s.prefill_tps()), (&tg_label, s.decode_tps())] {
            steps.emit(Progress::Sample {
                model: name.into(),
                test: test.clone(),
                repetition: rep,
                ts,
            });
        }
    }
    // Generation tokens timed: the first comes out of prefill, so n_gen - 1 decode steps.
    let mut tests = vec![
        test_result(pp_label, config.n_prompt, 0, 0, pp_ts, pp_ns),
        test_result(tg_label.clone(), 0, config.n_gen, 0, tg_ts, tg_ns),
    ];

    if config.n_depth > 0 {
        let depth = config.n_depth;
        let fits =
            (model.args.context_length().unwrap_or(4096) as usize) >= depth + config.n_gen + 8;
        if fits {
            tests.push(bench_depth(model, name, config, &mut rng, cancel, steps)?);
        } else {
            steps.done += 1 + config.repetitions;
        }
    }

    let peak = mlx_rs::memory::peak_memory()? as u64;
    let params = count_params(model);
    let size_bytes = loaded.weight_bytes() as u64;
    let file = file_bytes(path);
    let roofline = if size_bytes > 0 {
        bandwidth_gbs * 1e9 / size_bytes as f64
    } else {
        0.0
    };
    let tg_mean = tests[1].ts.mean;
    Ok(ModelResult {
        model: name.into(),
        path: path.display().to_string(),
        model_type: model.args.model_type.clone(),
        params,
        size_bytes,
        file_bytes: file,
        bits_per_weight: size_bytes as f64 * 8.0 / params.max(1) as f64,
        file_bits_per_weight: file as f64 * 8.0 / params.max(1) as f64,
        dequantized: loaded.dequantized,
        backend: loaded.backend.name().into(),
        tests,
        ttft_ms: Summary::of(ttft),
        peak_memory_bytes: peak,
        roofline_tps: roofline,
        efficiency: if roofline > 0.0 {
            tg_mean / roofline
        } else {
            0.0
        },
    })
}

/// Generation after a `n_depth`-token prompt: the prompt is processed once, then each
/// repetition regenerates from the same cached prefix (only its last token is recomputed).
fn bench_depth(
    model: &Transformer,
    name: &str,
    config: &SuiteConfig,
    rng: &mut StdRng,
    cancel: &CancelToken,
    steps: &mut Steps,
) -> Result<TestResult> {
    let depth = config.n_depth;
    let label = format!("tg{} @ d{}", config.n_gen, depth);
    steps.begin(format!("{name}: filling a {depth}-token context"));
    let prompt = random_tokens(rng, model.args.vocab_size, depth);
    let mut conv = Conversation::new(model, depth + config.n_gen + 8);
    timed_generate(&mut conv, model, &prompt, 2, cancel)?;
    let (mut ts, mut ns) = (vec![], vec![]);
    for rep in 0..config.repetitions {
        check_cancel(cancel)?;
        steps.begin(format!(
            "{name}: {label}, run {} of {}",
            rep + 1,
            config.repetitions
        ));
        let s = timed_generate(&mut conv, model, &prompt, config.n_gen, cancel)?;
        ts.push(s.decode_tps());
        ns.push(s.decode_time.as_nanos() as f64);
        steps.emit(Progress::Sample {
            model: name.into(),
            test: label.clone(),
            repetition: rep,
            ts: s.decode_tps(),
        });
    }
    Ok(test_result(label, 0, config.n_gen, depth, ts, ns))
}

fn bench_batch(
    model: &Transformer,
    name: &str,
    config: &SuiteConfig,
    cancel: &CancelToken,
    steps: &mut Steps,
) -> Result<BatchScaling> {
    let mut rng = StdRng::seed_from_u64(config.seed ^ 0xba7c);
    let steps_timed = (config.batch_gen - 1) as f64;
    let mut points: Vec<BatchPoint> = Vec::new();
    for &b in &config.batch_sizes {
        check_cancel(cancel)?;
        steps.begin(format!("{name}: batch {b}"));
        let (mut wall, mut tps) = (vec![], vec![]);
        for rep in 0..config.batch_repetitions.max(1) {
            let prompts: Vec<Vec<u32>> = (0..b)
                .map(|_| random_tokens(&mut rng, model.args.vocab_size, config.batch_prompt))
                .collect();
            let out =
                generate_batch(model, &prompts, config.batch_gen, cancel).map_err(|e| match e {
                    EngineError::Cancelled => BenchError::Cancelled,
                    e => e.into(),
                })?;
            let secs = out.decode_time.as_secs_f64();
            wall.push(secs);
            let rate = if secs > 0.0 {
                b as f64 * steps_timed / secs
            } else {
                0.0
            };
            tps.push(rate);
            steps.emit(Progress::Sample {
                model: name.into(),
                test: format!("batch {b}"),
                repetition: rep,
                ts: rate,
            });
        }
        let wall = Summary::of(wall);
        let base = points.first().map_or(wall.mean, |p| p.wall_s.mean);
        let base_batch = points.first().map_or(b, |p| p.batch);
        let point = BatchPoint {
            batch: b,
            time_ratio: if base > 0.0 { wall.mean / base } else { 0.0 },
            work_ratio: b as f64 / base_batch as f64,
            wall_s: wall,
            total_tps: Summary::of(tps),
        };
        steps.emit(Progress::BatchDone(point.clone()));
        points.push(point);
    }
    Ok(BatchScaling {
        model: name.into(),
        n_prompt: config.batch_prompt,
        n_gen: config.batch_gen,
        points,
    })
}
