"""Hidden-layer activations, looked up by name.

``ACTIVATIONS[name](Z)`` overwrites ``Z`` with ``g(Z)`` and returns it.
``DERIVATIVES[name](A, dA)`` overwrites ``dA`` with ``dA * g'(Z)``, computed from the
activation's *output* ``A = g(Z)``, so the pre-activation never has to be kept.
Adding an activation is adding one entry to each table.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

LEAKY_RELU_SLOPE = 0.01

Array = np.ndarray


def relu(z: Array) -> Array:
    """Rectified linear unit, ``max(z, 0)``, in place."""
    return np.maximum(z, 0, out=z)


def relu_derivative(a: Array, da: Array) -> Array:
    """``da * (a > 0)``, in place on ``da``."""
    da *= a > 0  # five times faster than masked assignment
    return da


def leaky_relu(z: Array) -> Array:
    """``max(z, 0.01 z)``, in place."""
    return np.maximum(z, LEAKY_RELU_SLOPE * z, out=z)


def leaky_relu_derivative(a: Array, da: Array) -> Array:
    """``da * (1 if a > 0 else 0.01)``, in place on ``da`` (the sign of a is z's)."""
    da *= np.where(a > 0, da.dtype.type(1), da.dtype.type(LEAKY_RELU_SLOPE))
    return da


def tanh(z: Array) -> Array:
    """Hyperbolic tangent, in place."""
    return np.tanh(z, out=z)


def tanh_derivative(a: Array, da: Array) -> Array:
    """``da * (1 - a**2)``, in place on ``da``."""
    da *= 1 - a * a
    return da


def sigmoid(z: Array) -> Array:
    """Logistic function through ``0.5 * (1 + tanh(z / 2))``: never overflows."""
    z *= 0.5
    np.tanh(z, out=z)
    z += 1
    z *= 0.5
    return z


def sigmoid_derivative(a: Array, da: Array) -> Array:
    """``da * a * (1 - a)``, in place on ``da``."""
    da *= a * (1 - a)
    return da


ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "relu": relu,
    "leaky_relu": leaky_relu,
    "tanh": tanh,
    "sigmoid": sigmoid,
}

DERIVATIVES: dict[str, Callable[[Array, Array], Array]] = {
    "relu": relu_derivative,
    "leaky_relu": leaky_relu_derivative,
    "tanh": tanh_derivative,
    "sigmoid": sigmoid_derivative,
}
