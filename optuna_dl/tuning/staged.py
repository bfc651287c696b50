"""Coarse to fine: search a wide space, then zoom in on the region of the best trials.

The course's recipe for hyperparameter search: sample the space at random, notice
where the good points cluster, and sample that smaller region more densely. Each stage
here is an Optuna study; between stages every numeric dimension is narrowed, *in its
own scale*, to the range covered by the previous stage's top trials, and categorical
dimensions keep only the choices those trials used.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import optuna
from optuna.distributions import (
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    distribution_to_json,
)
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from optuna_dl.records import best_trials, to_estimator_terms
from optuna_dl.tuning.space import Dimension, SearchSpace, _complement

__all__ = ["CoarseToFineResult", "coarse_to_fine", "shrink_space", "top_trials"]

#: When the top trials leave a float dimension no width at all (``margin=0`` and a
#: single distinct value), it keeps this share of its previous width around them.
MIN_WIDTH_FRACTION = 0.01


@dataclass(frozen=True)
class CoarseToFineResult:
    """What :func:`coarse_to_fine` ran and found.

    Attributes
    ----------
    studies : list of optuna.Study
        One per stage, named ``"<study_name>-stage<k>"``, in order.
    spaces : list of SearchSpace
        The space each stage sampled; ``spaces[0]`` is the one given.
    best_trial : optuna.trial.FrozenTrial
        The best completed trial over all stages.
    best_stage : int
        1-based stage of ``best_trial``.
    """

    studies: list[optuna.Study]
    spaces: list[SearchSpace]
    best_trial: FrozenTrial
    best_stage: int

    @property
    def best_value(self) -> float:
        """Objective value of ``best_trial``."""
        return float(self.best_trial.value)

    @property
    def best_params(self) -> dict[str, Any]:
        """Parameters of ``best_trial`` in estimator terms (``beta``, not
        ``one_minus_beta``; ``batch_size``, not ``log2_batch_size``); parameters the
        objective suggested outside the space are kept as they are."""
        space = self.spaces[self.best_stage - 1]
        return to_estimator_terms(self.best_trial.params, space)

    @property
    def n_trials(self) -> int:
        """Number of trials over all stages."""
        return sum(len(study.trials) for study in self.studies)


def _as_direction(direction: str | StudyDirection) -> StudyDirection:
    if isinstance(direction, StudyDirection) and direction != StudyDirection.NOT_SET:
        return direction
    if direction in ("maximize", "minimize"):
        return StudyDirection.MAXIMIZE if direction == "maximize" else StudyDirection.MINIMIZE
    raise ValueError(f"direction must be 'maximize' or 'minimize'; got {direction!r}.")


def top_trials(
    trials: Sequence[FrozenTrial],
    n: int,
    direction: str | StudyDirection = "maximize",
) -> list[FrozenTrial]:
    """The ``n`` best completed trials with a finite value, best first.

    Parameters
    ----------
    trials : sequence of optuna.trial.FrozenTrial
        Trials in any state; only completed trials with a finite value are ranked.
    n : int
    direction : {"maximize", "minimize"}, default="maximize"

    Returns
    -------
    list of optuna.trial.FrozenTrial
        At most ``n``; ties keep the order of ``trials``.
    """
    return best_trials(trials, n, direction=_as_direction(direction))


def _warp(dist: FloatDistribution | IntDistribution) -> tuple[Callable, Callable]:
    """The sampled distribution's own scale and its inverse: log for a log
    distribution (``log``, ``reverse_log`` on 1 - x), identity otherwise (``linear``,
    ``power_of_two`` whose sampled quantity already is the base-2 logarithm)."""
    if dist.log:
        return math.log, math.exp
    return (lambda v: float(v)), (lambda v: float(v))


def _shrink_numeric(dim: Dimension, values: list[float], margin: float) -> Dimension:
    """``dim`` narrowed to the sampled ``values`` (padded by ``margin`` of the current
    width in the sampled scale), never beyond its current bounds."""
    dist = dim.distribution()
    warp, unwarp = _warp(dist)
    low_w, high_w = warp(dist.low), warp(dist.high)
    width = high_w - low_w
    lo_w = min(warp(v) for v in values) - margin * width
    hi_w = max(warp(v) for v in values) + margin * width
    if hi_w - lo_w <= 0 and isinstance(dist, FloatDistribution):  # margin=0, one value
        lo_w -= MIN_WIDTH_FRACTION * width / 2
        hi_w += MIN_WIDTH_FRACTION * width / 2
    lo_w, hi_w = max(lo_w, low_w), min(hi_w, high_w)
    # Round-off of exp(log(v)) must neither drop a top value nor leave the bounds.
    lo = max(min(unwarp(lo_w), min(values)), dist.low)
    hi = min(max(unwarp(hi_w), max(values)), dist.high)

    if isinstance(dist, IntDistribution):
        lo, hi = max(math.floor(lo), dist.low), min(math.ceil(hi), dist.high)
        if lo >= hi:  # keep at least two values so that low < high stays valid
            if hi < dist.high:
                hi += 1
            else:
                lo -= 1
        if dim.scale == "power_of_two":
            return replace(dim, low=2**lo, high=2**hi)
        return replace(dim, low=lo, high=hi)
    if dim.scale == "reverse_log":  # sampled: 1 - value
        return replace(dim, low=_complement(hi), high=_complement(lo))
    return replace(dim, low=lo, high=hi)


def shrink_space(
    space: SearchSpace,
    trials: Sequence[FrozenTrial],
    *,
    direction: str | StudyDirection = "maximize",
    top_quantile: float = 0.25,
    margin: float = 0.05,
    min_top: int = 1,
) -> SearchSpace:
    """Narrow ``space`` to the region of the best ``trials``.

    Every active numeric entry is cut, in the scale its sampled quantity is drawn on,
    to the range the top trials cover, padded on each side by ``margin`` times the
    entry's current width in that scale and clipped to the current bounds:

    - ``linear``: the values themselves;
    - ``log``: their logarithm;
    - ``reverse_log``: the logarithm of ``1 - value`` (the ``one_minus_<name>``
      quantity that is sampled);
    - ``power_of_two``: the exponent (``log2_<name>``).

    Integer bounds (and exponents) are rounded outward, and an integer range that
    would shrink to a single value keeps a neighbour so that ``low < high``. Float
    entries never collapse either (see ``MIN_WIDTH_FRACTION``). Categorical entries
    keep, in their order, only the choices the top trials used. Entries that none of
    the top trials sampled (a conditional entry whose parent never took the value)
    and inactive entries are left unchanged.

    Parameters
    ----------
    space : SearchSpace
        The space the trials were sampled from.
    trials : sequence of optuna.trial.FrozenTrial
        Trials of one study sampled from ``space`` (params in sampled names); only
        completed trials with a finite value count.
    direction : {"maximize", "minimize"}, default="maximize"
    top_quantile : float, default=0.25
        Share of the completed trials that defines the region, in (0, 1].
    margin : float, default=0.05
        Padding on each side, as a share of the entry's current width; >= 0.
    min_top : int, default=1
        At least this many top trials (if there are that many completed trials).

    Returns
    -------
    SearchSpace
        ``space`` itself when no trial completed.

    Examples
    --------
    >>> import optuna
    >>> from optuna.trial import create_trial
    >>> from optuna_dl.tuning.space import Dimension, SearchSpace
    >>> from optuna_dl.tuning.staged import shrink_space
    >>> space = SearchSpace((Dimension("learning_rate", "float", 1e-4, 1.0, "log"),))
    >>> trials = [
    ...     create_trial(params={"learning_rate": lr}, distributions=space.to_distributions(),
    ...                  value=value)
    ...     for lr, value in [(1e-4, 0.5), (1e-3, 0.9), (1e-2, 0.95), (1e-1, 0.7)]
    ... ]
    >>> shrink_space(space, trials, top_quantile=0.5, margin=0.0)["learning_rate"].high
    0.01...
    """
    if not 0 < top_quantile <= 1:
        raise ValueError(f"top_quantile must be in (0, 1]; got {top_quantile!r}.")
    if not (isinstance(margin, (int, float)) and math.isfinite(margin) and margin >= 0):
        raise ValueError(f"margin must be a finite number >= 0; got {margin!r}.")
    ranked = top_trials(trials, len(trials), direction)
    if not ranked:
        return space
    n_top = min(len(ranked), max(math.ceil(top_quantile * len(ranked)), int(min_top), 1))
    best = ranked[:n_top]

    dims = []
    for dim in space.dimensions:
        values = [t.params[dim.sampled_name] for t in best if dim.sampled_name in t.params]
        if not dim.enabled or not values:
            dims.append(dim)
        elif dim.kind == "categorical":
            dims.append(replace(dim, choices=tuple(c for c in dim.choices if c in values)))
        else:
            dims.append(_shrink_numeric(dim, values, margin))
    return SearchSpace(tuple(dims))


def _clip_to(dist: Any, value: Any) -> Any:
    """``value`` moved into ``dist`` (by round-off only, for the trials enqueued)."""
    if isinstance(dist, CategoricalDistribution):
        return value
    clipped = min(max(value, dist.low), dist.high)
    return int(clipped) if isinstance(dist, IntDistribution) else float(clipped)


def _stage_seed(seed: int | None, stage: int, done: int) -> int | None:
    """A sampler seed for ``stage`` that differs when a resumed stage already has
    ``done`` trials (so it does not replay its first draws)."""
    if seed is None:
        return None
    return int(np.random.SeedSequence((seed, stage, done)).generate_state(1)[0])


def _stage_objective(objective: Any, space: SearchSpace) -> Callable[[optuna.Trial], float]:
    if isinstance(getattr(objective, "space", None), SearchSpace):
        staged = copy.copy(objective)  # keeps the splits, data and settings
        staged.space = space
        return staged
    staged = objective(space)
    if not callable(staged):
        raise TypeError(
            "coarse_to_fine: objective must be an object with a SearchSpace attribute "
            "'space' (such as Objective) or a factory space -> objective(trial); the "
            f"factory returned {type(staged).__name__}."
        )
    return staged


def coarse_to_fine(
    objective: Any,
    space: SearchSpace | None = None,
    *,
    n_trials: int | Sequence[int] = 20,
    stages: int | None = None,
    top_quantile: float = 0.25,
    margin: float = 0.05,
    enqueue_best: int = 1,
    direction: str | StudyDirection = "maximize",
    storage: str | optuna.storages.BaseStorage | None = None,
    study_name: str = "study",
    load_if_exists: bool = False,
    sampler_factory: Callable[..., optuna.samplers.BaseSampler] | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
    seed: int | None = None,
) -> CoarseToFineResult:
    """Run successive studies, each on the region of the previous one's best trials.

    Stage 1 samples ``space``. Before each further stage the space is narrowed with
    :func:`shrink_space` to the region of the previous stage's top ``top_quantile``
    completed trials (each numeric dimension in its own scale, never beyond the
    previous bounds, so never beyond the original ones), and that stage's best
    ``enqueue_best`` trials are enqueued, in sampled names, so the next stage starts
    from them. The region always includes the enqueued trials.

    Parameters
    ----------
    objective : Objective or callable
        Either an object with a :class:`SearchSpace` attribute ``space`` (such as
        :class:`optuna_dl.tuning.objective.Objective`), shallow-copied per stage with
        the stage's space (its splits are kept), or a factory called as
        ``objective(space)`` that returns the stage's ``objective(trial) -> float``.
    space : SearchSpace, optional
        The wide space of stage 1; defaults to ``objective.space``. Required with a
        factory.
    n_trials : int or sequence of int, default=20
        Trials per stage (enqueued trials included), one number for every stage or
        one per stage.
    stages : int, optional
        Number of stages; defaults to ``len(n_trials)`` for a sequence, else 3.
    top_quantile : float, default=0.25
        Share of a stage's completed trials whose region the next stage samples.
    margin : float, default=0.05
        Padding on each side of that region, as a share of the dimension's width in
        the previous stage, in the dimension's own scale.
    enqueue_best : int, default=1
        Best trials of a stage re-run first in the next one (0 for none).
    direction : {"maximize", "minimize"}, default="maximize"
    storage : str or optuna.storages.BaseStorage, optional
        Shared by every stage (e.g. ``"sqlite:///tuning.db"``); in memory when None.
    study_name : str, default="study"
        Stage ``k`` is the study ``"<study_name>-stage<k>"``.
    load_if_exists : bool, default=False
        Resume: reuse existing stage studies and run only the trials each still lacks
        (the spaces are recomputed from the stored trials, enqueues are not repeated).
    sampler_factory : callable, optional
        Called as ``sampler_factory(seed=s)`` for each stage, e.g.
        ``optuna.samplers.TPESampler``; ``s`` is None without ``seed``, else derived
        from ``seed``, the stage number and the number of trials the stage already has
        (a resumed stage does not replay its first draws). Defaults to
        ``optuna.samplers.RandomSampler``, the course's random search.
    pruner : optuna.pruners.BasePruner, optional
        Each stage gets a deep copy, so stateful pruners start afresh.
    seed : int, optional
        Seeds the stages' samplers: the same seed and settings give the same studies.

    Returns
    -------
    CoarseToFineResult

    Raises
    ------
    ValueError
        On an invalid setting, before any trial runs.

    Notes
    -----
    Each study stores its stage number and its search space (Optuna distributions as
    JSON, by sampled name) in the user attributes ``"stage"`` and ``"search_space"``.
    A stage in which no trial completes leaves the space unchanged (with a warning).

    Examples
    --------
    A cheap synthetic objective whose optimum is ``learning_rate=1e-2`` and
    ``batch_size=128``:

    >>> import math
    >>> import optuna
    >>> from optuna_dl.tuning.space import Dimension, SearchSpace
    >>> from optuna_dl.tuning.staged import coarse_to_fine
    >>> space = SearchSpace((
    ...     Dimension("learning_rate", "float", 1e-5, 1.0, "log"),
    ...     Dimension("batch_size", "int", 16, 1024, "power_of_two"),
    ... ))
    >>> def factory(space):
    ...     def objective(trial):
    ...         p = space.suggest(trial)
    ...         return -(math.log10(p["learning_rate"]) + 2) ** 2 - (
    ...             math.log2(p["batch_size"]) - 7) ** 2
    ...     return objective
    >>> result = coarse_to_fine(factory, space, n_trials=[40, 20, 20], seed=0)
    >>> [study.study_name for study in result.studies]
    ['study-stage1', 'study-stage2', 'study-stage3']
    >>> lr = result.spaces[-1]["learning_rate"]
    >>> lr.low < 1e-2 < lr.high and lr.high / lr.low < 1e5
    True
    >>> result.best_params["batch_size"], round(math.log10(result.best_params["learning_rate"]))
    (128, -2)
    """
    if not isinstance(space, SearchSpace):
        if space is not None:
            raise TypeError(f"space must be a SearchSpace; got {type(space).__name__}.")
        space = getattr(objective, "space", None)
        if not isinstance(space, SearchSpace):
            raise ValueError(
                "coarse_to_fine: pass space= with an objective factory (only an "
                "objective with a SearchSpace attribute 'space' provides its own)."
            )
    if isinstance(n_trials, int) and not isinstance(n_trials, bool):
        stages = 3 if stages is None else stages
        if not (isinstance(stages, int) and not isinstance(stages, bool) and stages >= 1):
            raise ValueError(f"stages must be a positive integer; got {stages!r}.")
        budget = [n_trials] * stages
    else:
        budget = list(n_trials)
        if stages is not None and stages != len(budget):
            raise ValueError(
                f"n_trials has {len(budget)} entries but stages={stages!r}; give one per "
                "stage or a single number."
            )
        if not budget:
            raise ValueError("n_trials must not be empty.")
    for n in budget:
        if not (isinstance(n, int) and not isinstance(n, bool) and n >= 1):
            raise ValueError(f"n_trials must be positive integers; got {n!r}.")
    if not (isinstance(enqueue_best, int) and not isinstance(enqueue_best, bool)):
        raise ValueError(f"enqueue_best must be an integer >= 0; got {enqueue_best!r}.")
    if enqueue_best < 0:
        raise ValueError(f"enqueue_best must be an integer >= 0; got {enqueue_best!r}.")
    direction = _as_direction(direction)
    shrink_space(space, [], top_quantile=top_quantile, margin=margin)  # validates both
    if storage is None:
        storage = optuna.storages.InMemoryStorage()
    if sampler_factory is None:
        sampler_factory = optuna.samplers.RandomSampler

    studies: list[optuna.Study] = []
    spaces: list[SearchSpace] = []
    stage_space = space
    best: list[FrozenTrial] = []
    for k, n_stage in enumerate(budget, start=1):
        if studies:
            previous = studies[-1].get_trials(deepcopy=False)
            if not top_trials(previous, 1, direction):
                warnings.warn(
                    f"coarse_to_fine: no trial of stage {k - 1} completed; stage {k} "
                    "samples the same space.",
                    UserWarning,
                    stacklevel=2,
                )
            stage_space = shrink_space(
                stage_space,
                previous,
                direction=direction,
                top_quantile=top_quantile,
                margin=margin,
                min_top=enqueue_best,
            )
            best = top_trials(previous, min(enqueue_best, n_stage), direction)
        study = optuna.create_study(
            storage=storage,
            sampler=optuna.samplers.RandomSampler(),  # replaced below
            pruner=copy.deepcopy(pruner),
            study_name=f"{study_name}-stage{k}",
            direction=direction,
            load_if_exists=load_if_exists,
        )
        distributions = stage_space.to_distributions()
        study.set_user_attr("stage", k)
        study.set_user_attr(
            "search_space", {name: distribution_to_json(d) for name, d in distributions.items()}
        )
        for trial in best:
            params = {
                name: _clip_to(distributions[name], value)
                for name, value in trial.params.items()
                if name in distributions
            }
            study.enqueue_trial(params, skip_if_exists=True)
        done = sum(t.state != TrialState.WAITING for t in study.get_trials(deepcopy=False))
        study.sampler = sampler_factory(seed=_stage_seed(seed, k, done))
        if n_stage > done:
            study.optimize(_stage_objective(objective, stage_space), n_trials=n_stage - done)
        studies.append(study)
        spaces.append(stage_space)

    overall = None
    for k, study in enumerate(studies, start=1):
        for trial in top_trials(study.get_trials(deepcopy=False), 1, direction):
            better = overall is None or (
                trial.value > overall[0].value
                if direction == StudyDirection.MAXIMIZE
                else trial.value < overall[0].value
            )
            if better:
                overall = (trial, k)
    if overall is None:
        raise RuntimeError("coarse_to_fine: no trial completed in any stage.")
    return CoarseToFineResult(studies, spaces, overall[0], overall[1])
