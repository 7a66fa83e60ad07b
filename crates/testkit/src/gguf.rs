//! GGUF v3 files written byte by byte, for tests of the readers (metadata, tensor tables,
//! the memory model's view of a file) that need a file of a precise, small shape.

/// Writes GGUF v3 bytes: metadata keys and a tensor directory, then zeroed data.
#[derive(Default)]
pub struct GgufWriter {
    /// Encoded metadata entries.
    pub kv: Vec<u8>,
    /// How many metadata entries `kv` holds.
    pub n_kv: u64,
    /// Encoded tensor directory entries.
    pub tensors: Vec<u8>,
    /// How many entries `tensors` holds.
    pub n_tensors: u64,
}

/// A GGUF string: u64 length, then the bytes.
pub fn gguf_string(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

impl GgufWriter {
    /// Adds a key with its type id and encoded value.
    pub fn key(&mut self, key: &str, ty: u32, value: &[u8]) -> &mut Self {
        gguf_string(&mut self.kv, key);
        self.kv.extend(ty.to_le_bytes());
        self.kv.extend(value);
        self.n_kv += 1;
        self
    }

    /// Adds a tensor directory entry.
    pub fn tensor(&mut self, name: &str, dims: &[u64], ty: u32, offset: u64) -> &mut Self {
        gguf_string(&mut self.tensors, name);
        self.tensors.extend((dims.len() as u32).to_le_bytes());
        for d in dims {
            self.tensors.extend(d.to_le_bytes());
        }
        self.tensors.extend(ty.to_le_bytes());
        self.tensors.extend(offset.to_le_bytes());
        self.n_tensors += 1;
        self
    }

    /// Header, metadata, tensor directory, padding to 32 and `data_len` bytes of data.
    pub fn bytes(&self, data_len: usize) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend(3u32.to_le_bytes());
        out.extend(self.n_tensors.to_le_bytes());
        out.extend(self.n_kv.to_le_bytes());
        out.extend(&self.kv);
        out.extend(&self.tensors);
        while !out.len().is_multiple_of(32) {
            out.push(0);
        }
        out.extend(vec![0u8; data_len]);
        out
    }
}
