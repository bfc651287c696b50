"""Activations and their derivatives as scalar functions inlined into the kernels.

``code`` selects the activation (``CODES`` maps names to codes); the derivative is
computed from the activation's output, as in ``optuna_dl.nn.activations``. ``one``,
``half`` and ``slope`` arrive in the data's dtype so float32 stays float32.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from optuna_dl.nn.kernels._flags import JIT_OPTIONS

IDENTITY, RELU, LEAKY_RELU, TANH, SIGMOID = -1, 0, 1, 2, 3
#: Activation name -> kernel code; an activation missing here runs in NumPy.
CODES = {"relu": RELU, "leaky_relu": LEAKY_RELU, "tanh": TANH, "sigmoid": SIGMOID}
#: Activations whose forward pass NumPy computes faster: compiled without a vector math
#: library, tanh is a scalar call per element (about 10x NumPy's SIMD loop on 128 x 256).
#: Kernels apply IDENTITY and leave these to NumPy; their derivatives are arithmetic.
NUMPY_FORWARD = frozenset({"tanh", "sigmoid"})


@njit(inline="always", **JIT_OPTIONS)
def activate(z, code, slope, one, half):
    """``g(z)`` for the activation ``code`` (``IDENTITY``: ``z``)."""
    if code == RELU:
        # NaN passes through, as through np.maximum; -0.0 and -inf become 0.
        return z if z > 0 or z != z else one - one
    if code == LEAKY_RELU:
        # A multiply by a selected factor: a branch per element would not vectorize.
        return z * (one if z > 0 else slope)
    if code == TANH:
        return np.tanh(z)
    if code == SIGMOID:
        return half * (one + np.tanh(z * half))
    return z


@njit(inline="always", **JIT_OPTIONS)
def derivative(a, code, slope, one):
    """``g'(z)`` from the output ``a = g(z)``."""
    if code == RELU:
        return one if a > 0 else one - one
    if code == LEAKY_RELU:
        return one if a > 0 else slope
    if code == TANH:
        return one - a * a
    if code == SIGMOID:
        return a * (one - a)
    return one
