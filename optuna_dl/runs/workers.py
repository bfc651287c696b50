"""Caviar: many trials at once, in several processes on one machine or on many.

``optuna-dl run CONFIG --workers K`` starts K worker processes on the study's storage;
``optuna-dl worker --storage URL --study NAME`` joins a study from any machine that can
reach the storage (PostgreSQL for several machines). A worker needs no study file: the
definition stored with the study (user attribute ``"optuna_dl_config"``, written by
``run``) is rebuilt with :func:`~optuna_dl.runs.config.config_from_dict`.

How many trials a study runs, and how its workers share them, is
:mod:`optuna_dl.runs.budget`'s job; the worker processes of ``run --workers`` come from
:mod:`optuna_dl._pool`, like those of ``DeepNetSearchCV(n_jobs=...)``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna
from threadpoolctl import threadpool_info, threadpool_limits

from optuna_dl._pool import run_processes, threads_per_process
from optuna_dl.records import TrialRecord
from optuna_dl.runs.budget import StudyLock, finished_trials, run_budget, tally
from optuna_dl.runs.interrupts import InterruptGuard
from optuna_dl.runs.progress import trial_line
from optuna_dl.runs.stopping import settled_ranking
from optuna_dl.runs.storage import redact
from optuna_dl.runs.study import open_study

#: Set by a worker process's first SIGINT handler, before it is ready to run trials.
_EARLY_INTERRUPT = threading.Event()


def _early_interrupt(signum: int, frame: Any) -> None:
    _EARLY_INTERRUPT.set()


@dataclass
class WorkerReport:
    """What one worker did."""

    trials_run: int
    interrupted: bool
    finished: int


def run_worker(
    url: str,
    study_name: str,
    *,
    n_trials: int | None = None,
    timeout: float | None = None,
    threads: int | None = None,
    seed_offset: int | None = None,
    quiet: bool = False,
    out: Callable[[str], None] | None = None,
    stop: Any = None,
) -> WorkerReport:
    """Join study ``study_name`` in ``url`` and run trials until it has ``n_trials``
    finished trials (default: the stored ``n_trials``) or ``timeout`` seconds
    (default: the stored ``timeout``) have passed.

    ``threads`` caps the BLAS/OpenMP threads of this process (None: no cap).
    ``seed_offset`` shifts the sampler's seed so that workers do not propose the same
    configurations (None: a random offset). ``stop``, an event (``is_set()``), asks the
    worker to start no further trial, like Ctrl-C.

    Raises
    ------
    StorageError, ConfigError
        One line each. Raised before the first trial, nothing was written to the study;
        a StorageError raised later (the database failed) leaves the trial in progress
        RUNNING, to be failed by heartbeat and run again.
    """

    def say(line: str) -> None:
        if out is not None:
            out(line)
        else:
            print(line, flush=True)

    if seed_offset is None:
        seed_offset = int.from_bytes(os.urandom(4), "big") % 2**30
    with open_study(mode="join", url=url, name=study_name, seed_offset=seed_offset) as opened:
        return _work(opened, url, n_trials, timeout, threads, quiet, say, stop)


def _work(
    opened: Any,
    url: str,
    n_trials: int | None,
    timeout: float | None,
    threads: int | None,
    quiet: bool,
    say: Callable[[str], None],
    stop: Any,
) -> WorkerReport:
    """The body of :func:`run_worker`, on an open study."""
    study, config = opened.study, opened.config
    n_trials = config.n_trials if n_trials is None else n_trials
    timeout = config.timeout if timeout is None else timeout
    X, _, y, _ = config.load_data()
    objective = config.make_objective(X, y)
    pid, host = os.getpid(), socket.gethostname()
    start = tally(study.get_trials(deepcopy=False))
    say(
        f"worker {pid} on {host}: study {study.study_name!r} in {redact(url)}: "
        f"{start.finished} trials finished"
        + (f" of {n_trials}" if n_trials is not None else "")
        + (f", BLAS threads {threads}" if threads else "")
    )

    def objective_in_worker(trial: optuna.Trial) -> float:
        TrialRecord(worker_pid=pid, worker_host=host, worker_blas_threads=_blas_threads()).write(
            trial
        )
        return objective(trial)

    lock = StudyLock(opened.storage, study.study_name)
    limits = threadpool_limits(limits=threads) if threads else contextlib.nullcontext()
    try:
        with InterruptGuard() as interrupts, limits:
            interrupts.pending = _EARLY_INTERRUPT.is_set()
            result = run_budget(
                study,
                objective_in_worker,
                n_trials=n_trials,
                timeout=timeout,
                interrupts=interrupts,
                lock=lock,
                on_trial=None if quiet else lambda trial: say(trial_line(trial, worker=pid)),
                stop=stop,
                should_stop=None if config.stop is None else settled_ranking(config.stop),
            )
    finally:
        lock.close()
    done = len(finished_trials(study.get_trials(deepcopy=False)))
    ran = result.ran
    if result.stopped:
        say(f"worker {pid}: stopped: {result.stopped}")
    say(
        f"worker {pid}: ran {ran} trial{'' if ran == 1 else 's'}"
        + (" (interrupted)" if result.interrupted else "")
        + f"; study {study.study_name!r} has {done} finished trials"
    )
    return WorkerReport(ran, result.interrupted, done)


def _blas_threads() -> int | None:
    """The BLAS thread count in effect in this process (None: no BLAS found)."""
    counts = [i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas"]
    return max(counts) if counts else None


# ------------------------------------------------------- several local workers
def _child(*, stop: Any, **spec: Any) -> WorkerReport:
    """Entry point of a worker process started by :func:`run_workers`.

    The process starts with SIGINT ignored (see :mod:`optuna_dl._pool`); from here on
    a Ctrl-C is remembered, and honoured once the worker is ready. ``stop`` is the
    parent's event for the same request.
    """
    _EARLY_INTERRUPT.clear()
    signal.signal(signal.SIGINT, _early_interrupt)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return run_worker(**spec, stop=stop)


def run_workers(config: Any, workers: int, *, quiet: bool = False) -> int:
    """Run ``config``'s study (already created, with its definition stored) in
    ``workers`` processes on this machine; each gets ``cores // workers`` BLAS threads.

    Returns 0 when every worker ended normally, 130 after Ctrl-C, 1 when a worker
    failed (the others go on; the study stays consistent).
    """
    threads = threads_per_process(workers)
    jobs = [
        {
            "url": config.storage,
            "study_name": config.name,
            "n_trials": config.n_trials,
            "timeout": config.timeout,
            "threads": threads,
            "seed_offset": index << 20,
            "quiet": quiet,
        }
        for index in range(workers)
    ]
    print(f"starting {workers} workers with {threads} BLAS thread(s) each", flush=True)
    outcomes, interrupted = run_processes(
        _child, jobs, name="optuna-dl-worker", on_interrupt="stop"
    )
    failed = False
    for outcome in outcomes:
        if isinstance(outcome.error, KeyboardInterrupt):
            interrupted = True
        elif outcome.error is not None:
            failed = True
            lines = str(outcome.error).strip().splitlines() or [type(outcome.error).__name__]
            print(f"optuna-dl: warning: {outcome.name} failed: {lines[0]}", file=sys.stderr)
        elif outcome.value.interrupted:
            interrupted = True
    if interrupted:
        return 130
    return 1 if failed else 0
