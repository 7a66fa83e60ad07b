//! GGUF header and key/value metadata reader that never touches tensor data.
//!
//! MLX's C API can load GGUF tensors but cannot list metadata keys, and the tokenizer needs only
//! the metadata, so this reads the header, the key/value pairs and the tensor directory with
//! bounds checks against the file's real length (a corrupt count can never make us allocate more
//! than the file could hold).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

/// The four magic bytes every GGUF file starts with.
const MAGIC: &[u8; 4] = b"GGUF";
/// Alignment of the tensor data section when `general.alignment` is absent.
const DEFAULT_ALIGNMENT: u64 = 32;
/// Deepest nesting of arrays we accept; real files nest at most once.
const MAX_ARRAY_DEPTH: u32 = 4;
/// Most metadata values (array elements included) one file may hold. Each takes 32 bytes in
/// memory however small it is in the file, so this caps the memory metadata can take at
/// 512 MiB; the largest real vocabularies (262k tokens, three arrays) need under a million.
pub const MAX_METADATA_VALUES: u64 = 1 << 24;

/// Why a GGUF file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    /// The file could not be opened or read.
    #[error("cannot read GGUF file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The file does not start with the GGUF magic.
    #[error("{path} is not a GGUF file (it does not start with the bytes 'GGUF')")]
    BadMagic {
        /// The file.
        path: PathBuf,
    },
    /// The file declares a GGUF version this reader does not know.
    #[error("{path}: unsupported GGUF version {version} (supported: 1, 2, 3); re-convert the model with a current llama.cpp")]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version found.
        version: u32,
    },
    /// The file ends before the structure it declares.
    #[error("{path} is truncated or corrupt: {what} at byte {offset} needs {needed} bytes but the file has {available} left; download or convert it again")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// What was being read.
        what: String,
        /// Where in the file.
        offset: u64,
        /// Bytes needed.
        needed: u64,
        /// Bytes left in the file.
        available: u64,
    },
    /// A structural field holds an impossible value.
    #[error("{path} is corrupt at byte {offset}: {problem}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Where in the file.
        offset: u64,
        /// What is wrong.
        problem: String,
    },
    /// A metadata key the caller needs is absent.
    #[error("GGUF metadata has no key '{key}'")]
    MissingKey {
        /// The key.
        key: String,
    },
    /// A metadata key holds a value of another type than the caller needs.
    #[error("GGUF metadata key '{key}' is {found}, expected {expected}")]
    WrongType {
        /// The key.
        key: String,
        /// The type wanted.
        expected: &'static str,
        /// The type found.
        found: &'static str,
    },
}

/// One metadata value, with GGUF's own types.
#[derive(Debug, Clone, PartialEq)]
pub enum GgufValue {
    /// GGUF type 0.
    U8(u8),
    /// GGUF type 1.
    I8(i8),
    /// GGUF type 2.
    U16(u16),
    /// GGUF type 3.
    I16(i16),
    /// GGUF type 4.
    U32(u32),
    /// GGUF type 5.
    I32(i32),
    /// GGUF type 6.
    F32(f32),
    /// GGUF type 7.
    Bool(bool),
    /// GGUF type 8 (invalid UTF-8 is replaced, as the spec requires UTF-8).
    String(String),
    /// GGUF type 9: elements all of one type.
    Array(Vec<GgufValue>),
    /// GGUF type 10.
    U64(u64),
    /// GGUF type 11.
    I64(i64),
    /// GGUF type 12.
    F64(f64),
}

impl GgufValue {
    /// The type's name as GGUF's documentation spells it, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            GgufValue::U8(_) => "uint8",
            GgufValue::I8(_) => "int8",
            GgufValue::U16(_) => "uint16",
            GgufValue::I16(_) => "int16",
            GgufValue::U32(_) => "uint32",
            GgufValue::I32(_) => "int32",
            GgufValue::F32(_) => "float32",
            GgufValue::Bool(_) => "bool",
            GgufValue::String(_) => "string",
            GgufValue::Array(_) => "array",
            GgufValue::U64(_) => "uint64",
            GgufValue::I64(_) => "int64",
            GgufValue::F64(_) => "float64",
        }
    }

    /// The value as a signed integer when it is any integer type that fits.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            GgufValue::U8(v) => Some(v.into()),
            GgufValue::I8(v) => Some(v.into()),
            GgufValue::U16(v) => Some(v.into()),
            GgufValue::I16(v) => Some(v.into()),
            GgufValue::U32(v) => Some(v.into()),
            GgufValue::I32(v) => Some(v.into()),
            GgufValue::U64(v) => i64::try_from(v).ok(),
            GgufValue::I64(v) => Some(v),
            _ => None,
        }
    }

    /// The value as an unsigned integer when it is a non-negative integer.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            GgufValue::U64(v) => Some(v),
            _ => self.as_i64().and_then(|v| u64::try_from(v).ok()),
        }
    }

    /// The value as a float when it is a float type.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            GgufValue::F32(v) => Some(v.into()),
            GgufValue::F64(v) => Some(v),
            _ => None,
        }
    }

    /// The value as a string slice when it is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            GgufValue::String(s) => Some(s),
            _ => None,
        }
    }
}

/// One entry of the tensor directory (the data itself is never read here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GgufTensorInfo {
    /// Tensor name, e.g. `blk.0.attn_q.weight`.
    pub name: String,
    /// Dimensions in GGUF order (fastest-varying first).
    pub dims: Vec<u64>,
    /// The ggml type id (0 = F32, 1 = F16, 2 = Q4_0, 3 = Q4_1, 8 = Q8_0, ...).
    pub ggml_type: u32,
    /// Offset of the data relative to [`GgufMetadata::data_offset`].
    pub offset: u64,
}

impl GgufTensorInfo {
    /// Number of elements (product of the dimensions), `None` on overflow.
    pub fn element_count(&self) -> Option<u64> {
        self.dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
    }

    /// Bytes the tensor's data takes, for the ggml types whose block layout we know.
    pub fn byte_size(&self) -> Option<u64> {
        let (block, bytes) = ggml_block_size(self.ggml_type)?;
        let n = self.element_count()?;
        if n % block != 0 {
            return None;
        }
        (n / block).checked_mul(bytes)
    }
}

/// (elements per block, bytes per block) of a ggml type, as in ggml's type traits.
pub fn ggml_block_size(ggml_type: u32) -> Option<(u64, u64)> {
    Some(match ggml_type {
        0 => (1, 4),      // F32
        1 => (1, 2),      // F16
        2 => (32, 18),    // Q4_0
        3 => (32, 20),    // Q4_1
        6 => (32, 22),    // Q5_0
        7 => (32, 24),    // Q5_1
        8 => (32, 34),    // Q8_0
        9 => (32, 40),    // Q8_1
        10 => (256, 84),  // Q2_K
        11 => (256, 110), // Q3_K
        12 => (256, 144), // Q4_K
        13 => (256, 176), // Q5_K
        14 => (256, 210), // Q6_K
        15 => (256, 292), // Q8_K
        20 => (32, 18),   // IQ4_NL
        24 => (1, 1),     // I8
        25 => (1, 2),     // I16
        26 => (1, 4),     // I32
        27 => (1, 8),     // I64
        28 => (1, 8),     // F64
        30 => (1, 2),     // BF16
        _ => return None,
    })
}

/// The metadata of a GGUF file: version, key/value pairs and tensor directory.
#[derive(Debug, Clone)]
pub struct GgufMetadata {
    /// The file it came from (for error messages).
    pub path: PathBuf,
    /// GGUF format version (1, 2 or 3).
    pub version: u32,
    /// All key/value pairs.
    pub kv: BTreeMap<String, GgufValue>,
    /// The tensor directory, in file order.
    pub tensors: Vec<GgufTensorInfo>,
    /// Absolute file offset where tensor data starts (aligned).
    pub data_offset: u64,
}

/// A reader that knows how many bytes the file has left, so no count can over-allocate.
struct Cursor<R> {
    inner: R,
    path: PathBuf,
    pos: u64,
    len: u64,
    /// GGUF v1 stores string lengths and counts as u32, later versions as u64.
    wide: bool,
    /// Metadata values that may still be decoded (see [`MAX_METADATA_VALUES`]).
    values_left: u64,
}

impl<R: Read> Cursor<R> {
    fn remaining(&self) -> u64 {
        self.len.saturating_sub(self.pos)
    }

    fn ensure(&self, needed: u64, what: &str) -> Result<(), GgufError> {
        if needed > self.remaining() {
            return Err(GgufError::Truncated {
                path: self.path.clone(),
                what: what.to_string(),
                offset: self.pos,
                needed,
                available: self.remaining(),
            });
        }
        Ok(())
    }

    fn bytes<const N: usize>(&mut self, what: &str) -> Result<[u8; N], GgufError> {
        self.ensure(N as u64, what)?;
        let mut buf = [0u8; N];
        self.inner
            .read_exact(&mut buf)
            .map_err(|e| self.io_error(e, what, N as u64))?;
        self.pos += N as u64;
        Ok(buf)
    }

    fn io_error(&self, e: std::io::Error, what: &str, needed: u64) -> GgufError {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            GgufError::Truncated {
                path: self.path.clone(),
                what: what.to_string(),
                offset: self.pos,
                needed,
                available: 0,
            }
        } else {
            GgufError::Io {
                path: self.path.clone(),
                source: e,
            }
        }
    }

    fn u32(&mut self, what: &str) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.bytes(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.bytes(what)?))
    }

    /// A length or count field: u32 in GGUF v1, u64 afterwards.
    fn count(&mut self, what: &str) -> Result<u64, GgufError> {
        if self.wide {
            self.u64(what)
        } else {
            Ok(self.u32(what)?.into())
        }
    }

    fn string(&mut self, what: &str) -> Result<String, GgufError> {
        let len = self.count(what)?;
        self.ensure(len, what)?;
        // `ensure` bounded len by the file size, so this allocation is at most the file's size.
        let mut buf = vec![0u8; len as usize];
        self.inner
            .read_exact(&mut buf)
            .map_err(|e| self.io_error(e, what, len))?;
        self.pos += len;
        Ok(match String::from_utf8(buf) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })
    }

    fn corrupt(&self, problem: String) -> GgufError {
        GgufError::Corrupt {
            path: self.path.clone(),
            offset: self.pos,
            problem,
        }
    }

    /// Smallest encoded size of one value of a type, to bound array counts before allocating.
    fn min_size(&self, ty: u32) -> u64 {
        // A string is its length field; an array is its element type plus its count field.
        let count = if self.wide { 8 } else { 4 };
        match ty {
            0 | 1 | 7 => 1,
            2 | 3 => 2,
            4..=6 => 4,
            8 => count,
            9 => 4 + count,
            _ => 8,
        }
    }

    fn value(&mut self, ty: u32, key: &str, depth: u32) -> Result<GgufValue, GgufError> {
        self.values_left = self.values_left.checked_sub(1).ok_or_else(|| {
            self.corrupt(format!(
                "key '{key}': more than {MAX_METADATA_VALUES} metadata values"
            ))
        })?;
        Ok(match ty {
            0 => GgufValue::U8(u8::from_le_bytes(self.bytes(key)?)),
            1 => GgufValue::I8(i8::from_le_bytes(self.bytes(key)?)),
            2 => GgufValue::U16(u16::from_le_bytes(self.bytes(key)?)),
            3 => GgufValue::I16(i16::from_le_bytes(self.bytes(key)?)),
            4 => GgufValue::U32(self.u32(key)?),
            5 => GgufValue::I32(i32::from_le_bytes(self.bytes(key)?)),
            6 => GgufValue::F32(f32::from_le_bytes(self.bytes(key)?)),
            7 => match u8::from_le_bytes(self.bytes(key)?) {
                0 => GgufValue::Bool(false),
                1 => GgufValue::Bool(true),
                b => return Err(self.corrupt(format!("key '{key}': bool byte is {b}, not 0 or 1"))),
            },
            8 => GgufValue::String(self.string(key)?),
            9 => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(self.corrupt(format!("key '{key}': arrays nested too deeply")));
                }
                let elem_ty = self.u32(key)?;
                if elem_ty > 12 {
                    return Err(
                        self.corrupt(format!("key '{key}': unknown array element type {elem_ty}"))
                    );
                }
                let n = self.count(key)?;
                self.ensure(n.saturating_mul(self.min_size(elem_ty)), key)?;
                // A value takes more memory than its smallest encoding (32 bytes for one u8):
                // reserve no more than the bytes left in the file, and grow as elements arrive.
                let fit = self.remaining() / std::mem::size_of::<GgufValue>() as u64;
                let mut items = Vec::with_capacity(n.min(fit) as usize);
                for _ in 0..n {
                    items.push(self.value(elem_ty, key, depth + 1)?);
                }
                GgufValue::Array(items)
            }
            10 => GgufValue::U64(self.u64(key)?),
            11 => GgufValue::I64(i64::from_le_bytes(self.bytes(key)?)),
            12 => GgufValue::F64(f64::from_le_bytes(self.bytes(key)?)),
            other => return Err(self.corrupt(format!("key '{key}': unknown value type {other}"))),
        })
    }
}

impl GgufMetadata {
    /// Reads the metadata and tensor directory of the GGUF file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, GgufError> {
        let path = path.as_ref().to_path_buf();
        let io = |source| GgufError::Io {
            path: path.clone(),
            source,
        };
        let file = File::open(&path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        Self::from_reader(BufReader::with_capacity(1 << 20, file), len, &path)
    }

    /// Reads metadata from any byte source of known total length; `path` only labels errors.
    pub fn from_reader(reader: impl Read, len: u64, path: &Path) -> Result<Self, GgufError> {
        let mut c = Cursor {
            inner: reader,
            path: path.to_path_buf(),
            pos: 0,
            len,
            wide: true,
            values_left: MAX_METADATA_VALUES,
        };
        if c.remaining() < 4 || &c.bytes::<4>("magic")? != MAGIC {
            return Err(GgufError::BadMagic { path: c.path });
        }
        let version = c.u32("version")?;
        if !(1..=3).contains(&version) {
            return Err(GgufError::UnsupportedVersion {
                path: c.path,
                version,
            });
        }
        c.wide = version >= 2;
        let tensor_count = c.count("tensor count")?;
        let kv_count = c.count("metadata count")?;
        // Each key/value takes at least a length, a type and one byte of value.
        let min_kv = if c.wide { 13 } else { 9 };
        c.ensure(kv_count.saturating_mul(min_kv), "metadata key/value pairs")?;

        let mut kv = BTreeMap::new();
        for _ in 0..kv_count {
            let key = c.string("metadata key")?;
            let ty = c.u32(&key)?;
            let value = c.value(ty, &key, 0)?;
            kv.insert(key, value);
        }

        let min_tensor = if c.wide { 8 + 4 + 4 + 8 } else { 4 + 4 + 4 + 8 };
        c.ensure(tensor_count.saturating_mul(min_tensor), "tensor directory")?;
        // Bounded by the bytes left, as above (an entry is 56 bytes in memory, 24 in the file).
        let fit = c.remaining() / std::mem::size_of::<GgufTensorInfo>() as u64;
        let mut tensors = Vec::with_capacity(tensor_count.min(fit) as usize);
        for _ in 0..tensor_count {
            let name = c.string("tensor name")?;
            let n_dims = c.u32(&name)?;
            if n_dims > 8 {
                return Err(c.corrupt(format!(
                    "tensor '{name}' claims {n_dims} dimensions (at most 8)"
                )));
            }
            let mut dims = Vec::with_capacity(n_dims as usize);
            for _ in 0..n_dims {
                dims.push(c.count(&name)?);
            }
            let ggml_type = c.u32(&name)?;
            let offset = c.u64(&name)?;
            tensors.push(GgufTensorInfo {
                name,
                dims,
                ggml_type,
                offset,
            });
        }

        let alignment = match kv.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(v) => match v.as_u64() {
                Some(a) if a > 0 && a.is_power_of_two() => a,
                _ => {
                    return Err(c.corrupt(format!("general.alignment is {v:?}, not a power of two")))
                }
            },
        };
        let data_offset = c.pos.div_ceil(alignment) * alignment;
        // A file cut short in its tensor data would otherwise only fail later, inside MLX.
        for t in &tensors {
            // Types we do not know are left to the loader; a known type must have a size.
            if ggml_block_size(t.ggml_type).is_none() {
                continue;
            }
            let Some(size) = t.byte_size() else {
                return Err(c.corrupt(format!(
                    "tensor '{}' has an impossible size: dimensions {:?} of type {}",
                    t.name, t.dims, t.ggml_type
                )));
            };
            let end = data_offset
                .checked_add(t.offset)
                .and_then(|s| s.checked_add(size));
            if end.is_none_or(|end| end > len) {
                return Err(GgufError::Truncated {
                    path: c.path,
                    what: format!("data of tensor '{}'", t.name),
                    offset: data_offset.saturating_add(t.offset),
                    needed: size,
                    available: len.saturating_sub(data_offset.saturating_add(t.offset)),
                });
            }
        }
        Ok(GgufMetadata {
            path: c.path,
            version,
            kv,
            tensors,
            data_offset,
        })
    }

    /// The raw value of a key, if present.
    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.kv.get(key)
    }

    fn wrong(key: &str, expected: &'static str, v: &GgufValue) -> GgufError {
        GgufError::WrongType {
            key: key.to_string(),
            expected,
            found: v.type_name(),
        }
    }

    /// A string value; `Ok(None)` when absent, an error when present with another type.
    pub fn get_str(&self, key: &str) -> Result<Option<&str>, GgufError> {
        self.get(key)
            .map(|v| v.as_str().ok_or_else(|| Self::wrong(key, "string", v)))
            .transpose()
    }

    /// A non-negative integer of any width; `Ok(None)` when absent.
    pub fn get_u64(&self, key: &str) -> Result<Option<u64>, GgufError> {
        self.get(key)
            .map(|v| {
                v.as_u64()
                    .ok_or_else(|| Self::wrong(key, "unsigned integer", v))
            })
            .transpose()
    }

    /// A signed integer of any width; `Ok(None)` when absent.
    pub fn get_i64(&self, key: &str) -> Result<Option<i64>, GgufError> {
        self.get(key)
            .map(|v| v.as_i64().ok_or_else(|| Self::wrong(key, "integer", v)))
            .transpose()
    }

    /// A float (f32 or f64); `Ok(None)` when absent.
    pub fn get_f64(&self, key: &str) -> Result<Option<f64>, GgufError> {
        self.get(key)
            .map(|v| v.as_f64().ok_or_else(|| Self::wrong(key, "float", v)))
            .transpose()
    }

    /// A boolean; `Ok(None)` when absent.
    pub fn get_bool(&self, key: &str) -> Result<Option<bool>, GgufError> {
        self.get(key)
            .map(|v| match v {
                GgufValue::Bool(b) => Ok(*b),
                _ => Err(Self::wrong(key, "bool", v)),
            })
            .transpose()
    }

    fn get_array(&self, key: &str) -> Result<Option<&[GgufValue]>, GgufError> {
        self.get(key)
            .map(|v| match v {
                GgufValue::Array(items) => Ok(items.as_slice()),
                _ => Err(Self::wrong(key, "array", v)),
            })
            .transpose()
    }

    /// An array of strings; `Ok(None)` when absent.
    pub fn get_str_array(&self, key: &str) -> Result<Option<Vec<&str>>, GgufError> {
        let Some(items) = self.get_array(key)? else {
            return Ok(None);
        };
        items
            .iter()
            .map(|v| {
                v.as_str()
                    .ok_or_else(|| Self::wrong(key, "array of strings", v))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// An array of integers of any width; `Ok(None)` when absent.
    pub fn get_i64_array(&self, key: &str) -> Result<Option<Vec<i64>>, GgufError> {
        let Some(items) = self.get_array(key)? else {
            return Ok(None);
        };
        items
            .iter()
            .map(|v| {
                v.as_i64()
                    .ok_or_else(|| Self::wrong(key, "array of integers", v))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// An array of floats; `Ok(None)` when absent.
    pub fn get_f64_array(&self, key: &str) -> Result<Option<Vec<f64>>, GgufError> {
        let Some(items) = self.get_array(key)? else {
            return Ok(None);
        };
        items
            .iter()
            .map(|v| {
                v.as_f64()
                    .ok_or_else(|| Self::wrong(key, "array of floats", v))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// Like [`get_str`](Self::get_str) but absence is an error naming the key.
    pub fn require_str(&self, key: &str) -> Result<&str, GgufError> {
        self.get_str(key)?.ok_or_else(|| GgufError::MissingKey {
            key: key.to_string(),
        })
    }

    /// Like [`get_u64`](Self::get_u64) but absence is an error naming the key.
    pub fn require_u64(&self, key: &str) -> Result<u64, GgufError> {
        self.get_u64(key)?.ok_or_else(|| GgufError::MissingKey {
            key: key.to_string(),
        })
    }

    /// Like [`get_f64`](Self::get_f64) but absence is an error naming the key.
    pub fn require_f64(&self, key: &str) -> Result<f64, GgufError> {
        self.get_f64(key)?.ok_or_else(|| GgufError::MissingKey {
            key: key.to_string(),
        })
    }

    /// `general.architecture`, the key every other hyperparameter is prefixed with.
    pub fn architecture(&self) -> Result<&str, GgufError> {
        self.require_str("general.architecture")
    }
}
