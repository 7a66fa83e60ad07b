"""Quantizes a model folder with mlx-lm's own quantize_model (affine, the given bits and group
size, scales kept in the weights' dtype) and writes the mlx-lm folder that tests load.

usage: python mlx_lm_quantize.py SRC_DIR DST_DIR BITS GROUP_SIZE
"""

import sys
from pathlib import Path

from mlx_lm.utils import load_model, quantize_model, save_config, save_model


def main(src, dst, bits, group):
    model, config = load_model(Path(src))
    model, config = quantize_model(model, config, group, bits)
    save_model(dst, model)
    save_config(config, Path(dst) / "config.json")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
