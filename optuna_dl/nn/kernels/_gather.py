"""The mini-batch gather: rows of ``X`` by an index array, into a preallocated buffer."""

from __future__ import annotations

from numba import njit

from optuna_dl.nn.kernels._flags import JIT_OPTIONS


@njit(**JIT_OPTIONS)
def take_rows(X, rows, out):
    """``out[r] = X[rows[r]]`` for every ``r``; IndexError for a row outside ``X``."""
    n, d = X.shape
    for r in range(rows.size):
        source = rows[r]
        if source < 0:
            source += n
        if source < 0 or source >= n:
            raise IndexError("a row index is outside X")
        for j in range(d):
            out[r, j] = X[source, j]
