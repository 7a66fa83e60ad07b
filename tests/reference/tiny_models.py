"""Builds tiny random-weight models of every architecture Minibar supports with mlx-lm's own
model classes, writes each as an mlx-lm folder (config.json + model.safetensors), and records
mlx-lm's next-token logits and greedy continuation for a fixed prompt in reference.json.

usage: python tiny_models.py OUT_DIR
"""

import json
import sys
from pathlib import Path

import mlx.core as mx
import mlx_compat  # noqa: F401  (before mlx-lm runs a model)
import mlx.nn as nn
from mlx.utils import tree_flatten
from mlx_lm.models.cache import make_prompt_cache
from mlx_lm.utils import _get_classes, load_model, quantize_model

BASE = dict(
    hidden_size=64,
    num_hidden_layers=3,
    intermediate_size=128,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    vocab_size=256,
    rms_norm_eps=1e-5,
    max_position_embeddings=512,
)

CONFIGS = {
    "llama": dict(model_type="llama", rope_theta=10000.0, tie_word_embeddings=True),
    "llama3-scaled": dict(
        model_type="llama",
        rope_theta=500000.0,
        tie_word_embeddings=False,
        rope_scaling=dict(
            rope_type="llama3",
            factor=8.0,
            low_freq_factor=1.0,
            high_freq_factor=4.0,
            original_max_position_embeddings=64,
        ),
    ),
    "mistral": dict(model_type="mistral", rope_theta=1e6, tie_word_embeddings=False),
    "qwen2": dict(model_type="qwen2", rope_theta=1e6, tie_word_embeddings=True),
    "qwen3": dict(model_type="qwen3", rope_theta=1e6, tie_word_embeddings=True),
    "gemma3": dict(
        model_type="gemma3_text",
        rope_theta=1e6,
        rope_local_base_freq=10000.0,
        sliding_window=8,
        sliding_window_pattern=2,
        query_pre_attn_scalar=16,
        num_key_value_heads=1,
    ),
    "phi3": dict(model_type="phi3", rope_theta=10000.0, tie_word_embeddings=False),
    # Rotary variants: partial rotation with long-rope factors and attention scale, and the
    # traditional (interleaved) layout with linear scaling.
    "phi3-longrope": dict(
        model_type="phi3",
        rope_theta=10000.0,
        tie_word_embeddings=False,
        partial_rotary_factor=0.5,
        original_max_position_embeddings=64,
        rope_scaling=dict(
            type="longrope",
            short_factor=[1.0, 1.1, 1.2, 1.3],
            long_factor=[1.0, 1.5, 2.5, 4.0],
        ),
    ),
    "llama-traditional": dict(
        model_type="llama",
        rope_theta=10000.0,
        tie_word_embeddings=True,
        rope_traditional=True,
        rope_scaling=dict(type="linear", factor=2.0),
    ),
    # YaRN (gpt-oss's rotary scaling) on Llama: interpolated, ramped and kept frequencies.
    "llama-yarn": dict(
        model_type="llama",
        rope_theta=10000.0,
        tie_word_embeddings=True,
        rope_scaling=dict(
            rope_type="yarn",
            factor=4.0,
            original_max_position_embeddings=64,
            beta_fast=32.0,
            beta_slow=1.0,
        ),
    ),
    # gpt-oss: sinks, sliding (8) and full layers alternating, YaRN as released, 4 experts.
    "gpt_oss": dict(
        model_type="gpt_oss",
        num_hidden_layers=4,
        num_local_experts=4,
        num_experts_per_tok=2,
        sliding_window=8,
        rope_theta=150000,
        rope_scaling=dict(
            rope_type="yarn",
            factor=32.0,
            original_max_position_embeddings=4096,
            beta_fast=32.0,
            beta_slow=1.0,
            truncate=False,
        ),
        layer_types=["sliding_attention", "full_attention"] * 2,
        tie_word_embeddings=False,
    ),
    # Mixture of experts: layer 1 keeps a dense MLP; prompts route 40 choices (unsorted).
    "qwen3_moe": dict(
        model_type="qwen3_moe",
        rope_theta=1e6,
        tie_word_embeddings=False,
        num_experts=4,
        num_experts_per_tok=2,
        moe_intermediate_size=32,
        decoder_sparse_step=1,
        mlp_only_layers=[1],
        norm_topk_prob=True,
    ),
    # Every second layer sparse, 4 of 8 experts unnormalised: 80 choices, sorted by expert.
    "qwen3_moe-step2": dict(
        model_type="qwen3_moe",
        rope_theta=1e6,
        tie_word_embeddings=True,
        num_experts=8,
        num_experts_per_tok=4,
        moe_intermediate_size=32,
        decoder_sparse_step=2,
        mlp_only_layers=[],
        norm_topk_prob=False,
    ),
}
QUANTIZED = {"llama-q4": ("llama", 4, 32), "qwen3-q8": ("qwen3", 8, 32)}
# Quantized as mlx_lm.convert does (the model's quant_predicate: the router keeps 8 bits).
CONVERTED = {"qwen3_moe-q4": ("qwen3_moe", 4, 32)}
# Saved as Hugging Face checkpoints store experts (one matrix each), which mlx-lm stacks.
UNSTACKED = {"qwen3_moe-hf": "qwen3_moe"}
# gpt-oss as mlx-community publishes it: experts in mxfp4, the router 8-bit in groups of 64
# (the model's quant_predicate), everything else affine 8-bit.
MXFP4_EXPERTS = {"gpt_oss-mxfp4": "gpt_oss"}
# gpt-oss as OpenAI releases it: mxfp4 experts (the rest dense) stored as bytes, gate and up
# interleaved row by row in one gate_up_proj (mlx-lm's sanitize undoes both).
OPENAI_LAYOUT = {"gpt_oss-hf": "gpt_oss"}
MXFP4 = {"group_size": 32, "bits": 4, "mode": "mxfp4"}
PROMPT = [3, 17, 42, 7, 99, 128, 5, 64, 200, 11, 31, 250, 77, 8, 19, 144, 90, 2, 61, 33]
GREEDY = 64


def build(name, spec):
    config = {**BASE, **spec}
    model_class, args_class = _get_classes(config)
    model = model_class(args_class.from_dict(config))
    # Larger-than-default weights make the logits peaked, so greedy choices are not ties.
    mx.random.seed(sum(map(ord, name)))
    params = tree_flatten(model.parameters())
    new = []
    for k, v in params:
        if k.endswith("norm.weight"):
            new.append((k, mx.random.uniform(0.5, 1.5, v.shape) if "gemma" not in name else mx.random.uniform(-0.3, 0.3, v.shape)))
        elif k.endswith("bias"):
            new.append((k, mx.random.normal(v.shape) * 0.1))
        else:
            fan_in = v.shape[-1]
            scale = 1.0 if "embed" in k else 1.5 / fan_in**0.5
            new.append((k, mx.random.normal(v.shape) * scale))
    model.load_weights(new)
    return model, config


def reference(model):
    cache = make_prompt_cache(model)
    logits = model(mx.array(PROMPT)[None], cache=cache)[0, -1].astype(mx.float32)
    first = logits
    tokens = []
    for _ in range(GREEDY):
        tok = int(mx.argmax(logits).item())
        tokens.append(tok)
        logits = model(mx.array([[tok]]), cache=cache)[0, -1].astype(mx.float32)
    return {"prompt": PROMPT, "logits": first.tolist(), "greedy": tokens}


def unstack_experts(weights):
    out = {}
    for k, v in weights.items():
        if ".switch_mlp." in k:
            for e in range(v.shape[0]):
                out[k.replace(".switch_mlp.", f".experts.{e}.")] = v[e]
        else:
            out[k] = v
    return out


def save(model, config, out, unstacked=False):
    out.mkdir(parents=True, exist_ok=True)
    weights = dict(tree_flatten(model.parameters()))
    if unstacked:
        weights = unstack_experts(weights)
    mx.save_safetensors(str(out / "model.safetensors"), weights, metadata={"format": "mlx"})
    (out / "config.json").write_text(json.dumps(config, indent=2))
    (out / "reference.json").write_text(json.dumps(reference(model)))


def mxfp4_experts(path, module):
    if ".experts." in path:
        return {"group_size": 32, "bits": 4, "mode": "mxfp4"}
    if path.endswith("router"):
        return {"group_size": 64, "bits": 8}
    return True


def openai_layout(weights):
    """mlx-lm's gpt-oss weights in the layout of OpenAI's checkpoints."""

    def blocks(w):  # u32 [.., out, in / 8] -> u8 [.., out, in / 32, 16]
        return w.view(mx.uint8).reshape(*w.shape[:-1], -1, 16)

    def interleave(gate, up, axis):
        both = mx.stack([gate, up], axis=axis)
        shape = list(gate.shape)
        shape[axis] *= 2
        return both.reshape(shape)

    out = {}
    for k, v in weights.items():
        if ".experts.up_proj." in k:
            continue
        if ".experts.gate_proj." in k:
            up = weights[k.replace("gate_proj", "up_proj")]
            base = k.replace("gate_proj", "gate_up_proj").rsplit(".", 1)[0]
            kind = k.rsplit(".", 1)[1]
            if kind == "bias":
                out[base + "_bias"] = interleave(v, up, -1)
            elif kind == "scales":
                out[base + "_scales"] = interleave(v, up, -2)
            else:
                out[base + "_blocks"] = blocks(interleave(v, up, -2))
        elif ".experts.down_proj." in k:
            base, kind = k.rsplit(".", 1)
            suffix = {"bias": "_bias", "scales": "_scales", "weight": "_blocks"}[kind]
            out[base + suffix] = blocks(v) if kind == "weight" else v
        else:
            out[k] = v
    return out


def save_openai_layout(model, config, out):
    out.mkdir(parents=True, exist_ok=True)
    weights = openai_layout(dict(tree_flatten(model.parameters())))
    mx.save_safetensors(str(out / "model.safetensors"), weights)
    config = {k: v for k, v in config.items() if k != "quantization"}
    config["quantization_config"] = {"quant_method": "mxfp4"}
    (out / "config.json").write_text(json.dumps(config, indent=2))
    expected = reference(model)
    # mlx-lm itself reads the folder back (through its sanitize) to the same logits.
    loaded, _ = load_model(out)
    logits = loaded(mx.array(PROMPT)[None], cache=make_prompt_cache(loaded))[0, -1]
    assert mx.allclose(logits, mx.array(expected["logits"]), atol=1e-5), "layout round trip"
    (out / "reference.json").write_text(json.dumps(expected))


def main(root):
    root = Path(root)
    for name, spec in CONFIGS.items():
        model, config = build(name, spec)
        save(model, config, root / name)
    for name, (base, bits, group) in QUANTIZED.items():
        model, config = build(base, CONFIGS[base])
        nn.quantize(model, group_size=group, bits=bits)
        config = {**config, "quantization": {"group_size": group, "bits": bits, "mode": "affine"}}
        save(model, config, root / name)
    for name, (base, bits, group) in CONVERTED.items():
        model, config = build(base, CONFIGS[base])
        model, config = quantize_model(model, config, group, bits)
        save(model, config, root / name)
    for name, base in MXFP4_EXPERTS.items():
        model, config = build(base, CONFIGS[base])
        model, config = quantize_model(model, config, 32, 8, quant_predicate=mxfp4_experts)
        save(model, config, root / name)
    for name, base in OPENAI_LAYOUT.items():
        model, config = build(base, CONFIGS[base])
        nn.quantize(
            model,
            class_predicate=lambda p, m: hasattr(m, "to_quantized") and ".experts." in p and MXFP4,
        )
        save_openai_layout(model, config, root / name)
    for name, base in UNSTACKED.items():
        model, config = build(base, CONFIGS[base])
        save(model, config, root / name, unstacked=True)


if __name__ == "__main__":
    main(sys.argv[1])
