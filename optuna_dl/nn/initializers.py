"""Weight initialization from a ``numpy.random.Generator``."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np


def he_normal(fan_in: int, fan_out: int, rng: np.random.Generator, dtype: np.dtype) -> np.ndarray:
    """He et al. (2015): normal with standard deviation ``sqrt(2 / fan_in)``."""
    weights = rng.standard_normal((fan_in, fan_out), dtype=np.float64)
    return (weights * math.sqrt(2.0 / fan_in)).astype(dtype)


def glorot_uniform(
    fan_in: int, fan_out: int, rng: np.random.Generator, dtype: np.dtype
) -> np.ndarray:
    """Glorot and Bengio (2010): uniform on ``+-sqrt(6 / (fan_in + fan_out))``."""
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, (fan_in, fan_out)).astype(dtype)


def fan_in_uniform(
    fan_in: int, fan_out: int, rng: np.random.Generator, dtype: np.dtype
) -> np.ndarray:
    """Uniform on ``+-1 / sqrt(fan_in)``, PyTorch's default for ``nn.Linear``.

    In front of batch norm the weight scale does not change the layer's output, but it
    does set the effective learning rate: the gradient scales with ``1 / |W|`` and an
    adaptive optimizer's step does not, so smaller weights learn faster. He-normal
    weights are ``sqrt(6)`` times larger and train noticeably slower there.
    """
    limit = 1.0 / math.sqrt(fan_in)
    return rng.uniform(-limit, limit, (fan_in, fan_out)).astype(dtype)


INITIALIZERS: dict[str, Callable[..., np.ndarray]] = {
    "he_normal": he_normal,
    "glorot_uniform": glorot_uniform,
    "fan_in_uniform": fan_in_uniform,
}

# Without batch norm: the initializer that keeps each activation's signal variance
# stable. With batch norm every layer uses ``BATCH_NORM_INITIALIZER``.
INITIALIZER_FOR_ACTIVATION: dict[str, str] = {
    "relu": "he_normal",
    "leaky_relu": "he_normal",
    "tanh": "glorot_uniform",
    "sigmoid": "glorot_uniform",
}

BATCH_NORM_INITIALIZER = "fan_in_uniform"
