//! Reading one GGUF tensor's bytes from the file and turning them into MLX arrays by its
//! type's [`Mapping`]. The file is untrusted: every size and offset is checked (with
//! overflow-checked arithmetic) against the file before anything is read or allocated.

use std::{
    fs::File,
    io::{Read, Seek, SeekFrom},
    path::Path,
};

use minibar_text::{GgufMetadata, GgufTensorInfo};
use mlx_rs::{Array, Dtype};

use crate::{
    error::{EngineError, Result},
    quant_ops::{self, QuantMode},
};
use minibar_ggml::{self as blocks, GgmlType, Mapping};

/// Most dimensions a tensor may have (ggml's `GGML_MAX_DIMS`).
const MAX_DIMS: usize = 4;

/// MLX's group size for every quantized GGUF tensor (ggml's blocks hold 32 or 256).
pub const GROUP: i32 = 32;

/// A tensor as MLX will hold it.
pub enum Loaded {
    /// A float array.
    Dense(Array),
    /// An MLX affine quantization (groups of [`GROUP`]).
    Quantized {
        /// `[rows, cols * bits / 32]` u32.
        weight: Array,
        /// `[rows, cols / 32]`.
        scales: Array,
        /// `[rows, cols / 32]`.
        biases: Array,
        /// Bits per weight.
        bits: i32,
    },
}

/// A tensor's directory entry, checked: its type, its shape in MLX order and where its bytes
/// lie in the file.
pub struct Entry<'a> {
    /// The directory entry.
    pub info: &'a GgufTensorInfo,
    /// The type.
    pub ty: GgmlType,
    /// Shape in MLX order (slowest-varying first).
    pub shape: Vec<i32>,
    /// Absolute offset of the first byte.
    pub start: u64,
    /// Bytes of data.
    pub len: u64,
}

pub(super) fn corrupt(path: &Path, detail: impl ToString) -> EngineError {
    EngineError::CorruptFile {
        path: path.to_owned(),
        format: "GGUF",
        detail: detail.to_string(),
    }
}

/// Checks every tensor in the directory: a type this loader reads, 1 to 4 dimensions that fit
/// MLX's `i32` shapes, rows made of whole blocks, and bytes that lie inside the file.
pub fn check<'a>(meta: &'a GgufMetadata, path: &Path) -> Result<Vec<Entry<'a>>> {
    let size = std::fs::metadata(path)
        .map_err(|source| EngineError::Io {
            path: path.to_owned(),
            source,
        })?
        .len();
    let mut entries = Vec::with_capacity(meta.tensors.len());
    for info in &meta.tensors {
        let ty = GgmlType::from_id(info.ggml_type).ok_or_else(|| {
            EngineError::UnsupportedTensorType {
                path: path.to_owned(),
                name: info.name.clone(),
                kind: format!("#{}", info.ggml_type),
            }
        })?;
        if info.dims.is_empty() || info.dims.len() > MAX_DIMS {
            return Err(corrupt(
                path,
                format!(
                    "tensor {} has {} dimensions (1 to {MAX_DIMS} allowed)",
                    info.name,
                    info.dims.len()
                ),
            ));
        }
        let impossible = || {
            corrupt(
                path,
                format!(
                    "tensor {} has an impossible size {:?}",
                    info.name, info.dims
                ),
            )
        };
        let shape = info
            .dims
            .iter()
            .rev()
            .map(|&d| i32::try_from(d).ok())
            .collect::<Option<Vec<i32>>>()
            .ok_or_else(impossible)?;
        let (block, bytes) = ty.block();
        // Blocks never straddle rows (ggml's rule): the row width is whole blocks.
        if info.dims[0] % block as u64 != 0 {
            return Err(impossible());
        }
        let len = info
            .element_count()
            .and_then(|n| (n / block as u64).checked_mul(bytes as u64))
            .ok_or_else(impossible)?;
        let start = meta
            .data_offset
            .checked_add(info.offset)
            .ok_or_else(impossible)?;
        let end = start.checked_add(len).ok_or_else(impossible)?;
        if end > size {
            return Err(corrupt(
                path,
                format!(
                    "truncated: tensor {} needs bytes up to {end} but the file has {size}",
                    info.name
                ),
            ));
        }
        entries.push(Entry {
            info,
            ty,
            shape,
            start,
            len,
        });
    }
    Ok(entries)
}

/// Reads and converts one checked tensor.
pub fn load(file: &mut File, entry: &Entry<'_>, path: &Path) -> Result<Loaded> {
    convert(entry, &read(file, entry, path)?)
}

/// Reads one checked tensor's bytes.
pub fn read(file: &mut File, entry: &Entry<'_>, path: &Path) -> Result<Vec<u8>> {
    let len = usize::try_from(entry.len).map_err(|_| corrupt(path, "tensor too large"))?;
    let mut bytes = vec![0u8; len];
    file.seek(SeekFrom::Start(entry.start))
        .and_then(|_| file.read_exact(&mut bytes))
        .map_err(|source| EngineError::Io {
            path: path.to_owned(),
            source,
        })?;
    Ok(bytes)
}

/// Converts a tensor's bytes (`entry.len` of them) into its MLX form.
pub fn convert(entry: &Entry<'_>, bytes: &[u8]) -> Result<Loaded> {
    let shape = &entry.shape;
    let ty = entry.ty;
    let matrix = shape.len() == 2;
    if bytes.is_empty() {
        return Ok(Loaded::Dense(mlx_rs::ops::zeros::<f32>(shape)?));
    }
    match ty.mapping() {
        Mapping::Dense => {
            // The bytes are the array (little-endian, as MLX's CPU holds it): reinterpret,
            // row by row (one flat axis could be longer than an i32 shape allows).
            let (width, rows) = shape.split_last().unwrap_or((&1, &[]));
            let row_bytes = width
                .checked_mul(ty.block().1 as i32)
                .ok_or_else(|| EngineError::Mlx(format!("{} is too wide", entry.info.name)))?;
            let raw = Array::from_slice(bytes, &[rows, &[row_bytes][..]].concat());
            let dtype = match ty {
                GgmlType::F32 => Dtype::Float32,
                GgmlType::F16 => Dtype::Float16,
                _ => Dtype::Bfloat16,
            };
            Ok(Loaded::Dense(raw.view_dtype(dtype)?.reshape(shape)?))
        }
        Mapping::Affine { bits } if matrix => {
            let a = blocks::affine(ty, bytes, bits as u32);
            let (rows, cols) = (shape[0], shape[1]);
            Ok(Loaded::Quantized {
                weight: Array::from_slice(&a.words, &[rows, cols / 32 * bits]),
                scales: stored_scales(&Array::from_slice(&a.scales, &[rows, cols / GROUP]))?,
                biases: stored_scales(&Array::from_slice(&a.biases, &[rows, cols / GROUP]))?,
                bits,
            })
        }
        Mapping::Requantize { bits } if matrix => {
            let dense = Array::from_slice(&blocks::dequantize(ty, bytes), shape);
            let packed = quant_ops::quantize(&dense, QuantMode::Affine, GROUP, bits)?;
            let biases = packed
                .biases
                .ok_or_else(|| EngineError::Mlx("affine quantization gave no biases".into()))?;
            Ok(Loaded::Quantized {
                weight: packed.weight,
                scales: stored_scales(&packed.scales)?,
                biases: stored_scales(&biases)?,
                bits,
            })
        }
        // Vectors and stacked tensors stay dense: MLX's quantized layers are matrices.
        _ => Ok(Loaded::Dense(Array::from_slice(
            &blocks::dequantize(ty, bytes),
            shape,
        ))),
    }
}

/// Scales and biases are kept in f16, as mlx-lm stores them, unless one would not fit f16's
/// range (then f32: a crafted or unusual file must not turn into infinities).
fn stored_scales(a: &Array) -> Result<Array> {
    let largest = mlx_rs::ops::abs(a)?.max(None)?.try_item_cast::<f32>()?;
    Ok(if largest.is_finite() && largest <= 65504.0 {
        a.as_dtype(Dtype::Float16)?
    } else {
        a.as_dtype(Dtype::Float32)?
    })
}
