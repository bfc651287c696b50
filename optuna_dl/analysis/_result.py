"""What an importance ranking returns: one entry per hyperparameter, with intervals."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from optuna_dl.analysis._bootstrap import percentile_interval, ranks

__all__ = ["ImportanceResult", "ParamImportance", "summarize"]


class ParamImportance(NamedTuple):
    """One hyperparameter's importance and rank, with bootstrap intervals."""

    name: str
    importance: float
    low: float
    high: float
    rank: float
    rank_low: float
    rank_high: float


class ImportanceResult(NamedTuple):
    """Importances of a study's hyperparameters for one target and evaluator.

    Attributes
    ----------
    evaluator : str
        Name of the evaluator (a key of :data:`EVALUATORS` or a class name).
    target : str
        What is explained: ``"objective"``, ``"duration"``, ``"objective at epoch 5"``.
    n_trials : int
        Trials used (finite target values).
    n_bootstrap : int
    confidence : float
        Level of the percentile intervals.
    params : tuple of ParamImportance
        Most important first.
    bootstrap : ndarray of shape (n_bootstrap, len(params))
        Importances on each resample, columns in the order of ``params``.
    warning : str or None
        Set when there were too few trials to rank the parameters.
    notes : tuple of str
        Distinct warnings of the evaluator on all trials, and merged ranges.
    seconds : float
        Time taken, bootstrap included.
    """

    evaluator: str
    target: str
    n_trials: int
    n_bootstrap: int
    confidence: float
    params: tuple[ParamImportance, ...]
    bootstrap: np.ndarray
    warning: str | None
    notes: tuple[str, ...]
    seconds: float

    @property
    def names(self) -> list[str]:
        """Parameter names, most important first."""
        return [p.name for p in self.params]

    @property
    def bootstrap_ranks(self) -> np.ndarray:
        """Ranks on each resample, shape ``(n_bootstrap, len(params))``."""
        return ranks(self.bootstrap)

    def get(self, name: str) -> ParamImportance:
        """The entry of parameter ``name``."""
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)


def summarize(
    names: Sequence[str], point: np.ndarray, samples: np.ndarray, confidence: float
) -> tuple[tuple[ParamImportance, ...], np.ndarray]:
    """Entries for ``names``: point importance, percentile interval and rank interval
    over ``samples`` (one row per resample, columns in the order of ``names``).

    Returns
    -------
    params : tuple of ParamImportance
        Most important first (ties by name); ranks are NaN when a point value is.
    samples : ndarray
        ``samples`` with its columns in the order of ``params``.
    """
    low, high = percentile_interval(samples, confidence)
    rank_low, rank_high = percentile_interval(ranks(samples), confidence)
    point_rank = ranks(point) if np.all(np.isfinite(point)) else np.full(len(names), np.nan)
    order = sorted(range(len(names)), key=lambda i: (-np.nan_to_num(point[i]), names[i]))
    params = tuple(
        ParamImportance(
            names[i],
            float(point[i]),
            float(low[i]),
            float(high[i]),
            float(point_rank[i]),
            float(rank_low[i]),
            float(rank_high[i]),
        )
        for i in order
    )
    return params, samples[:, order] if order else samples
