"""Pure-NumPy building blocks of the deep network (imports NumPy only)."""

from optuna_dl.nn.activations import ACTIVATIONS, DERIVATIVES
from optuna_dl.nn.losses import (
    log_softmax,
    softmax,
    softmax_cross_entropy,
    squared_error,
    weighted_softmax_cross_entropy,
)
from optuna_dl.nn.network import Network
from optuna_dl.nn.optimizers import OPTIMIZERS, Optimizer
from optuna_dl.nn.schedules import SCHEDULES

__all__ = [
    "ACTIVATIONS",
    "DERIVATIVES",
    "OPTIMIZERS",
    "SCHEDULES",
    "Network",
    "Optimizer",
    "log_softmax",
    "softmax",
    "softmax_cross_entropy",
    "squared_error",
    "weighted_softmax_cross_entropy",
]
