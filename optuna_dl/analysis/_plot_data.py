"""The data behind the package's own plots, computed apart from drawing them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import optuna
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from optuna_dl.records import TrialRecord, best_trials

__all__ = [
    "CurveTrial",
    "DistinctValues",
    "LearningCurves",
    "TriedPoints",
    "distinct_values",
    "learning_curves",
    "param_names",
    "tried_points",
]

#: Trial states whose parameters were actually tried (sampled and trained).
TRIED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


class CurveTrial(NamedTuple):
    """One trial's intermediate values.

    ``outcome`` is ``"complete"``, ``"pruned"``, ``"diverged"`` (pruned because
    training blew up), ``"failed"`` or ``"running"``.
    """

    number: int
    outcome: str
    steps: tuple[int, ...]
    values: tuple[float, ...]


class LearningCurves(NamedTuple):
    """Intermediate values of every trial that reported any, by outcome."""

    trials: tuple[CurveTrial, ...]
    best: int | None

    def count(self, outcome: str) -> int:
        """Number of curves with this outcome."""
        return sum(t.outcome == outcome for t in self.trials)


class DistinctValues(NamedTuple):
    """How many distinct values each parameter received (the random-vs-grid picture).

    ``grid_values`` is what a full grid with the same number of trials would have
    given every parameter: ``floor(n_trials ** (1 / len(params)))``.
    """

    params: tuple[str, ...]
    n_distinct: tuple[int, ...]
    n_trials: tuple[int, ...]
    total_trials: int
    grid_values: int


class TriedPoints(NamedTuple):
    """The points tried on two parameters, with each trial's state and value."""

    x_param: str
    y_param: str
    x: tuple[Any, ...]
    y: tuple[Any, ...]
    states: tuple[str, ...]
    values: tuple[float, ...]
    numbers: tuple[int, ...]
    x_log: bool
    y_log: bool


def _outcome(trial: FrozenTrial) -> str:
    if trial.state == TrialState.PRUNED:
        return "diverged" if TrialRecord.from_trial(trial).diverged else "pruned"
    return {
        TrialState.COMPLETE: "complete",
        TrialState.FAIL: "failed",
    }.get(trial.state, "running")


def _best_number(study: optuna.Study) -> int | None:
    if len(study.directions) > 1:
        return None
    best = best_trials(study, 1)
    return best[0].number if best else None


def learning_curves(study: optuna.Study) -> LearningCurves:
    """Intermediate values (per-epoch validation scores) of every trial.

    Examples
    --------
    >>> import optuna
    >>> from optuna.trial import create_trial, TrialState
    >>> study = optuna.create_study(direction="maximize")
    >>> study.add_trial(create_trial(value=0.9, intermediate_values={1: 0.5, 2: 0.9}))
    >>> study.add_trial(create_trial(state=TrialState.PRUNED, intermediate_values={1: 0.2}))
    >>> curves = learning_curves(study)
    >>> [(t.outcome, t.steps) for t in curves.trials]
    [('complete', (1, 2)), ('pruned', (1,))]
    """
    trials = []
    for trial in study.get_trials(deepcopy=False):
        if not trial.intermediate_values:
            continue
        steps = tuple(sorted(trial.intermediate_values))
        values = tuple(float(trial.intermediate_values[s]) for s in steps)
        trials.append(CurveTrial(trial.number, _outcome(trial), steps, values))
    return LearningCurves(tuple(trials), _best_number(study))


def param_names(study: optuna.Study) -> list[str]:
    """Every parameter name of the tried trials, in order of first appearance."""
    names: dict[str, None] = {}
    for trial in study.get_trials(deepcopy=False, states=TRIED):
        names.update(dict.fromkeys(trial.params))
    return list(names)


def distinct_values(study: optuna.Study) -> DistinctValues:
    """Distinct values received by each parameter over the tried trials.

    Examples
    --------
    >>> import optuna
    >>> from optuna.distributions import FloatDistribution
    >>> from optuna.trial import create_trial
    >>> study = optuna.create_study()
    >>> d = {"a": FloatDistribution(0, 1), "b": FloatDistribution(0, 1)}
    >>> study.add_trials([create_trial(params={"a": i / 9, "b": 0.5}, distributions=d, value=i)
    ...                   for i in range(9)])
    >>> data = distinct_values(study)
    >>> data.params, data.n_distinct, data.grid_values
    (('a', 'b'), (9, 1), 3)
    """
    trials = study.get_trials(deepcopy=False, states=TRIED)
    names = param_names(study)
    seen: dict[str, set] = {name: set() for name in names}
    counts = dict.fromkeys(names, 0)
    for trial in trials:
        for name, value in trial.params.items():
            seen[name].add(repr(value) if not isinstance(value, (int, float)) else value)
            counts[name] += 1
    grid = math.floor(len(trials) ** (1 / len(names)) + 1e-9) if names else 0
    return DistinctValues(
        params=tuple(names),
        n_distinct=tuple(len(seen[n]) for n in names),
        n_trials=tuple(counts[n] for n in names),
        total_trials=len(trials),
        grid_values=grid,
    )


def _is_log(study: optuna.Study, name: str) -> bool:
    for trial in study.get_trials(deepcopy=False, states=TRIED):
        dist = trial.distributions.get(name)
        if isinstance(dist, (FloatDistribution, IntDistribution)):
            return dist.log
    return False


def tried_points(study: optuna.Study, params: Sequence[str]) -> TriedPoints:
    """Values tried on the two ``params`` by every tried trial that has both.

    Parameters
    ----------
    study : optuna.Study
    params : sequence of two str
        Usually the two most important parameters.
    """
    if len(params) != 2:
        raise ValueError(f"params must name two parameters; got {list(params)!r}.")
    x_name, y_name = params
    rows = [
        t
        for t in study.get_trials(deepcopy=False, states=TRIED)
        if x_name in t.params and y_name in t.params
    ]
    return TriedPoints(
        x_param=x_name,
        y_param=y_name,
        x=tuple(t.params[x_name] for t in rows),
        y=tuple(t.params[y_name] for t in rows),
        states=tuple(_outcome(t) for t in rows),
        values=tuple(
            float(t.values[0]) if t.state == TrialState.COMPLETE and t.values else math.nan
            for t in rows
        ),
        numbers=tuple(t.number for t in rows),
        x_log=_is_log(study, x_name),
        y_log=_is_log(study, y_name),
    )
