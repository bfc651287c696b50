"""Ctrl-C during a study that leaves no trial RUNNING in storage."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from typing import Any

import optuna

from optuna_dl._compat import OPTIMIZE_LOGGER

#: Delay before another attempt to deliver Ctrl-C that arrived in unsafe code.
RETRY_SECONDS = 0.05
#: Code that an asynchronous KeyboardInterrupt must not land in (path fragments).
_UNSAFE_PATHS = (f"{os.sep}optuna{os.sep}", f"{os.sep}sqlalchemy{os.sep}", f"{os.sep}weakref.py")


def _in_unsafe_code(frame: Any) -> bool:
    """Whether ``frame``, or a frame that called it inside the objective, runs unsafe
    code (the frames above ``InterruptGuard.call`` are Optuna's own loop)."""
    while frame is not None and frame.f_code is not InterruptGuard.call.__code__:
        filename = frame.f_code.co_filename
        if any(part in filename for part in _UNSAFE_PATHS):
            return True
        frame = frame.f_back
    return False


class InterruptGuard:
    """Inside the objective, Ctrl-C raises KeyboardInterrupt at once and Optuna records
    the trial as failed. Anywhere else (while Optuna creates a trial, samples or writes
    a result) it is held back as ``pending`` until the trial reaches the objective or
    has been recorded: an interrupt there would leave a RUNNING trial behind, which
    resuming would not count and heartbeats would only fail after their grace period.
    Later signals only confirm the stop.

    Optuna's log of the interrupted trial (a traceback) is dropped: the command says
    what happened in its own words.
    """

    def __init__(self) -> None:
        self.pending = False
        self.in_objective = False
        self._previous: Any = None
        self._previous_alarm: Any = None
        self._installed = False

    def __enter__(self) -> InterruptGuard:
        previous = signal.getsignal(signal.SIGINT)
        # Only the main thread can set handlers; leave an ignored SIGINT ignored.
        if threading.current_thread() is threading.main_thread() and previous not in (
            signal.SIG_IGN,
            None,
        ):
            self._previous = previous
            self._previous_alarm = signal.getsignal(signal.SIGALRM)
            signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        logging.getLogger(OPTIMIZE_LOGGER).addFilter(self._quiet)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        logging.getLogger(OPTIMIZE_LOGGER).removeFilter(self._quiet)
        if self._installed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self._previous_alarm)
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False

    def _handle(self, signum: int, frame: Any) -> None:
        first = not self.pending
        self.pending = True
        if first and self.in_objective:
            self._raise_when_safe(frame)

    def _raise_when_safe(self, frame: Any) -> None:
        """Raise KeyboardInterrupt in the objective, unless the signal arrived inside
        Optuna's or SQLAlchemy's code (a report being written: an exception there can
        leave a transaction holding the database lock) or inside a garbage-collector
        callback (where Python swallows it): then try again 50 ms later."""
        if _in_unsafe_code(frame):
            signal.signal(signal.SIGALRM, self._retry)
            signal.setitimer(signal.ITIMER_REAL, RETRY_SECONDS)
            return
        self.in_objective = False
        raise KeyboardInterrupt

    def _retry(self, signum: int, frame: Any) -> None:
        if self.in_objective:
            self._raise_when_safe(frame)

    def _quiet(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[0] is KeyboardInterrupt:
            return False
        message = record.getMessage()
        return not (self.pending and message.startswith("Trial ") and " failed " in message)

    def call(self, objective: Callable[[optuna.Trial], float], trial: optuna.Trial) -> float:
        """Run ``objective(trial)`` with Ctrl-C delivered at once (or raised before it
        starts, if one is pending)."""
        if self.pending:
            raise KeyboardInterrupt
        self.in_objective = True
        try:
            return objective(trial)
        finally:
            self.in_objective = False

    def wrap(self, objective: Callable[[optuna.Trial], float]) -> Callable[[optuna.Trial], float]:
        """``objective`` run through :meth:`call`, for ``study.optimize``."""
        return lambda trial: self.call(objective, trial)

    def after_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        """``study.optimize`` callback: stop once the finished trial is recorded."""
        if self.pending:
            raise KeyboardInterrupt
