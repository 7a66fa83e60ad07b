//! What kind of model a folder holds: MLX (quantized or tagged), plain safetensors, or GGUF,
//! and its quantization from config.json.

use std::io::Read;
use std::path::Path;

use serde::Serialize;

/// Weight format of a model folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelFormat {
    /// MLX: config.json has `quantization`, or the safetensors say `format: mlx`.
    Mlx,
    /// Safetensors from transformers (f32/f16/bf16).
    Safetensors,
    /// A GGUF file.
    Gguf,
    /// No weights found.
    Unknown,
}

/// Quantization settings from config.json's `quantization` (mlx-lm's layout).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Quantization {
    /// Bits of the default layers.
    pub bits: u32,
    /// Weights per scale (and bias).
    pub group_size: u32,
    /// `affine`, `mxfp4`, `mxfp8`, ...
    pub mode: String,
    /// Some layers use other settings (mixed recipes like `mixed_3_6`).
    pub mixed: bool,
}

impl Quantization {
    /// Reads `quantization` (or `quantization_config`) from a config.json value.
    pub fn from_config(config: &serde_json::Value) -> Option<Self> {
        let q = config
            .get("quantization")
            .or_else(|| config.get("quantization_config"))?;
        let bits = q.get("bits")?.as_u64()? as u32;
        let group_size = q.get("group_size").and_then(|g| g.as_u64()).unwrap_or(64) as u32;
        let mode = q
            .get("mode")
            .and_then(|m| m.as_str())
            .unwrap_or("affine")
            .to_string();
        let mixed = q
            .as_object()
            .is_some_and(|o| o.values().any(|v| v.is_object()));
        Some(Quantization {
            bits,
            group_size,
            mode,
            mixed,
        })
    }

    /// Stored bits per quantized weight, counting the per-group scale (and bias for affine):
    /// affine keeps an f16 scale and bias per group, mxfp an 8-bit scale.
    pub fn bits_per_weight(&self) -> f64 {
        let group = f64::from(self.group_size.max(1));
        let overhead = if self.mode.starts_with("mx") || self.mode.starts_with("nv") {
            8.0
        } else {
            32.0
        };
        f64::from(self.bits) + overhead / group
    }
}

/// The format of a model folder and its config.json quantization.
pub(crate) fn detect(
    dir: &Path,
    config: Option<&serde_json::Value>,
) -> (ModelFormat, Option<Quantization>) {
    let quant = config.and_then(Quantization::from_config);
    let mut safetensors = Vec::new();
    let mut gguf = false;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.ends_with(".safetensors") {
                safetensors.push(e.path());
            } else if name.to_ascii_lowercase().ends_with(".gguf") {
                gguf = true;
            }
        }
    }
    safetensors.sort();
    let format = if quant.is_some() {
        ModelFormat::Mlx
    } else if let Some(first) = safetensors.first() {
        if safetensors_says_mlx(first) {
            ModelFormat::Mlx
        } else {
            ModelFormat::Safetensors
        }
    } else if gguf {
        ModelFormat::Gguf
    } else {
        ModelFormat::Unknown
    };
    (format, quant)
}

/// Whether a safetensors header carries mlx's `"format": "mlx"` metadata.
fn safetensors_says_mlx(path: &Path) -> bool {
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    let mut len = [0u8; 8];
    if f.read_exact(&mut len).is_err() {
        return false;
    }
    let n = u64::from_le_bytes(len);
    if n > 100 << 20 {
        return false;
    }
    let mut header = vec![0u8; n as usize];
    if f.read_exact(&mut header).is_err() {
        return false;
    }
    serde_json::from_slice::<serde_json::Value>(&header)
        .ok()
        .and_then(|h| {
            h.get("__metadata__")?
                .get("format")?
                .as_str()
                .map(|s| s == "mlx")
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_mlx_quantization() {
        let c: serde_json::Value =
            serde_json::json!({"quantization": {"group_size": 64, "bits": 4}});
        let q = Quantization::from_config(&c).unwrap();
        assert_eq!(
            (q.bits, q.group_size, q.mode.as_str(), q.mixed),
            (4, 64, "affine", false)
        );
        assert!((q.bits_per_weight() - 4.5).abs() < 1e-9);
        let c = serde_json::json!({"quantization": {"group_size": 32, "bits": 4, "mode": "mxfp4"}});
        assert!((Quantization::from_config(&c).unwrap().bits_per_weight() - 4.25).abs() < 1e-9);
        let c = serde_json::json!({"quantization": {"group_size": 64, "bits": 3, "model.layers.0.mlp.down_proj": {"group_size": 64, "bits": 6}}});
        assert!(Quantization::from_config(&c).unwrap().mixed);
        assert!(Quantization::from_config(&serde_json::json!({})).is_none());
    }
}
