"""Builds the GGUF fixtures of the engine's GGUF test and llama.cpp's answers for them.

- SmolLM2-135M (the default Q4_1 GGUF) re-quantized by llama.cpp itself
  (`llama_model_quantize`, allow_requantize) so that every type Minibar maps appears: F16,
  BF16, IQ4_NL, Q2_K and Q3_K (pure), Q4_K_M, Q5_K_M (SmolLM2's 576-wide rows are not a
  multiple of 256, so llama.cpp falls back to Q4_0/Q5_0/Q5_1/Q8_0 there: K-quants land on
  ffn_down).
- Small random-weight gemma3, phi3 and llama (with Llama 3.1 `rope_freqs`) GGUFs written with
  the `gguf` package, laid out as llama.cpp's converter lays out real ones (gemma norms stored
  as 1 + w, phi3 fused attn_qkv and gate+up ffn_up, llama Q/K rows permuted).

For each model: llama.cpp's logits at every position of a few prompts (f32 KV cache, no flash
attention), written as raw little-endian f32 `[positions, vocab]` per prompt; and for each
quantized GGUF type in a file, one tensor dequantized by `gguf.quants` (llama.cpp's own
reference), as raw f32. `reference.json` indexes it all.

usage: python gguf_quants.py DEFAULT.gguf OUT_DIR
"""

import json
import math
import sys
from pathlib import Path

import numpy as np
import gguf
from gguf import GGUFReader, GGUFWriter, GGMLQuantizationType
from gguf.quants import dequantize
import llama_cpp

# Each GGUF type lands in at least one file (the mixes hold several: Q4_K_M has Q4_K, Q6_K,
# Q5_0 and Q8_0; Q5_K_M has Q5_K and Q5_1; IQ4_NL has Q5_K; Q2_K and Q3_K have Q4_0).
FTYPES = {
    "F16": llama_cpp.LLAMA_FTYPE_MOSTLY_F16,
    "BF16": llama_cpp.LLAMA_FTYPE_MOSTLY_BF16,
    "IQ4_NL": llama_cpp.LLAMA_FTYPE_MOSTLY_IQ4_NL,
    "Q2_K": llama_cpp.LLAMA_FTYPE_MOSTLY_Q2_K,
    "Q3_K": llama_cpp.LLAMA_FTYPE_MOSTLY_Q3_K_S,
    "Q4_K_M": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M,
    "Q5_K_M": llama_cpp.LLAMA_FTYPE_MOSTLY_Q5_K_M,
}

SMOLLM2_PROMPTS = [
    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
    "The quick brown fox jumps over the lazy dog, and then",
]


def quantize(src, dst, ftype):
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.allow_requantize = True
    # The Q2_K and Q3_K_S mixes put other K-quants where SmolLM2's rows allow them; "pure"
    # keeps Q2_K and Q3_K there.
    params.pure = ftype in (llama_cpp.LLAMA_FTYPE_MOSTLY_Q2_K, llama_cpp.LLAMA_FTYPE_MOSTLY_Q3_K_S)
    params.nthread = 2
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), params)
    if rc != 0:
        raise SystemExit(f"llama_model_quantize {dst.name} failed: {rc}")


def run_llama_cpp(path, prompts):
    """llama.cpp's logits at every position of each prompt."""
    llm = llama_cpp.Llama(
        model_path=str(path),
        n_ctx=128,
        n_batch=128,
        n_threads=2,
        n_threads_batch=2,
        logits_all=True,
        verbose=False,
        type_k=0,  # GGML_TYPE_F32
        type_v=0,
        flash_attn=False,
    )
    out = []
    for ids in prompts:
        llm.reset()
        llm.eval(ids)
        out.append(np.array(llm.scores[: len(ids)], dtype=np.float32))
    del llm
    return out


def dequant_samples(path, out, stem):
    """Per quantized type, its smallest matrix dequantized by gguf.quants (none over 4M weights:
    a type found only in the embedding table is checked in another file)."""
    r = GGUFReader(str(path))
    smallest = {}
    for t in r.tensors:
        kind = t.tensor_type.name
        if kind == "F32" or len(t.shape) != 2 or t.n_elements > 4_000_000:
            continue
        if kind not in smallest or t.n_elements < smallest[kind].n_elements:
            smallest[kind] = t
    seen = {}
    for kind, t in sorted(smallest.items()):
        values = dequantize(t.data, t.tensor_type).astype(np.float32)
        file = f"dq-{stem}-{kind}.f32"
        values.tofile(out / file)
        seen[kind] = {"tensor": t.name, "file": file, "shape": list(values.shape)}
    types = {}
    for t in r.tensors:
        types[t.tensor_type.name] = types.get(t.tensor_type.name, 0) + 1
    return seen, types


def record(out, stem, path, prompts, index):
    logits = run_llama_cpp(path, prompts)
    files = []
    for i, l in enumerate(logits):
        name = f"logits-{stem}-{i}.f32"
        l.tofile(out / name)
        files.append(name)
    samples, types = dequant_samples(path, out, stem)
    index["models"][stem] = {
        "file": path.name if path.parent == out else None,
        "prompts": prompts,
        "vocab": int(logits[0].shape[1]),
        "logits": files,
        "dequant": samples,
        "types": types,
    }


# ---- small random-weight models, laid out as llama.cpp's converter lays them out ----

VOCAB = 320


def spm_vocab(w):
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    tokens += [f"t{i}" for i in range(VOCAB - len(tokens))]
    types = [2, 3, 3] + [6] * 256 + [1] * (VOCAB - 259)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores([-float(i) for i in range(VOCAB)])
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)


def rand(rng, *shape, scale=0.08):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def write_tiny(path, arch, hidden, heads, kv, head_dim, ff, layers, extra, tensors_fn):
    rng = np.random.default_rng(sum(map(ord, arch)))
    w = GGUFWriter(str(path), arch)
    w.add_context_length(4096)
    w.add_embedding_length(hidden)
    w.add_block_count(layers)
    w.add_feed_forward_length(ff)
    w.add_head_count(heads)
    w.add_head_count_kv(kv)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
    extra(w)
    spm_vocab(w)
    for name, value in tensors_fn(rng):
        w.add_tensor(name, value)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def tiny_gemma3(path):
    hidden, heads, kv, hd, ff, layers = 64, 4, 2, 16, 128, 6

    def extra(w):
        w.add_rope_freq_base(1_000_000.0)
        w.add_sliding_window(4)
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(8.0)

    def tensors(rng):
        norm = lambda n: (1.0 + rand(rng, n, scale=0.3)).astype(np.float32)
        yield "token_embd.weight", rand(rng, VOCAB, hidden, scale=0.5)
        yield "output_norm.weight", norm(hidden)
        for i in range(layers):
            p = f"blk.{i}."
            yield p + "attn_norm.weight", norm(hidden)
            yield p + "attn_q.weight", rand(rng, heads * hd, hidden)
            yield p + "attn_k.weight", rand(rng, kv * hd, hidden)
            yield p + "attn_v.weight", rand(rng, kv * hd, hidden)
            yield p + "attn_q_norm.weight", norm(hd)
            yield p + "attn_k_norm.weight", norm(hd)
            yield p + "attn_output.weight", rand(rng, hidden, heads * hd)
            yield p + "post_attention_norm.weight", norm(hidden)
            yield p + "ffn_norm.weight", norm(hidden)
            yield p + "ffn_gate.weight", rand(rng, ff, hidden)
            yield p + "ffn_up.weight", rand(rng, ff, hidden)
            yield p + "ffn_down.weight", rand(rng, hidden, ff)
            yield p + "post_ffw_norm.weight", norm(hidden)

    write_tiny(path, "gemma3", hidden, heads, kv, hd, ff, layers, extra, tensors)


def tiny_phi3(path):
    hidden, heads, kv, hd, ff, layers = 64, 4, 2, 16, 128, 2

    def extra(w):
        w.add_rope_freq_base(10000.0)
        w.add_rope_dimension_count(12)  # partial rotary, as Phi-4-mini (0.75)

    def tensors(rng):
        yield "token_embd.weight", rand(rng, VOCAB, hidden, scale=0.5)
        yield "output_norm.weight", (1.0 + rand(rng, hidden, scale=0.2))
        yield "output.weight", rand(rng, VOCAB, hidden)
        for i in range(layers):
            p = f"blk.{i}."
            yield p + "attn_norm.weight", (1.0 + rand(rng, hidden, scale=0.2))
            yield p + "attn_qkv.weight", rand(rng, (heads + 2 * kv) * hd, hidden)
            yield p + "attn_output.weight", rand(rng, hidden, heads * hd)
            yield p + "ffn_norm.weight", (1.0 + rand(rng, hidden, scale=0.2))
            yield p + "ffn_up.weight", rand(rng, 2 * ff, hidden)
            yield p + "ffn_down.weight", rand(rng, hidden, ff)

    write_tiny(path, "phi3", hidden, heads, kv, hd, ff, layers, extra, tensors)


def llama3_factors(head_dim, base, factor=8.0, low=1.0, high=4.0, old=8192.0):
    """convert_hf_to_gguf.py's rope_freqs for Llama 3.1 (`rope_scaling.rope_type == llama3`)."""
    out = []
    for i in range(0, head_dim, 2):
        freq = 1.0 / (base ** (i / head_dim))
        wavelen = 2 * math.pi / freq
        if wavelen < old / high:
            out.append(1.0)
        elif wavelen > old / low:
            out.append(factor)
        else:
            smooth = (old / wavelen - low) / (high - low)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


def tiny_llama_rope(path):
    hidden, heads, kv, hd, ff, layers = 64, 4, 2, 16, 128, 2

    def extra(w):
        w.add_rope_freq_base(500000.0)
        w.add_rope_dimension_count(hd)

    def tensors(rng):
        yield "token_embd.weight", rand(rng, VOCAB, hidden, scale=0.5)
        yield "output_norm.weight", (1.0 + rand(rng, hidden, scale=0.2))
        yield "output.weight", rand(rng, VOCAB, hidden)
        yield "rope_freqs.weight", llama3_factors(hd, 500000.0)
        for i in range(layers):
            p = f"blk.{i}."
            yield p + "attn_norm.weight", (1.0 + rand(rng, hidden, scale=0.2))
            # Random rows are as good permuted as not: written as llama.cpp stores them.
            yield p + "attn_q.weight", rand(rng, heads * hd, hidden)
            yield p + "attn_k.weight", rand(rng, kv * hd, hidden)
            yield p + "attn_v.weight", rand(rng, kv * hd, hidden)
            yield p + "attn_output.weight", rand(rng, hidden, heads * hd)
            yield p + "ffn_norm.weight", (1.0 + rand(rng, hidden, scale=0.2))
            yield p + "ffn_gate.weight", rand(rng, ff, hidden)
            yield p + "ffn_up.weight", rand(rng, ff, hidden)
            yield p + "ffn_down.weight", rand(rng, hidden, ff)

    write_tiny(path, "llama", hidden, heads, kv, hd, ff, layers, extra, tensors)


def main(src, out):
    src, out = Path(src), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    index = {"models": {}}

    # SmolLM2's prompts through its own tokenizer (llama.cpp's).
    tok = llama_cpp.Llama(model_path=str(src), vocab_only=True, verbose=False)
    prompts = [tok.tokenize(p.encode(), add_bos=False, special=True) for p in SMOLLM2_PROMPTS]
    del tok
    record(out, "smollm2-Q4_1", src, prompts, index)
    for name, ftype in FTYPES.items():
        path = out / f"smollm2-{name}.gguf"
        quantize(src, path, ftype)
        record(out, f"smollm2-{name}", path, prompts, index)

    rng = np.random.default_rng(7)
    tiny_prompts = [[int(x) for x in rng.integers(3, VOCAB, size=12)] for _ in range(3)]
    for stem, build in [
        ("tiny-gemma3", tiny_gemma3),
        ("tiny-phi3", tiny_phi3),
        ("tiny-llama-rope", tiny_llama_rope),
    ]:
        path = out / f"{stem}.gguf"
        build(path)
        record(out, stem, path, tiny_prompts, index)

    (out / "reference.json").write_text(json.dumps(index, indent=1))


if __name__ == "__main__":
    main(*sys.argv[1:])
