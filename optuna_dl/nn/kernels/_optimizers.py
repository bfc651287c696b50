"""Optimizer updates as one fused loop over a flat parameter vector.

Each kernel reads every array once and writes it once. The scalars arrive already
converted to the arrays' dtype (see ``optuna_dl.nn.kernels``), so float32 arithmetic
never widens to float64.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from optuna_dl.nn.kernels._flags import JIT_OPTIONS


@njit(**JIT_OPTIONS)
def sgd(param, grad, learning_rate):
    """``param -= learning_rate * grad``."""
    for i in range(param.size):
        param[i] -= grad[i] * learning_rate


@njit(**JIT_OPTIONS)
def momentum(param, grad, velocity, one_minus_beta, learning_rate):
    """``v += (1 - beta) * (grad - v)``; ``param -= learning_rate * v``."""
    for i in range(param.size):
        v = velocity[i] + (grad[i] - velocity[i]) * one_minus_beta
        velocity[i] = v
        param[i] -= v * learning_rate


@njit(**JIT_OPTIONS)
def rmsprop(param, grad, square_average, one_minus_beta2, epsilon, learning_rate):
    """``s += (1 - beta2) * (grad**2 - s)``; ``param -= lr * grad / (sqrt(s) + eps)``."""
    for i in range(param.size):
        g = grad[i]
        s = square_average[i] + (g * g - square_average[i]) * one_minus_beta2
        square_average[i] = s
        param[i] -= g / (np.sqrt(s) + epsilon) * learning_rate


@njit(**JIT_OPTIONS)
def adam(param, grad, first, second, one_minus_beta1, one_minus_beta2, epsilon_hat, step_size):
    """Adam in the bias-correction-free form of ``optuna_dl.nn.optimizers.Adam``."""
    for i in range(param.size):
        g = grad[i]
        v = first[i] + (g - first[i]) * one_minus_beta1
        s = second[i] + (g * g - second[i]) * one_minus_beta2
        first[i] = v
        second[i] = s
        param[i] -= v / (np.sqrt(s) + epsilon_hat) * step_size
