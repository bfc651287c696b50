"""Run until a study has N finished trials: the one loop of ``run``, ``run --workers``
and ``worker``.

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
import dataclasses
import hashlib
import os
import time
from collections.abc import Callable, Iterable
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from optuna_dl.records import is_babysat
from optuna_dl.runs.interrupts import InterruptGuard
from optuna_dl.runs.storage import fail_stale_trials, guard_storage

#: Seconds between two looks at the study while waiting for other workers' trials.
POLL_SECONDS = 0.5
_FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


# ------------------------------------------------------------------- counting
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


@dataclasses.dataclass(frozen=True)
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


# ------------------------------------------------------------------------ loop
@dataclasses.dataclass(frozen=True)
class BudgetResult:
    """What :func:`run_budget` did: trials started here, and whether Ctrl-C (or
    ``stop``) ended it."""

    ran: int
    interrupted: bool
    stopped: str | None = None  # why ``should_stop`` ended the loop


def run_budget(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], float],
    *,
    n_trials: int | None,
    timeout: float | None,
    interrupts: InterruptGuard,
    lock: StudyLock | None = None,
    on_trial: Callable[[FrozenTrial], None] | None = None,
    on_wait: Callable[[Tally], None] | None = None,
    stop: Any = None,
    should_stop: Callable[[optuna.Study], str | None] | None = None,
) -> BudgetResult:
    """Run trials of ``study`` until it has ``n_trials`` finished trials.

    A trial is created only while ``finished + running + waiting < n_trials`` (queued
    retries are always run), decided and created under ``lock`` so that several
    processes sharing the study never both take the last place. Once the target is
    reached, the loop waits until no trial of the study is RUNNING any more: a trial
    whose process died is failed after the heartbeat grace period and its retry is
    run here.

    Parameters
    ----------
    study : optuna.Study
    objective : callable
        Run through ``interrupts`` (Ctrl-C inside it fails the trial at once) and
        :func:`~optuna_dl.runs.storage.guard_storage`. An exception it raises fails
        its trial; the study goes on.
    n_trials : int or None
        The target; None runs until ``timeout``, Ctrl-C or ``stop``.
    timeout : float or None
        Start no trial after this many seconds.
    interrupts : InterruptGuard
        Entered by the caller; its ``pending`` flag ends the loop.
    lock : StudyLock, optional
        Shared by the study's processes (None: this process is alone).
    on_trial : callable, optional
        Called with each trial this loop finished.
    on_wait : callable, optional
        Called once with the tally when the loop starts waiting for RUNNING trials.
    stop : event, optional
        ``stop.is_set()`` asks the loop to start no further trial, like Ctrl-C.
    should_stop : callable, optional
        Asked after each trial this loop ran; a reason (a string) ends the loop, as
        reaching ``n_trials`` would (trials RUNNING elsewhere are still waited for).

    Returns
    -------
    BudgetResult
    """
    lock = lock if lock is not None else contextlib.nullcontext()
    release = getattr(lock, "release", lambda: None)

    def run_one(trial: optuna.Trial) -> float:
        release()  # the trial exists: other processes may decide now
        return interrupts.call(objective, trial)

    callbacks = [] if on_trial is None else [lambda study, trial: on_trial(trial)]
    started = time.monotonic()
    ran = 0
    stopped: str | None = None
    waiting_said = False
    try:
        while not interrupts.pending:
            if stop is not None and stop.is_set():
                interrupts.pending = True
                break
            if timeout is not None and time.monotonic() - started >= timeout:
                break
            with lock:
                fail_stale_trials(study)
                now = tally(study.get_trials(deepcopy=False))
                room = stopped is None and (n_trials is None or now.committed < n_trials)
                if now.waiting or room:  # queued retries run even once the study stops
                    study.optimize(
                        guard_storage(run_one),
                        n_trials=1,
                        catch=(Exception,),
                        callbacks=callbacks,
                        gc_after_trial=False,
                    )
                    ran += 1
                    if stopped is None and should_stop is not None:
                        stopped = should_stop(study)
                    continue
            if now.running == 0:
                break
            if on_wait is not None and not waiting_said:
                on_wait(now)
                waiting_said = True
            time.sleep(POLL_SECONDS)  # other processes' trials may still need a retry
    except KeyboardInterrupt:
        return BudgetResult(ran, True, stopped)
    return BudgetResult(ran, interrupts.pending, stopped)
