"""How sure a ranking is, in plain words.

A ranking of hyperparameters is only as good as the trials behind it. From the
bootstrap resamples of an :class:`~optuna_dl.analysis.ImportanceResult`,
:func:`rank_confidence` works out how often each parameter comes first and, for each
pair of neighbours in the ranking, how often the upper one stays above the lower one.
An order is called *settled* only when at least ``level`` (default 95 %) of the
resamples keep it; every other order is said to be not yet clear. The statements are
what ``optuna-dl run``, ``optuna-dl importance`` and the report print beside a ranking,
so that no order the data cannot support is printed unqualified.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from optuna_dl.analysis._result import ImportanceResult

__all__ = ["PairOrder", "RankingConfidence", "rank_confidence", "ranking_to_json"]


class PairOrder(NamedTuple):
    """Two neighbours of the ranking and how often the resamples keep their order."""

    upper: str
    lower: str
    share: float  # resamples that rank ``upper`` strictly above ``lower``
    settled: bool


class RankingConfidence(NamedTuple):
    """What the resamples say about a ranking.

    Attributes
    ----------
    first_share : dict of str to float
        Share of resamples in which each parameter ranks first alone.
    pairs : tuple of PairOrder
        Neighbours in the ranking, from the top down.
    settled_top : int
        Length of the longest prefix of the ranking whose order is settled: 0 when
        even the first place is not, ``len(params)`` when the whole order is.
    level : float
        Share of resamples an order needs to be settled.
    statements : tuple of str
        The plain statements to print.
    """

    first_share: dict[str, float]
    pairs: tuple[PairOrder, ...]
    settled_top: int
    level: float
    statements: tuple[str, ...]


def _percent(share: float) -> str:
    return f"{100 * share:.0f} %"


def rank_confidence(result: ImportanceResult, level: float = 0.95) -> RankingConfidence:
    """Plain statements on how sure ``result``'s ranking is.

    Parameters
    ----------
    result : ImportanceResult
        With bootstrap resamples (``n_bootstrap > 0``).
    level : float, default=0.95
        Share of resamples that must keep an order for it to be called settled.

    Returns
    -------
    RankingConfidence

    Examples
    --------
    >>> import numpy as np
    >>> from optuna_dl.analysis import ImportanceResult, ParamImportance
    >>> boot = np.array([[0.7, 0.2, 0.1]] * 18 + [[0.4, 0.25, 0.35]] * 2)
    >>> params = tuple(
    ...     ParamImportance(n, v, 0.0, 1.0, r, r, r)
    ...     for n, v, r in [("lr", 0.7, 1), ("units", 0.2, 2), ("batch", 0.1, 3)]
    ... )
    >>> result = ImportanceResult("ped_anova", "objective", 40, 20, 0.95, params, boot,
    ...                           None, (), 0.0)
    >>> for line in rank_confidence(result).statements:
    ...     print(line)
    lr ranks first in 100 % of resamples
    the order of units and batch is not yet clear: 90 % of resamples keep it
    """
    names = result.names
    if not names:
        return RankingConfidence({}, (), 0, level, ("no parameter to rank",))
    boot = np.asarray(result.bootstrap, dtype=float)
    usable = boot[np.isfinite(boot).all(axis=1)] if boot.size else boot
    if usable.size == 0 or len(usable) < 2:
        statement = "no resamples: how sure this order is is unknown; treat it as unclear"
        return RankingConfidence(
            {n: math.nan for n in names},
            tuple(PairOrder(a, b, math.nan, False) for a, b in zip(names, names[1:])),
            0,
            level,
            (statement,),
        )
    # Strictly greater: a tie keeps neither order.
    tops = usable.max(axis=1, keepdims=True)
    alone = (usable == tops) & ((usable == tops).sum(axis=1, keepdims=True) == 1)
    first_share = {n: float(alone[:, j].mean()) for j, n in enumerate(names)}
    pairs = tuple(
        PairOrder(a, b, share, share >= level)
        for j, (a, b) in enumerate(zip(names, names[1:]))
        for share in [float((usable[:, j] > usable[:, j + 1]).mean())]
    )
    top, top_share = names[0], first_share[names[0]]
    settled_first = top_share >= level
    settled_top = 0
    if settled_first:
        settled_top = 1
        for pair in pairs:
            if not pair.settled:
                break
            settled_top += 1
    statements = [f"{top} ranks first in {_percent(top_share)} of resamples"]
    if not settled_first:
        runner_up = max((n for n in names[1:]), key=first_share.get, default=None)
        if runner_up is not None and first_share[runner_up] > 0:
            statements.append(
                f"first place is not yet clear: {runner_up} ranks first in "
                f"{_percent(first_share[runner_up])} of resamples"
            )
    for pair in pairs:
        if not pair.settled:
            statements.append(
                f"the order of {pair.upper} and {pair.lower} is not yet clear: "
                f"{_percent(pair.share)} of resamples keep it"
            )
    if settled_top == len(names) and len(names) > 1:
        statements.append(f"the whole order is settled (each step in >= {_percent(level)})")
    if result.warning:
        statements.append(result.warning)
    return RankingConfidence(first_share, pairs, settled_top, level, tuple(statements))


def ranking_to_json(
    result: ImportanceResult, confidence: RankingConfidence | None = None
) -> dict[str, Any]:
    """``result`` and its confidence as plain JSON-ready data.

    Every parameter carries its point value, its interval, its rank and rank interval,
    and the number of trials the ranking rests on.
    """
    confidence = rank_confidence(result) if confidence is None else confidence

    def number(value: float) -> float | None:
        return float(value) if math.isfinite(value) else None

    return {
        "evaluator": result.evaluator,
        "target": result.target,
        "n_trials": result.n_trials,
        "n_bootstrap": result.n_bootstrap,
        "confidence": result.confidence,
        "settled_top": confidence.settled_top,
        "statements": list(confidence.statements),
        "warning": result.warning,
        "params": [
            {
                "name": p.name,
                "importance": number(p.importance),
                "interval": [number(p.low), number(p.high)],
                "rank": number(p.rank),
                "rank_interval": [number(p.rank_low), number(p.rank_high)],
                "first_share": number(confidence.first_share.get(p.name, math.nan)),
                "n_trials": result.n_trials,
            }
            for p in result.params
        ],
    }
