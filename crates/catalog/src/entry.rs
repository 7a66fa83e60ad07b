//! One catalog entry and the rules it must satisfy.

use minibar_fit::{count_params, Candidate, Dtype, ModelShape, Quantization};
use serde::{Deserialize, Serialize};

/// Tolerance between a stated parameter count and the one recomputed from the shape.
pub const PARAM_TOLERANCE: f64 = 0.02;

/// A pre-quantized (or converted) download of a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlxRepo {
    /// Hugging Face repo id.
    pub repo: String,
    /// minibar-fit quantization name (`bf16`, `4bit`, `8bit,experts=mxfp4`, ...).
    pub quant: String,
}

impl MlxRepo {
    /// The parsed quantization.
    pub fn quantization(&self) -> Result<Quantization, String> {
        self.quant
            .parse()
            .map_err(|e| format!("{}: {e}", self.repo))
    }
}

fn default_original() -> String {
    "bf16".into()
}

/// A model in the catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogEntry {
    /// Short stable id (`qwen3-4b`).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Model family (`qwen3`, `llama3`, ...).
    pub family: String,
    /// Parameters as published.
    pub params_total: u64,
    /// Parameters a token uses, for mixture-of-experts models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params_active: Option<u64>,
    /// License id.
    pub license: String,
    /// Whether the Hugging Face repo asks users to accept terms first.
    pub gated: bool,
    /// The original Hugging Face repo.
    pub hf_repo: String,
    /// How the original repo stores the weights (`bf16`; gpt-oss: `bf16,experts=mxfp4`).
    #[serde(default = "default_original")]
    pub original: String,
    /// MLX-ready downloads.
    #[serde(default)]
    pub mlx: Vec<MlxRepo>,
    /// Hyperparameters.
    pub shape: ModelShape,
}

fn within(stated: u64, computed: u64, tolerance: f64) -> bool {
    let diff = (stated as f64 - computed as f64).abs();
    diff <= tolerance * stated as f64
}

impl CatalogEntry {
    /// Model type as mlx-lm names it.
    pub fn model_type(&self) -> &str {
        &self.shape.model_type
    }

    /// Whether the model routes tokens to experts.
    pub fn is_moe(&self) -> bool {
        self.shape.is_moe()
    }

    /// The original weights' storage (bf16 when `original` does not parse).
    pub fn original_quantization(&self) -> Quantization {
        self.original
            .parse()
            .unwrap_or_else(|_| Quantization::float(Dtype::Bf16))
    }

    /// This model in each format it can be downloaded in; the original repo is included
    /// unless a listed MLX repo offers the same format.
    pub fn candidates(&self) -> Vec<Candidate> {
        let mut out = Vec::new();
        let original = self.original_quantization();
        let duplicated = self
            .mlx
            .iter()
            .filter_map(|r| r.quantization().ok())
            .any(|q| q == original);
        if !duplicated {
            out.push(Candidate {
                id: self.id.clone(),
                name: self.name.clone(),
                shape: self.shape.clone(),
                quant: original,
                repo: Some(self.hf_repo.clone()),
            });
        }
        for r in &self.mlx {
            if let Ok(quant) = r.quantization() {
                out.push(Candidate {
                    id: self.id.clone(),
                    name: self.name.clone(),
                    shape: self.shape.clone(),
                    quant,
                    repo: Some(r.repo.clone()),
                });
            }
        }
        out
    }

    /// Checks the entry's consistency: a known architecture and a sound shape, quantization
    /// names that parse, and parameter counts that the shape reproduces within 2%.
    pub fn validate(&self) -> Result<(), String> {
        if self.id.is_empty() || self.id.contains(char::is_whitespace) {
            return Err("the id must be non-empty and without spaces".into());
        }
        if !self.hf_repo.contains('/') {
            return Err(format!("hf_repo `{}` is not owner/name", self.hf_repo));
        }
        self.shape.validate().map_err(|e| e.to_string())?;
        self.original
            .parse::<Quantization>()
            .map_err(|e| format!("original: {e}"))?;
        if self.shape.head_dim.is_none() && self.shape.mla.is_none() {
            let heads = u64::from(self.shape.heads);
            if !self.shape.hidden.is_multiple_of(heads) {
                return Err(format!(
                    "hidden {} is not a multiple of heads {heads}; state head_dim",
                    self.shape.hidden
                ));
            }
        }
        if let Some(window) = self.shape.sliding_window {
            if window >= self.shape.max_context {
                return Err(format!(
                    "sliding_window {window} is not below max_context {}",
                    self.shape.max_context
                ));
            }
        }
        for r in &self.mlx {
            r.quantization()?;
            if !r.repo.contains('/') {
                return Err(format!("mlx repo `{}` is not owner/name", r.repo));
            }
        }
        let counts = count_params(&self.shape);
        if !within(self.params_total, counts.total, PARAM_TOLERANCE) {
            return Err(format!(
                "params_total {} but the shape has {} parameters ({:+.1}%)",
                self.params_total,
                counts.total,
                (counts.total as f64 / self.params_total as f64 - 1.0) * 100.0
            ));
        }
        match (self.params_active, self.shape.is_moe()) {
            (Some(active), true) => {
                if active > self.params_total {
                    return Err("params_active exceeds params_total".into());
                }
                // Publishers differ on counting the input embedding as active: accept either.
                let lo = counts.active - counts.embedding;
                let hi = counts.active;
                let ok = within(active, lo, PARAM_TOLERANCE)
                    || within(active, hi, PARAM_TOLERANCE)
                    || (lo..=hi).contains(&active);
                if !ok {
                    return Err(format!(
                        "params_active {active} but the shape activates {lo}–{hi} parameters per token"
                    ));
                }
            }
            (Some(_), false) => {
                return Err("params_active is only for mixture-of-experts models".into())
            }
            (None, true) => return Err("a mixture-of-experts model needs params_active".into()),
            (None, false) => {}
        }
        Ok(())
    }
}
