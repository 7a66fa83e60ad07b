//! minibar-ggml: ggml's tensor block formats (the quantizations inside GGUF files) decoded in
//! plain Rust, with no MLX: each type's layout, what it becomes in MLX ([`Mapping`]), and per
//! tensor either its exact affine form (codes packed as MLX packs them, with a scale and bias
//! per 32, [`affine`]) or its values, computed as ggml's `dequantize_row_*` computes them
//! ([`dequantize`]). Its own crate so that these loops over every weight are optimized even in
//! test builds (the workspace profile); the engine turns the results into MLX arrays.
//!
//! Invariant: for the [`Mapping::Affine`] types, `scale * code + bias` in f32 equals ggml's
//! dequantized value bit for bit (same products, same order), so an MLX affine layer with f32
//! scales holds the GGUF's weights exactly; with f16 scales (what is stored) only the scale's
//! rounding differs, and the tests measure it.

// The loops mirror ggml's reference C loops index for index, to be read side by side.
#![allow(clippy::needless_range_loop)]

use half::f16;

/// Elements per K-quant super-block (ggml's `QK_K`).
const QK_K: usize = 256;

/// IQ4_NL's sixteen levels (ggml's `kvalues_iq4nl`).
const IQ4_NL_LEVELS: [i8; 16] = [
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
];

/// A ggml tensor type this loader reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types, clippy::upper_case_acronyms)]
pub enum GgmlType {
    /// 32-bit float.
    F32,
    /// 16-bit float.
    F16,
    /// bfloat16.
    BF16,
    /// 4 bits, scale per 32.
    Q4_0,
    /// 4 bits, scale and minimum per 32.
    Q4_1,
    /// 5 bits, scale per 32.
    Q5_0,
    /// 5 bits, scale and minimum per 32.
    Q5_1,
    /// 8 bits, scale per 32.
    Q8_0,
    /// 2 bits, 4-bit scales and minimums per 16, super-blocks of 256.
    Q2_K,
    /// 3 bits, 6-bit scales per 16, super-blocks of 256.
    Q3_K,
    /// 4 bits, 6-bit scales and minimums per 32, super-blocks of 256.
    Q4_K,
    /// 5 bits, 6-bit scales and minimums per 32, super-blocks of 256.
    Q5_K,
    /// 6 bits, 8-bit scales per 16, super-blocks of 256.
    Q6_K,
    /// 4-bit indices into a fixed non-linear table, scale per 32.
    IQ4_NL,
}

/// What a GGUF tensor type becomes in MLX.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mapping {
    /// A dense float array of the same type (F32, F16, BF16: nothing is lost).
    Dense,
    /// An MLX affine quantization, `bits` per weight, groups of 32, codes copied from the
    /// blocks: the weights are kept (only the scales are rounded to f16).
    Affine {
        /// Bits per weight.
        bits: i32,
    },
    /// Dequantized, then quantized again by MLX (affine, groups of 32): for the types whose
    /// groups of 16 MLX cannot hold (it groups by 32, 64 or 128).
    Requantize {
        /// Bits per weight.
        bits: i32,
    },
}

/// Every type this loader reads, for error messages and tables.
pub const ALL: [GgmlType; 14] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
    GgmlType::IQ4_NL,
];

impl GgmlType {
    /// The type with ggml's id `id`, if this loader reads it.
    pub fn from_id(id: u32) -> Option<Self> {
        Some(match id {
            0 => Self::F32,
            1 => Self::F16,
            2 => Self::Q4_0,
            3 => Self::Q4_1,
            6 => Self::Q5_0,
            7 => Self::Q5_1,
            8 => Self::Q8_0,
            10 => Self::Q2_K,
            11 => Self::Q3_K,
            12 => Self::Q4_K,
            13 => Self::Q5_K,
            14 => Self::Q6_K,
            20 => Self::IQ4_NL,
            30 => Self::BF16,
            _ => return None,
        })
    }

    /// ggml's name for the type.
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "F32",
            Self::F16 => "F16",
            Self::BF16 => "BF16",
            Self::Q4_0 => "Q4_0",
            Self::Q4_1 => "Q4_1",
            Self::Q5_0 => "Q5_0",
            Self::Q5_1 => "Q5_1",
            Self::Q8_0 => "Q8_0",
            Self::Q2_K => "Q2_K",
            Self::Q3_K => "Q3_K",
            Self::Q4_K => "Q4_K",
            Self::Q5_K => "Q5_K",
            Self::Q6_K => "Q6_K",
            Self::IQ4_NL => "IQ4_NL",
        }
    }

    /// (elements per block, bytes per block), as ggml's type traits give them.
    pub fn block(self) -> (usize, usize) {
        match self {
            Self::F32 => (1, 4),
            Self::F16 | Self::BF16 => (1, 2),
            Self::Q4_0 | Self::IQ4_NL => (32, 18),
            Self::Q4_1 => (32, 20),
            Self::Q5_0 => (32, 22),
            Self::Q5_1 => (32, 24),
            Self::Q8_0 => (32, 34),
            Self::Q2_K => (QK_K, 84),
            Self::Q3_K => (QK_K, 110),
            Self::Q4_K => (QK_K, 144),
            Self::Q5_K => (QK_K, 176),
            Self::Q6_K => (QK_K, 210),
        }
    }

    /// The MLX form of the type: the same codes where MLX has the format, otherwise a
    /// requantization whose added error is small next to the type's own (figures measured by
    /// the engine's GGUF reference test).
    pub fn mapping(self) -> Mapping {
        match self {
            Self::F32 | Self::F16 | Self::BF16 => Mapping::Dense,
            Self::Q4_0 | Self::Q4_1 | Self::Q4_K => Mapping::Affine { bits: 4 },
            Self::Q5_0 | Self::Q5_1 | Self::Q5_K => Mapping::Affine { bits: 5 },
            // IQ4_NL's levels are whole numbers from -127 to 113 times one scale: 8-bit codes.
            Self::Q8_0 | Self::IQ4_NL => Mapping::Affine { bits: 8 },
            // Two groups of 16 with their own scales share one MLX group of 32, so these are
            // quantized again. MLX's 4 bits would add as much error as a fresh 4-bit
            // quantization (7.6% rms, measured on SmolLM2's Q3_K weights); 6 bits add 1.6%,
            // 8 bits 0.5%. Q6_K keeps its precision at 8 bits.
            Self::Q2_K | Self::Q3_K => Mapping::Requantize { bits: 6 },
            Self::Q6_K => Mapping::Requantize { bits: 8 },
        }
    }
}

impl GgmlType {
    /// Bits per weight the type takes in memory once mapped to MLX (affine forms carry an f16
    /// scale and bias per 32 weights): what a memory estimate of a GGUF should use, since a
    /// requantized type takes more than in the file.
    pub fn mlx_bits_per_weight(self) -> f64 {
        match self.mapping() {
            Mapping::Dense => (self.block().1 * 8) as f64,
            Mapping::Affine { bits } | Mapping::Requantize { bits } => f64::from(bits) + 1.0,
        }
    }

    /// Bits per weight the type takes in a GGUF file.
    pub fn file_bits_per_weight(self) -> f64 {
        let (n, b) = self.block();
        (b * 8) as f64 / n as f64
    }
}

fn f16_at(b: &[u8], at: usize) -> f32 {
    f16::from_bits(u16::from_le_bytes([b[at], b[at + 1]])).to_f32()
}

/// Q4_K and Q5_K's packed 6-bit scale and minimum of sub-block `j` (ggml's
/// `get_scale_min_k4`).
fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// The exact affine form of one block of an [`Mapping::Affine`] type: one code per element
/// (`codes.len()` is the block's element count) and a scale and bias per 32 elements, such
/// that `scale * code + bias` is ggml's value. `block` holds exactly one block's bytes.
///
/// # Panics
/// If the type is not an affine one or a slice has the wrong length (callers size them from
/// [`GgmlType::block`]).
pub fn affine_block(
    ty: GgmlType,
    block: &[u8],
    codes: &mut [u8],
    scales: &mut [f32],
    biases: &mut [f32],
) {
    match ty {
        GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::IQ4_NL => {
            let d = f16_at(block, 0);
            let (bias, qs) = match ty {
                GgmlType::Q4_0 => (-8.0 * d, &block[2..18]),
                GgmlType::Q4_1 => (f16_at(block, 2), &block[4..20]),
                _ => (-127.0 * d, &block[2..18]),
            };
            for j in 0..16 {
                let (lo, hi) = (qs[j] & 0x0F, qs[j] >> 4);
                if ty == GgmlType::IQ4_NL {
                    codes[j] = (IQ4_NL_LEVELS[lo as usize] as i16 + 127) as u8;
                    codes[j + 16] = (IQ4_NL_LEVELS[hi as usize] as i16 + 127) as u8;
                } else {
                    codes[j] = lo;
                    codes[j + 16] = hi;
                }
            }
            scales[0] = d;
            biases[0] = bias;
        }
        GgmlType::Q5_0 | GgmlType::Q5_1 => {
            let d = f16_at(block, 0);
            let (bias, rest) = if ty == GgmlType::Q5_0 {
                (-16.0 * d, &block[2..22])
            } else {
                (f16_at(block, 2), &block[4..24])
            };
            let qh = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
            let qs = &rest[4..20];
            for j in 0..16 {
                let h0 = (((qh >> j) << 4) & 0x10) as u8;
                let h1 = ((qh >> (j + 12)) & 0x10) as u8;
                codes[j] = (qs[j] & 0x0F) | h0;
                codes[j + 16] = (qs[j] >> 4) | h1;
            }
            scales[0] = d;
            biases[0] = bias;
        }
        GgmlType::Q8_0 => {
            let d = f16_at(block, 0);
            for (c, &q) in codes.iter_mut().zip(&block[2..34]) {
                *c = (q as i8 as i16 + 128) as u8;
            }
            scales[0] = d;
            biases[0] = -128.0 * d;
        }
        GgmlType::Q4_K | GgmlType::Q5_K => {
            let d = f16_at(block, 0);
            let dmin = f16_at(block, 2);
            let sc = &block[4..16];
            let (qh, ql) = if ty == GgmlType::Q5_K {
                (Some(&block[16..48]), &block[48..176])
            } else {
                (None, &block[16..144])
            };
            // Four chunks of 64: the low nibbles of 32 bytes, then their high nibbles.
            for chunk in 0..4 {
                let q = &ql[32 * chunk..32 * chunk + 32];
                for half_ in 0..2 {
                    let g = 2 * chunk + half_;
                    let (s, m) = scale_min_k4(g, sc);
                    scales[g] = d * f32::from(s);
                    biases[g] = -(dmin * f32::from(m));
                    let out = &mut codes[32 * g..32 * g + 32];
                    for l in 0..32 {
                        let low = if half_ == 0 { q[l] & 0x0F } else { q[l] >> 4 };
                        let high = match qh {
                            Some(h) if h[l] & (1 << g) != 0 => 16,
                            _ => 0,
                        };
                        out[l] = low + high;
                    }
                }
            }
        }
        other => unreachable!("{} is not an affine GGUF type", other.name()),
    }
}

/// ggml's dequantization of one block of any quantized type (`out.len()` is the block's
/// element count).
///
/// # Panics
/// If the type is dense or a slice has the wrong length.
pub fn dequantize_block(ty: GgmlType, block: &[u8], out: &mut [f32]) {
    match ty {
        GgmlType::Q2_K => q2_k(block, out),
        GgmlType::Q3_K => q3_k(block, out),
        GgmlType::Q6_K => q6_k(block, out),
        GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => {
            unreachable!("{} is not a block type", ty.name())
        }
        _ => {
            let groups = out.len() / 32;
            let mut codes = [0u8; QK_K];
            let (mut scales, mut biases) = ([0f32; QK_K / 32], [0f32; QK_K / 32]);
            affine_block(
                ty,
                block,
                &mut codes[..out.len()],
                &mut scales[..groups],
                &mut biases[..groups],
            );
            for (i, o) in out.iter_mut().enumerate() {
                *o = scales[i / 32] * f32::from(codes[i]) + biases[i / 32];
            }
        }
    }
}

/// ggml's `dequantize_row_q2_K` for one super-block.
fn q2_k(b: &[u8], y: &mut [f32]) {
    let (sc, qs) = (&b[0..16], &b[16..80]);
    let (d, dmin) = (f16_at(b, 80), f16_at(b, 82));
    for n in 0..2 {
        let q = &qs[32 * n..32 * n + 32];
        for j in 0..4 {
            let shift = 2 * j;
            for part in 0..2 {
                let s = sc[8 * n + 2 * j + part];
                let (dl, ml) = (d * f32::from(s & 0x0F), dmin * f32::from(s >> 4));
                for l in 0..16 {
                    let v = (q[16 * part + l] >> shift) & 3;
                    y[128 * n + 32 * j + 16 * part + l] = dl * f32::from(v) - ml;
                }
            }
        }
    }
}

/// ggml's `dequantize_row_q3_K` for one super-block.
fn q3_k(b: &[u8], y: &mut [f32]) {
    let (hm, qs, sc) = (&b[0..32], &b[32..96], &b[96..108]);
    let d = f16_at(b, 108);
    // Sixteen 6-bit scales: low nibbles in bytes 0..8, top two bits in bytes 8..12.
    let scale = |i: usize| -> i32 {
        let low = (sc[i % 8] >> (4 * (i / 8))) & 0x0F;
        let high = (sc[8 + i % 4] >> (2 * (i / 4))) & 3;
        i32::from(low | (high << 4)) - 32
    };
    for n in 0..2 {
        let q = &qs[32 * n..32 * n + 32];
        for j in 0..4 {
            let (shift, m) = (2 * j, 1u8 << (4 * n + j));
            for part in 0..2 {
                let dl = d * scale(8 * n + 2 * j + part) as f32;
                for l in 0..16 {
                    let i = 16 * part + l;
                    let low = ((q[i] >> shift) & 3) as i8;
                    let v = low - if hm[i] & m != 0 { 0 } else { 4 };
                    y[128 * n + 32 * j + i] = dl * f32::from(v);
                }
            }
        }
    }
}

/// ggml's `dequantize_row_q6_K` for one super-block.
fn q6_k(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 208);
    for n in 0..2 {
        let ql = &b[64 * n..64 * n + 64];
        let qh = &b[128 + 32 * n..128 + 32 * n + 32];
        let sc = &b[192 + 8 * n..192 + 8 * n + 8];
        let out = &mut y[128 * n..128 * n + 128];
        for l in 0..32 {
            let is = l / 16;
            let q = [
                (ql[l] & 0x0F) | ((qh[l] & 3) << 4),
                (ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4),
                (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4),
                (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4),
            ];
            for (k, &v) in q.iter().enumerate() {
                let s = f32::from(sc[is + 2 * k] as i8);
                out[l + 32 * k] = d * s * f32::from(v as i8 - 32);
            }
        }
    }
}

/// A whole tensor in MLX's affine layout: packed codes and a scale and bias per 32 weights.
pub struct Affine {
    /// Codes as a little-endian bit stream in u32 words (`bits` per weight).
    pub words: Vec<u32>,
    /// One scale per 32 weights.
    pub scales: Vec<f32>,
    /// One bias per 32 weights.
    pub biases: Vec<f32>,
}

/// The exact affine form of a whole tensor of an [`Mapping::Affine`] type with `bits` bits
/// (`bytes` is whole blocks; a trailing partial block is ignored).
///
/// # Panics
/// If the type is not an affine one.
pub fn affine(ty: GgmlType, bytes: &[u8], bits: u32) -> Affine {
    let (n, b) = ty.block();
    let blocks = bytes.len() / b;
    let g = n / 32;
    let mut out = Affine {
        words: Vec::with_capacity(blocks * n * bits as usize / 32),
        scales: vec![0f32; blocks * g],
        biases: vec![0f32; blocks * g],
    };
    let mut codes = vec![0u8; n];
    for (i, block) in bytes.chunks_exact(b).enumerate() {
        affine_block(
            ty,
            block,
            &mut codes,
            &mut out.scales[i * g..(i + 1) * g],
            &mut out.biases[i * g..(i + 1) * g],
        );
        pack(&codes, bits, &mut out.words);
    }
    out
}

/// ggml's dequantization of a whole tensor of a block type (`bytes` is whole blocks).
///
/// # Panics
/// If the type is a dense one.
pub fn dequantize(ty: GgmlType, bytes: &[u8]) -> Vec<f32> {
    let (n, b) = ty.block();
    let mut out = vec![0f32; bytes.len() / b * n];
    for (block, y) in bytes.chunks_exact(b).zip(out.chunks_exact_mut(n)) {
        dequantize_block(ty, block, y);
    }
    out
}

/// Packs codes of `bits` bits into MLX's layout: a little-endian bit stream read as u32 words
/// (`codes.len() * bits` must be a multiple of 32).
pub fn pack(codes: &[u8], bits: u32, words: &mut Vec<u32>) {
    let mut acc: u64 = 0;
    let mut filled = 0u32;
    for &c in codes {
        acc |= u64::from(c) << filled;
        filled += bits;
        if filled >= 32 {
            words.push(acc as u32);
            acc >>= 32;
            filled -= 32;
        }
    }
    debug_assert_eq!(filled, 0, "codes do not fill whole words");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic bytes that exercise every bit (an xorshift stream).
    fn bytes(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    /// A block whose f16 fields hold small finite numbers (random bytes there could be NaN).
    fn block(ty: GgmlType, seed: u64) -> Vec<u8> {
        let mut b = bytes(ty.block().1, seed);
        let halves: &[usize] = match ty {
            GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4_K | GgmlType::Q5_K => &[0, 2],
            GgmlType::Q2_K => &[80, 82],
            GgmlType::Q3_K => &[108],
            GgmlType::Q6_K => &[208],
            _ => &[0],
        };
        for &at in halves {
            let v = f16::from_f32(0.01 + 0.001 * (seed % 7) as f32).to_bits();
            b[at..at + 2].copy_from_slice(&v.to_le_bytes());
        }
        b
    }

    #[test]
    fn packing_is_a_little_endian_bit_stream() {
        let mut w = Vec::new();
        pack(&[1, 2, 3, 4, 5, 6, 7, 8], 4, &mut w);
        assert_eq!(w, vec![0x8765_4321]);
        w.clear();
        // 5 bits: element 1 starts at bit 5, so 32 codes fill five words.
        let codes: Vec<u8> = (0..32).map(|i| (i % 32) as u8).collect();
        pack(&codes, 5, &mut w);
        assert_eq!(w.len(), 5);
        assert_eq!(w[0] & 0x3FF, 1 << 5);
    }

    #[test]
    fn q4_0_and_q8_0_decode_by_hand() {
        // Q4_0: d = 1, first byte 0x21: element 0 is 1 - 8, element 16 is 2 - 8.
        let mut b = vec![0u8; 18];
        b[0..2].copy_from_slice(&f16::from_f32(1.0).to_bits().to_le_bytes());
        b[2] = 0x21;
        let mut y = [0f32; 32];
        dequantize_block(GgmlType::Q4_0, &b, &mut y);
        assert_eq!((y[0], y[16], y[1]), (-7.0, -6.0, -8.0));
        // Q8_0: d = 0.5, codes are signed bytes.
        let mut b = vec![0u8; 34];
        b[0..2].copy_from_slice(&f16::from_f32(0.5).to_bits().to_le_bytes());
        b[2] = (-4i8) as u8;
        b[3] = 6;
        dequantize_block(GgmlType::Q8_0, &b, &mut y);
        assert_eq!((y[0], y[1], y[2]), (-2.0, 3.0, 0.0));
    }

    #[test]
    fn affine_codes_fit_their_bits() {
        for ty in ALL {
            let Mapping::Affine { bits } = ty.mapping() else {
                continue;
            };
            let (n, _) = ty.block();
            for seed in 1..20 {
                let b = block(ty, seed);
                let mut codes = vec![0u8; n];
                let (mut s, mut m) = (vec![0f32; n / 32], vec![0f32; n / 32]);
                affine_block(ty, &b, &mut codes, &mut s, &mut m);
                assert!(
                    codes.iter().all(|&c| u32::from(c) < 1 << bits),
                    "{}",
                    ty.name()
                );
            }
        }
    }

    #[test]
    fn any_bytes_decode_without_panicking() {
        // Blocks from an untrusted file: NaN or infinite scales decode to NaN or infinity, and
        // a trailing partial block is left out, never read past.
        for ty in ALL.into_iter().filter(|t| t.block().0 > 1) {
            let (n, b) = ty.block();
            for seed in 1..50 {
                let raw = bytes(3 * b + seed as usize % b, seed);
                assert_eq!(dequantize(ty, &raw).len(), 3 * n, "{}", ty.name());
                if let Mapping::Affine { bits } = ty.mapping() {
                    let a = affine(ty, &raw, bits as u32);
                    assert_eq!(a.words.len(), 3 * n * bits as usize / 32);
                    assert_eq!(a.scales.len(), 3 * n / 32);
                }
            }
        }
    }

    #[test]
    fn memory_bits_follow_the_mapping() {
        assert_eq!(GgmlType::Q4_K.file_bits_per_weight(), 4.5);
        assert_eq!(GgmlType::Q4_K.mlx_bits_per_weight(), 5.0);
        assert_eq!(GgmlType::Q2_K.file_bits_per_weight(), 2.625);
        assert_eq!(GgmlType::Q2_K.mlx_bits_per_weight(), 7.0);
        assert_eq!(GgmlType::BF16.mlx_bits_per_weight(), 16.0);
    }

    #[test]
    fn block_sizes_match_the_metadata_reader() {
        for ty in ALL {
            let id = (0..40).find(|&i| GgmlType::from_id(i) == Some(ty)).unwrap();
            let (n, bytes) = ty.block();
            assert_eq!(
                minibar_text::gguf::ggml_block_size(id),
                Some((n as u64, bytes as u64)),
                "{}",
                ty.name()
            );
        }
    }
}
