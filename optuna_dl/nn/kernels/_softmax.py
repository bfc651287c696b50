"""Softmax cross-entropy fused with the output gradient ``dz = (y_hat - y) / m``."""

from __future__ import annotations

import numpy as np
from numba import njit

from optuna_dl.nn.kernels._flags import JIT_OPTIONS


@njit(**JIT_OPTIONS)
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
            s += np.exp(logits[i, j] - top)
        log_sum = np.log(s)
        for j in range(k):
            log_p = logits[i, j] - top - log_sum
            dlogits[i, j] = np.exp(log_p) * inv_m
        log_p_label = logits[i, label] - top - log_sum
        dlogits[i, label] -= inv_m
        total -= np.float64(log_p_label)
    return total
