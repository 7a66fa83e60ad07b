//! Rotary position embeddings with the scaling schemes the supported models use, computed as
//! mlx-lm computes them (`mlx_lm/models/rope_utils.py`).

use std::cell::OnceCell;

use mlx_rs::{
    ops::{
        self,
        indexing::{IndexOp, IntoStrideBy},
    },
    Array,
};
use serde_json::Value;

use crate::{
    error::{EngineError, Result},
    Backend,
};

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
    /// The angle per position of each frequency, computed on the first `tables` call.
    inv_freqs: OnceCell<Array>,
}

fn base_freqs(dims: i32, base: f32) -> Result<Array> {
    let exps = ops::divide(
        &ops::arange::<_, f32>(0, dims, 2)?,
        Array::from_f32(dims as f32),
    )?;
    Ok(ops::power(Array::from_f32(base), &exps)?)
}

/// YaRN's settings (mlx-lm's `YarnRoPE`, used by gpt-oss and DeepSeek): frequencies with
/// fewer rotations than `beta_fast` over the original context are interpolated by `factor`,
/// those with more than `beta_slow` kept, a linear ramp between; queries and keys are scaled
/// by an attention factor.
struct Yarn {
    factor: f64,
    original_max: f64,
    beta_fast: f64,
    beta_slow: f64,
    mscale: f64,
    mscale_all_dim: f64,
}

impl Yarn {
    fn get_mscale(&self, mscale: f64) -> f64 {
        if self.factor <= 1.0 {
            1.0
        } else {
            0.1 * mscale * self.factor.ln() + 1.0
        }
    }

    /// The factor queries and keys are multiplied by before rotating.
    fn attention_factor(&self) -> f32 {
        (self.get_mscale(self.mscale) / self.get_mscale(self.mscale_all_dim)) as f32
    }

    /// The dimension pair index where a frequency makes `rotations` turns over the original
    /// context (computed in f64, as Python does).
    fn correction_dim(&self, dims: i32, base: f32, rotations: f64) -> f64 {
        let tau = 2.0 * std::f64::consts::PI;
        dims as f64 * (self.original_max / (rotations * tau)).ln() / (2.0 * (base as f64).ln())
    }

    /// MLX's `freqs` (wavelength factors), with the same f32 operations as mlx-lm.
    fn freqs(&self, dims: i32, base: f32) -> Result<Array> {
        let low = self
            .correction_dim(dims, base, self.beta_fast)
            .floor()
            .max(0.0);
        let high = self
            .correction_dim(dims, base, self.beta_slow)
            .ceil()
            .min((dims - 1) as f64);
        // Prevents a division by zero when the range is empty.
        let high = if low == high { high + 0.001 } else { high };
        let ramp = ops::clip(
            &ops::divide(
                &ops::subtract(
                    &ops::arange::<_, f32>(0, dims / 2, 1)?,
                    Array::from_f32(low as f32),
                )?,
                Array::from_f32((high - low) as f32),
            )?,
            (0.0f32, 1.0f32),
        )?;
        let mask = ops::subtract(Array::from_f32(1.0), &ramp)?;
        let extra = base_freqs(dims, base)?;
        let inter = ops::multiply(&extra, Array::from_f32(self.factor as f32))?;
        let numerator = ops::multiply(&inter, &extra)?;
        let denominator = ops::add(
            &ops::multiply(&inter, &mask)?,
            &ops::multiply(&extra, &ops::subtract(Array::from_f32(1.0), &mask)?)?,
        )?;
        Ok(ops::divide(&numerator, &denominator)?)
    }
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
            inv_freqs: OnceCell::new(),
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
            "yarn" | "deepseek_yarn" => {
                let factor = num("factor", 1.0);
                let yarn = Yarn {
                    factor,
                    original_max: num("original_max_position_embeddings", 4096.0),
                    beta_fast: num("beta_fast", 32.0),
                    beta_slow: num("beta_slow", 1.0),
                    mscale: num("mscale", 1.0),
                    mscale_all_dim: num("mscale_all_dim", 0.0),
                };
                Ok(Self {
                    base: None,
                    freqs: Some(yarn.freqs(dims, base)?),
                    input_scale: yarn.attention_factor(),
                    ..Self::plain(dims, base, traditional)
                })
            }
            _ => Err(unsupported()),
        }
    }

    /// Replaces the frequencies by llama.cpp's per-frequency factors (`rope_freqs` in GGUF).
    pub fn with_factors(mut self, factors: &Array, base: f32) -> Result<Self> {
        self.freqs = Some(ops::multiply(&base_freqs(self.dims, base)?, factors)?);
        self.base = None;
        self.inv_freqs = OnceCell::new();
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

impl Rope {
    /// The cosines and sines for `len` positions from `offset`, computed once per forward
    /// pass and shared by every layer using this embedding. MLX's CPU backend has no RoPE
    /// kernel: its fallback recomputes the angles and takes 14 operations per call, twice a
    /// layer; with tables a layer's queries and keys rotate in three.
    pub fn tables(&self, offset: i32, len: i32) -> Result<RopeTables> {
        let half = self.dims / 2;
        // The same f32 operations as MLX's fallback, so the angles are bit-identical.
        let positions = ops::multiply(
            &ops::add(&ops::arange::<_, f32>(0, len, 1)?, Array::from_int(offset))?,
            Array::from_f32(self.scale),
        )?;
        let inv_freqs = match self.inv_freqs.get() {
            Some(f) => f,
            None => {
                let f = match (&self.freqs, self.base) {
                    (Some(f), _) => ops::reciprocal(&f.as_dtype(mlx_rs::Dtype::Float32)?)?,
                    (None, base) => ops::exp(&ops::multiply(
                        &ops::arange::<_, f32>(0, -half, -1)?,
                        Array::from_f32(base.unwrap_or(1.0).ln() / half as f32),
                    )?)?,
                };
                f.eval()?;
                self.inv_freqs.get_or_init(|| f)
            }
        };
        let theta = ops::multiply(&positions.reshape(&[len, 1])?, inv_freqs)?;
        let (cos, sin) = (ops::cos(&theta)?, ops::sin(&theta)?);
        let neg_sin = ops::negative(&sin)?;
        // Pairs are (i, i + half) in the default layout and (2i, 2i + 1) in the traditional
        // one; the pair axis has size 2 and sits before or after the frequency axis.
        let pair_axis = if self.traditional { 2 } else { 1 };
        let stack = |a: &Array, b: &Array| -> Result<Array> {
            Ok(ops::stack(&[a, b], pair_axis)?.reshape(&self.table_shape(len))?)
        };
        Ok(RopeTables {
            cos: stack(&cos, &cos)?,
            sin: stack(&neg_sin, &sin)?,
            dims: self.dims,
            traditional: self.traditional,
            input_scale: self.input_scale,
        })
    }

    fn table_shape(&self, len: i32) -> [i32; 4] {
        let half = self.dims / 2;
        if self.traditional {
            [len, 1, half, 2]
        } else {
            [len, 1, 2, half]
        }
    }
}

/// How one forward pass rotates queries and keys.
pub enum Rotation<'a> {
    /// Precomputed tables (the CPU, where MLX has no RoPE kernel).
    Tables(RopeTables),
    /// MLX's fused RoPE kernel (Metal), one operation per call.
    Kernel {
        /// The embedding.
        rope: &'a Rope,
        /// Absolute position of the first token.
        offset: i32,
    },
}

impl Rope {
    /// The rotation for `len` positions from `offset` on `backend`.
    pub fn rotation(&self, offset: i32, len: i32, backend: Backend) -> Result<Rotation<'_>> {
        Ok(match backend {
            Backend::Cpu => Rotation::Tables(self.tables(offset, len)?),
            Backend::Metal => Rotation::Kernel { rope: self, offset },
        })
    }
}

impl Rotation<'_> {
    /// Rotates `x` laid out `[B, L, H, D]` and returns it laid out `[B, H, L, D]`.
    pub fn apply(&self, x: &Array) -> Result<Array> {
        let heads_first = |a: &Array| a.transpose_axes(&[0, 2, 1, 3]);
        Ok(match self {
            Rotation::Tables(t) => heads_first(&t.apply(x)?)?,
            Rotation::Kernel { rope, offset } => rope.apply(&heads_first(x)?, *offset)?,
        })
    }
}

/// Rotary cosines and sines for a span of positions (see `Rope::tables`).
pub struct RopeTables {
    /// `[L, 1, 2, dims/2]` (`[L, 1, dims/2, 2]` traditional): each angle's cosine, twice.
    cos: Array,
    /// Same layout: minus the sine for a pair's first element, the sine for its second.
    sin: Array,
    dims: i32,
    traditional: bool,
    /// Long-rope's attention factor, applied to the rotated part first as mlx-lm does.
    input_scale: f32,
}

impl RopeTables {
    /// Rotates `x` laid out `[B, L, H, D]` (positions on axis 1), as `Rope::apply` would the
    /// same values laid out `[B, H, L, D]`.
    pub fn apply(&self, x: &Array) -> Result<Array> {
        let s = x.shape();
        let (b, l, h, d) = (s[0], s[1], s[2], s[3]);
        let mut rotated = if self.dims == d {
            x.clone()
        } else {
            x.index((.., .., .., ..self.dims))
        };
        if self.input_scale != 1.0 {
            rotated = ops::multiply(&rotated, Array::from_f32(self.input_scale))?;
        }
        let half = self.dims / 2;
        let (pairs, swapped) = if self.traditional {
            let p = rotated.reshape(&[b, l, h, half, 2])?;
            let w = p.index((.., .., .., .., (..).stride_by(-1)));
            (p, w)
        } else {
            let p = rotated.reshape(&[b, l, h, 2, half])?;
            let w = p.index((.., .., .., (..).stride_by(-1), ..));
            (p, w)
        };
        // x1 cos - x2 sin, x2 cos + x1 sin: the products and sum MLX's fallback computes.
        let out = ops::add(
            &ops::multiply(&pairs, &self.cos)?,
            &ops::multiply(&swapped, &self.sin)?,
        )?
        .reshape(&[b, l, h, self.dims])?;
        if self.dims == d {
            Ok(out)
        } else {
            Ok(ops::concatenate(
                &[out, x.index((.., .., .., self.dims..))],
                3,
            )?)
        }
    }
}
