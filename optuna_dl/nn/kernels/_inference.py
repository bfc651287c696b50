"""Folded inference: the bias and activation that follow a GEMM, in one pass."""

from __future__ import annotations

from numba import njit

from optuna_dl.nn.kernels._activation import activate
from optuna_dl.nn.kernels._flags import JIT_OPTIONS


@njit(**JIT_OPTIONS)
def bias_activation(z, b, code, slope):
    """``z = g(z + b)`` in place (``IDENTITY``: ``z = z + b``)."""
    one = b.dtype.type(1)
    half = b.dtype.type(0.5)
    for i in range(z.shape[0]):
        for j in range(z.shape[1]):
            z[i, j] = activate(z[i, j] + b[j], code, slope, one, half)
