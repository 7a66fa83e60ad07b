"""Imported by the reference scripts before they run mlx-lm: makes mlx-lm 0.32.2 run on MLX
0.32.2 where the two disagree.

mlx-lm's QuantizedSwitchLinear (quantized mixture-of-experts layers) passes `global_scale=` to
`mx.gather_qmm`, which MLX 0.32.2 does not take; it is None except for nvfp4 experts quantized
with a per-expert tensor scale, which Minibar's tests do not make.
"""

import mlx.core as mx

_gather_qmm = mx.gather_qmm


def _gather_qmm_compat(*args, global_scale=None, **kwargs):
    if global_scale is not None:
        raise NotImplementedError("MLX 0.32.2's gather_qmm has no global_scale")
    return _gather_qmm(*args, **kwargs)


try:
    _gather_qmm(
        mx.zeros((1, 32)),
        *mx.quantize(mx.zeros((1, 32, 32)), 32, 4)[:2],
        mx.zeros((1, 32, 1)),
        rhs_indices=mx.array([0]),
        global_scale=None,
    )
except TypeError:
    mx.gather_qmm = _gather_qmm_compat
