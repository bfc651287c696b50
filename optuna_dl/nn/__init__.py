"""Pure-NumPy building blocks of the deep network (imports NumPy only)."""

from optuna_dl.nn.activations import ACTIVATIONS, DERIVATIVES
from optuna_dl.nn.losses import (
    REGRESSION_LOSSES,
    huber,
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
    "REGRESSION_LOSSES",
    "SCHEDULES",
    "Network",
    "Optimizer",
    "huber",
    "log_softmax",
    "softmax",
    "softmax_cross_entropy",
    "squared_error",
    "weighted_softmax_cross_entropy",
]
