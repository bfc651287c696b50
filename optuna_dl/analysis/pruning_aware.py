"""Candidate importances that use pruned trials as evidence.

Under successive halving most trials are pruned (the README study completes 5 to 13
of 40), and Optuna's evaluators see only the completed ones: a handful of trials that
all did well. Three ways to let the pruned trials count, to be measured against the
reference studies (``benchmarks/importance_accuracy.py``, ``docs/IMPORTANCE.md``):

:func:`ped_anova_with_pruned`
    PED-ANOVA compares the parameters of the top-quantile trials with those of all
    trials, and only the order of the values matters. A pruned trial is a known
    non-member of the top: it was outranked at the rung where it stopped. It joins the
    "all trials" side, ranked below every trial that went further.
:func:`rung_weighted_importances`
    The importance at every rung (every trial that reached it, pruned ones included)
    and of the completed trials, averaged with weights equal to the number of trials
    behind each (or, ``weights="linked"``, also by the rank correlations carrying a
    rung's order to the final values); ``intervals="mixture"`` draws each resample
    from one level so the intervals carry the levels' disagreement (what
    :func:`~optuna_dl.analysis.ranking.study_ranking` prints).
:func:`imputed_final_importances`
    Each pruned trial's final value is predicted from its score at the step where it
    stopped, by a straight line fitted on the trials that went on from that step to
    the end; the evaluator then explains every trial.

Each returns an :class:`~optuna_dl.analysis.importance.ImportanceResult`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import optuna
from optuna.importance import BaseImportanceEvaluator, PedAnovaImportanceEvaluator
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState
from scipy.stats import spearmanr

from optuna_dl.analysis._result import summarize
from optuna_dl.analysis.importance import (
    ImportanceResult,
    InsufficientTrialsWarning,
    importances_at_epoch,
    param_importances,
    scores_at_epoch,
)
from optuna_dl.records import TrialRecord

__all__ = [
    "imputed_final_importances",
    "imputed_final_values",
    "level_links",
    "linked_weights",
    "ped_anova_with_pruned",
    "pruned_order_values",
    "rung_weighted_importances",
]

_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def _sign(study: optuna.Study) -> float:
    return 1.0 if study.directions[0] == StudyDirection.MAXIMIZE else -1.0


def _last_step(trial: FrozenTrial) -> tuple[int, float] | None:
    if not trial.intermediate_values:
        return None
    step = max(trial.intermediate_values)
    return step, float(trial.intermediate_values[step])


def pruned_order_values(study: optuna.Study) -> dict[int, float]:
    """Values that order every finished trial by how far it got, then by its score.

    Completed trials keep their value; a pruned trial gets a value below every trial
    that went further, ordered among those that stopped at the same step by its
    score there. Trials pruned without a report (or because training diverged, user
    attribute ``diverged``) come last. Only the order is meaningful.

    Parameters
    ----------
    study : optuna.Study

    Returns
    -------
    dict
        ``{trial number: value}``, greater is better whatever the study's direction.
    """
    sign = _sign(study)
    trials = study.get_trials(deepcopy=False, states=_FINISHED)
    scores = [sign * t.value for t in trials if t.state == TrialState.COMPLETE]
    scores += [sign * v for t in trials for v in t.intermediate_values.values()]
    finite = [s for s in scores if np.isfinite(s)]
    low = min(finite) if finite else 0.0
    span = (max(finite) - low if finite else 0.0) + 1.0
    steps = sorted(
        {s[0] for t in trials if t.state == TrialState.PRUNED and (s := _last_step(t)) is not None}
    )
    level = {step: i for i, step in enumerate(steps)}
    values: dict[int, float] = {}
    for t in trials:
        if t.state == TrialState.COMPLETE:
            values[t.number] = sign * float(t.value)
            continue
        last = _last_step(t)
        diverged = TrialRecord.from_trial(t).diverged is not None
        if last is None or diverged or not np.isfinite(last[1]):
            values[t.number] = low - span * (len(steps) + 2)
            continue
        step, score = last
        below = len(steps) - level[step]  # how many levels under the completed trials
        values[t.number] = sign * score - span * below
    return values


def ped_anova_with_pruned(
    study: optuna.Study,
    *,
    target_quantile: float = 0.1,
    n_bootstrap: int = 100,
    confidence: float = 0.95,
    random_state: int | None = 0,
) -> ImportanceResult:
    """PED-ANOVA over every finished trial, pruned trials as known non-top members.

    The top ``target_quantile`` of all finished trials is drawn from the completed
    trials (best first) as long as there are enough of them; pruned trials fill the
    rest of the comparison set (:func:`pruned_order_values`).

    Parameters
    ----------
    study : optuna.Study
    target_quantile : float, default=0.1
        PED-ANOVA's top quantile, as a share of all finished trials.
    n_bootstrap, confidence, random_state
        As in :func:`~optuna_dl.analysis.importance.param_importances`.

    Returns
    -------
    ImportanceResult
    """
    values = pruned_order_values(study)
    result = param_importances(
        study,
        evaluator=PedAnovaImportanceEvaluator(target_quantile=target_quantile),
        target=lambda t: values[t.number],
        direction="maximize",
        states=_FINISHED,
        n_bootstrap=n_bootstrap,
        confidence=confidence,
        random_state=random_state,
    )
    return result._replace(evaluator="ped_anova", target="objective, pruned trials as non-top")


def _combine(
    results: Sequence[ImportanceResult], weights: Sequence[float], target: str, seconds: float
) -> ImportanceResult:
    names = sorted({n for r in results for n in r.names})
    point = np.zeros(len(names))
    n_boot = min(r.n_bootstrap for r in results)
    samples = np.zeros((n_boot, len(names)))
    for r, w in zip(results, weights):
        for p, column in zip(r.params, r.bootstrap.T):
            j = names.index(p.name)
            point[j] += w * p.importance
            samples[:, j] += w * column[:n_boot]
    total = float(sum(weights))
    confidence = results[0].confidence
    params, ordered = summarize(names, point / total, samples / total, confidence)
    notes = tuple(dict.fromkeys(n for r in results for n in r.notes))
    return ImportanceResult(
        evaluator=results[0].evaluator,
        target=target,
        n_trials=max(r.n_trials for r in results),
        n_bootstrap=n_boot,
        confidence=confidence,
        params=params,
        bootstrap=ordered,
        warning=None,
        notes=notes,
        seconds=seconds,
    )


def level_links(study: optuna.Study, levels: Sequence[int | None]) -> list[float]:
    """How well each level's score ranks the trials as the next level does.

    ``levels`` are steps (rungs) in increasing order, ``None`` standing for the
    completed trials' final values. Link ``i`` is Spearman's rank correlation between
    the scores at ``levels[i]`` and at ``levels[i + 1]`` over the trials that have
    both, clipped at 0; it is 0 when fewer than 3 trials have both or either score
    does not vary. A pruned trial reached a later rung only by ranking well at the
    earlier one, so a rung whose order the later rungs keep is evidence about the
    final value, and one whose order they overturn (early progress that does not
    last) is not.

    Returns
    -------
    list of float
        ``len(levels) - 1`` links, each in [0, 1].
    """
    trials = study.get_trials(deepcopy=False, states=_FINISHED)
    at = {level: scores_at_epoch(trials, level) for level in levels if level is not None}

    def score(t: FrozenTrial, level: int | None) -> float | None:
        if level is None:
            return float(t.value) if t.state == TrialState.COMPLETE else None
        return at[level].get(t.number)

    links = []
    for upper, lower in zip(levels, levels[1:]):
        pairs = np.array(
            [
                (a, b)
                for t in trials
                if (a := score(t, upper)) is not None
                and (b := score(t, lower)) is not None
                and np.isfinite(a)
                and np.isfinite(b)
            ],
            dtype=float,
        ).reshape(-1, 2)
        if len(pairs) < 3 or np.ptp(pairs[:, 0]) == 0 or np.ptp(pairs[:, 1]) == 0:
            links.append(0.0)
            continue
        rho = float(spearmanr(pairs[:, 0], pairs[:, 1]).statistic)
        links.append(max(0.0, rho) if np.isfinite(rho) else 0.0)
    return links


def linked_weights(n_trials: Sequence[int], links: Sequence[float]) -> list[float]:
    """Weights of the levels: trials behind each, times the links down to the last.

    Level ``i`` weighs ``n_trials[i] * links[i] * links[i + 1] * ...``: the last
    level (the final values, when there are any) keeps its trial count, and an
    earlier rung counts only as far as the chain of rank correlations carries its
    order to the last level. When every weight is 0 the trial counts are used.
    """
    weights = [float(n) * float(np.prod(links[i:])) for i, n in enumerate(n_trials)]
    if sum(weights) <= 0:
        return [float(n) for n in n_trials]
    return weights


def _mixture(
    results: Sequence[ImportanceResult],
    weights: Sequence[float],
    combined: ImportanceResult,
    random_state: int | None,
) -> ImportanceResult:
    """``combined`` with intervals from a mixture of the levels' resamples.

    Resample ``b`` is resample ``b`` of one level, drawn with probability
    proportional to its weight, so the intervals span what the levels disagree on
    as well as each level's own spread.
    """
    names = combined.names
    n_boot = combined.n_bootstrap
    probabilities = np.asarray(weights, dtype=float) / float(sum(weights))
    picked = np.random.default_rng(random_state).choice(len(results), size=n_boot, p=probabilities)
    samples = np.zeros((n_boot, len(names)))
    for b, level in enumerate(picked):
        r = results[level]
        for p, column in zip(r.params, r.bootstrap.T):
            samples[b, names.index(p.name)] = column[b]
    point = np.array([p.importance for p in combined.params])
    params, ordered = summarize(names, point, samples, combined.confidence)
    return combined._replace(params=params, bootstrap=ordered)


#: How :func:`rung_weighted_importances` weighs its levels.
RUNG_WEIGHTS = ("trials", "linked")
#: How it turns the levels' resamples into intervals.
RUNG_INTERVALS = ("average", "mixture")


def rung_weighted_importances(
    study: optuna.Study,
    rungs: Sequence[int] | None = None,
    *,
    evaluator: str | BaseImportanceEvaluator = "ped_anova",
    weights: str = "trials",
    intervals: str = "average",
    n_bootstrap: int = 100,
    confidence: float = 0.95,
    random_state: int | None = 0,
) -> ImportanceResult:
    """Importances at each rung and of the completed trials, averaged with weights.

    Parameters
    ----------
    study : optuna.Study
    rungs : sequence of int, optional
        Steps to explain; defaults to the steps where trials were pruned.
    evaluator, n_bootstrap, confidence, random_state
        As in :func:`~optuna_dl.analysis.importance.param_importances`; each level is
        resampled separately.
    weights : {"trials", "linked"}, default="trials"
        ``"trials"``: each level weighs the trials behind it. ``"linked"``: the trials
        behind it times the rank correlations that link it to the last level
        (:func:`level_links`, :func:`linked_weights`), so a rung whose order the later
        rungs overturn counts little.
    intervals : {"average", "mixture"}, default="average"
        ``"average"``: resample ``b`` is the weighted average of the levels' resamples
        ``b`` (the spread of the average). ``"mixture"``: resample ``b`` is one
        level's, drawn with probability proportional to its weight, so the intervals
        and the statements built on them also carry what the levels disagree on.

    Returns
    -------
    ImportanceResult
        ``n_trials`` is the number of trials behind the first rung; ``notes`` list the
        levels and their weights. Levels with fewer than 2 trials are skipped.
    """
    if weights not in RUNG_WEIGHTS:
        raise ValueError(f"weights must be one of {', '.join(RUNG_WEIGHTS)}; got {weights!r}.")
    if intervals not in RUNG_INTERVALS:
        raise ValueError(
            f"intervals must be one of {', '.join(RUNG_INTERVALS)}; got {intervals!r}."
        )
    trials = study.get_trials(deepcopy=False, states=_FINISHED)
    if rungs is None:
        rungs = sorted(
            {
                s[0]
                for t in trials
                if t.state == TrialState.PRUNED and (s := _last_step(t)) is not None
            }
        )
    common: dict[str, Any] = {
        "evaluator": evaluator,
        "n_bootstrap": n_bootstrap,
        "confidence": confidence,
        "random_state": random_state,
    }
    results: list[ImportanceResult] = []
    steps: list[int | None] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsufficientTrialsWarning)
        for step in rungs:
            r = importances_at_epoch(study, step, **common)
            if r.n_trials >= 2:
                results.append(r)
                steps.append(step)
        final = param_importances(study, **common)
        if final.n_trials >= 2:
            results.append(final)
            steps.append(None)
    if not results:
        raise ValueError("no rung or final value has 2 or more trials to explain.")
    counts = [r.n_trials for r in results]
    if weights == "linked":
        level_weights = linked_weights(counts, level_links(study, steps))
    else:
        level_weights = [float(n) for n in counts]
    combined = _combine(
        results,
        level_weights,
        f"objective, rungs weighted ({weights})",
        sum(r.seconds for r in results),
    )
    if intervals == "mixture" and combined.n_bootstrap > 0:
        combined = _mixture(results, level_weights, combined, random_state)
    levels = "; ".join(
        f"{'final' if step is None else f'epoch {step}'}: {n} trials, weight {w:.3g}"
        for step, n, w in zip(steps, counts, level_weights)
    )
    return combined._replace(notes=(*combined.notes, f"levels: {levels}"))


def imputed_final_values(study: optuna.Study) -> dict[int, float]:
    """Final values of the finished trials, predicted for the pruned ones.

    A trial pruned at step ``s`` with score ``v`` gets ``a + b * v``, the least-squares
    line from score at ``s`` to final value over the completed trials that reported
    ``s`` (the mean gain when fewer than 3 of them, or when their scores at ``s`` do
    not vary). Pruned trials with no report or that diverged get the worst completed
    value. Values are in the study's direction.

    Returns
    -------
    dict
        ``{trial number: value}``.
    """
    trials = study.get_trials(deepcopy=False, states=_FINISHED)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    values = {t.number: float(t.value) for t in complete}
    if not complete:
        return values
    sign = _sign(study)
    worst = min(sign * v for v in values.values()) * sign
    fits: dict[int, tuple[float, float]] = {}
    for t in trials:
        if t.state != TrialState.PRUNED:
            continue
        last = _last_step(t)
        diverged = TrialRecord.from_trial(t).diverged is not None
        if last is None or diverged or not np.isfinite(last[1]):
            values[t.number] = worst
            continue
        step, score = last
        if step not in fits:
            pairs = np.array(
                [
                    (c.intermediate_values[step], c.value)
                    for c in complete
                    if step in c.intermediate_values
                ],
                dtype=float,
            ).reshape(-1, 2)
            if len(pairs) == 0:
                fits[step] = (np.nan, np.nan)
            elif len(pairs) < 3 or np.ptp(pairs[:, 0]) == 0:
                fits[step] = (float(np.mean(pairs[:, 1] - pairs[:, 0])), 1.0)
            else:
                slope, intercept = np.polyfit(pairs[:, 0], pairs[:, 1], 1)
                fits[step] = (float(intercept), float(slope))
        a, b = fits[step]
        values[t.number] = worst if np.isnan(a) else a + b * score
    return values


def imputed_final_importances(
    study: optuna.Study,
    *,
    evaluator: str | BaseImportanceEvaluator = "ped_anova",
    n_bootstrap: int = 100,
    confidence: float = 0.95,
    random_state: int | None = 0,
) -> ImportanceResult:
    """Importances of every finished trial, pruned ones with imputed final values.

    See :func:`imputed_final_values`. Parameters as in
    :func:`~optuna_dl.analysis.importance.param_importances`.

    Returns
    -------
    ImportanceResult
    """
    values = imputed_final_values(study)
    direction = "maximize" if _sign(study) > 0 else "minimize"
    result = param_importances(
        study,
        evaluator=evaluator,
        target=lambda t: values.get(t.number, np.nan),
        direction=direction,
        states=_FINISHED,
        n_bootstrap=n_bootstrap,
        confidence=confidence,
        random_state=random_state,
    )
    return result._replace(target="objective, pruned trials imputed")
