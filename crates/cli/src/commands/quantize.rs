//! `minibar quantize`: a model folder to MLX affine quantization (or back to dense weights),
//! written as an mlx-lm folder, with a progress bar.

use std::path::PathBuf;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use minibar_engine::convert::{quantize_folder, Target};

use super::model_arg;

/// Arguments of `minibar quantize`.
#[derive(clap::Args)]
pub struct Args {
    /// The model folder (path or name in the store).
    pub model: String,
    /// Bits per weight: 2, 3, 4, 5, 6 or 8.
    #[arg(long, short = 'q', default_value_t = 4)]
    pub bits: i32,
    /// Weights per scale: 32, 64 or 128.
    #[arg(long, short = 'g', default_value_t = 64)]
    pub group_size: i32,
    /// Undo quantization instead, writing dense float32 weights.
    #[arg(long, conflicts_with_all = ["bits", "group_size"])]
    pub dequantize: bool,
    /// Output folder (default: next to the source, named after the settings).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `minibar quantize`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let src = model_arg::resolve(Some(&args.model))?;
    anyhow::ensure!(
        src.is_dir(),
        "{} is not a model folder (import a .gguf first with `minibar import`)",
        src.display()
    );
    let (target, suffix) = if args.dequantize {
        (Target::Dense(mlx_rs::Dtype::Float32), "f32".to_owned())
    } else {
        (
            Target::Affine {
                bits: args.bits,
                group_size: args.group_size,
            },
            format!("{}bit-g{}", args.bits, args.group_size),
        )
    };
    let dest = match args.output {
        Some(p) => p,
        None => {
            let name = src
                .file_name()
                .and_then(|n| n.to_str())
                .context("the source folder has no name")?;
            src.with_file_name(format!("{name}-{suffix}"))
        }
    };
    let bar = if args.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} tensors")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(format!("{suffix}"));
    let cancel = minibar_engine::CancelToken::new();
    let report = quantize_folder(&src, &dest, target, |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        !cancel.is_cancelled()
    })?;
    bar.finish_and_clear();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "wrote {} ({} tensors converted, {:.1} MB, {:.2} bits per weight)",
            report.path.display(),
            report.converted,
            report.weight_bytes as f64 / 1e6,
            report.bits_per_weight
        );
    }
    Ok(())
}
