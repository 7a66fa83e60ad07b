//! The GGUF tensor loader against damaged files: mutations of a small GGUF holding one tensor of
//! every type Minibar reads (K-quants, IQ4_NL, Q5_1, BF16, F32) load or fail with an error,
//! never a panic (sizes, offsets, dimensions and type ids all come from the file). 10,000
//! cases as every fuzz target here: about 15-30 s, each case a file written and loaded.

use minibar_engine::weights::gguf;
use minibar_fuzz::{byte_mutations, fuzz};

fn string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// A GGUF v3 file: llama metadata, and one row of each type (ggml id, bytes per row of 256).
fn seed() -> Vec<u8> {
    // (Q and K rows would be un-permuted per head: a single row is no head, so none here.)
    let tensors: &[(&str, u32, usize, usize)] = &[
        ("token_embd.weight", 12, 144, 2), // Q4_K, 2 rows: the vocabulary
        ("output.weight", 7, 8 * 24, 2),   // Q5_1
        ("output_norm.weight", 0, 1024, 0),
        ("blk.0.attn_norm.weight", 0, 1024, 0),
        ("blk.0.ffn_norm.weight", 30, 512, 0),    // BF16
        ("blk.0.attn_v.weight", 10, 84, 1),       // Q2_K
        ("blk.0.attn_output.weight", 11, 110, 1), // Q3_K
        ("blk.0.ffn_gate.weight", 13, 176, 1),    // Q5_K
        ("blk.0.ffn_up.weight", 14, 210, 1),      // Q6_K
        ("blk.0.ffn_down.weight", 20, 8 * 18, 1), // IQ4_NL
    ];
    let mut out = Vec::new();
    out.extend_from_slice(b"GGUF");
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    let kv_u32 = [
        ("llama.block_count", 1u32),
        ("llama.embedding_length", 256),
        ("llama.feed_forward_length", 256),
        ("llama.attention.head_count", 4),
        ("llama.attention.head_count_kv", 4),
    ];
    out.extend_from_slice(&(kv_u32.len() as u64 + 2).to_le_bytes());
    string(&mut out, "general.architecture");
    out.extend_from_slice(&8u32.to_le_bytes());
    string(&mut out, "llama");
    for (k, v) in kv_u32 {
        string(&mut out, k);
        out.extend_from_slice(&4u32.to_le_bytes());
        out.extend_from_slice(&v.to_le_bytes());
    }
    string(&mut out, "llama.attention.layer_norm_rms_epsilon");
    out.extend_from_slice(&6u32.to_le_bytes());
    out.extend_from_slice(&1e-5f32.to_le_bytes());
    let mut offset = 0u64;
    let mut data = Vec::new();
    for (i, (name, kind, row_bytes, rows)) in tensors.iter().enumerate() {
        string(&mut out, name);
        let dims: Vec<u64> = if *rows == 0 {
            vec![256]
        } else {
            vec![256, *rows as u64]
        };
        out.extend_from_slice(&(dims.len() as u32).to_le_bytes());
        for d in &dims {
            out.extend_from_slice(&d.to_le_bytes());
        }
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&offset.to_le_bytes());
        let len = row_bytes * (*rows).max(1);
        // Small finite f16 scales everywhere a block keeps one: bytes 0x00 0x20 (~1e-2).
        let mut bytes: Vec<u8> = (0..len).map(|j| ((i * 31 + j * 7) % 251) as u8).collect();
        for pair in bytes.chunks_exact_mut(2).step_by(3) {
            pair[1] &= 0x23;
        }
        let padded = len.div_ceil(32) * 32;
        bytes.resize(padded, 0);
        data.extend_from_slice(&bytes);
        offset += padded as u64;
    }
    out.resize(out.len().div_ceil(32) * 32, 0);
    out.extend_from_slice(&data);
    out
}

#[test]
fn fuzz_gguf_tensor_loading() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fuzz.gguf");
    let seed = seed();
    std::fs::write(&path, &seed).unwrap();
    let model = gguf::load(&path).unwrap_or_else(|e| panic!("the seed must load: {e}"));
    assert_eq!(model.tensor_types.len(), 9, "{:?}", model.tensor_types);
    fuzz("GGUF tensors", byte_mutations(seed), |bytes| {
        std::fs::write(&path, &bytes).unwrap();
        gguf::load(&path).is_ok()
    });
}
