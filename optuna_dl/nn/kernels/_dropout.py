"""Inverted dropout: mask from uniform draws and the masked output, in one pass."""

from __future__ import annotations

from numba import njit

from optuna_dl.nn.kernels._flags import JIT_OPTIONS


@njit(**JIT_OPTIONS)
def dropout(x, uniform, keep, scale, mask, out):
    """``mask = (uniform < keep) * scale`` and ``out = x * mask``, elementwise."""
    zero = scale - scale
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            factor = scale if uniform[i, j] < keep else zero
            mask[i, j] = factor
            out[i, j] = x[i, j] * factor
