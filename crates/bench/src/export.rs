//! Exports in llama-bench's shapes: one row per (model, test), with llama-bench's column
//! names (`model_filename`, `model_size`, `model_n_params`, `n_prompt`, `n_gen`, `avg_ts`,
//! `stddev_ts`, ...) in JSON and CSV, and its Markdown table (`model | size | params |
//! backend | threads | test | t/s`), each with Minibar's extra columns after them.

use serde::{Deserialize, Serialize};

use crate::{
    error::{BenchError, Result},
    record::BenchRun,
};

/// One exported row: llama-bench's fields, then Minibar's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// CPU or chip.
    pub cpu_info: String,
    /// MLX backend (`MLX-cpu`, `MLX-metal`).
    pub backends: String,
    /// Model name.
    pub model_filename: String,
    /// Architecture.
    pub model_type: String,
    /// Bytes of weights in memory.
    pub model_size: u64,
    /// Parameters.
    pub model_n_params: u64,
    /// Threads available to MLX and BLAS.
    pub n_threads: usize,
    /// Prompt tokens of the timed part.
    pub n_prompt: usize,
    /// Generated tokens of the timed part.
    pub n_gen: usize,
    /// Context depth before the timed part.
    pub n_depth: usize,
    /// When the run started (ISO 8601 UTC).
    pub test_time: String,
    /// Mean nanoseconds of the timed part.
    pub avg_ns: f64,
    /// Standard deviation of the nanoseconds.
    pub stddev_ns: f64,
    /// Mean tokens per second.
    pub avg_ts: f64,
    /// Standard deviation of the tokens per second.
    pub stddev_ts: f64,
    /// Every nanosecond sample.
    pub samples_ns: Vec<f64>,
    /// Every t/s sample.
    pub samples_ts: Vec<f64>,
    /// Test label (`pp512`, `tg128`, `tg128 @ d4096`, `tg32 b16`).
    pub test: String,
    /// Sequences decoded together (1 except in batch scaling).
    pub n_seq: usize,
    /// Mean time to first token of the model's pp prompt, ms.
    pub ttft_ms: f64,
    /// MLX peak memory over the model's tests, bytes.
    pub peak_memory_bytes: u64,
    /// Bits per weight in memory.
    pub bits_per_weight: f64,
    /// Decode roofline, t/s.
    pub roofline_ts: f64,
    /// Measured memory bandwidth, GB/s.
    pub bandwidth_gbs: f64,
    /// MLX version.
    pub mlx_version: String,
    /// `quick` or `full`.
    pub mode: String,
}

/// The CSV/JSON column names, in order.
pub const FIELDS: &[&str] = &[
    "cpu_info",
    "backends",
    "model_filename",
    "model_type",
    "model_size",
    "model_n_params",
    "n_threads",
    "n_prompt",
    "n_gen",
    "n_depth",
    "test_time",
    "avg_ns",
    "stddev_ns",
    "avg_ts",
    "stddev_ts",
    "samples_ns",
    "samples_ts",
    "test",
    "n_seq",
    "ttft_ms",
    "peak_memory_bytes",
    "bits_per_weight",
    "roofline_ts",
    "bandwidth_gbs",
    "mlx_version",
    "mode",
];

/// The Markdown column headers, in order (llama-bench's seven, then Minibar's).
pub const MARKDOWN_COLUMNS: &[&str] = &[
    "model",
    "size",
    "params",
    "backend",
    "threads",
    "test",
    "t/s",
    "ttft ms",
    "peak mem",
    "bpw",
    "roofline t/s",
    "mode",
    "time",
];

/// One row per model test and per batch size.
pub fn rows(run: &BenchRun) -> Vec<Row> {
    let mode = serde_json::to_value(run.settings.mode)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let base = |model: &crate::record::ModelResult| Row {
        cpu_info: run.machine.cpu.clone(),
        backends: format!("MLX-{}", model.backend),
        model_filename: model.model.clone(),
        model_type: model.model_type.clone(),
        model_size: model.size_bytes,
        model_n_params: model.params,
        n_threads: run.machine.logical_cores,
        n_prompt: 0,
        n_gen: 0,
        n_depth: 0,
        test_time: run.test_time.clone(),
        avg_ns: 0.0,
        stddev_ns: 0.0,
        avg_ts: 0.0,
        stddev_ts: 0.0,
        samples_ns: vec![],
        samples_ts: vec![],
        test: String::new(),
        n_seq: 1,
        ttft_ms: model.ttft_ms.mean,
        peak_memory_bytes: model.peak_memory_bytes,
        bits_per_weight: model.bits_per_weight,
        roofline_ts: model.roofline_tps,
        bandwidth_gbs: run.machine.bandwidth_gbs,
        mlx_version: run.versions.mlx.clone(),
        mode: mode.clone(),
    };
    let mut out = Vec::new();
    for m in &run.models {
        for t in &m.tests {
            out.push(Row {
                n_prompt: t.n_prompt,
                n_gen: t.n_gen,
                n_depth: t.n_depth,
                avg_ns: t.ns.mean,
                stddev_ns: t.ns.stddev,
                avg_ts: t.ts.mean,
                stddev_ts: t.ts.stddev,
                samples_ns: t.ns.samples.clone(),
                samples_ts: t.ts.samples.clone(),
                test: t.test.clone(),
                ..base(m)
            });
        }
    }
    if let Some(b) = &run.batch {
        if let Some(m) = run.models.iter().find(|m| m.model == b.model) {
            for p in &b.points {
                let ns: Vec<f64> = p.wall_s.samples.iter().map(|s| s * 1e9).collect();
                out.push(Row {
                    n_prompt: b.n_prompt,
                    n_gen: b.n_gen,
                    avg_ns: p.wall_s.mean * 1e9,
                    stddev_ns: p.wall_s.stddev * 1e9,
                    avg_ts: p.total_tps.mean,
                    stddev_ts: p.total_tps.stddev,
                    samples_ns: ns,
                    samples_ts: p.total_tps.samples.clone(),
                    test: format!("tg{} b{}", b.n_gen, p.batch),
                    n_seq: p.batch,
                    ..base(m)
                });
            }
        }
    }
    out
}

/// llama-bench's JSON: an array of row objects.
pub fn to_json(run: &BenchRun) -> Result<String> {
    serde_json::to_string_pretty(&rows(run)).map_err(|e| BenchError::Format(e.to_string()))
}

fn list(xs: &[f64]) -> String {
    serde_json::to_string(xs).unwrap_or_default()
}

impl Row {
    /// The row's values as text, in [`FIELDS`] order.
    pub fn values(&self) -> Vec<String> {
        vec![
            self.cpu_info.clone(),
            self.backends.clone(),
            self.model_filename.clone(),
            self.model_type.clone(),
            self.model_size.to_string(),
            self.model_n_params.to_string(),
            self.n_threads.to_string(),
            self.n_prompt.to_string(),
            self.n_gen.to_string(),
            self.n_depth.to_string(),
            self.test_time.clone(),
            self.avg_ns.to_string(),
            self.stddev_ns.to_string(),
            self.avg_ts.to_string(),
            self.stddev_ts.to_string(),
            list(&self.samples_ns),
            list(&self.samples_ts),
            self.test.clone(),
            self.n_seq.to_string(),
            self.ttft_ms.to_string(),
            self.peak_memory_bytes.to_string(),
            self.bits_per_weight.to_string(),
            self.roofline_ts.to_string(),
            self.bandwidth_gbs.to_string(),
            self.mlx_version.clone(),
            self.mode.clone(),
        ]
    }
}

/// llama-bench's CSV: a header of [`FIELDS`], one line per row; sample lists as JSON arrays.
pub fn to_csv(run: &BenchRun) -> Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let err = |e: csv::Error| BenchError::Format(e.to_string());
    w.write_record(FIELDS).map_err(err)?;
    for row in rows(run) {
        w.write_record(row.values()).map_err(err)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| BenchError::Format(e.to_string()))?;
    String::from_utf8(bytes).map_err(|e| BenchError::Format(e.to_string()))
}

/// `98.36 MiB`, as llama-bench prints sizes.
pub fn size_text(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= (1u64 << 30) as f64 {
        format!("{:.2} GiB", b / (1u64 << 30) as f64)
    } else {
        format!("{:.2} MiB", b / (1u64 << 20) as f64)
    }
}

/// `134.52 M`, as llama-bench prints parameter counts.
pub fn params_text(n: u64) -> String {
    if n >= 1_000_000_000 {
        format!("{:.2} B", n as f64 / 1e9)
    } else {
        format!("{:.2} M", n as f64 / 1e6)
    }
}

/// The Markdown cells of a row, in [`MARKDOWN_COLUMNS`] order.
pub fn markdown_cells(row: &Row) -> Vec<String> {
    vec![
        row.model_filename.clone(),
        size_text(row.model_size),
        params_text(row.model_n_params),
        row.backends.clone(),
        row.n_threads.to_string(),
        row.test.clone(),
        format!("{:.2} ± {:.2}", row.avg_ts, row.stddev_ts),
        format!("{:.1}", row.ttft_ms),
        size_text(row.peak_memory_bytes),
        format!("{:.2}", row.bits_per_weight),
        format!("{:.1}", row.roofline_ts),
        row.mode.clone(),
        row.test_time.clone(),
    ]
}

/// llama-bench's Markdown table (numbers right-aligned), with Minibar's columns after.
pub fn to_markdown(run: &BenchRun) -> String {
    let mut s = format!("| {} |\n", MARKDOWN_COLUMNS.join(" | "));
    let align: Vec<&str> = MARKDOWN_COLUMNS
        .iter()
        .map(|c| {
            if matches!(*c, "model" | "backend" | "test" | "mode" | "time") {
                "---"
            } else {
                "---:"
            }
        })
        .collect();
    s.push_str(&format!("| {} |\n", align.join(" | ")));
    for row in rows(run) {
        let cells: Vec<String> = markdown_cells(&row)
            .into_iter()
            .map(|c| c.replace('|', "\\|"))
            .collect();
        s.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    s
}
