"""Run a study's trials for ``optuna-dl run``: in this process, or in worker processes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from optuna_dl.runs.budget import StudyLock, Tally, run_budget, tally
from optuna_dl.runs.interrupts import InterruptGuard
from optuna_dl.runs.progress import trial_line
from optuna_dl.runs.stopping import settled_ranking
from optuna_dl.runs.storage import fail_stale_trials, redact
from optuna_dl.runs.study import OpenStudy
from optuna_dl.runs.workers import run_workers


def _say(line: str) -> None:
    print(line, flush=True)


def run_trials(
    opened: OpenStudy,
    objective: Any,
    *,
    workers: int | None = None,
    quiet: bool = False,
    out: Callable[[str], None] = _say,
) -> int:
    """Run ``opened``'s study until it has its ``n_trials`` finished trials.

    Parameters
    ----------
    opened : OpenStudy
        From :func:`~optuna_dl.runs.study.open_study` with ``mode="run"``.
    objective : callable
        The study's objective (``config.make_objective``), for trials run here.
    workers : int, optional
        Run the trials in this many worker processes instead
        (:func:`~optuna_dl.runs.workers.run_workers`).
    quiet : bool, default=False
        No line per trial.
    out : callable, default=print
        Where progress lines go.

    Returns
    -------
    int
        0, 130 after Ctrl-C, 1 when a worker process failed.
    """
    study, config = opened.study, opened.config
    # Finished: COMPLETE, PRUNED or FAIL, but not a stale failure a heartbeat retry
    # replaced and not a babysat trial (see optuna_dl.runs.budget).
    fail_stale_trials(study)
    now = tally(study.get_trials(deepcopy=False))
    remaining = None if config.n_trials is None else max(config.n_trials - now.finished, 0)
    out(
        f"study {config.name!r} in {redact(config.storage)}: {now.finished} trials finished"
        + (f", {remaining} to run" if remaining is not None else "")
        + (
            f" ({now.running} RUNNING in another process or left by a stopped run)"
            if remaining and now.running
            else ""
        )
    )
    if remaining == 0:
        return 0
    if workers is not None:
        return run_workers(config, workers, quiet=quiet)

    def say_waiting(now: Tally) -> None:
        out(
            f"waiting for {now.running} RUNNING trial(s): another process's, or "
            "a stopped run's, failed after the heartbeat grace period and run "
            "again here"
        )

    lock = StudyLock(opened.storage, study.study_name)
    try:
        with InterruptGuard() as interrupts:
            result = run_budget(
                study,
                objective,
                n_trials=config.n_trials,
                timeout=config.timeout,
                interrupts=interrupts,
                lock=lock,
                on_trial=None if quiet else lambda trial: out(trial_line(trial)),
                on_wait=say_waiting,
                should_stop=None if config.stop is None else settled_ranking(config.stop),
            )
    finally:
        lock.close()
    if result.stopped:
        out(f"stopped: {result.stopped}")
    return 130 if result.interrupted else 0
