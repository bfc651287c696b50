"""Hyperparameter importances with bootstrap confidence intervals.

Three of Optuna's evaluators are available by name (:data:`EVALUATORS`):
``"ped_anova"`` (Optuna's default, fast), ``"fanova"`` (slow: about 0.6 s for 40
trials and 8 s for 300 here) and ``"mdi"`` (mean decrease in impurity of a random
forest). Importances are normalized to sum to 1.

Confidence
    The trials are resampled with replacement ``n_bootstrap`` times and the evaluator
    is run on each resample (on a lightweight study-like view, no storage access);
    intervals are percentile intervals of the importance and of the rank across
    resamples. Rank 1 is the most important; ties share their mean rank. The point
    estimates are those of all trials (equal to
    :func:`optuna.importance.get_param_importances`). Cost: 1000 trials with 100
    PED-ANOVA resamples take about 1 s here (``benchmarks/importance.py``); building
    a new in-memory study per resample would take about 12 s.

Too few trials
    Ranking ``p`` parameters needs at least ``max(10, 2 * p)`` usable trials
    (:func:`min_trials`). Below that a :class:`InsufficientTrialsWarning` is issued and
    the result's ``warning`` field says so; with fewer than 2 trials nothing is
    computed (importances are ``nan``).

What is explained
    ``target="objective"`` uses the completed trials' values (Optuna's evaluators only
    see completed trials). ``target="duration"`` explains trial wall time (shorter is
    better: which parameters you must get right to be fast). :func:`importances_at_epoch`
    explains the intermediate value at one epoch from every trial that reached it,
    pruned ones included, and :func:`ranking_by_epoch` shows how the ranking moves with
    the epoch.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np
import optuna
from optuna.importance import (
    BaseImportanceEvaluator,
    FanovaImportanceEvaluator,
    MeanDecreaseImpurityImportanceEvaluator,
    PedAnovaImportanceEvaluator,
)
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from optuna_dl.analysis._bootstrap import bootstrap, evaluate
from optuna_dl.analysis._prior import PriorComparison, PriorRow, compare_with_prior, prior_tiers
from optuna_dl.analysis._result import ImportanceResult, ParamImportance, summarize
from optuna_dl.analysis._view import Row, duration_seconds, make_rows

__all__ = [
    "EVALUATORS",
    "EpochRanking",
    "ImportanceResult",
    "InsufficientTrialsWarning",
    "ParamImportance",
    "PriorComparison",
    "PriorRow",
    "compare_with_prior",
    "duration_importances",
    "importances_at_epoch",
    "min_trials",
    "param_importances",
    "prior_tiers",
    "ranking_by_epoch",
    "score_at_epoch",
    "scores_at_epoch",
]

#: Evaluator factories by name; each takes the seed used by the random forests.
EVALUATORS: dict[str, Callable[[int | None], BaseImportanceEvaluator]] = {
    "ped_anova": lambda seed: PedAnovaImportanceEvaluator(),
    "fanova": lambda seed: FanovaImportanceEvaluator(seed=seed),
    "mdi": lambda seed: MeanDecreaseImpurityImportanceEvaluator(seed=seed),
}

#: Below ``max(MIN_TRIALS, MIN_TRIALS_PER_PARAM * n_params)`` trials a ranking is flagged.
MIN_TRIALS = 10
MIN_TRIALS_PER_PARAM = 2


class InsufficientTrialsWarning(UserWarning):
    """Too few trials to rank the hyperparameters with any confidence."""


class EpochRanking(NamedTuple):
    """How the importance ranking moves with the epoch (one row per epoch).

    Arrays have shape ``(len(epochs), len(params))`` and hold ``nan`` where a
    parameter was not measured at that epoch.
    """

    epochs: tuple[int, ...]
    params: tuple[str, ...]
    n_trials: tuple[int, ...]
    n_pruned: tuple[int, ...]
    importance: np.ndarray
    rank: np.ndarray
    rank_low: np.ndarray
    rank_high: np.ndarray
    results: tuple[ImportanceResult, ...]


def min_trials(n_params: int) -> int:
    """Usable trials needed to rank ``n_params`` hyperparameters: ``max(10, 2 * n_params)``."""
    return max(MIN_TRIALS, MIN_TRIALS_PER_PARAM * n_params)


def _make_evaluator(
    evaluator: str | BaseImportanceEvaluator, seed: int | None
) -> tuple[BaseImportanceEvaluator, str]:
    if isinstance(evaluator, BaseImportanceEvaluator):
        return evaluator, type(evaluator).__name__
    if evaluator not in EVALUATORS:
        raise ValueError(
            f"evaluator must be one of {sorted(EVALUATORS)} or an Optuna importance "
            f"evaluator; got {evaluator!r}."
        )
    return EVALUATORS[evaluator](seed), evaluator


def _param_names(
    rows: Sequence[Row], evaluator: BaseImportanceEvaluator, params: Sequence[str] | None
) -> list[str]:
    """Parameters to assess: all that appear (PED-ANOVA handles conditional ones);
    for the other evaluators, those present in every row with one range."""
    if params is not None:
        return list(params)
    seen = list(dict.fromkeys(p for row in rows for p in row.params))
    if isinstance(evaluator, PedAnovaImportanceEvaluator):
        return sorted(seen)
    common = []
    for p in seen:
        dists = {id(row.distributions.get(p)) for row in rows}
        if all(p in row.params for row in rows) and len(dists) == 1:
            common.append(p)
    return sorted(common)


def _rank_rows(
    rows: list[Row],
    direction: StudyDirection,
    *,
    target: str,
    evaluator: str | BaseImportanceEvaluator,
    params: Sequence[str] | None,
    n_bootstrap: int,
    confidence: float,
    random_state: int | None,
    notes: Sequence[str] = (),
) -> ImportanceResult:
    started = time.perf_counter()
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1); got {confidence!r}.")
    if not (isinstance(n_bootstrap, int) and n_bootstrap >= 0):
        raise ValueError(f"n_bootstrap must be a non-negative integer; got {n_bootstrap!r}.")
    instance, name = _make_evaluator(evaluator, random_state)
    names = _param_names(rows, instance, params)
    excluded = sorted({p for row in rows for p in row.params} - set(names))
    notes = list(notes)
    if excluded and params is None:
        notes.append(f"not assessed by {name} (conditional or varying range): {excluded}")
    warning = None
    needed = min_trials(len(names))
    if len(rows) < needed:
        warning = (
            f"{len(rows)} usable trial(s) for {target}; ranking {len(names)} "
            f"hyperparameter(s) needs at least {needed}."
        )
        warnings.warn(warning, InsufficientTrialsWarning, stacklevel=3)
    if len(rows) < 2 or not names:
        point = np.full(len(names), np.nan)
        samples = np.empty((0, len(names)))
    else:
        point, messages = evaluate(instance, rows, direction, names)
        notes.extend(messages)
        rng = np.random.default_rng(random_state)
        samples = bootstrap(instance, rows, direction, names, n_bootstrap, rng)
    entries, ordered = summarize(names, point, samples, confidence)
    outside = [p.name for p in entries if not p.low <= p.importance <= p.high]
    if outside and samples.shape[0]:
        notes.append(
            f"point estimate outside its bootstrap interval for {outside}: the resampled "
            "importances are biased (typical with few trials); read the interval as spread."
        )
    return ImportanceResult(
        evaluator=name,
        target=target,
        n_trials=len(rows),
        n_bootstrap=int(samples.shape[0]),
        confidence=confidence,
        params=entries,
        bootstrap=ordered,
        warning=warning,
        notes=tuple(dict.fromkeys(notes)),
        seconds=time.perf_counter() - started,
    )


def _objective_value(study: optuna.Study) -> Callable[[FrozenTrial], float]:
    if len(study.directions) > 1:
        return lambda t: t.values[0]
    return lambda t: t.value


def param_importances(
    study: optuna.Study,
    *,
    evaluator: str | BaseImportanceEvaluator = "ped_anova",
    target: str | Callable[[FrozenTrial], float] = "objective",
    direction: str | StudyDirection | None = None,
    states: Iterable[TrialState] = (TrialState.COMPLETE,),
    params: Sequence[str] | None = None,
    n_bootstrap: int = 100,
    confidence: float = 0.95,
    random_state: int | None = 0,
) -> ImportanceResult:
    """Importances of a study's hyperparameters with bootstrap intervals.

    Parameters
    ----------
    study : optuna.Study
    evaluator : {"ped_anova", "fanova", "mdi"} or BaseImportanceEvaluator, default="ped_anova"
    target : "objective", "duration" or callable, default="objective"
        What to explain. A callable maps a trial to a float (non-finite values drop the
        trial). For a multi-objective study ``"objective"`` is the first objective.
    direction : {"minimize", "maximize"}, optional
        Which values are good. Defaults to the study's (first) direction for the
        objective and to ``"minimize"`` for the duration and callables.
    states : iterable of TrialState, default=(COMPLETE,)
        Trials to use, e.g. ``(COMPLETE, PRUNED)`` to explain the duration of all
        finished trials.
    params : sequence of str, optional
        Parameters to assess. Defaults to all (PED-ANOVA) or to those present in every
        trial with one range (fANOVA, MDI: conditional parameters are left out).
    n_bootstrap : int, default=100
        Resamples; 0 gives point estimates only (intervals are ``nan``).
    confidence : float, default=0.95
    random_state : int or None, default=0
        Seeds the resampling and the forests of fANOVA and MDI.

    Returns
    -------
    ImportanceResult

    Examples
    --------
    >>> import optuna
    >>> from optuna.distributions import FloatDistribution
    >>> from optuna.trial import create_trial
    >>> study = optuna.create_study()
    >>> dists = {"x": FloatDistribution(0, 1), "y": FloatDistribution(0, 1)}
    >>> study.add_trials([
    ...     create_trial(params={"x": i / 40, "y": (i * 7 % 40) / 40}, distributions=dists,
    ...                  value=(i / 40) ** 2)
    ...     for i in range(40)
    ... ])
    >>> result = param_importances(study, n_bootstrap=20)
    >>> result.names
    ['x', 'y']
    >>> result.params[0].rank
    1.0
    """
    if target == "objective":
        value, label = _objective_value(study), "objective"
        default = study.directions[0]
    elif target == "duration":
        value, label, default = duration_seconds, "duration", StudyDirection.MINIMIZE
    elif callable(target):
        value = target
        label = getattr(target, "__name__", "target")
        default = StudyDirection.MINIMIZE
    else:
        raise ValueError(f"target must be 'objective', 'duration' or a callable; got {target!r}.")
    chosen = _as_direction(direction) if direction is not None else default
    trials = study.get_trials(deepcopy=False, states=tuple(states))
    rows, notes = make_rows(trials, value)
    if len(study.directions) > 1 and target == "objective":
        notes.append("multi-objective study: the first objective is explained")
    return _rank_rows(
        rows,
        chosen,
        target=label,
        evaluator=evaluator,
        params=params,
        n_bootstrap=n_bootstrap,
        confidence=confidence,
        random_state=random_state,
        notes=notes,
    )


def duration_importances(study: optuna.Study, **kwargs: Any) -> ImportanceResult:
    """Importances for trial wall time: :func:`param_importances` with ``target="duration"``.

    Durations come from the trials' start and completion times (or the ``fit_seconds``
    user attribute). Shorter is better unless ``direction="maximize"`` is given.
    """
    return param_importances(study, target="duration", **kwargs)


def _as_direction(direction: str | StudyDirection) -> StudyDirection:
    if isinstance(direction, StudyDirection):
        return direction
    if direction in ("minimize", "maximize"):
        return StudyDirection[direction.upper()]
    raise ValueError(f"direction must be 'minimize' or 'maximize'; got {direction!r}.")


_REACHABLE = (TrialState.COMPLETE, TrialState.PRUNED)


def score_at_epoch(trial: FrozenTrial, epoch: int) -> float | None:
    """A trial's score at ``epoch``: its intermediate value there; for a completed trial
    whose training stopped earlier, its final value; else None (a pruned trial that
    never got there).

    Examples
    --------
    >>> from optuna.trial import create_trial
    >>> stopped = create_trial(value=0.9, intermediate_values={1: 0.5, 2: 0.9, 3: 0.8})
    >>> score_at_epoch(stopped, 2), score_at_epoch(stopped, 18)
    (0.9, 0.9)
    >>> pruned = create_trial(state=TrialState.PRUNED, intermediate_values={1: 0.5, 2: 0.6})
    >>> score_at_epoch(pruned, 6) is None
    True
    """
    if epoch in trial.intermediate_values:
        return float(trial.intermediate_values[epoch])
    stopped_before = bool(trial.intermediate_values) and max(trial.intermediate_values) < epoch
    if trial.state == TrialState.COMPLETE and stopped_before and trial.value is not None:
        return float(trial.value)
    return None


def scores_at_epoch(trials: Sequence[FrozenTrial], epoch: int) -> dict[int, float]:
    """:func:`score_at_epoch` of each of ``trials`` that has one, by trial number; empty
    when no trial reported ``epoch`` (an epoch beyond the study's training)."""
    if not any(epoch in t.intermediate_values for t in trials):
        return {}
    return {t.number: score for t in trials if (score := score_at_epoch(t, epoch)) is not None}


def importances_at_epoch(
    study: optuna.Study,
    epoch: int,
    *,
    evaluator: str | BaseImportanceEvaluator = "ped_anova",
    params: Sequence[str] | None = None,
    n_bootstrap: int = 100,
    confidence: float = 0.95,
    random_state: int | None = 0,
) -> ImportanceResult:
    """Importances for the intermediate value at ``epoch``, pruned trials included.

    Every completed or pruned trial that reported ``epoch`` (the intermediate-value
    step; the package's objective reports epochs 1, 2, ...) counts, with that value
    as its outcome, in the study's direction. A completed trial whose training
    stopped before ``epoch`` (early stopping) counts with its final value, since its
    result no longer changes, provided some trial did train to ``epoch``
    (:func:`scores_at_epoch`). Parameters as in :func:`param_importances`.
    """
    trials = study.get_trials(deepcopy=False, states=_REACHABLE)
    scores = scores_at_epoch(trials, epoch)
    rows, notes = make_rows([t for t in trials if t.number in scores], lambda t: scores[t.number])
    return _rank_rows(
        rows,
        study.directions[0],
        target=f"objective at epoch {epoch}",
        evaluator=evaluator,
        params=params,
        n_bootstrap=n_bootstrap,
        confidence=confidence,
        random_state=random_state,
        notes=notes,
    )


def _default_epochs(steps: list[int]) -> list[int]:
    """The first and last reported steps and the powers of two between them."""
    if not steps:
        return []
    chosen = {steps[0], steps[-1]}
    chosen.update(s for s in steps if s > 0 and s & (s - 1) == 0)
    return sorted(chosen)


def ranking_by_epoch(
    study: optuna.Study,
    epochs: Iterable[int] | None = None,
    *,
    evaluator: str | BaseImportanceEvaluator = "ped_anova",
    n_bootstrap: int = 30,
    confidence: float = 0.95,
    random_state: int | None = 0,
) -> EpochRanking:
    """The importance ranking at several epochs (see :func:`importances_at_epoch`).

    Parameters
    ----------
    study : optuna.Study
    epochs : iterable of int, optional
        Defaults to the first and last reported epochs and the powers of two between.
    evaluator, n_bootstrap, confidence, random_state
        As in :func:`param_importances` (fewer resamples by default: one run per epoch).

    Returns
    -------
    EpochRanking
        Parameters ordered by their rank at the last epoch with a ranking.
    """
    trials = study.get_trials(deepcopy=False, states=_REACHABLE)
    if epochs is None:
        epochs = _default_epochs(sorted({s for t in trials for s in t.intermediate_values}))
    epochs = tuple(int(e) for e in epochs)
    results = tuple(
        importances_at_epoch(
            study,
            e,
            evaluator=evaluator,
            n_bootstrap=n_bootstrap,
            confidence=confidence,
            random_state=random_state,
        )
        for e in epochs
    )
    order: list[str] = []
    for result in reversed(results):
        order.extend(n for n in result.names if n not in order)
    shape = (len(epochs), len(order))
    arrays = {key: np.full(shape, np.nan) for key in ("importance", "rank", "low", "high")}
    for i, result in enumerate(results):
        for p in result.params:
            j = order.index(p.name)
            arrays["importance"][i, j] = p.importance
            arrays["rank"][i, j] = p.rank
            arrays["low"][i, j] = p.rank_low
            arrays["high"][i, j] = p.rank_high
    pruned = []
    for e in epochs:
        reached = [t for t in trials if e in t.intermediate_values]
        pruned.append(sum(t.state == TrialState.PRUNED for t in reached))
    return EpochRanking(
        epochs=epochs,
        params=tuple(order),
        n_trials=tuple(r.n_trials for r in results),
        n_pruned=tuple(pruned),
        importance=arrays["importance"],
        rank=arrays["rank"],
        rank_low=arrays["low"],
        rank_high=arrays["high"],
        results=results,
    )
