"""The course's prior tiers beside the measured ranking, and how well they agree."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
from scipy.stats import spearmanr

from optuna_dl.analysis._bootstrap import percentile_interval
from optuna_dl.analysis._result import ImportanceResult

__all__ = ["PriorComparison", "PriorRow", "compare_with_prior", "prior_tiers"]

#: Fewest parameters with both a tier and a measured rank for Spearman's rho to mean
#: anything (with two it is always +1 or -1).
MIN_COMMON = 3


class PriorRow(NamedTuple):
    """One hyperparameter: its prior tier and its measured rank with interval.

    ``tier`` is None for a measured parameter the prior does not know; the rank fields
    are ``nan`` for a prior parameter the study did not measure.
    """

    name: str
    tier: int | None
    rank: float
    rank_low: float
    rank_high: float
    importance: float


class PriorComparison(NamedTuple):
    """Prior tiers vs measured ranking.

    Attributes
    ----------
    rows : tuple of PriorRow
        Ordered by tier, then measured rank.
    rho : float
        Spearman's rank correlation between tier and measured rank over the parameters
        that have both (1: the prior's order exactly; ``nan`` when undefined).
    rho_low, rho_high : float
        Percentile bootstrap interval of rho (from the resampled rankings).
    n_common : int
        Parameters with both a tier and a measured rank.
    confidence : float
    reason : str or None
        Why rho is ``nan``, if it is.
    """

    rows: tuple[PriorRow, ...]
    rho: float
    rho_low: float
    rho_high: float
    n_common: int
    confidence: float
    reason: str | None


def prior_tiers(prior: Any) -> dict[str, int]:
    """``{sampled name: tier}`` from a SearchSpace (its ``tiers``) or a mapping."""
    tiers = getattr(prior, "tiers", prior)
    if not isinstance(tiers, Mapping):
        raise TypeError(
            "prior must be a SearchSpace or a mapping of name to tier; "
            f"got {type(prior).__name__}."
        )
    return {str(k): int(v) for k, v in tiers.items()}


def _rho(tiers: np.ndarray, ranks: np.ndarray) -> float:
    if np.ptp(tiers) == 0 or np.ptp(ranks) == 0 or not np.all(np.isfinite(ranks)):
        return math.nan
    return float(spearmanr(tiers, ranks).statistic)


def compare_with_prior(result: ImportanceResult, prior: Any) -> PriorComparison:
    """Set the prior tiers beside a measured ranking and measure their agreement.

    Parameters
    ----------
    result : ImportanceResult
        From :func:`~optuna_dl.analysis.importance.param_importances`.
    prior : SearchSpace or mapping of str to int
        Tier per sampled parameter name (1 most important), e.g. ``SearchSpace.tiers``.

    Returns
    -------
    PriorComparison

    Examples
    --------
    >>> from optuna_dl.analysis.importance import ImportanceResult, ParamImportance
    >>> import numpy as np
    >>> measured = ImportanceResult(
    ...     "ped_anova", "objective", 50, 0, 0.95,
    ...     tuple(ParamImportance(n, w, np.nan, np.nan, r, np.nan, np.nan)
    ...           for n, w, r in [("lr", 0.6, 1.0), ("layers", 0.3, 2.0), ("units", 0.1, 3.0)]),
    ...     np.empty((0, 3)), None, (), 0.0)
    >>> compare_with_prior(measured, {"lr": 1, "layers": 2, "units": 3}).rho
    1.0
    """
    tiers = prior_tiers(prior)
    measured = {p.name: p for p in result.params}
    rows = [
        PriorRow(
            name,
            tiers.get(name),
            measured[name].rank if name in measured else math.nan,
            measured[name].rank_low if name in measured else math.nan,
            measured[name].rank_high if name in measured else math.nan,
            measured[name].importance if name in measured else math.nan,
        )
        for name in dict.fromkeys([*tiers, *measured])
    ]
    rows.sort(
        key=lambda r: (
            r.tier if r.tier is not None else math.inf,
            r.rank if math.isfinite(r.rank) else math.inf,
            r.name,
        )
    )
    common = [r for r in rows if r.tier is not None and math.isfinite(r.rank)]
    tier_vector = np.array([r.tier for r in common], dtype=float)
    rho, low, high, reason = math.nan, math.nan, math.nan, None
    if len(common) < MIN_COMMON:
        reason = (
            f"{len(common)} parameter(s) have both a tier and a measured rank; "
            f"rho needs at least {MIN_COMMON}."
        )
    elif np.ptp(tier_vector) == 0:
        reason = "every compared parameter has the same tier."
    else:
        rank_vector = np.array([r.rank for r in common])
        rho = _rho(tier_vector, rank_vector)
        if math.isnan(rho):
            reason = "the measured ranks are all tied."
        names = result.names
        columns = [names.index(r.name) for r in common]
        sampled = result.bootstrap_ranks[:, columns] if result.n_bootstrap else np.empty((0, 0))
        rhos = np.array([_rho(tier_vector, row) for row in sampled])
        rhos = rhos[np.isfinite(rhos)]
        if rhos.size:
            low, high = (
                float(x[0]) for x in percentile_interval(rhos[:, None], result.confidence)
            )
    return PriorComparison(
        rows=tuple(rows),
        rho=rho,
        rho_low=low,
        rho_high=high,
        n_common=len(common),
        confidence=result.confidence,
        reason=reason,
    )
