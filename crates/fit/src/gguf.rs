//! A GGUF file's weights as the engine holds them once loaded, read from the file's tensor
//! table alone (no tensor data is read). The file's bytes are not the answer: the engine maps
//! each ggml type to an MLX form ([`minibar_ggml::Mapping`]), so Q2_K/Q3_K become 6-bit affine
//! (~2.5x their bytes in the file) and Q6_K 8-bit, scales follow the compute dtype (f32 on the
//! CPU), and a small quantized model is expanded to dense weights on the CPU.
//!
//! Invariant: the expansion is decided by [`crate::engine::cpu_dequantizes`] over the same
//! count the engine uses (elements of every matrix, in the compute dtype), so `minibar fit`,
//! the app and the load gate predict what the engine will hold.

use std::path::Path;

use minibar_ggml::{GgmlType, Mapping};
use minibar_text::GgufMetadata;
use serde::Serialize;

use crate::estimate::Runtime;
use crate::quant::Dtype;
use crate::FitError;

/// MLX's affine group size for GGUF types (ggml's blocks are 32 or 256 weights).
const GROUP: u64 = 32;

/// One entry of a GGUF tensor table: what the memory model needs of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    /// The ggml type id.
    ty: u32,
    /// Elements.
    elements: u64,
    /// Whether it is a matrix (norms and biases are vectors and are never quantized).
    matrix: bool,
    /// Bytes in the file.
    file_bytes: u64,
}

/// The weights of a GGUF file, from its tensor table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GgufWeights {
    entries: Vec<Entry>,
}

/// What a GGUF's weights take in memory on a runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GgufLoad {
    /// Bytes of tensor data in the file.
    pub file_bytes: u64,
    /// Bytes the weights take once loaded.
    pub loaded_bytes: u64,
    /// Whether the engine expands them to dense weights (the CPU rule).
    pub dequantized: bool,
}

impl GgufWeights {
    /// Reads the tensor table of the GGUF file at `path`.
    pub fn open(path: &Path) -> Result<GgufWeights, FitError> {
        let meta = GgufMetadata::open(path)
            .map_err(|e| FitError::InvalidConfig(format!("{}: {e}", path.display())))?;
        let entries = meta
            .tensors
            .iter()
            // Phi-3's long-rope factors become config values on load, not arrays.
            .filter(|t| !t.name.starts_with("rope_factors_"))
            .map(|t| {
                let elements = t.element_count().unwrap_or(u64::MAX);
                Entry {
                    ty: t.ggml_type,
                    elements,
                    matrix: t.dims.iter().filter(|&&d| d > 1).count() > 1,
                    file_bytes: t.byte_size().unwrap_or(elements.saturating_mul(4)),
                }
            })
            .collect();
        Ok(GgufWeights { entries })
    }

    /// Whether any tensor becomes an MLX quantized array.
    pub fn is_quantized(&self) -> bool {
        self.entries
            .iter()
            .any(|e| !matches!(mapping(e.ty), Some(Mapping::Dense)))
    }

    /// Bytes every matrix takes dense in `dtype`: what the engine's expansion rule weighs.
    pub fn dense_bytes(&self, dtype: Dtype) -> u64 {
        self.entries
            .iter()
            .filter(|e| e.matrix)
            .map(|e| e.elements.saturating_mul(dtype.bytes()))
            .fold(0, u64::saturating_add)
    }

    /// What the weights take once `runtime` has loaded them; `expand` is whether the runtime's
    /// CPU expansion may apply (see [`crate::assess::assess_gguf`], which decides it).
    pub fn load(&self, runtime: &Runtime, expand: bool) -> GgufLoad {
        let file_bytes = self
            .entries
            .iter()
            .map(|e| e.file_bytes)
            .fold(0, u64::saturating_add);
        let dense = runtime.weight_dtype.unwrap_or(Dtype::F16);
        let dequantized = expand
            && runtime.cpu_dequantize
            && self.is_quantized()
            && crate::engine::cpu_dequantizes(self.dense_bytes(dense));
        let loaded_bytes = self
            .entries
            .iter()
            .map(|e| {
                if dequantized {
                    return e.elements.saturating_mul(dense.bytes());
                }
                match mapping(e.ty) {
                    // Dense arrays become the compute dtype (or stay as stored).
                    Some(Mapping::Dense) => match runtime.weight_dtype {
                        Some(d) => e.elements.saturating_mul(d.bytes()),
                        None => e.file_bytes,
                    },
                    // Packed codes, and a scale and a bias per group in the scales' dtype.
                    Some(Mapping::Affine { bits } | Mapping::Requantize { bits }) => {
                        let scale = runtime.weight_dtype.unwrap_or(Dtype::F16).bytes();
                        (e.elements.saturating_mul(bits as u64)).div_ceil(8)
                            + e.elements.div_ceil(GROUP) * 2 * scale
                    }
                    // A type the engine refuses: its bytes, for want of better.
                    None => e.file_bytes,
                }
            })
            .fold(0, u64::saturating_add);
        GgufLoad {
            file_bytes,
            loaded_bytes,
            dequantized,
        }
    }
}

fn mapping(ty: u32) -> Option<Mapping> {
    GgmlType::from_id(ty).map(GgmlType::mapping)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assess::{assess_gguf, Thresholds};
    use crate::verdict::{Budget, BudgetSource, FitLevel};
    use crate::{admit, LoadRequest};

    const Q3_K: u32 = 11;
    const Q6_K: u32 = 14;
    const F32: u32 = 0;
    /// Elements of each matrix: 256 × 64.
    const N: u64 = 256 * 64;

    /// A GGUF v3 file with a Q3_K and a Q6_K matrix and an f32 norm, data zeroed.
    fn k_quant_file(dir: &Path) -> std::path::PathBuf {
        let tensors: [(&str, &[u64], u32); 3] = [
            ("blk.0.attn_q.weight", &[256, 64], Q3_K),
            ("blk.0.ffn_down.weight", &[256, 64], Q6_K),
            ("blk.0.attn_norm.weight", &[256], F32),
        ];
        let mut file = minibar_testkit::GgufWriter::default();
        let mut offset = 0u64;
        for (name, dims, ty) in tensors {
            file.tensor(name, dims, ty, offset);
            let (block, bytes) = minibar_text::gguf::ggml_block_size(ty).unwrap();
            offset += (dims.iter().product::<u64>() / block * bytes).div_ceil(32) * 32;
        }
        let out = file.bytes(offset as usize);
        let path = dir.join("tiny-Q3_K_M.gguf");
        std::fs::write(&path, out).unwrap();
        path
    }

    fn budget(usable: u64) -> Budget {
        Budget {
            total: usable,
            gpu_limit: None,
            available: Some(usable),
            held_by_minibar: 0,
            usable,
            source: BudgetSource::WhatIf,
        }
    }

    #[test]
    fn k_quants_take_their_mlx_form_not_their_file_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let w = GgufWeights::open(&k_quant_file(dir.path())).unwrap();
        assert!(w.is_quantized());
        let file = N * 110 / 256 + N * 210 / 256 + 256 * 4;
        // Kept quantized on the CPU: Q3_K as 6-bit and Q6_K as 8-bit codes, an f32 scale and
        // bias per 32, the norm in f32.
        let kept = w.load(&Runtime::mlx_cpu(), true);
        assert_eq!(kept.file_bytes, file);
        assert_eq!(
            kept.loaded_bytes,
            N * 6 / 8 + N * 8 / 8 + 2 * (N / 32 * 8) + 256 * 4
        );
        assert!(!kept.dequantized);
        assert!(kept.loaded_bytes as f64 > 1.5 * file as f64, "{kept:?}");
        // On Metal the scales stay f16: the ggml crate's bits per weight, exactly.
        let metal = w.load(&Runtime::metal(), true);
        let bits = GgmlType::Q3_K.mlx_bits_per_weight() + GgmlType::Q6_K.mlx_bits_per_weight();
        assert_eq!(metal.loaded_bytes, (N as f64 * bits / 8.0) as u64 + 256 * 4);
        // Minibar's CPU engine expands a model this small to f32.
        let cpu = w.load(&Runtime::cpu(), true);
        assert!(cpu.dequantized);
        assert_eq!(cpu.loaded_bytes, (2 * N + 256) * 4);
    }

    #[test]
    fn no_expansion_where_only_the_quantized_form_fits() {
        let dir = tempfile::tempdir().unwrap();
        let w = GgufWeights::open(&k_quant_file(dir.path())).unwrap();
        let t = Thresholds::default();
        let roomy = assess_gguf(&w, &Runtime::cpu(), &budget(1 << 30), &t);
        assert!(roomy.load.dequantized);
        assert_eq!(roomy.verdict.level, FitLevel::Fits);
        // Dense f32 needs 132 kB; quantized 42 kB: a 100 kB budget keeps the codes.
        let tight = assess_gguf(&w, &Runtime::cpu(), &budget(100_000), &t);
        assert!(!tight.load.dequantized);
        assert_eq!(
            tight.load.loaded_bytes,
            w.load(&Runtime::mlx_cpu(), false).loaded_bytes
        );
        assert_ne!(tight.verdict.level, FitLevel::WontFit);
    }

    #[test]
    fn the_gate_judges_a_gguf_by_its_loaded_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = k_quant_file(dir.path());
        let w = GgufWeights::open(&path).unwrap();
        let b = budget(100_000);
        let a = admit(
            &path,
            &LoadRequest {
                budget: Some(b.clone()),
                ..LoadRequest::default()
            },
        )
        .unwrap();
        let expected = assess_gguf(&w, &Runtime::native(), &b, &Thresholds::default());
        assert_eq!(a.verdict.needed, expected.load.loaded_bytes);
        assert_eq!(a.dequantize, expected.load.dequantized);
        assert_ne!(a.verdict.needed, std::fs::metadata(&path).unwrap().len());
        assert_ne!(a.verdict.needed, expected.load.file_bytes);
        // Too small even for the codes: refused with the loaded size, not the file's.
        let refused = admit(
            &path,
            &LoadRequest {
                budget: Some(budget(expected.load.file_bytes + 1000)),
                ..LoadRequest::default()
            },
        )
        .unwrap_err();
        assert!(refused.verdict.needed > expected.load.file_bytes + 1000);
    }
}
