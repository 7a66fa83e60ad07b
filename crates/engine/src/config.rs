//! A model's hyperparameters, read from a Hugging Face / mlx-lm `config.json` (or built from
//! GGUF metadata by the GGUF loader), and its quantization settings.

use std::{collections::HashMap, path::Path};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{EngineError, Result};
use crate::{layers::QuantParams, quant_ops::QuantMode};

/// Hyperparameters shared by the decoder-only architectures we support; fields only some
/// architectures use are optional.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelArgs {
    /// The architecture.
    pub model_type: String,
    /// Width of the residual stream.
    pub hidden_size: i32,
    /// Decoder blocks.
    pub num_hidden_layers: i32,
    /// Width of the MLP.
    pub intermediate_size: i32,
    /// Query heads.
    pub num_attention_heads: i32,
    /// Key/value heads (grouped-query attention); defaults to the query heads.
    #[serde(default)]
    pub num_key_value_heads: Option<i32>,
    /// Per-head width; defaults to hidden / heads.
    #[serde(default)]
    pub head_dim: Option<i32>,
    /// RMS norm epsilon.
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f32,
    /// Vocabulary size.
    pub vocab_size: i32,
    /// RoPE base frequency.
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f32,
    /// Interleaved (GPT-J) rather than half-split rotary layout.
    #[serde(default)]
    pub rope_traditional: bool,
    /// RoPE scaling (llama3, linear, su/longrope...).
    #[serde(default)]
    pub rope_scaling: Option<Value>,
    /// Output layer shares the embedding table.
    #[serde(default)]
    pub tie_word_embeddings: Option<bool>,
    /// Bias on the attention projections.
    #[serde(default)]
    pub attention_bias: Option<bool>,
    /// Bias on the MLP projections.
    #[serde(default)]
    pub mlp_bias: bool,
    /// Trained context length.
    #[serde(default)]
    pub max_position_embeddings: Option<i32>,
    /// Sliding-window size for local-attention layers.
    #[serde(default)]
    pub sliding_window: Option<i32>,
    /// Per-layer attention kind ("full_attention" / "sliding_attention").
    #[serde(default)]
    pub layer_types: Option<Vec<String>>,
    /// Gemma 3: every n-th layer is global.
    #[serde(default)]
    pub sliding_window_pattern: Option<i32>,
    /// Gemma 3: attention scale is this ** -0.5.
    #[serde(default)]
    pub query_pre_attn_scalar: Option<f32>,
    /// Gemma 3: RoPE base of the local layers.
    #[serde(default)]
    pub rope_local_base_freq: Option<f32>,
    /// Phi-3: positions the model was first trained on (for long-rope scaling).
    #[serde(default)]
    pub original_max_position_embeddings: Option<i32>,
    /// Phi-3: fraction of the head rotated.
    #[serde(default)]
    pub partial_rotary_factor: Option<f32>,
    /// Mixture of experts: routed experts per layer (Qwen3-MoE; gpt-oss and Mixtral call it
    /// `num_local_experts`).
    #[serde(default, alias = "num_local_experts")]
    pub num_experts: Option<i32>,
    /// Mixture of experts: experts each token is routed to.
    #[serde(default)]
    pub num_experts_per_tok: Option<i32>,
    /// Mixture of experts: width of each expert's MLP.
    #[serde(default)]
    pub moe_intermediate_size: Option<i32>,
    /// Mixture of experts: rescale the chosen experts' weights to sum to one.
    #[serde(default)]
    pub norm_topk_prob: Option<bool>,
    /// Qwen3-MoE: every n-th layer has experts (the others a dense MLP).
    #[serde(default)]
    pub decoder_sparse_step: Option<i32>,
    /// Qwen3-MoE: layers that keep a dense MLP.
    #[serde(default)]
    pub mlp_only_layers: Option<Vec<i32>>,
    /// mlx-lm quantization: global settings plus per-layer overrides.
    #[serde(default)]
    pub quantization: Option<Value>,
}

/// Largest width, layer count or vocabulary a config may name. Real models stay far below it
/// (the largest hidden sizes are ~16k, vocabularies ~262k); it keeps every product the loader
/// forms in `i32` (a projection's rows, packed widths) from overflowing.
pub const MAX_DIMENSION: i32 = 1 << 24;

fn default_eps() -> f32 {
    1e-6
}

fn default_rope_theta() -> f32 {
    10000.0
}

impl ModelArgs {
    /// Reads and validates `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| EngineError::Io {
            path: path.to_owned(),
            source,
        })?;
        let value: Value = serde_json::from_str(&text).map_err(|e| EngineError::CorruptFile {
            path: path.to_owned(),
            format: "JSON",
            detail: e.to_string(),
        })?;
        Self::from_value(value, path)
    }

    /// Builds the arguments from parsed JSON; `path` names the source in errors.
    pub fn from_value(mut value: Value, path: &Path) -> Result<Self> {
        let model_type = value
            .get("model_type")
            .and_then(Value::as_str)
            .ok_or_else(|| EngineError::MissingConfigKey {
                path: path.to_owned(),
                model_type: "any".into(),
                key: "model_type".into(),
            })?
            .to_owned();
        let supported = crate::models::supported_architectures();
        if !supported.contains(&model_type.as_str()) {
            return Err(EngineError::UnsupportedArchitecture {
                path: path.to_owned(),
                model_type,
                supported: supported.join(", "),
            });
        }
        // Gemma 3's multimodal config nests the language model's settings.
        if model_type == "gemma3" {
            if let Some(mut text) = value.get("text_config").cloned() {
                if let (Some(t), Some(q)) = (text.as_object_mut(), value.get("quantization")) {
                    t.insert("quantization".into(), q.clone());
                }
                value = text;
            }
            if let Some(obj) = value.as_object_mut() {
                obj.insert("model_type".into(), Value::from("gemma3_text"));
                obj.entry("vocab_size").or_insert(Value::from(262208));
            }
        }
        if value.get("model_type").and_then(Value::as_str) == Some("gemma3_text") {
            if let Some(obj) = value.as_object_mut() {
                // Gemma 3 configs often rely on transformers' defaults for these.
                obj.entry("rms_norm_eps").or_insert(Value::from(1e-6));
                obj.entry("vocab_size").or_insert(Value::from(262144));
                obj.entry("num_attention_heads").or_insert(Value::from(8));
                obj.entry("num_key_value_heads").or_insert(Value::from(4));
                obj.entry("head_dim").or_insert(Value::from(256));
                obj.entry("rope_theta").or_insert(Value::from(1_000_000.0));
                obj.entry("sliding_window").or_insert(Value::from(512));
                obj.entry("sliding_window_pattern")
                    .or_insert(Value::from(6));
                obj.entry("rope_local_base_freq")
                    .or_insert(Value::from(10000.0));
                obj.entry("query_pre_attn_scalar")
                    .or_insert(Value::from(256.0));
            }
        }
        if let Some(obj) = value.as_object_mut() {
            // Hugging Face writes the same settings under a second name.
            if let Some(q) = obj.remove("quantization_config") {
                obj.entry("quantization").or_insert(q);
            }
            // Hugging Face's formats that are MLX's, as mlx-lm's load_model reads them (OpenAI
            // ships gpt-oss's experts in mxfp4; the layers without scales stay dense).
            if let Some(q) = obj.get_mut("quantization") {
                let mode = match q.get("quant_method").and_then(Value::as_str) {
                    Some("mxfp4") => Some(QuantMode::Mxfp4),
                    Some("mxfp8") => Some(QuantMode::Mxfp8),
                    _ => None,
                };
                if let Some(mode) = mode.filter(|_| q.get("bits").is_none()) {
                    let (group_size, bits) = mode.defaults();
                    *q = serde_json::json!({
                        "group_size": group_size, "bits": bits, "mode": mode.name()
                    });
                }
            }
        }
        let model_type = value["model_type"].as_str().unwrap_or_default().to_owned();
        let args: ModelArgs = serde_json::from_value(value).map_err(|e| {
            let msg = e.to_string();
            match msg
                .strip_prefix("missing field `")
                .and_then(|rest| rest.split('`').next())
            {
                Some(key) => EngineError::MissingConfigKey {
                    path: path.to_owned(),
                    model_type: model_type.clone(),
                    key: key.to_owned(),
                },
                None => EngineError::BadConfigValue {
                    path: path.to_owned(),
                    key: "config".into(),
                    detail: msg,
                },
            }
        })?;
        args.validate(path)?;
        args.check_quantization(path)?;
        Ok(args)
    }

    fn validate(&self, path: &Path) -> Result<()> {
        let bad = |key: &str, detail: String| EngineError::BadConfigValue {
            path: path.to_owned(),
            key: key.into(),
            detail,
        };
        let optional = |v: Option<i32>| v.unwrap_or(1);
        for (key, v) in [
            ("hidden_size", self.hidden_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("intermediate_size", self.intermediate_size),
            ("num_attention_heads", self.num_attention_heads),
            ("vocab_size", self.vocab_size),
            ("num_key_value_heads", optional(self.num_key_value_heads)),
            ("head_dim", optional(self.head_dim)),
            (
                "sliding_window_pattern",
                optional(self.sliding_window_pattern),
            ),
            ("sliding_window", optional(self.sliding_window)),
            (
                "max_position_embeddings",
                optional(self.max_position_embeddings),
            ),
            ("num_experts", optional(self.num_experts)),
            ("num_experts_per_tok", optional(self.num_experts_per_tok)),
            (
                "moe_intermediate_size",
                optional(self.moe_intermediate_size),
            ),
            ("decoder_sparse_step", optional(self.decoder_sparse_step)),
        ] {
            if v <= 0 {
                return Err(bad(key, format!("{v} must be positive")));
            }
            // Lengths in tokens are never multiplied by widths; they may be large.
            let length = matches!(key, "sliding_window" | "max_position_embeddings");
            if v > MAX_DIMENSION && !length {
                return Err(bad(
                    key,
                    format!("{v} is larger than any model ({MAX_DIMENSION})"),
                ));
            }
        }
        // Checked before the divisions below and every product of heads and head width.
        let width = |heads: i32| {
            heads
                .checked_mul(self.head_dim())
                .filter(|w| *w <= MAX_DIMENSION)
        };
        if self.head_dim.is_some()
            && (width(self.num_attention_heads).is_none() || width(self.kv_heads()).is_none())
        {
            return Err(bad(
                "head_dim",
                format!(
                    "{} heads of {} is wider than any model ({MAX_DIMENSION})",
                    self.num_attention_heads,
                    self.head_dim()
                ),
            ));
        }
        if let (Some(k), Some(n)) = (self.num_experts_per_tok, self.num_experts) {
            if k > n {
                return Err(bad(
                    "num_experts_per_tok",
                    format!("{k} experts per token out of only {n}"),
                ));
            }
        }
        if self.kv_heads() > self.num_attention_heads {
            return Err(bad(
                "num_key_value_heads",
                format!(
                    "{} key/value heads for only {} query heads",
                    self.kv_heads(),
                    self.num_attention_heads
                ),
            ));
        }
        for (key, v) in [
            ("rms_norm_eps", Some(self.rms_norm_eps)),
            ("rope_theta", Some(self.rope_theta)),
            ("partial_rotary_factor", self.partial_rotary_factor),
            ("query_pre_attn_scalar", self.query_pre_attn_scalar),
            ("rope_local_base_freq", self.rope_local_base_freq),
        ] {
            if v.is_some_and(|v| !(v.is_finite() && v > 0.0)) {
                return Err(bad(key, format!("{v:?} must be a positive number")));
            }
        }
        if self.partial_rotary_factor.is_some_and(|f| f > 1.0) {
            return Err(bad(
                "partial_rotary_factor",
                "more than the whole head cannot be rotated".into(),
            ));
        }
        if self.num_attention_heads % self.kv_heads() != 0 {
            return Err(bad(
                "num_key_value_heads",
                format!(
                    "{} query heads cannot be grouped over {} key/value heads",
                    self.num_attention_heads,
                    self.kv_heads()
                ),
            ));
        }
        if self.head_dim.is_none() && self.hidden_size % self.num_attention_heads != 0 {
            return Err(bad(
                "head_dim",
                "missing, and hidden_size is not a multiple of num_attention_heads".into(),
            ));
        }
        Ok(())
    }

    /// Key/value heads (positive once the config is validated).
    pub fn kv_heads(&self) -> i32 {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    /// Per-head width.
    pub fn head_dim(&self) -> i32 {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads)
    }

    /// Whether the output layer reuses the embedding table.
    pub fn tied_embeddings(&self, default: bool) -> bool {
        self.tie_word_embeddings.unwrap_or(default)
    }

    /// The trained context length, when the config says.
    pub fn context_length(&self) -> Option<i32> {
        self.max_position_embeddings
    }

    /// The quantization settings of the layer at `path` (e.g. `model.layers.0.mlp.up_proj`),
    /// following mlx-lm: a per-layer entry replaces the global one, and a setting the entry in
    /// use leaves out (or writes as null, as mlx-lm's mixed recipes may) is its mode's default.
    pub fn quant_params(&self, layer: &str) -> Option<QuantParams> {
        let q = self.quantization.as_ref()?;
        let global = q.as_object()?;
        let local = match q.get(layer) {
            Some(Value::Bool(false)) => return None,
            Some(Value::Object(o)) => Some(o),
            _ => None,
        };
        // mlx-lm hands a per-layer entry to `to_quantized` as it is: what it leaves out is
        // `to_quantized`'s default (affine, and that mode's group and bits), not the global one.
        let settings = local.unwrap_or(global);
        let field = |key: &str| settings.get(key).filter(|v| !v.is_null());
        let mode = match field("mode") {
            Some(v) => v.as_str()?.parse::<QuantMode>().ok()?,
            None => QuantMode::Affine,
        };
        let (default_group, default_bits) = mode.defaults();
        let int = |key: &str, default: i32| -> Option<i32> {
            match field(key) {
                Some(v) => i32::try_from(v.as_i64()?).ok(),
                None => Some(default),
            }
        };
        Some(QuantParams {
            group_size: int("group_size", default_group)?,
            bits: int("bits", default_bits)?,
            mode,
        })
    }

    /// Gives the layers split out of the fused layer `fused` (Phi-3's `qkv_proj`) its per-layer
    /// quantization settings, when config.json has any for it.
    pub fn inherit_quantization(&mut self, fused: &str, parts: &[&str]) {
        let Some(Value::Object(q)) = self.quantization.as_mut() else {
            return;
        };
        if let Some(entry) = q.get(fused).cloned() {
            for part in parts {
                q.insert((*part).to_owned(), entry.clone());
            }
        }
    }

    /// Checks every quantization setting in config.json (global and per layer), so a model
    /// MLX cannot run is refused with a reason at load time instead of failing mid-forward.
    pub fn check_quantization(&self, path: &Path) -> Result<()> {
        let Some(q) = self.quantization.as_ref() else {
            return Ok(());
        };
        let bad = |key: &str, detail: String| EngineError::BadConfigValue {
            path: path.to_owned(),
            key: key.to_owned(),
            detail,
        };
        let obj = q
            .as_object()
            .ok_or_else(|| bad("quantization", "not an object".into()))?;
        if let Some(m) = obj.get("mode").and_then(Value::as_str) {
            m.parse::<QuantMode>()
                .map_err(|e| bad("quantization.mode", e))?;
        }
        let layers = obj
            .iter()
            .filter(|(_, v)| v.is_object())
            .map(|(k, _)| k.as_str());
        for layer in std::iter::once("").chain(layers) {
            let key = if layer.is_empty() {
                "quantization".to_owned()
            } else {
                format!("quantization.{layer}")
            };
            let p = self.quant_params(layer).ok_or_else(|| {
                bad(
                    &key,
                    "unreadable settings (need integer group_size and bits, and a mode MLX has: affine, mxfp4, mxfp8, nvfp4)".into(),
                )
            })?;
            p.mode
                .check(p.group_size, p.bits)
                .map_err(|detail| bad(&key, detail))?;
        }
        Ok(())
    }

    /// The quantization mode (`affine`, `mxfp4`, ...), when quantized.
    pub fn quant_mode(&self) -> Option<String> {
        let q = self.quantization.as_ref()?;
        Some(
            q.get("mode")
                .and_then(Value::as_str)
                .unwrap_or("affine")
                .to_owned(),
        )
    }
}

/// Per-layer quantization overrides as written to config.json.
pub type LayerQuantization = HashMap<String, QuantParams>;

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn args(quantization: Value) -> Result<ModelArgs> {
        ModelArgs::from_value(
            json!({
                "model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2,
                "intermediate_size": 128, "num_attention_heads": 4, "vocab_size": 256,
                "quantization": quantization,
            }),
            Path::new("config.json"),
        )
    }

    #[test]
    fn per_layer_settings_follow_mlx_lm() {
        // `mlx_lm.convert --quant-predicate mixed_3_6` without --q-group-size writes null
        // group sizes per layer, which mean the mode's default.
        let a = args(json!({
            "group_size": 64, "bits": 4, "mode": "affine",
            "model.layers.0.mlp.down_proj": {"group_size": null, "bits": 6, "mode": "affine"},
            "model.layers.1.mlp.down_proj": {"group_size": 32, "bits": 3},
            "lm_head": false,
        }))
        .unwrap();
        let p = |l: &str| a.quant_params(l);
        assert_eq!(
            p("model.layers.0.mlp.down_proj"),
            Some(QuantParams::affine(6, 64))
        );
        assert_eq!(
            p("model.layers.1.mlp.down_proj"),
            Some(QuantParams::affine(3, 32))
        );
        assert_eq!(
            p("model.layers.1.mlp.up_proj"),
            Some(QuantParams::affine(4, 64))
        );
        assert_eq!(p("lm_head"), None);
        let mx = args(json!({"mode": "mxfp4"})).unwrap();
        assert_eq!(
            mx.quant_params("model.embed_tokens"),
            Some(QuantParams {
                group_size: 32,
                bits: 4,
                mode: QuantMode::Mxfp4
            })
        );
    }

    #[test]
    fn settings_mlx_cannot_run_are_refused() {
        for (q, needle) in [
            (json!({"group_size": 64, "bits": 4, "mode": "fp4"}), "fp4"),
            (
                json!({"group_size": 64, "bits": 4, "mode": "mxfp4"}),
                "mxfp4",
            ),
            (json!({"group_size": 48, "bits": 4}), "48"),
            (
                json!({"group_size": 64, "bits": 4, "model.layers.0.mlp.up_proj": {"bits": 7}}),
                "model.layers.0.mlp.up_proj",
            ),
        ] {
            let e = args(q).unwrap_err().to_string();
            assert!(e.contains(needle), "{e}");
        }
    }

    fn llama(overrides: Value) -> Result<ModelArgs> {
        let mut v = json!({
            "model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2,
            "intermediate_size": 128, "num_attention_heads": 4, "vocab_size": 256,
        });
        for (k, x) in overrides.as_object().unwrap() {
            v[k] = x.clone();
        }
        ModelArgs::from_value(v, Path::new("config.json"))
    }

    #[test]
    fn impossible_sizes_are_errors_not_panics() {
        for (overrides, key) in [
            (json!({"num_key_value_heads": 0}), "num_key_value_heads"),
            (json!({"num_key_value_heads": -2}), "num_key_value_heads"),
            (json!({"num_key_value_heads": 8}), "num_key_value_heads"),
            (json!({"num_attention_heads": 0}), "num_attention_heads"),
            (json!({"head_dim": 0}), "head_dim"),
            (
                json!({"head_dim": 1_000_000, "num_attention_heads": 4096, "hidden_size": 4096}),
                "head_dim",
            ),
            (json!({"hidden_size": 2_147_483_647}), "hidden_size"),
            (
                json!({"sliding_window_pattern": 0}),
                "sliding_window_pattern",
            ),
            (json!({"rms_norm_eps": -1.0}), "rms_norm_eps"),
            (
                json!({"partial_rotary_factor": 2.0}),
                "partial_rotary_factor",
            ),
            (json!({"hidden_size": 66}), "head_dim"),
        ] {
            let e = llama(overrides.clone()).unwrap_err().to_string();
            assert!(e.contains(key), "{overrides}: {e}");
        }
        let a = llama(json!({"num_key_value_heads": 2, "head_dim": 32})).unwrap();
        assert_eq!((a.kv_heads(), a.head_dim()), (2, 32));
    }
}
