"""Per-epoch pruning for any Optuna pruner."""

from __future__ import annotations

from typing import Any

import optuna

from optuna_dl.callbacks import EpochCallback, EpochRecord

MONITORS = ("validation_score", "loss")


class PruningCallback(EpochCallback):
    """Report each epoch to an Optuna trial and stop the trial when the pruner says so.

    Register it with ``DeepNetClassifier.set_callbacks``. With
    ``monitor="validation_score"`` the estimator needs ``early_stopping=True`` (that
    is what holds out validation data); ``monitor="loss"`` reports the training loss
    and suits a study with ``direction="minimize"``.

    Parameters
    ----------
    trial : optuna.Trial
    monitor : {"validation_score", "loss"}, default="validation_score"

    Raises
    ------
    optuna.TrialPruned
        With the message ``"pruned at epoch k"``.
    """

    def __init__(self, trial: optuna.Trial, monitor: str = "validation_score") -> None:
        if monitor not in MONITORS:
            raise ValueError(
                f"PruningCallback: monitor must be one of {MONITORS}; got {monitor!r}."
            )
        self.trial = trial
        self.monitor = monitor

    def on_epoch_end(self, estimator: Any, record: EpochRecord) -> bool:
        value = getattr(record, self.monitor)
        if value is None:
            raise ValueError(
                "PruningCallback: monitor='validation_score' needs a validation score; "
                "set early_stopping=True on the estimator or use monitor='loss'."
            )
        self.trial.report(float(value), record.epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {record.epoch}")
        return False
