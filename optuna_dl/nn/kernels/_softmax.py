"""Softmax cross-entropy fused with the output gradient ``dz = (y_hat - y) / m``."""

from __future__ import annotations

import numpy as np
from numba import njit

from optuna_dl.nn.kernels._flags import FASTMATH, JIT_OPTIONS

# Without "reassoc": it would turn (x - max) - log_sum into x - (max + log_sum), which
# loses the digits of log_sum when the logits are large (1e4 in float32).
OPTIONS = {**JIT_OPTIONS, "fastmath": set(FASTMATH - {"reassoc"})}


@njit(**OPTIONS)
def softmax_cross_entropy(logits, y, dlogits):
    """Fill ``dlogits`` and return the summed (not yet averaged) loss.

    One pass per row for the maximum, one for the log-sum-exp, one for the gradient.
    The per-row losses are summed in float64, as the NumPy reference sums them; every
    array operation stays in the logits' dtype. Raises IndexError for a label outside
    ``[0, n_classes)``.
    """
    m, k = logits.shape
    one = logits.dtype.type(1)
    inv_m = one / logits.dtype.type(m)
    total = 0.0
    for i in range(m):
        label = y[i]
        if label < 0 or label >= k:
            raise IndexError("a label is outside [0, n_classes)")
        top = logits[i, 0]
        for j in range(1, k):
            if logits[i, j] > top or logits[i, j] != logits[i, j]:
                top = logits[i, j]
        s = logits.dtype.type(0)
        for j in range(k):
            shifted = logits[i, j] - top
            dlogits[i, j] = shifted
            s += np.exp(shifted)
        log_sum = np.log(s)
        total -= np.float64(dlogits[i, label] - log_sum)
        for j in range(k):
            dlogits[i, j] = np.exp(dlogits[i, j] - log_sum) * inv_m
        dlogits[i, label] -= inv_m
    return total
