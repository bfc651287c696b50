"""The trial record: what an optuna-dl trial stores about itself, and how to read it.

A trial run by :class:`~optuna_dl.tuning.Objective`, a worker or ``optuna-dl babysit``
keeps its estimator parameters, learning curves and bookkeeping as Optuna user
attributes. :class:`TrialRecord` is the one place that knows their keys: it writes
itself with :meth:`TrialRecord.write` / :meth:`TrialRecord.to_user_attrs` and reads
itself back with :meth:`TrialRecord.from_trial`. The same module ranks trials
(:func:`best_trials`) and turns sampled values back into estimator parameters
(:func:`estimator_params`). It imports Optuna only, so the tuning library, the study
runner and the analysis all read trials the same way.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from typing import Any

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

#: ``mode`` of a trial trained by hand with ``optuna-dl babysit``.
BABYSIT = "babysit"

__all__ = ["BABYSIT", "TrialRecord", "best_trials", "estimator_params", "is_babysat"]


@dataclasses.dataclass
class TrialRecord:
    """What one trial records beside its value, one field per user attribute.

    Every field is optional: a pruned trial has no ``best_epoch``, a plain Optuna trial
    has none of them. Fields left None are not written.

    Attributes
    ----------
    estimator_params : dict
        The estimator's parameters (``beta``, not the sampled ``one_minus_beta``).
    learning_curve : list of float
        Mean validation score after each epoch.
    loss_curve : list of float
        Mean training loss of each epoch.
    epochs : int
        Epochs trained (with ``WilcoxonPruner``: summed over the folds).
    best_epoch : int
        1-based epoch of the best mean validation score, the trial's value.
    first_epoch : int
        Babysat trials: the epoch the first entry of the curves belongs to.
    fit_seconds : float
        Training time over all folds.
    fold_scores : list of float
        Each fold's validation score at the best epoch.
    metric_scores : dict of str to list of float
        With several metrics: each metric's fold scores at the best epoch (of the
        metric the trial optimizes).
    diverged : str
        Why training blew up; the trial was then pruned.
    mode : str
        ``"babysit"`` for a model trained by hand (not part of the search's budget).
    pid : int
        Process that ran the trial in ``DeepNetSearchCV``.
    worker_pid, worker_host, worker_blas_threads
        The ``optuna-dl worker`` that ran the trial.
    changes : dict
        Babysat trials: the parameters set on the command line.
    checkpoint_dir, resumed_from, resumed_at_epoch, parent_trial
        Babysat trials: where their checkpoints are and what they continued.
    """

    estimator_params: dict[str, Any] | None = None
    learning_curve: list[float] | None = None
    loss_curve: list[float] | None = None
    epochs: int | None = None
    best_epoch: int | None = None
    first_epoch: int | None = None
    fit_seconds: float | None = None
    fold_scores: list[float] | None = None
    metric_scores: dict[str, list[float]] | None = None
    diverged: str | None = None
    mode: str | None = None
    pid: int | None = None
    worker_pid: int | None = None
    worker_host: str | None = None
    worker_blas_threads: int | None = None
    changes: dict[str, Any] | None = None
    checkpoint_dir: str | None = None
    resumed_from: str | None = None
    resumed_at_epoch: int | None = None
    parent_trial: int | None = None

    def to_user_attrs(self) -> dict[str, Any]:
        """The fields that are set, keyed by their user-attribute names."""
        return {
            field.name: value
            for field in dataclasses.fields(self)
            if (value := getattr(self, field.name)) is not None
        }

    def write(self, trial: optuna.Trial, *names: str) -> None:
        """Store the set fields (only ``names``, when given) as ``trial``'s user
        attributes, one storage write each."""
        attrs = self.to_user_attrs()
        for name in names or tuple(attrs):
            if name in attrs:
                trial.set_user_attr(name, attrs[name])

    @classmethod
    def from_trial(cls, trial: FrozenTrial | optuna.Trial) -> TrialRecord:
        """The record stored with ``trial``; other user attributes are ignored.

        >>> from optuna.trial import create_trial
        >>> trial = create_trial(value=0.9, user_attrs={"best_epoch": 3, "note": "x"})
        >>> TrialRecord.from_trial(trial).best_epoch
        3
        """
        attrs = trial.user_attrs
        return cls(**{f.name: attrs[f.name] for f in dataclasses.fields(cls) if f.name in attrs})

    @property
    def babysat(self) -> bool:
        """Whether the trial was trained by ``optuna-dl babysit``."""
        return self.mode == BABYSIT


def is_babysat(trial: FrozenTrial) -> bool:
    """Whether ``trial`` was trained by ``optuna-dl babysit``."""
    return trial.user_attrs.get("mode") == BABYSIT


def best_trials(
    source: optuna.Study | Iterable[FrozenTrial],
    k: int | None = None,
    *,
    direction: str | StudyDirection | None = None,
    babysat: bool = True,
) -> list[FrozenTrial]:
    """The ``k`` best completed trials with a finite value, best first.

    Parameters
    ----------
    source : optuna.Study or iterable of FrozenTrial
        A study (ranked in its first direction) or trials in any state.
    k : int or None, default=None
        How many; None returns all of them.
    direction : {"maximize", "minimize"} or StudyDirection, optional
        Needed for trials; defaults to the study's first direction.
    babysat : bool, default=True
        False leaves out trials trained by ``optuna-dl babysit``.

    Returns
    -------
    list of FrozenTrial
        Ties keep the order of ``source`` (a study's: the earlier trial first).

    Examples
    --------
    >>> from optuna.trial import create_trial
    >>> trials = [create_trial(value=v) for v in (0.5, 0.9, float("inf"), 0.9)]
    >>> [t.value for t in best_trials(trials, direction="maximize")]
    [0.9, 0.9, 0.5]
    """
    if isinstance(source, optuna.Study):
        trials: Iterable[FrozenTrial] = source.get_trials(
            deepcopy=False, states=(TrialState.COMPLETE,)
        )
        direction = source.directions[0] if direction is None else direction
    else:
        trials = source
    if direction is None:
        raise ValueError("best_trials: direction is needed when ranking trials, not a study.")
    maximize = direction in (StudyDirection.MAXIMIZE, "maximize")
    if not maximize and direction not in (StudyDirection.MINIMIZE, "minimize"):
        raise ValueError(f"direction must be 'maximize' or 'minimize'; got {direction!r}.")
    done = [
        t
        for t in trials
        if t.state == TrialState.COMPLETE
        and t.values
        and math.isfinite(t.values[0])
        and (babysat or not is_babysat(t))
    ]
    ranked = sorted(done, key=lambda t: -t.values[0] if maximize else t.values[0])
    return ranked if k is None else ranked[: max(int(k), 0)]


def estimator_params(trial: FrozenTrial, space: Any = None) -> dict[str, Any]:
    """The estimator parameters of ``trial``.

    The recorded ones (:attr:`TrialRecord.estimator_params`) when the trial has them;
    else its sampled values translated by ``space`` (a
    :class:`~optuna_dl.tuning.SearchSpace`: ``one_minus_beta`` becomes ``beta``), with
    names the space does not know, or every name without a space, kept as sampled.

    >>> from optuna.trial import create_trial
    >>> from optuna.distributions import FloatDistribution
    >>> from optuna_dl import SearchSpace
    >>> trial = create_trial(
    ...     value=0.9,
    ...     params={"one_minus_beta": 0.1},
    ...     distributions={"one_minus_beta": FloatDistribution(1e-3, 1e-1, log=True)},
    ... )
    >>> round(estimator_params(trial, SearchSpace.default())["beta"], 6)
    0.9
    """
    recorded = TrialRecord.from_trial(trial).estimator_params
    if recorded is not None:
        return dict(recorded)
    return to_estimator_terms(trial.params, space)


def to_estimator_terms(sampled: Mapping[str, Any], space: Any = None) -> dict[str, Any]:
    """``{sampled name: value}`` in estimator terms by ``space``; names it does not
    know (or every name, without a space) are kept as they are."""
    result: dict[str, Any] = {}
    for name, value in sampled.items():
        try:
            dimension = space[name] if space is not None else None
        except KeyError:
            dimension = None
        if dimension is None:
            result[name] = value
        else:
            result[dimension.name] = dimension.to_estimator(value)
    return result
