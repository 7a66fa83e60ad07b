"""Quantizes a model folder with mlx-lm's own quantize_model in one of MLX's modes (affine,
mxfp4, mxfp8, nvfp4) or with one of mlx-lm's mixed-precision recipes (mixed_2_6, mixed_3_4,
mixed_3_6, mixed_4_6, through mlx_lm.convert's mixed_quant_predicate_builder), writes the
mlx-lm folder, and records mlx-lm's bits per weight in DST_DIR/reference.json.

usage: python mlx_lm_quantize_mode.py SRC_DIR DST_DIR MODE_OR_RECIPE GROUP_SIZE

GROUP_SIZE 0 means the mode's default (what `mlx_lm.convert --q-mode MODE` uses).
"""

import json
import sys
from pathlib import Path

from mlx_lm.convert import QUANT_RECIPES, mixed_quant_predicate_builder
from mlx_lm.utils import (
    compute_bits_per_weight,
    load_model,
    quantize_model,
    save_config,
    save_model,
)


def main(src, dst, what, group):
    model, config = load_model(Path(src))
    group = group or None
    if what in QUANT_RECIPES:
        predicate = mixed_quant_predicate_builder(what, model, group)
        model, config = quantize_model(
            model, config, group, None, mode="affine", quant_predicate=predicate
        )
    else:
        model, config = quantize_model(model, config, group, None, mode=what)
    save_model(dst, model)
    save_config(config, Path(dst) / "config.json")
    with open(Path(dst) / "reference.json", "w") as f:
        json.dump({"bits_per_weight": compute_bits_per_weight(model)}, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
