//! Named weight tensors loaded from a model's files, and the helpers architectures use to pull
//! layers out of them with errors that name the file and the tensor.

pub mod gguf;
pub mod safetensors;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use mlx_rs::{Array, Dtype};

use crate::{
    config::ModelArgs,
    error::{EngineError, Result},
    layers::{Embedding, Linear, RmsNorm},
    moe::SwitchLinear,
};

/// Tensors by Hugging Face name, with the path they came from (for error messages).
pub struct Tensors {
    map: HashMap<String, Array>,
    source: PathBuf,
    dtype: Dtype,
}

impl Tensors {
    /// Wraps loaded tensors; floating-point ones are converted to `dtype` as they are taken.
    pub fn new(map: HashMap<String, Array>, source: &Path, dtype: Dtype) -> Self {
        Self {
            map,
            source: source.to_owned(),
            dtype,
        }
    }

    /// Whether a tensor is present.
    pub fn contains(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    /// Removes and returns a tensor, converted to the compute dtype if it is floating point.
    pub fn take(&mut self, name: &str) -> Result<Array> {
        let a = self.take_raw(name)?;
        self.to_compute(a)
    }

    /// Removes and returns a tensor as stored (packed quantized weights stay u32).
    pub fn take_raw(&mut self, name: &str) -> Result<Array> {
        self.map
            .remove(name)
            .ok_or_else(|| EngineError::MissingTensor {
                path: self.source.clone(),
                name: name.to_owned(),
            })
    }

    /// Removes a tensor if present.
    pub fn take_optional(&mut self, name: &str) -> Result<Option<Array>> {
        match self.map.remove(name) {
            Some(a) => Ok(Some(self.to_compute(a)?)),
            None => Ok(None),
        }
    }

    fn to_compute(&self, a: Array) -> Result<Array> {
        let float = matches!(a.dtype(), Dtype::Float32 | Dtype::Float16 | Dtype::Bfloat16);
        Ok(if float && a.dtype() != self.dtype {
            a.as_dtype(self.dtype)?
        } else {
            a
        })
    }

    /// Takes the linear layer `prefix` (`prefix.weight`, optional `.bias`, and `.scales` /
    /// `.biases` when quantized), checking its shape against `[out, in]`.
    pub fn linear(&mut self, prefix: &str, out: i32, inp: i32, args: &ModelArgs) -> Result<Linear> {
        self.stacked_linear(prefix, &[], out, inp, args)
    }

    /// Takes `experts` linear layers stacked as one (`[experts, out, in]`, biases
    /// `[experts, out]`), as mlx-lm stores mixture-of-experts weights.
    pub fn switch_linear(
        &mut self,
        prefix: &str,
        experts: i32,
        out: i32,
        inp: i32,
        args: &ModelArgs,
    ) -> Result<SwitchLinear> {
        Ok(SwitchLinear(self.stacked_linear(
            prefix,
            &[experts],
            out,
            inp,
            args,
        )?))
    }

    fn stacked_linear(
        &mut self,
        prefix: &str,
        lead: &[i32],
        out: i32,
        inp: i32,
        args: &ModelArgs,
    ) -> Result<Linear> {
        let shape = |tail: &[i32]| [lead, tail].concat();
        let bias = self.take_optional(&format!("{prefix}.bias"))?;
        if let Some(b) = &bias {
            self.check_shape(&format!("{prefix}.bias"), b, &shape(&[out]))?;
        }
        let scales_name = format!("{prefix}.scales");
        if self.contains(&scales_name) {
            let params = args.quant_params(prefix).ok_or_else(|| EngineError::BadConfigValue {
                path: self.source.clone(),
                key: "quantization".into(),
                detail: format!("`{prefix}` is quantized in the weights but config.json has no quantization settings for it"),
            })?;
            let weight = self.take_raw(&format!("{prefix}.weight"))?;
            let scales = self.take(&scales_name)?;
            let biases = if params.mode.has_biases() {
                Some(self.take(&format!("{prefix}.biases"))?)
            } else {
                None
            };
            let packed_in = inp * params.bits / 32;
            self.check_shape(
                &format!("{prefix}.weight"),
                &weight,
                &shape(&[out, packed_in]),
            )?;
            self.check_shape(
                &scales_name,
                &scales,
                &shape(&[out, inp / params.group_size]),
            )?;
            Ok(Linear::Quantized {
                weight,
                scales,
                biases,
                bias,
                params,
                dtype: self.dtype,
            })
        } else {
            let name = format!("{prefix}.weight");
            let weight = self.take(&name)?;
            self.check_shape(&name, &weight, &shape(&[out, inp]))?;
            Ok(Linear::Dense { weight, bias })
        }
    }

    /// Takes an embedding table `[vocab, dim]`.
    pub fn embedding(
        &mut self,
        prefix: &str,
        vocab: i32,
        dim: i32,
        args: &ModelArgs,
    ) -> Result<Embedding> {
        Ok(Embedding {
            table: self.linear(prefix, vocab, dim, args)?,
        })
    }

    /// Takes an RMS norm's weight `[dim]`.
    pub fn rms_norm(&mut self, prefix: &str, dim: i32, eps: f32) -> Result<RmsNorm> {
        let name = format!("{prefix}.weight");
        let weight = self.take(&name)?;
        self.check_shape(&name, &weight, &[dim])?;
        Ok(RmsNorm { weight, eps })
    }

    fn check_shape(&self, name: &str, a: &Array, expected: &[i32]) -> Result<()> {
        if a.shape() != expected {
            return Err(EngineError::TensorShape {
                path: self.source.clone(),
                name: name.to_owned(),
                expected: expected.to_vec(),
                actual: a.shape().to_vec(),
            });
        }
        Ok(())
    }

    /// Names left after the model took what it needs (unexpected extras).
    pub fn remaining(&self) -> Vec<String> {
        let mut v: Vec<String> = self.map.keys().cloned().collect();
        v.sort();
        v
    }

    /// Adds (or replaces) a tensor, as stored: what a `sanitize` rewrote.
    pub fn insert(&mut self, name: &str, a: Array) {
        self.map.insert(name.to_owned(), a);
    }

    /// Drops tensors whose names match `pred` (checkpoint leftovers such as rotary caches).
    pub fn discard(&mut self, pred: impl Fn(&str) -> bool) {
        self.map.retain(|k, _| !pred(k));
    }

    /// Where the tensors came from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// The compute dtype floating-point tensors are converted to.
    pub fn dtype(&self) -> Dtype {
        self.dtype
    }

    /// The tensors left, as stored.
    pub fn into_map(self) -> HashMap<String, Array> {
        self.map
    }
}

impl Tensors {
    /// Renames every tensor starting with `from` to start with `to` instead.
    pub fn rename_prefix(&mut self, from: &str, to: &str) {
        let keys: Vec<String> = self
            .map
            .keys()
            .filter(|k| k.starts_with(from))
            .cloned()
            .collect();
        for k in keys {
            if let Some(a) = self.map.remove(&k) {
                self.map.insert(format!("{to}{}", &k[from.len()..]), a);
            }
        }
    }

    /// Replaces the tensors `parts` (same shape each) by one tensor `into`, stacked along a
    /// new first axis (per-expert matrices into one `[experts, ...]` tensor).
    pub fn stack(&mut self, parts: &[String], into: &str) -> Result<()> {
        let mut arrays = Vec::with_capacity(parts.len());
        for name in parts {
            let a = self.take_raw(name)?;
            if let Some(first) = arrays.first() {
                self.check_shape(name, &a, Array::shape(first))?;
            }
            arrays.push(a);
        }
        let stacked = mlx_rs::ops::stack(&arrays, 0)?;
        self.map.insert(into.to_owned(), stacked);
        Ok(())
    }

    /// Splits a fused projection (`prefix.weight` and friends, rows stacked) into named parts
    /// of the given row counts, so fused checkpoints (Phi-3) load into separate layers.
    pub fn split_rows(&mut self, prefix: &str, parts: &[(&str, i32)]) -> Result<()> {
        use mlx_rs::ops::indexing::TryIndexOp;
        for suffix in ["weight", "scales", "biases", "bias"] {
            let name = format!("{prefix}.{suffix}");
            let Some(a) = self.map.remove(&name) else {
                continue;
            };
            // Checked before slicing: a 0-d tensor has no rows to index.
            let total: i32 = parts.iter().map(|(_, rows)| rows).sum();
            if a.shape().first() != Some(&total) {
                return Err(EngineError::TensorShape {
                    path: self.source.clone(),
                    name,
                    expected: vec![total],
                    actual: a.shape().to_vec(),
                });
            }
            let mut at = 0;
            for (part, rows) in parts {
                let piece = a.try_index(at..at + rows)?;
                self.map.insert(format!("{part}.{suffix}"), piece);
                at += rows;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensors(name: &str, a: Array) -> Tensors {
        let map = HashMap::from([(name.to_owned(), a)]);
        Tensors::new(map, Path::new("model"), Dtype::Float32)
    }

    #[test]
    fn splitting_rows_a_tensor_lacks_is_an_error() {
        let parts = [("q", 2), ("k", 1), ("v", 1)];
        for a in [
            Array::from_f32(1.0),
            mlx_rs::ops::zeros::<f32>(&[3, 8]).unwrap(),
            mlx_rs::ops::zeros::<f32>(&[5]).unwrap(),
        ] {
            let shape = a.shape().to_vec();
            let e = tensors("qkv.weight", a).split_rows("qkv", &parts);
            assert!(
                matches!(e, Err(EngineError::TensorShape { ref actual, .. }) if *actual == shape),
                "{shape:?}"
            );
        }
        let mut t = tensors("qkv.weight", mlx_rs::ops::zeros::<f32>(&[4, 8]).unwrap());
        t.split_rows("qkv", &parts).unwrap();
        assert_eq!(t.take("k.weight").unwrap().shape(), &[1, 8]);
    }
}
