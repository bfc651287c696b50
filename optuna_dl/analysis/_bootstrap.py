"""Importances of one evaluator on rows, and their bootstrap over resampled rows."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from optuna.importance import BaseImportanceEvaluator
from optuna.study import StudyDirection
from scipy.stats import rankdata

from optuna_dl.analysis._view import Row, StudyView

__all__ = ["bootstrap", "evaluate", "percentile_interval", "ranks"]


def evaluate(
    evaluator: BaseImportanceEvaluator,
    rows: Sequence[Row],
    direction: StudyDirection,
    params: Sequence[str],
) -> tuple[np.ndarray, list[str]]:
    """Normalized importances of ``params`` (in that order) and the warnings raised.

    A parameter absent from every row gets 0. When every importance is 0 they are
    all ``1 / len(params)``, as in :func:`optuna.importance.get_param_importances`.
    """
    present = [p for p in params if any(p in row.params for row in rows)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        raw = evaluator.evaluate(StudyView(rows, direction), params=present) if present else {}
    vector = np.array([float(raw.get(p, 0.0)) for p in params])
    total = vector.sum()
    vector = vector / total if total > 0 else np.full(len(params), 1.0 / max(len(params), 1))
    messages = list(dict.fromkeys(str(w.message) for w in caught))
    return vector, messages


def bootstrap(
    evaluator: BaseImportanceEvaluator,
    rows: Sequence[Row],
    direction: StudyDirection,
    params: Sequence[str],
    n_resamples: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Importances on ``n_resamples`` resamples of ``rows`` drawn with replacement.

    Returns
    -------
    samples : ndarray of shape (n_resamples, len(params))
    """
    n = len(rows)
    samples = np.empty((n_resamples, len(params)))
    for b in range(n_resamples):
        picked = rng.integers(0, n, size=n)
        samples[b], _ = evaluate(evaluator, [rows[i] for i in picked], direction, params)
    return samples


def ranks(importances: np.ndarray) -> np.ndarray:
    """Rank 1 for the largest importance along the last axis; ties share their mean rank."""
    importances = np.asarray(importances, dtype=float)
    if importances.shape[-1] == 0:
        return importances.copy()
    return rankdata(-importances, axis=-1, method="average")


def percentile_interval(samples: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval along axis 0 (``nan`` when there are no samples).

    The bounds are observed values (the order statistics just outside the
    ``confidence`` share), so a rank interval holds ranks that occurred.
    """
    samples = np.asarray(samples, dtype=float)
    if samples.shape[0] == 0:
        empty = np.full(samples.shape[1:], np.nan)
        return empty, empty.copy()
    alpha = (1.0 - confidence) / 2.0
    low = np.quantile(samples, alpha, axis=0, method="lower")
    high = np.quantile(samples, 1.0 - alpha, axis=0, method="higher")
    return low, high
