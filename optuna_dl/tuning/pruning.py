"""Per-epoch pruning for any Optuna pruner.

Every epoch is reported to the trial (one write), but the pruner is asked only at the
epochs where its own rules allow a decision (:func:`may_prune`): asking means reading
the whole trial back from storage, and Hyperband, for instance, can only stop a trial
at a handful of rung epochs.
"""

from __future__ import annotations

from typing import Any

import optuna

from optuna_dl._compat import pruner_settings
from optuna_dl.callbacks import EpochCallback, EpochRecord

MONITORS = ("validation_score", "loss")


def may_prune(pruner: optuna.pruners.BasePruner, step: int) -> bool:
    """Whether ``pruner`` could stop a trial that has just reported ``step``.

    For a trial that reports every step in order (1, 2, 3, ... or 0, 1, 2, ...) and
    asks the pruner after each report, asking only where this is True gives the same
    decisions as asking every time. Where a pruner's rule is not known here, or
    depends on the study (``"auto"`` resources), the answer is True.

    Parameters
    ----------
    pruner : optuna.pruners.BasePruner
    step : int
        The step just reported.

    Returns
    -------
    bool
        False for ``NopPruner``; for ``MedianPruner``, ``PercentilePruner`` and
        ``ThresholdPruner``, True from ``n_warmup_steps`` on, every ``interval_steps``;
        for ``SuccessiveHalvingPruner`` and ``HyperbandPruner``, True only at the rung
        steps ``min_resource * reduction_factor**k`` (``k >= min_early_stopping_rate``
        for successive halving, any ``k >= 0`` for Hyperband's brackets).

    Examples
    --------
    >>> hyperband = optuna.pruners.HyperbandPruner(min_resource=2, max_resource=40)
    >>> [step for step in range(1, 41) if may_prune(hyperband, step)]
    [2, 6, 18]
    """
    if isinstance(pruner, optuna.pruners.NopPruner):
        return False
    settings = pruner_settings(pruner)
    if isinstance(
        pruner,
        (optuna.pruners.PercentilePruner, optuna.pruners.ThresholdPruner),  # Median too
    ):
        warmup, interval = settings["n_warmup_steps"], settings["interval_steps"]
        if not (isinstance(warmup, int) and isinstance(interval, int) and interval >= 1):
            return True
        return step >= warmup and (step - warmup) % interval == 0
    if isinstance(pruner, optuna.pruners.SuccessiveHalvingPruner):
        first_rung = settings["min_early_stopping_rate"]
    elif isinstance(pruner, optuna.pruners.HyperbandPruner):
        first_rung = 0 if isinstance(settings["max_resource"], int) else None
    else:
        return True
    resource, factor = settings["min_resource"], settings["reduction_factor"]
    if not all(isinstance(v, int) and v >= 1 for v in (resource, factor)) or not (
        isinstance(first_rung, int) and first_rung >= 0 and factor >= 2
    ):
        return True
    rung_step = resource * factor**first_rung
    while rung_step < step:
        rung_step *= factor
    return rung_step == step


class PruningCallback(EpochCallback):
    """Report each epoch to an Optuna trial and stop the trial when the pruner says so.

    The pruner is asked only at the epochs where it could decide (:func:`may_prune`).

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
        if may_prune(self.trial.study.pruner, record.epoch) and self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {record.epoch}")
        return False
