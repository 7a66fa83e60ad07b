//! Rotary position embeddings with the scaling schemes the supported models use, computed as
//! mlx-lm computes them (`mlx_lm/models/rope_utils.py`).

use mlx_rs::{ops, Array};
use serde_json::Value;

use crate::error::{EngineError, Result};

/// A configured rotary embedding.
pub struct Rope {
    dims: i32,
    traditional: bool,
    base: Option<f32>,
    scale: f32,
    /// Per-frequency wavelengths (MLX's `freqs`), when scaling reshapes them.
    freqs: Option<Array>,
    /// Applied to the rotated part of the input first (long-rope's attention factor).
    input_scale: f32,
}

fn base_freqs(dims: i32, base: f32) -> Result<Array> {
    let exps = ops::divide(
        &ops::arange::<_, f32>(0, dims, 2)?,
        Array::from_f32(dims as f32),
    )?;
    Ok(ops::power(Array::from_f32(base), &exps)?)
}

impl Rope {
    /// Plain rotary embedding.
    pub fn plain(dims: i32, base: f32, traditional: bool) -> Self {
        Self {
            dims,
            traditional,
            base: Some(base),
            scale: 1.0,
            freqs: None,
            input_scale: 1.0,
        }
    }

    /// Builds the rotary embedding a config asks for (`rope_scaling` may be absent).
    pub fn from_config(
        dims: i32,
        base: f32,
        traditional: bool,
        scaling: Option<&Value>,
        max_positions: Option<i32>,
        original_max_positions: Option<i32>,
    ) -> Result<Self> {
        let Some(cfg) = scaling.filter(|v| !v.is_null()) else {
            return Ok(Self::plain(dims, base, traditional));
        };
        let kind = cfg
            .get("type")
            .or_else(|| cfg.get("rope_type"))
            .and_then(Value::as_str)
            .unwrap_or("default");
        let num = |k: &str, d: f64| cfg.get(k).and_then(Value::as_f64).unwrap_or(d);
        let unsupported = || EngineError::BadConfigValue {
            path: "config.json".into(),
            key: "rope_scaling".into(),
            detail: format!("rope type `{kind}` is not supported"),
        };
        match kind {
            "default" => Ok(Self::plain(dims, base, traditional)),
            "linear" => Ok(Self {
                scale: 1.0 / num("factor", 1.0) as f32,
                ..Self::plain(dims, base, traditional)
            }),
            "llama3" => {
                let factor = num("factor", 1.0) as f32;
                let low = num("low_freq_factor", 1.0) as f32;
                let high = num("high_freq_factor", 4.0) as f32;
                let old = num("original_max_position_embeddings", 8192.0) as f32;
                let low_wavelen = old / low;
                let high_wavelen = old / high;
                let freqs = base_freqs(dims, base)?;
                let wavelens = ops::multiply(&freqs, Array::from_f32(2.0 * std::f32::consts::PI))?;
                let scaled = ops::multiply(&freqs, Array::from_f32(factor))?;
                let freqs =
                    ops::select(&wavelens.gt(Array::from_f32(low_wavelen))?, &scaled, &freqs)?;
                let medium = ops::logical_and(
                    &wavelens.gt(Array::from_f32(high_wavelen))?,
                    &wavelens.lt(Array::from_f32(low_wavelen))?,
                )?;
                let smooth = ops::divide(
                    &ops::subtract(
                        &ops::divide(Array::from_f32(old), &wavelens)?,
                        Array::from_f32(low),
                    )?,
                    Array::from_f32(high - low),
                )?;
                let denom = ops::add(
                    &ops::divide(
                        &ops::subtract(Array::from_f32(1.0), &smooth)?,
                        Array::from_f32(factor),
                    )?,
                    &smooth,
                )?;
                let smooth_freqs = ops::divide(&freqs, &denom)?;
                Ok(Self {
                    base: None,
                    freqs: Some(ops::select(&medium, &smooth_freqs, &freqs)?),
                    ..Self::plain(dims, base, traditional)
                })
            }
            "longrope" | "su" => {
                let max = max_positions.unwrap_or(131072) as f32;
                let orig = original_max_positions
                    .or_else(|| {
                        cfg.get("original_max_position_embeddings")
                            .and_then(Value::as_i64)
                            .map(|v| v as i32)
                    })
                    .unwrap_or(4096) as f32;
                let long: Vec<f32> = match cfg.get("long_factor") {
                    Some(Value::Array(v)) => v
                        .iter()
                        .filter_map(Value::as_f64)
                        .map(|x| x as f32)
                        .collect(),
                    Some(v) => vec![v.as_f64().unwrap_or(1.0) as f32; (dims / 2) as usize],
                    None => vec![1.0; (dims / 2) as usize],
                };
                let factor = max / orig;
                let mscale = match cfg.get("long_mscale").and_then(Value::as_f64) {
                    Some(m) => m as f32,
                    None if factor <= 1.0 => 1.0,
                    None => (1.0 + factor.ln() / orig.ln()).sqrt(),
                };
                let freqs = ops::multiply(
                    Array::from_slice(&long, &[long.len() as i32]),
                    &base_freqs(dims, base)?,
                )?;
                Ok(Self {
                    base: None,
                    freqs: Some(freqs),
                    input_scale: mscale,
                    ..Self::plain(dims, base, false)
                })
            }
            _ => Err(unsupported()),
        }
    }

    /// Replaces the frequencies by llama.cpp's per-frequency factors (`rope_freqs` in GGUF).
    pub fn with_factors(mut self, factors: &Array, base: f32) -> Result<Self> {
        self.freqs = Some(ops::multiply(&base_freqs(self.dims, base)?, factors)?);
        self.base = None;
        Ok(self)
    }

    /// Rotates `x` (`[B, H, L, D]`) for positions starting at `offset`.
    pub fn apply(&self, x: &Array, offset: i32) -> Result<Array> {
        let x = if self.input_scale != 1.0 {
            let d = x.shape()[3];
            if self.dims == d {
                ops::multiply(x, Array::from_f32(self.input_scale))?
            } else {
                let rot = ops::multiply(
                    x.index((.., .., .., ..self.dims)),
                    Array::from_f32(self.input_scale),
                )?;
                ops::concatenate(&[rot, x.index((.., .., .., self.dims..))], 3)?
            }
        } else {
            x.clone()
        };
        Ok(mlx_rs::fast::rope(
            &x,
            self.dims,
            self.traditional,
            self.base,
            self.scale,
            offset,
            self.freqs.as_ref(),
        )?)
    }
}

use mlx_rs::ops::indexing::IndexOp;
