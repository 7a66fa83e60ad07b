//! `minibar import`: bring a GGUF file into Minibar's model store as an mlx-lm folder.

use std::path::PathBuf;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use minibar_engine::convert::{import_gguf_with_progress, ImportOptions};

/// Arguments of `minibar import`.
#[derive(clap::Args)]
pub struct Args {
    /// The .gguf file to import.
    pub file: PathBuf,
    /// Name in the model store (default: the file name without .gguf).
    #[arg(long)]
    pub name: Option<String>,
    /// Write the folder here instead of into the model store.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Store dense f32 weights instead of keeping the file's quantization.
    #[arg(long)]
    pub dequantize: bool,
    /// Do nothing if the destination already exists (for set-up scripts).
    #[arg(long)]
    pub if_missing: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `minibar import`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let dest = match &args.output {
        Some(p) => p.clone(),
        None => {
            let name = match &args.name {
                Some(n) => n.clone(),
                None => args
                    .file
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .context("the file has no name to use; pass --name")?
                    .to_owned(),
            };
            minibar_hub::library::LibraryPaths::from_env()
                .store
                .join(name)
        }
    };
    if args.if_missing && dest.join("config.json").exists() {
        if !args.json {
            println!("{} is already imported", dest.display());
        }
        return Ok(());
    }
    let bar = if args.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    bar.set_style(
        ProgressStyle::with_template("converting [{bar:30}] {bytes}/{total_bytes} {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let report = import_gguf_with_progress(
        &args.file,
        &dest,
        &ImportOptions {
            dequantize: args.dequantize,
        },
        &mut |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        },
    );
    bar.finish_and_clear();
    let report = report?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "imported {} -> {}\n{:.1} M parameters, {:.1} MB of weights, {:.2} bits per weight",
            args.file.display(),
            report.path.display(),
            report.parameters as f64 / 1e6,
            report.weight_bytes as f64 / 1e6,
            report.bits_per_weight
        );
        let types: Vec<String> = report
            .source_types
            .iter()
            .map(|(t, n)| format!("{n} {t}"))
            .collect();
        println!("GGUF tensors: {}", types.join(", "));
    }
    Ok(())
}
