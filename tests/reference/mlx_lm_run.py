"""Runs mlx-lm, the reference implementation, on token ids and prints what Minibar's tests
compare against, as JSON: the last position's logits (f32) and greedy continuation tokens.

usage: python mlx_lm_run.py MODEL_DIR '[1, 2, 3]' N_GREEDY [--f32]

--f32 casts every floating-point parameter (quantization scales and biases too) to float32,
which is the dtype policy Minibar applies on MLX's CPU backend.
"""

import json
import sys
from pathlib import Path

import mlx.core as mx
import mlx_compat  # noqa: F401  (before mlx-lm runs a model)
from mlx_lm.models.cache import make_prompt_cache
from mlx_lm.utils import load_model


def main(model_dir, ids, n, f32):
    model, _ = load_model(Path(model_dir))
    if f32:
        model.set_dtype(mx.float32)
    cache = make_prompt_cache(model)
    prompt = mx.array(ids)[None]
    logits = model(prompt, cache=cache)[0, -1].astype(mx.float32)
    first = logits
    tokens = []
    for _ in range(n):
        tok = int(mx.argmax(logits).item())
        tokens.append(tok)
        logits = model(mx.array([[tok]]), cache=cache)[0, -1].astype(mx.float32)
    print(json.dumps({"logits": first.tolist(), "greedy": tokens}))


if __name__ == "__main__":
    main(sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), "--f32" in sys.argv[4:])
