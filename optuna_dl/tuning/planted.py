"""A planted-truth problem: a study objective where exactly the chosen parameters matter.

The importance code is checked on a problem whose answer is known. The objective
samples the same search space as a real study (same :class:`SearchSpace`, same
names and distributions, conditional entries included), but its score depends on
the planted parameters only; every other parameter is sampled and ignored. It
reports a learning curve epoch by epoch, so pruners act on it as on a real network,
and costs microseconds per epoch (no training).

The curve of a trial is
``floor + (final - floor) * (1 - exp(-epoch / tau)) + noise``: every configuration
learns at the same speed, so the order of configurations at any epoch is the order
of their final scores (up to noise), and the true ranking is the same at every epoch.
``final`` is ``floor + (ceiling - floor)`` times the mean over planted parameters of a
bump ``exp(-((u - optimum) / width) ** 2)``, where ``u`` in [0, 1] is the parameter's
position in its range on its sampling scale (log scale for log distributions, the
choice index for categorical ones).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from optuna_dl.records import TrialRecord
from optuna_dl.tuning.pruning import may_prune
from optuna_dl.tuning.space import SearchSpace

__all__ = ["PlantedObjective", "planted_study", "unit_position"]


def unit_position(distribution: BaseDistribution, value: Any) -> float:
    """Where ``value`` lies in ``distribution``'s range, in [0, 1], on its sampling scale.

    Parameters
    ----------
    distribution : optuna.distributions.BaseDistribution
        Float or int (log-scaled ones on a log scale) or categorical.
    value : Any
        A value of the distribution (a choice for a categorical one).

    Returns
    -------
    float

    Examples
    --------
    >>> from optuna.distributions import FloatDistribution
    >>> unit_position(FloatDistribution(1e-4, 1.0, log=True), 1e-2)
    0.5
    """
    if isinstance(distribution, CategoricalDistribution):
        n = len(distribution.choices)
        return distribution.to_internal_repr(value) / (n - 1) if n > 1 else 0.5
    if isinstance(distribution, (FloatDistribution, IntDistribution)):
        low, high, v = float(distribution.low), float(distribution.high), float(value)
        if distribution.log:
            low, high, v = math.log(low), math.log(high), math.log(v)
        return (v - low) / (high - low) if high > low else 0.5
    raise TypeError(f"unsupported distribution {type(distribution).__name__}.")


class PlantedObjective:
    """An objective whose score depends on the planted parameters only.

    Parameters
    ----------
    space : SearchSpace, optional
        The space sampled, as by the package's Objective; defaults to
        ``SearchSpace.default()``.
    important : sequence of str, default=("learning_rate_decay", "log2_batch_size")
        The planted parameters, by estimator or sampled name. They must be active
        entries of ``space``.
    max_epochs : int, default=40
    floor, ceiling : float, default=0.1, 0.98
        Score of the worst and of the best configuration once trained.
    optimum, width : float, default=0.7, 0.25
        Centre and width of each planted parameter's bump, in unit position.
    tau : float, default=4.0
        Epochs to reach about 63 % of the final score.
    noise : float, default=0.01
        Standard deviation of the score's noise at each epoch.
    seed : int, default=0
        The noise of trial ``n`` is drawn from ``default_rng([seed, n])``.

    Notes
    -----
    The trial's value is the best epoch's score, as with the package's Objective. User
    attributes: ``estimator_params``, ``learning_curve``, ``epochs``, ``best_epoch``.
    Pruning is asked at the epochs where the study's pruner could act
    (:func:`optuna_dl.tuning.pruning.may_prune`).

    Examples
    --------
    >>> import optuna
    >>> objective = PlantedObjective(max_epochs=5)
    >>> study = optuna.create_study(
    ...     direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0)
    ... )
    >>> study.optimize(objective, n_trials=3)
    >>> len(study.trials[0].intermediate_values)
    5
    """

    def __init__(
        self,
        space: SearchSpace | None = None,
        important: Sequence[str] = ("learning_rate_decay", "log2_batch_size"),
        *,
        max_epochs: int = 40,
        floor: float = 0.1,
        ceiling: float = 0.98,
        optimum: float = 0.7,
        width: float = 0.25,
        tau: float = 4.0,
        noise: float = 0.01,
        seed: int = 0,
    ) -> None:
        self.space = space if space is not None else SearchSpace.default()
        active = {d.sampled_name for d in self.space.active}
        names = []
        for name in important:
            try:
                sampled = self.space[name].sampled_name
            except KeyError:
                sampled = None
            if sampled not in active:
                raise ValueError(
                    f"important parameter {name!r} is not an active entry of the space; "
                    f"active: {', '.join(sorted(active))}."
                )
            names.append(sampled)
        if not names:
            raise ValueError("important must name at least one parameter.")
        if not (isinstance(max_epochs, int) and max_epochs >= 1):
            raise ValueError(f"max_epochs must be a positive integer; got {max_epochs!r}.")
        if not (tau > 0 and width > 0 and noise >= 0):
            raise ValueError(
                f"tau and width must be > 0 and noise >= 0; got tau={tau!r}, "
                f"width={width!r}, noise={noise!r}."
            )
        self.important = tuple(names)
        self.max_epochs = max_epochs
        self.floor = floor
        self.ceiling = ceiling
        self.optimum = optimum
        self.width = width
        self.tau = tau
        self.noise = noise
        self.seed = seed
        self.distributions = self.space.to_distributions()

    def final_score(self, params: Mapping[str, Any]) -> float:
        """The noise-free score of a configuration once trained.

        Parameters
        ----------
        params : mapping
            Sampled parameters (``trial.params``); only the planted ones are read.

        Returns
        -------
        float
        """
        bumps = [
            math.exp(
                -(
                    ((unit_position(self.distributions[n], params[n]) - self.optimum) / self.width)
                    ** 2
                )
            )
            for n in self.important
        ]
        return self.floor + (self.ceiling - self.floor) * float(np.mean(bumps))

    def curve(self, params: Mapping[str, Any], number: int) -> np.ndarray:
        """The learning curve of trial ``number`` with ``params``, one score per epoch.

        Returns
        -------
        ndarray of shape (max_epochs,)
            Scores clipped to [0, 1].
        """
        final = self.final_score(params)
        epochs = np.arange(1, self.max_epochs + 1)
        rng = np.random.default_rng([self.seed, number])
        scores = self.floor + (final - self.floor) * (1.0 - np.exp(-epochs / self.tau))
        scores = scores + rng.normal(0.0, self.noise, self.max_epochs)
        return np.clip(scores, 0.0, 1.0)

    def __call__(self, trial: optuna.Trial) -> float:
        self.space.suggest(trial)
        curve = self.curve(trial.params, trial.number)
        pruner = trial.study.pruner
        reported: list[float] = []
        try:
            for epoch, score in enumerate(curve, start=1):
                reported.append(float(score))
                trial.report(float(score), epoch)
                if may_prune(pruner, epoch) and trial.should_prune():
                    raise optuna.TrialPruned(f"pruned at epoch {epoch}")
        finally:
            TrialRecord(learning_curve=reported, epochs=len(reported)).write(trial)
        best = int(np.argmax(reported))
        TrialRecord(best_epoch=best + 1).write(trial)
        return reported[best]


def planted_study(
    n_trials: int,
    *,
    objective: PlantedObjective | None = None,
    sampler: optuna.samplers.BaseSampler | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
    seed: int = 0,
) -> optuna.Study:
    """An in-memory study of ``n_trials`` trials on a planted-truth objective.

    Parameters
    ----------
    n_trials : int
    objective : PlantedObjective, optional
        Defaults to ``PlantedObjective(seed=seed)``.
    sampler : optuna.samplers.BaseSampler, optional
        Defaults to ``RandomSampler(seed=seed)``.
    pruner : optuna.pruners.BasePruner, optional
        Defaults to the README study's successive halving
        (``SuccessiveHalvingPruner(min_resource=2, reduction_factor=3)``).
    seed : int, default=0

    Returns
    -------
    optuna.Study
        Maximized; the planted parameters are ``objective.important``.
    """
    objective = objective if objective is not None else PlantedObjective(seed=seed)
    sampler = sampler if sampler is not None else optuna.samplers.RandomSampler(seed=seed)
    if pruner is None:
        pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=2, reduction_factor=3)
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)
    study.optimize(objective, n_trials=n_trials)
    return study
