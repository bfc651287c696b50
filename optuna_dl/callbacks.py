"""What the estimator reports after every epoch, and how to listen to it.

An epoch callback is any object with ``on_epoch_end(estimator, record) -> bool``;
returning True stops training after that epoch. ``EpochCallback`` also satisfies
scikit-learn's ``FitCallback`` protocol, so it is registered with the estimator's
``set_callbacks`` next to scikit-learn's own callbacks (``ProgressBar`` and others).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple


class EpochRecord(NamedTuple):
    """One finished epoch.

    Attributes
    ----------
    epoch : int
        1-based count of epochs trained since the weights were initialized.
    loss : float
        Mean training loss over the epoch (L2 penalty included).
    validation_score : float or None
        Accuracy on the held-out fraction when early stopping is on, else None.
    learning_rate : float
        The rate used during this epoch (after decay).
    seconds : float
        Wall time of the epoch.
    """

    epoch: int
    loss: float
    validation_score: float | None
    learning_rate: float
    seconds: float


class EpochCallback:
    """Base class of per-epoch callbacks.

    Subclasses override :meth:`on_epoch_end`. The remaining methods are the hooks of
    scikit-learn's ``FitCallback`` protocol and do nothing here.
    """

    def on_epoch_end(self, estimator: Any, record: EpochRecord) -> bool:
        """Called after each epoch; return True to stop training."""
        return False

    def setup(self, estimator: Any, context: Any) -> None:
        """scikit-learn hook: beginning of ``fit``."""

    def on_fit_task_begin(self, estimator: Any, context: Any) -> None:
        """scikit-learn hook: beginning of a task."""

    def on_fit_task_end(self, estimator: Any, context: Any) -> bool:
        """scikit-learn hook: end of a task (the epoch is handled by on_epoch_end)."""
        return False

    def teardown(self, estimator: Any, context: Any) -> None:
        """scikit-learn hook: end of ``fit``."""


class EpochLogger(EpochCallback):
    """Collects every ``EpochRecord``, and optionally calls a function with each.

    Parameters
    ----------
    function : callable, optional
        Called as ``function(record)``; a True result stops training.
    """

    def __init__(self, function: Callable[[EpochRecord], Any] | None = None) -> None:
        self.function = function
        self.records: list[EpochRecord] = []

    def on_epoch_end(self, estimator: Any, record: EpochRecord) -> bool:
        self.records.append(record)
        return bool(self.function(record)) if self.function is not None else False
