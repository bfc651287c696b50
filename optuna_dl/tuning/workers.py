"""Caviar: many trials at once, in several processes on one machine or on many.

``optuna-dl run CONFIG --workers K`` starts K worker processes on the study's storage;
``optuna-dl worker --storage URL --study NAME`` joins a study from any machine that can
reach the storage (PostgreSQL for several machines). A worker needs no study file: the
definition stored with the study (user attribute ``"optuna_dl_config"``, written by
``run``) is rebuilt with :func:`~optuna_dl.tuning.config.config_from_dict`.

What "finished" means
---------------------
A study's target ``n_trials`` counts *finished* trials: trials in state COMPLETE,
PRUNED or FAIL, except

- a FAIL that a heartbeat retry replaced: when a worker dies (SIGKILL, a lost machine)
  its RUNNING trial is failed once its heartbeat is older than the grace period, and
  a copy with the same parameters is queued; the copy is what counts, the stale
  failure does not (its number is in the copy's ``retry_history`` system attribute);
- babysat trials (user attribute ``"mode" == "babysit"``, see ``optuna-dl babysit``):
  models trained by hand sit next to the search but are not part of its budget.

A FAIL raised by the objective itself (an error, Ctrl-C) counts: running the same
configuration again would fail again, and ``run`` has always counted it.

Exactly ``n_trials``
--------------------
Every trial that is RUNNING or WAITING will become exactly one finished trial (a
stale failure is replaced by its retry; a retry that also goes stale is retried again,
up to three times, and the last failure then counts). So a worker only *creates* a
trial when ``finished + running + waiting < n_trials``, and it checks and creates under
a lock shared by all workers of the study (``flock`` on the SQLite file; a PostgreSQL
advisory lock), so two workers never both take the last place. Queued trials (retries)
are always run. When the target is reached a worker stays until no trial of the study
is RUNNING any more, so that a trial whose worker dies is still retried.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from optuna_dl.tuning.config import CONFIG_ATTR
from optuna_dl.tuning.interrupts import InterruptGuard
from optuna_dl.tuning.storage import (
    QuietStorageFailures,
    close_storage,
    fail_stale_trials,
    guard_storage,
    open_storage,
    redact,
    storage_errors,
    use_write_ahead_log,
)

MODE_ATTR = "mode"
BABYSIT = "babysit"
PID_ATTR = "worker_pid"
HOST_ATTR = "worker_host"
THREADS_ATTR = "worker_blas_threads"
#: Seconds between two looks at the study while waiting for other workers' trials.
POLL_SECONDS = 0.5
_FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


class WorkerError(RuntimeError):
    """A worker that cannot start; ``str(error)`` is one line, passwords hidden."""


# ------------------------------------------------------------------- counting
def is_babysat(trial: FrozenTrial) -> bool:
    """Whether ``trial`` was trained by ``optuna-dl babysit``."""
    return trial.user_attrs.get(MODE_ATTR) == BABYSIT


def superseded(trials: Iterable[FrozenTrial]) -> set[int]:
    """Numbers of the trials that a heartbeat retry replaced."""
    replaced: set[int] = set()
    for trial in trials:
        history = trial.system_attrs.get("retry_history")
        if isinstance(history, list):
            replaced.update(n for n in history if isinstance(n, int))
    return replaced


def finished_trials(trials: Iterable[FrozenTrial]) -> list[FrozenTrial]:
    """The trials that count toward ``n_trials`` (see the module docstring).

    >>> from optuna.trial import create_trial
    >>> done = create_trial(value=0.9)
    >>> stale = create_trial(state=TrialState.FAIL)
    >>> retry = create_trial(value=0.8, system_attrs={"retry_history": [1]})
    >>> for number, t in enumerate([done, stale, retry]):
    ...     t.number = number
    >>> [t.number for t in finished_trials([done, stale, retry])]
    [0, 2]
    """
    trials = list(trials)
    replaced = superseded(trials)
    return [
        t
        for t in trials
        if t.state in _FINISHED_STATES and t.number not in replaced and not is_babysat(t)
    ]


@dataclass(frozen=True)
class Tally:
    """Trials of a study that count toward its target, by how far along they are."""

    finished: int
    running: int
    waiting: int

    @property
    def committed(self) -> int:
        """Trials that are or will become exactly one finished trial each."""
        return self.finished + self.running + self.waiting


def tally(trials: Iterable[FrozenTrial]) -> Tally:
    """Count ``trials`` (babysat ones left out)."""
    trials = [t for t in trials if not is_babysat(t)]
    return Tally(
        finished=len(finished_trials(trials)),
        running=sum(t.state == TrialState.RUNNING for t in trials),
        waiting=sum(t.state == TrialState.WAITING for t in trials),
    )


# ------------------------------------------------------------------------ lock
class StudyLock:
    """A lock shared by every worker of one study, held while a worker decides whether
    to start a trial and creates (or dequeues) it.

    SQLite: ``flock`` on the database file (SQLite itself uses POSIX record locks,
    which on Linux do not interact with ``flock``; SQLite files are for one machine
    anyway). PostgreSQL: a session advisory lock keyed by the study name, on a
    connection of its own, so it is released by the server if the worker dies. Other
    databases: no lock; concurrent workers may then overshoot ``n_trials`` by at most
    one trial per extra worker.

    ``release`` may be called more than once (the objective releases it as soon as its
    trial exists, and the worker loop releases it again in a ``finally``).
    """

    def __init__(self, storage: Any, study_name: str) -> None:
        self._held = False
        self._fd: int | None = None
        self._connection: Any = None
        self._key = int.from_bytes(
            hashlib.blake2b(f"optuna-dl:{study_name}".encode(), digest_size=8).digest(),
            "big",
            signed=True,
        )
        engine = getattr(storage, "engine", None)
        dialect = engine.dialect.name if engine is not None else ""
        if dialect == "sqlite":
            database = engine.url.database
            if database and database != ":memory:" and not database.startswith("file:"):
                self._fd = os.open(database, os.O_RDONLY)
        elif dialect == "postgresql":
            self._connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")

    def acquire(self) -> None:
        if self._held:
            return
        if self._fd is not None:
            import fcntl

            fcntl.flock(self._fd, fcntl.LOCK_EX)
        elif self._connection is not None:
            from sqlalchemy import text

            self._connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": self._key})
        self._held = True

    def release(self) -> None:
        if not self._held:
            return
        self._held = False
        if self._fd is not None:
            import fcntl

            fcntl.flock(self._fd, fcntl.LOCK_UN)
        elif self._connection is not None:
            from sqlalchemy import text

            self._connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self._key})

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.release()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.close()
            self._connection = None

    def __enter__(self) -> StudyLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.release()


# ----------------------------------------------------------------- interrupts
#: Set by a worker process's first SIGINT handler, before it is ready to run trials.
_EARLY_INTERRUPT = threading.Event()


def _early_interrupt(signum: int, frame: Any) -> None:
    _EARLY_INTERRUPT.set()


# ---------------------------------------------------------------------- worker
@dataclass
class WorkerReport:
    """What one worker did."""

    trials_run: int
    interrupted: bool
    finished: int


def _trial_line(trial: FrozenTrial) -> str:
    if trial.state == TrialState.COMPLETE:
        outcome = f"value {trial.value:.4f}"
    elif trial.state == TrialState.PRUNED:
        outcome = (
            "diverged"
            if trial.user_attrs.get("diverged")
            else f"pruned after {trial.user_attrs.get('epochs', '?')} epochs"
        )
    else:
        outcome = trial.state.name.lower()
    seconds = trial.duration.total_seconds() if trial.duration else 0.0
    retry = trial.system_attrs.get("failed_trial")
    note = f", retry of trial {retry}" if retry is not None else ""
    return f"  trial {trial.number:4d}: {outcome}  ({seconds:.1f} s) [worker {os.getpid()}{note}]"


def load_definition(storage: Any, url: str, study_name: str) -> Any:
    """The study's :class:`~optuna_dl.tuning.config.StudyConfig`, rebuilt from the
    definition ``run`` stored with it; ``url`` becomes its storage."""
    from optuna_dl.tuning.config import config_from_dict

    try:
        study_id = storage.get_study_id_from_name(study_name)
    except KeyError:
        raise WorkerError(
            f"no study named {study_name!r} in {redact(url)}; create it with "
            f"'optuna-dl run CONFIG --storage URL' first."
        ) from None
    raw = storage.get_study_user_attrs(study_id).get(CONFIG_ATTR)
    if raw is None:
        raise WorkerError(
            f"study {study_name!r} has no stored optuna-dl definition (user attribute "
            f"{CONFIG_ATTR!r}); it was not created by 'optuna-dl run'."
        )
    return config_from_dict(raw, storage=url, origin=f"study {study_name!r} (stored definition)")


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
    WorkerError, StorageError, ConfigError
        One line each. Raised before the first trial, nothing was written to the study;
        a StorageError raised later (the database failed) leaves the trial in progress
        RUNNING, to be failed by heartbeat and run again.
    """

    def say(line: str) -> None:
        if out is not None:
            out(line)
        else:
            print(line, flush=True)

    storage = open_storage(url)
    try:
        with storage_errors(url), QuietStorageFailures(url) as background:
            report = _work(
                storage, url, study_name, n_trials, timeout, threads, seed_offset, quiet, say, stop
            )
    finally:
        close_storage(storage)
    background.report()
    return report


def _work(
    storage: Any,
    url: str,
    study_name: str,
    n_trials: int | None,
    timeout: float | None,
    threads: int | None,
    seed_offset: int | None,
    quiet: bool,
    say: Callable[[str], None],
    stop: Any,
) -> WorkerReport:
    """The body of :func:`run_worker`, on an open storage."""
    from threadpoolctl import threadpool_limits

    config = load_definition(storage, url, study_name)
    if n_trials is None:
        n_trials = config.n_trials
    if timeout is None:
        timeout = config.timeout
    X, _, y, _ = config.load_data()
    objective = config.make_objective(X, y)
    study_id = storage.get_study_id_from_name(study_name)
    existing = len(storage.get_all_trials(study_id, deepcopy=False))
    if seed_offset is None:
        seed_offset = int.from_bytes(os.urandom(4), "big") % 2**30
    study = optuna.load_study(
        study_name=study_name,
        storage=storage,
        sampler=config.make_sampler(resumed=existing + seed_offset),
        pruner=config.make_pruner(),
    )
    pid = os.getpid()
    start = tally(storage.get_all_trials(study_id, deepcopy=False))
    say(
        f"worker {pid} on {socket.gethostname()}: study {study_name!r} in {redact(url)}: "
        f"{start.finished} trials finished"
        + (f" of {n_trials}" if n_trials is not None else "")
        + (f", BLAS threads {threads}" if threads else "")
    )
    use_write_ahead_log(storage)
    lock = StudyLock(storage, study_name)
    ran = 0
    interrupted = False
    started = time.monotonic()
    limits = threadpool_limits(limits=threads) if threads else contextlib.nullcontext()
    try:
        with InterruptGuard() as interrupts, limits:
            interrupts.pending = _EARLY_INTERRUPT.is_set()

            def objective_in_worker(trial: optuna.Trial) -> float:
                lock.release()  # the trial exists: other workers may decide now
                trial.set_user_attr(PID_ATTR, pid)
                trial.set_user_attr(HOST_ATTR, socket.gethostname())
                trial.set_user_attr(THREADS_ATTR, _blas_threads())
                return interrupts.call(objective, trial)

            callbacks = [] if quiet else [lambda study, trial: say(_trial_line(trial))]
            while not interrupts.pending:
                if stop is not None and stop.is_set():
                    interrupts.pending = True
                    break
                if timeout is not None and time.monotonic() - started >= timeout:
                    break
                with lock:
                    fail_stale_trials(study)
                    now = tally(storage.get_all_trials(study_id, deepcopy=False))
                    if now.waiting or n_trials is None or now.committed < n_trials:
                        study.optimize(
                            guard_storage(objective_in_worker),
                            n_trials=1,
                            catch=(Exception,),
                            callbacks=callbacks,
                            gc_after_trial=False,
                        )
                        ran += 1
                        continue
                if now.running == 0:
                    break
                time.sleep(POLL_SECONDS)  # other workers' trials may still need a retry
            interrupted = interrupts.pending
    except KeyboardInterrupt:
        interrupted = True
    finally:
        lock.close()
    done = len(finished_trials(storage.get_all_trials(study_id, deepcopy=False)))
    say(
        f"worker {pid}: ran {ran} trial{'' if ran == 1 else 's'}"
        + (" (interrupted)" if interrupted else "")
        + f"; study {study_name!r} has {done} finished trials"
    )
    return WorkerReport(ran, interrupted, done)


def _blas_threads() -> int | None:
    """The BLAS thread count in effect in this process (None: no BLAS found)."""
    from threadpoolctl import threadpool_info

    counts = [i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas"]
    return max(counts) if counts else None


# ------------------------------------------------------- several local workers
def cpu_count() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def threads_per_worker(workers: int) -> int:
    """BLAS threads for each of ``workers`` processes: the cores shared out, at least 1."""
    return max(1, cpu_count() // workers)


def _child(spec: dict[str, Any], stop: Any) -> None:
    """Entry point of a worker process started by :func:`run_workers`.

    The process starts with SIGINT ignored (see :func:`run_workers`); from here on a
    Ctrl-C is remembered, and honoured once the worker is ready. ``stop`` is the
    parent's event for the same request.
    """
    signal.signal(signal.SIGINT, _early_interrupt)
    from optuna_dl.tuning.config import ConfigError
    from optuna_dl.tuning.storage import StorageError

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        report = run_worker(**spec, stop=stop)
    except (WorkerError, StorageError, ConfigError) as error:
        print(f"optuna-dl worker: error: {error}", file=sys.stderr, flush=True)
        sys.exit(2)
    except KeyboardInterrupt:  # pragma: no cover - a second Ctrl-C at an odd moment
        sys.exit(130)
    sys.exit(130 if report.interrupted else 0)


def run_workers(config: Any, workers: int, *, quiet: bool = False) -> int:
    """Run ``config``'s study (already created, with its definition stored) in
    ``workers`` processes on this machine; each gets ``cores // workers`` BLAS threads.

    Returns 0 when every worker ended normally, 130 after Ctrl-C, 1 when a worker
    failed (the others go on; the study stays consistent).
    """
    import multiprocessing

    # "spawn": a fresh interpreter per worker, no database connection or lock copied
    # from this process. The storage URL travels through a pipe, not the command line.
    context = multiprocessing.get_context("spawn")
    threads = threads_per_worker(workers)
    stop = context.Event()
    processes = [
        context.Process(
            target=_child,
            args=(
                {
                    "url": config.storage,
                    "study_name": config.name,
                    "n_trials": config.n_trials,
                    "timeout": config.timeout,
                    "threads": threads,
                    "seed_offset": index << 20,
                    "quiet": quiet,
                },
                stop,
            ),
            name=f"optuna-dl-worker-{index}",
        )
        for index in range(workers)
    ]
    print(f"starting {workers} workers with {threads} BLAS thread(s) each", flush=True)
    # Children start with SIGINT ignored, so a Ctrl-C while they import cannot kill them
    # with a traceback; once ready they handle it, and ``stop`` tells them either way.
    ignore = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if ignore else None
    try:
        for process in processes:
            process.start()
    finally:
        if ignore:
            signal.signal(signal.SIGINT, previous)
    interrupted = False
    while any(p.is_alive() for p in processes):
        try:
            for process in processes:
                process.join()
        except KeyboardInterrupt:
            interrupted = True
            stop.set()
            for process in processes:  # a terminal's Ctrl-C reached them already
                if process.is_alive() and process.pid is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(process.pid, signal.SIGINT)
    codes = [p.exitcode for p in processes]
    failed = [(p.name, c) for p, c in zip(processes, codes) if c not in (0, 130)]
    for name, code in failed:
        print(f"optuna-dl: warning: {name} exited with code {code}", file=sys.stderr)
    if interrupted or 130 in codes:
        return 130
    return 1 if failed else 0
