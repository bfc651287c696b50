"""Every kernel module, in one namespace; importing this imports numba."""

from __future__ import annotations

from optuna_dl.nn.kernels import (
    _activation,
    _batchnorm,
    _dropout,
    _gather,
    _inference,
    _optimizers,
    _softmax,
)

__all__ = [
    "_activation",
    "_batchnorm",
    "_dropout",
    "_gather",
    "_inference",
    "_optimizers",
    "_softmax",
]
