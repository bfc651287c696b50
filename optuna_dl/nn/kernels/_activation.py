"""Activations and their derivatives as scalar functions inlined into the kernels.

``code`` selects the activation (``CODES`` maps names to codes); the derivative is
computed from the activation's output, as in ``optuna_dl.nn.activations``. ``one``,
``half`` and ``slope`` arrive in the data's dtype so float32 stays float32.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from optuna_dl.nn.kernels._flags import JIT_OPTIONS

RELU, LEAKY_RELU, TANH, SIGMOID = 0, 1, 2, 3
#: Activation name -> kernel code; an activation missing here runs in NumPy.
CODES = {"relu": RELU, "leaky_relu": LEAKY_RELU, "tanh": TANH, "sigmoid": SIGMOID}


@njit(inline="always", **JIT_OPTIONS)
def activate(z, code, slope, one, half):
    """``g(z)`` for the activation ``code``."""
    if code == RELU:
        # NaN passes through, as through np.maximum; -0.0 and -inf become 0.
        return z if z > 0 or z != z else one - one
    if code == LEAKY_RELU:
        return z if z > 0 else z * slope
    if code == TANH:
        return np.tanh(z)
    return half * (one + np.tanh(z * half))


@njit(inline="always", **JIT_OPTIONS)
def derivative(a, code, slope, one):
    """``g'(z)`` from the output ``a = g(z)``."""
    if code == RELU:
        return one if a > 0 else one - one
    if code == LEAKY_RELU:
        return one if a > 0 else slope
    if code == TANH:
        return one - a * a
    return a * (one - a)
