"""Writes a Hugging Face folder (config.json, f32 model.safetensors) from a llama GGUF file,
independently of Minibar: the `gguf` package (llama.cpp's own reader and dequantizer) reads the
tensors, and llama.cpp's Q/K row permutation is undone here. Tests load the result in both
mlx-lm and Minibar to check Minibar's own GGUF path.

usage: python gguf_to_hf.py MODEL.gguf OUT_DIR
"""

import json
import sys
from pathlib import Path

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize
from safetensors.numpy import save_file


def field(reader, key):
    f = reader.fields[key]
    v = f.parts[f.data[0]]
    return v.tobytes().decode() if f.types[0].name == "STRING" else v.item()


def unpermute(w, heads):
    # llama.cpp stores each head's rows interleaved (x0, x(d/2), x1, ...); undo it.
    rows = w.shape[0]
    return w.reshape(heads, rows // heads // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def main(src, out):
    r = GGUFReader(src)
    arch = field(r, "general.architecture")
    heads = field(r, f"{arch}.attention.head_count")
    kv_heads = field(r, f"{arch}.attention.head_count_kv")
    names = {
        "token_embd": "model.embed_tokens",
        "output_norm": "model.norm",
        "output": "lm_head",
        "attn_norm": "input_layernorm",
        "ffn_norm": "post_attention_layernorm",
        "attn_q": "self_attn.q_proj",
        "attn_k": "self_attn.k_proj",
        "attn_v": "self_attn.v_proj",
        "attn_output": "self_attn.o_proj",
        "ffn_gate": "mlp.gate_proj",
        "ffn_up": "mlp.up_proj",
        "ffn_down": "mlp.down_proj",
    }
    tensors = {}
    for t in r.tensors:
        w = dequantize(t.data, t.tensor_type).astype(np.float32)
        shape = tuple(int(d) for d in reversed(t.shape))
        w = w.reshape(shape)
        base, _ = t.name.rsplit(".", 1)
        if base.startswith("blk."):
            _, layer, part = base.split(".", 2)
            hf = f"model.layers.{layer}.{names[part]}"
            if part == "attn_q":
                w = unpermute(w, heads)
            elif part == "attn_k":
                w = unpermute(w, kv_heads)
        else:
            hf = names[base]
        tensors[f"{hf}.weight"] = np.ascontiguousarray(w)
    config = {
        "model_type": arch,
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": field(r, f"{arch}.embedding_length"),
        "num_hidden_layers": field(r, f"{arch}.block_count"),
        "intermediate_size": field(r, f"{arch}.feed_forward_length"),
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "rms_norm_eps": field(r, f"{arch}.attention.layer_norm_rms_epsilon"),
        "rope_theta": field(r, f"{arch}.rope.freq_base"),
        "max_position_embeddings": field(r, f"{arch}.context_length"),
        "vocab_size": tensors["model.embed_tokens.weight"].shape[0],
        "tie_word_embeddings": "lm_head.weight" not in tensors,
        "torch_dtype": "float32",
    }
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(config, indent=2))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
