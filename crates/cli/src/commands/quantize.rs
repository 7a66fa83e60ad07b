//! `minibar quantize`: a model folder to MLX quantization (affine, mxfp4, mxfp8, nvfp4, or one
//! of mlx-lm's mixed-precision recipes) or back to dense weights, written as an mlx-lm folder,
//! with a progress bar and the bits per weight.

use std::path::PathBuf;

use anyhow::Context;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use indicatif::{ProgressBar, ProgressStyle};
use minibar_engine::{
    convert::{quantize_folder, Recipe, Target},
    layers::QuantParams,
    quant_ops::QuantMode,
};

use super::model_arg;

/// Arguments of `minibar quantize`.
#[derive(clap::Args)]
pub struct Args {
    /// The model folder (path or name in the store).
    pub model: String,
    /// Quantization mode: affine (integers with a scale and bias per group), or MLX's
    /// micro-scaling float formats mxfp4 / mxfp8 / nvfp4 (fixed bits and group size).
    #[arg(
        long,
        default_value = "affine",
        value_parser = PossibleValuesParser::new(QuantMode::ALL.map(QuantMode::name))
            .try_map(|s| s.parse::<QuantMode>()),
    )]
    pub mode: QuantMode,
    /// An mlx-lm mixed-precision recipe (affine): low bits for most layers, high bits for
    /// the sensitive ones (e.g. mixed_3_6: 3 and 6 bits).
    #[arg(
        long,
        conflicts_with_all = ["mode", "bits"],
        value_parser = PossibleValuesParser::new(Recipe::ALL.map(Recipe::name))
            .try_map(|s| s.parse::<Recipe>()),
    )]
    pub recipe: Option<Recipe>,
    /// Bits per weight: 2, 3, 4, 5, 6 or 8 for affine (default 4); the mode's own otherwise.
    #[arg(long, short = 'q')]
    pub bits: Option<i32>,
    /// Weights per scale: 32, 64 or 128 for affine (default 64); the mode's own otherwise.
    #[arg(long, short = 'g')]
    pub group_size: Option<i32>,
    /// Undo quantization instead, writing dense float32 weights.
    #[arg(long, conflicts_with_all = ["bits", "group_size", "mode", "recipe"])]
    pub dequantize: bool,
    /// Output folder (default: next to the source, named after the settings).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// What the arguments ask for.
fn target(args: &Args) -> anyhow::Result<Target> {
    if args.dequantize {
        return Ok(Target::Dense(mlx_rs::Dtype::Float32));
    }
    if let Some(recipe) = args.recipe {
        let group_size = args.group_size.unwrap_or(QuantMode::Affine.defaults().0);
        return Ok(Target::Mixed { recipe, group_size });
    }
    let (group, bits) = args.mode.defaults();
    let params = QuantParams {
        group_size: args.group_size.unwrap_or(group),
        bits: args.bits.unwrap_or(bits),
        mode: args.mode,
    };
    params
        .mode
        .check(params.group_size, params.bits)
        .map_err(anyhow::Error::msg)?;
    Ok(Target::Quantized(params))
}

/// Runs `minibar quantize`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let src = model_arg::resolve(Some(&args.model))?;
    anyhow::ensure!(
        src.is_dir(),
        "{} is not a model folder (import a .gguf first with `minibar import`)",
        src.display()
    );
    let target = target(&args)?;
    // Dense output keeps the name earlier versions gave it.
    let suffix = if args.dequantize {
        "f32".to_owned()
    } else {
        target.label()
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
    bar.set_message(suffix);
    let cancel = minibar_engine::CancelToken::new();
    super::interrupt::cancel_on_ctrl_c(&cancel);
    let _in_use = super::force::hold(&src, minibar_hub::library::Use::Quantization)?;
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
