"""The numbers at the top of a report: trials by state, best value, wall time, workers."""

from __future__ import annotations

import datetime
from typing import NamedTuple

import optuna
from optuna.trial import FrozenTrial, TrialState

from optuna_dl.records import best_trials

__all__ = ["StudySummary", "peak_parallel", "summarize"]


class StudySummary(NamedTuple):
    """Counts and times of a study.

    ``wall_seconds`` runs from the first trial's start to the last completion;
    ``trial_seconds`` sums the trials' own durations; ``peak_parallel`` is the largest
    number of trials that were running at the same moment (the workers in use).
    """

    name: str
    directions: tuple[str, ...]
    n_trials: int
    counts: dict[str, int]
    best_value: float | None
    best_number: int | None
    wall_seconds: float | None
    trial_seconds: float
    peak_parallel: int
    params: tuple[str, ...]


def peak_parallel(trials: list[FrozenTrial]) -> int:
    """Largest number of trials whose [start, complete) intervals overlap."""
    events = []
    for t in trials:
        if t.datetime_start is not None and t.datetime_complete is not None:
            events.append((t.datetime_start, 1))
            events.append((t.datetime_complete, -1))
    running = peak = 0
    for _, delta in sorted(events, key=lambda e: (e[0], e[1])):  # ends before starts
        running += delta
        peak = max(peak, running)
    return peak


def summarize(study: optuna.Study) -> StudySummary:
    """Counts by state, best value, wall time and peak parallelism of ``study``."""
    trials = study.get_trials(deepcopy=False)
    counts = {state.name.lower(): sum(t.state == state for t in trials) for state in TrialState}
    best = best_trials(study, 1)
    starts = [t.datetime_start for t in trials if t.datetime_start is not None]
    ends = [t.datetime_complete for t in trials if t.datetime_complete is not None]
    wall = (max(ends) - min(starts)).total_seconds() if starts and ends else None
    spent = sum(
        (
            t.datetime_complete - t.datetime_start
            for t in trials
            if t.datetime_start and t.datetime_complete
        ),
        datetime.timedelta(),
    ).total_seconds()
    params = dict.fromkeys(p for t in trials for p in t.params)
    return StudySummary(
        name=study.study_name,
        directions=tuple(d.name.lower() for d in study.directions),
        n_trials=len(trials),
        counts=counts,
        best_value=float(best[0].values[0]) if best else None,
        best_number=best[0].number if best else None,
        wall_seconds=wall,
        trial_seconds=spent,
        peak_parallel=peak_parallel(trials),
        params=tuple(params),
    )
