//! How weights are stored: float dtypes, MLX affine and microscaling formats, mlx-lm's mixed
//! recipes, and which tensors stay unquantized.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::tensors::{Quantizable, Tensor};
use crate::FitError;

/// A floating-point storage type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    /// 32-bit float.
    F32,
    /// IEEE half.
    F16,
    /// bfloat16.
    Bf16,
}

impl Dtype {
    /// Bytes per element.
    pub fn bytes(self) -> u64 {
        match self {
            Dtype::F32 => 4,
            Dtype::F16 | Dtype::Bf16 => 2,
        }
    }

    /// Bits per element.
    pub fn bits(self) -> u64 {
        self.bytes() * 8
    }

    /// Reads a dtype name as config.json writes it (`torch_dtype`, `dtype`).
    pub fn from_config_name(name: &str) -> Option<Dtype> {
        match name {
            "float32" | "f32" => Some(Dtype::F32),
            "float16" | "f16" | "half" => Some(Dtype::F16),
            "bfloat16" | "bf16" => Some(Dtype::Bf16),
            _ => None,
        }
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dtype::F32 => "f32",
            Dtype::F16 => "f16",
            Dtype::Bf16 => "bf16",
        })
    }
}

/// MLX's quantization modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QuantMode {
    /// `b` bits per weight plus a float scale and bias per group.
    Affine,
    /// 4-bit floats with one 8-bit scale per 32 weights.
    Mxfp4,
    /// 8-bit floats with one 8-bit scale per 32 weights.
    Mxfp8,
    /// 4-bit floats with one 8-bit scale per 16 weights.
    Nvfp4,
}

/// One quantized format: mode, bits and group size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct QuantSpec {
    /// The mode.
    pub mode: QuantMode,
    /// Bits per weight (before scales).
    pub bits: u8,
    /// Weights sharing one scale.
    pub group: u32,
}

impl QuantSpec {
    /// An affine format (validity checked by [`QuantSpec::validate`]).
    pub const fn affine(bits: u8, group: u32) -> QuantSpec {
        QuantSpec {
            mode: QuantMode::Affine,
            bits,
            group,
        }
    }

    /// The microscaling format of a mode, with its fixed bits and group.
    pub const fn mx(mode: QuantMode) -> QuantSpec {
        match mode {
            QuantMode::Mxfp8 => QuantSpec {
                mode,
                bits: 8,
                group: 32,
            },
            QuantMode::Nvfp4 => QuantSpec {
                mode,
                bits: 4,
                group: 16,
            },
            _ => QuantSpec {
                mode: QuantMode::Mxfp4,
                bits: 4,
                group: 32,
            },
        }
    }

    /// Rejects combinations MLX does not implement.
    pub fn validate(&self) -> Result<(), FitError> {
        let ok = match self.mode {
            QuantMode::Affine => {
                [2, 3, 4, 5, 6, 8].contains(&self.bits) && [32, 64, 128].contains(&self.group)
            }
            QuantMode::Mxfp4 => self.bits == 4 && self.group == 32,
            QuantMode::Mxfp8 => self.bits == 8 && self.group == 32,
            QuantMode::Nvfp4 => self.bits == 4 && self.group == 16,
        };
        if ok {
            Ok(())
        } else {
            Err(FitError::InvalidQuantization(format!(
                "{:?} with {} bits and group size {} is not an MLX format (affine: 2, 3, 4, 5, 6 or 8 bits, group 32, 64 or 128; mxfp4/mxfp8: group 32; nvfp4: group 16)",
                self.mode, self.bits, self.group
            )))
        }
    }

    /// Storage bits per weight, scales included; `scale_dtype` is the affine scale/bias type.
    pub fn bits_per_weight(&self, scale_dtype: Dtype) -> f64 {
        let bits = f64::from(self.bits);
        let group = f64::from(self.group);
        match self.mode {
            QuantMode::Affine => bits + 2.0 * scale_dtype.bits() as f64 / group,
            _ => bits + 8.0 / group,
        }
    }

    /// Bytes of a `rows` × `cols` matrix in this format (cols divisible by the group).
    pub fn bytes(&self, rows: u64, cols: u64, scale_dtype: Dtype) -> u64 {
        let packed = (rows * cols * u64::from(self.bits)).div_ceil(8);
        let groups = rows * (cols / u64::from(self.group));
        let per_group = match self.mode {
            QuantMode::Affine => 2 * scale_dtype.bytes(),
            _ => 1,
        };
        packed + groups * per_group
    }
}

impl fmt::Display for QuantSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.mode {
            QuantMode::Affine if self.group == 64 => write!(f, "{}bit", self.bits),
            QuantMode::Affine => write!(f, "{}bit-g{}", self.bits, self.group),
            QuantMode::Mxfp4 => f.write_str("mxfp4"),
            QuantMode::Mxfp8 => f.write_str("mxfp8"),
            QuantMode::Nvfp4 => f.write_str("nvfp4"),
        }
    }
}

/// mlx-lm's mixed-precision recipes (`convert.py`, `mixed_quant_predicate_builder`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MixedRecipe {
    /// Bits of most layers.
    pub low: u8,
    /// Bits of v_proj and down_proj in the first/last eighth and every third layer between,
    /// and of lm_head.
    pub high: u8,
}

impl MixedRecipe {
    /// The recipes mlx-lm ships: `mixed_2_6`, `mixed_3_4`, `mixed_3_6`, `mixed_4_6`.
    pub fn from_name(name: &str) -> Option<MixedRecipe> {
        let (low, high) = match name {
            "mixed_2_6" => (2, 6),
            "mixed_3_4" => (3, 4),
            "mixed_3_6" => (3, 6),
            "mixed_4_6" => (4, 6),
            _ => return None,
        };
        Some(MixedRecipe { low, high })
    }

    /// The bits mlx-lm gives the module at `path` in a model of `layers` blocks.
    pub fn bits_for(&self, path: &str, layers: u32) -> u8 {
        // mlx-lm reads the layer index from the path; paths without one count as index 0.
        let index = path
            .split('.')
            .nth(2)
            .and_then(|s| s.parse::<u32>().ok())
            .unwrap_or(0);
        let n = layers;
        let more = index < n / 8 || index >= 7 * n / 8 || (index as i64 - (n / 8) as i64) % 3 == 2;
        let high_path = path.contains("v_proj")
            || path.contains("v_a_proj")
            || path.contains("v_b_proj")
            || path.contains("down_proj");
        if (high_path && more) || path.contains("lm_head") {
            self.high
        } else {
            self.low
        }
    }
}

/// A per-path rule: matching modules use `format` (`None`: kept in the float dtype).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathOverride {
    /// An mlx-lm module path (`model.layers.0.mlp.down_proj`), a path suffix
    /// (`mlp.down_proj`) or one path component (`experts`, `lm_head`).
    pub path: String,
    /// The format for matching modules.
    pub format: Option<QuantSpec>,
}

impl PathOverride {
    /// Whether this rule applies to the module at `path`.
    pub fn matches(&self, path: &str) -> bool {
        path == self.path
            || path
                .strip_suffix(self.path.as_str())
                .is_some_and(|head| head.ends_with('.'))
            || (!self.path.contains('.') && path.split('.').any(|c| c == self.path))
    }
}

/// How a model's weights are stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quantization {
    /// Float type of unquantized tensors and of affine scales and biases.
    pub dtype: Dtype,
    /// The default format of quantizable matrices; `None` keeps every tensor in `dtype`.
    pub weights: Option<QuantSpec>,
    /// A mixed recipe that picks bits per module (affine, the default's group size).
    pub mixed: Option<MixedRecipe>,
    /// Per-path formats, checked in order before the default.
    pub overrides: Vec<PathOverride>,
}

/// The format one tensor ends up in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TensorFormat {
    /// Kept in a float dtype.
    Float(Dtype),
    /// Quantized.
    Quantized(QuantSpec),
}

impl Quantization {
    /// Unquantized weights in `dtype`.
    pub fn float(dtype: Dtype) -> Quantization {
        Quantization {
            dtype,
            weights: None,
            mixed: None,
            overrides: Vec::new(),
        }
    }

    /// One format for every quantizable matrix, scales in bf16 (mlx-community's releases).
    pub fn uniform(spec: QuantSpec) -> Quantization {
        Quantization {
            dtype: Dtype::Bf16,
            weights: Some(spec),
            mixed: None,
            overrides: Vec::new(),
        }
    }

    /// The same storage with another float dtype (e.g. f32 scales on the CPU backend).
    pub fn with_dtype(mut self, dtype: Dtype) -> Quantization {
        self.dtype = dtype;
        self
    }

    /// Whether any tensor is quantized.
    pub fn is_quantized(&self) -> bool {
        self.weights.is_some() || self.overrides.iter().any(|o| o.format.is_some())
    }

    /// Checks every format is one MLX implements.
    pub fn validate(&self) -> Result<(), FitError> {
        if let Some(w) = &self.weights {
            w.validate()?;
        }
        if let (Some(m), Some(w)) = (&self.mixed, &self.weights) {
            QuantSpec::affine(m.low, w.group).validate()?;
            QuantSpec::affine(m.high, w.group).validate()?;
        }
        if self.mixed.is_some() && self.weights.is_none() {
            return Err(FitError::InvalidQuantization(
                "a mixed recipe needs a group size (quantized weights)".into(),
            ));
        }
        for o in &self.overrides {
            if let Some(f) = &o.format {
                f.validate()?;
            }
        }
        Ok(())
    }

    /// The format mlx-lm would give `tensor` in a model of `layers` blocks.
    pub fn format_of(&self, tensor: &Tensor, layers: u32) -> TensorFormat {
        let float = TensorFormat::Float(self.dtype);
        let spec = match tensor.quantizable {
            Quantizable::No => return float,
            Quantizable::Pinned(spec) => match self.weights {
                Some(_) => spec,
                None => return float,
            },
            Quantizable::Yes => {
                if let Some(o) = self
                    .overrides
                    .iter()
                    .find(|o| tensor.path.contains(&o.path))
                {
                    match o.format {
                        Some(spec) => spec,
                        None => return float,
                    }
                } else if let (Some(m), Some(w)) = (&self.mixed, &self.weights) {
                    QuantSpec::affine(m.bits_for(&tensor.path, layers), w.group)
                } else if let Some(w) = self.weights {
                    w
                } else {
                    return float;
                }
            }
        };
        // nn.quantize skips modules whose input size is not a multiple of the group size.
        if !tensor.cols.is_multiple_of(u64::from(spec.group)) {
            return float;
        }
        TensorFormat::Quantized(spec)
    }

    /// Bytes `tensor` takes in memory.
    pub fn tensor_bytes(&self, tensor: &Tensor, layers: u32) -> u64 {
        let rows = tensor.rows * tensor.copies;
        match self.format_of(tensor, layers) {
            TensorFormat::Float(d) => rows * tensor.cols * d.bytes(),
            TensorFormat::Quantized(q) => q.bytes(rows, tensor.cols, self.dtype),
        }
    }

    /// Reads config.json's `quantization` (or `quantization_config`) object as mlx-lm writes it;
    /// `dtype` is the model's float type. `Ok(None)` when the config has no MLX quantization.
    pub fn from_config(config: &Value, dtype: Dtype) -> Result<Option<Quantization>, FitError> {
        let Some(q) = config
            .get("quantization")
            .or_else(|| config.get("quantization_config"))
        else {
            return Ok(None);
        };
        let Some(obj) = q.as_object() else {
            return Err(FitError::InvalidQuantization(
                "config.json's `quantization` is not an object".into(),
            ));
        };
        if !obj.contains_key("bits") && obj.contains_key("quant_method") {
            // A Hugging Face quantizer (e.g. gpt-oss's original mxfp4) rather than MLX's.
            return match obj.get("quant_method").and_then(Value::as_str) {
                // Only the experts are mxfp4; attention, router, embedding and head stay float.
                Some("mxfp4") => Ok(Some(Quantization {
                    dtype,
                    weights: None,
                    mixed: None,
                    overrides: vec![PathOverride {
                        path: "experts".into(),
                        format: Some(QuantSpec::mx(QuantMode::Mxfp4)),
                    }],
                })),
                Some(other) => Err(FitError::InvalidQuantization(format!(
                    "config.json uses the `{other}` quantizer, which MLX does not load"
                ))),
                None => Err(FitError::InvalidQuantization(
                    "config.json's `quantization_config` names no method".into(),
                )),
            };
        }
        let default = spec_from_json(q)?;
        let mut overrides = Vec::new();
        for (key, value) in obj {
            match value {
                Value::Object(_) => {
                    let spec = spec_from_json(value)?;
                    // mlx-lm lists every layer once a model is partly quantized: keep only the
                    // entries that differ from the default.
                    if spec != default {
                        overrides.push(PathOverride {
                            path: key.clone(),
                            format: Some(spec),
                        });
                    }
                }
                Value::Bool(false) => overrides.push(PathOverride {
                    path: key.clone(),
                    format: None,
                }),
                _ => {}
            }
        }
        // Longer paths are more specific; check them first.
        overrides.sort_by_key(|o| std::cmp::Reverse(o.path.len()));
        let quant = Quantization {
            dtype,
            weights: Some(default),
            mixed: None,
            overrides,
        };
        quant.validate()?;
        Ok(Some(quant))
    }

    /// Mean storage bits per parameter of a model under this quantization.
    pub fn mean_bits(&self, tensors: &[Tensor], layers: u32) -> f64 {
        let params: u64 = tensors.iter().map(Tensor::params).sum();
        let bytes: u64 = tensors.iter().map(|t| self.tensor_bytes(t, layers)).sum();
        if params == 0 {
            0.0
        } else {
            bytes as f64 * 8.0 / params as f64
        }
    }
}

fn spec_from_json(v: &Value) -> Result<QuantSpec, FitError> {
    let mode = match v.get("mode").and_then(Value::as_str).unwrap_or("affine") {
        "affine" => QuantMode::Affine,
        "mxfp4" => QuantMode::Mxfp4,
        "mxfp8" => QuantMode::Mxfp8,
        "nvfp4" => QuantMode::Nvfp4,
        other => {
            return Err(FitError::InvalidQuantization(format!(
                "unknown quantization mode `{other}`"
            )))
        }
    };
    let default = QuantSpec::mx(mode);
    let get = |k: &str| v.get(k).and_then(Value::as_u64);
    let (bits, group) = match mode {
        QuantMode::Affine => (
            get("bits").ok_or_else(|| {
                FitError::InvalidQuantization("quantization entry has no `bits`".into())
            })?,
            get("group_size").unwrap_or(64),
        ),
        _ => (
            get("bits").unwrap_or(u64::from(default.bits)),
            get("group_size").unwrap_or(u64::from(default.group)),
        ),
    };
    let spec = QuantSpec {
        mode,
        bits: u8::try_from(bits).unwrap_or(0),
        group: u32::try_from(group).unwrap_or(0),
    };
    spec.validate()?;
    Ok(spec)
}

impl fmt::Display for Quantization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.weights, &self.mixed) {
            (None, _) => write!(f, "{}", self.dtype)?,
            (Some(w), Some(m)) if w.group == 64 => write!(f, "mixed_{}_{}", m.low, m.high)?,
            (Some(w), Some(m)) => write!(f, "mixed_{}_{}-g{}", m.low, m.high, w.group)?,
            (Some(w), None) => write!(f, "{w}")?,
        }
        if self.overrides.len() > 4 {
            // Too many to read (per-layer configs); not a parseable name then.
            return write!(f, " + {} per-layer formats", self.overrides.len());
        }
        for o in &self.overrides {
            match &o.format {
                Some(spec) => write!(f, ",{}={spec}", o.path)?,
                None => write!(f, ",{}={}", o.path, self.dtype)?,
            }
        }
        Ok(())
    }
}

/// Parses the quantization names Minibar uses: `bf16`, `f16`, `f32`; `4bit`, `q4`, `4bit-g32`;
/// `mxfp4`, `mxfp8`, `nvfp4`; `mixed_3_6` (optionally `-g32`); followed by per-path overrides
/// `,experts=mxfp4` or `,lm_head=bf16`. Quantized formats keep bf16 scales.
impl FromStr for Quantization {
    type Err = FitError;

    fn from_str(s: &str) -> Result<Self, FitError> {
        let mut parts = s.split(',').map(str::trim);
        let base = parts.next().unwrap_or_default().to_ascii_lowercase();
        let mut quant = if let Some(d) = Dtype::from_config_name(&base) {
            Quantization::float(d)
        } else if base.starts_with("mixed_") {
            let (name, group) = split_group(&base)?;
            let recipe = MixedRecipe::from_name(name).ok_or_else(|| {
                FitError::InvalidQuantization(format!(
                    "unknown recipe `{name}` (mlx-lm has mixed_2_6, mixed_3_4, mixed_3_6, mixed_4_6)"
                ))
            })?;
            Quantization {
                mixed: Some(recipe),
                ..Quantization::uniform(QuantSpec::affine(recipe.low, group))
            }
        } else {
            Quantization::uniform(parse_spec(&base)?)
        };
        for part in parts {
            let (path, fmt) = part.split_once('=').ok_or_else(|| {
                FitError::InvalidQuantization(format!("`{part}` is not PATH=FORMAT"))
            })?;
            let fmt = fmt.to_ascii_lowercase();
            let format = match Dtype::from_config_name(&fmt) {
                Some(_) => None,
                None => Some(parse_spec(&fmt)?),
            };
            quant.overrides.push(PathOverride {
                path: path.to_string(),
                format,
            });
        }
        quant.validate()?;
        Ok(quant)
    }
}

fn split_group(s: &str) -> Result<(&str, u32), FitError> {
    match s.split_once("-g") {
        Some((head, g)) => {
            let group = g
                .parse()
                .map_err(|_| FitError::InvalidQuantization(format!("`{g}` is not a group size")))?;
            Ok((head, group))
        }
        None => Ok((s, 64)),
    }
}

fn parse_spec(s: &str) -> Result<QuantSpec, FitError> {
    match s {
        "mxfp4" => return Ok(QuantSpec::mx(QuantMode::Mxfp4)),
        "mxfp8" => return Ok(QuantSpec::mx(QuantMode::Mxfp8)),
        "nvfp4" => return Ok(QuantSpec::mx(QuantMode::Nvfp4)),
        _ => {}
    }
    let (head, group) = split_group(s)?;
    let digits = head
        .strip_suffix("bit")
        .or_else(|| head.strip_prefix('q'))
        .ok_or_else(|| {
            FitError::InvalidQuantization(format!(
                "`{s}` is not a quantization (try bf16, 8bit, 4bit-g32, mxfp4 or mixed_3_6)"
            ))
        })?;
    let bits = digits
        .parse()
        .map_err(|_| FitError::InvalidQuantization(format!("`{digits}` is not a bit count")))?;
    let spec = QuantSpec::affine(bits, group);
    spec.validate()?;
    Ok(spec)
}
