"""The one process pool: ``DeepNetSearchCV(n_jobs=...)`` and ``optuna-dl run --workers``.

Every worker process is started the same way, counts the same cores and reports back
through the same channel:

- **Start method.** ``forkserver`` where it exists: workers fork from a server that has
  imported the worker's module once, so only the first pool pays for the imports, and
  nothing of the caller (its threads, locks, database connections) is copied.
  ``spawn`` elsewhere.
- **Ctrl-C.** Workers start with SIGINT ignored (the server is started that way, and a
  spawned child inherits it), so a Ctrl-C while they import cannot kill them with a
  traceback; a worker that wants Ctrl-C installs its own handler once it is ready. A
  Ctrl-C in the caller either stops the workers gently (``stop`` is set and each gets
  SIGINT, then the pool waits for them) or terminates them, as the caller chooses.
- **Cores.** :func:`cpu_count` is the cores this process may run on;
  :func:`threads_per_process` shares them out.
- **Errors.** Each worker sends one message through a pipe: its return value, or the
  exception it raised with its traceback. A worker that dies without a word (killed,
  crashed) is reported with its exit code.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pickle
import signal
import threading
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from optuna_dl import _compat

__all__ = ["Outcome", "cpu_count", "run_processes", "threads_per_process"]


def cpu_count() -> int:
    """Cores this process may run on (its CPU affinity, where the system has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def threads_per_process(processes: int) -> int:
    """BLAS threads for each of ``processes`` workers: the cores shared out, at least 1."""
    return max(1, cpu_count() // processes)


@dataclasses.dataclass
class Outcome:
    """What one worker process ended with.

    Exactly one of ``value`` (what its target returned) and ``error`` (what it raised,
    or a RuntimeError saying how it died) is meaningful; ``trace`` is the worker's
    traceback of ``error``.
    """

    name: str
    value: Any = None
    error: BaseException | None = None
    trace: str | None = None
    exitcode: int | None = None

    @property
    def ok(self) -> bool:
        """Whether the target returned normally."""
        return self.error is None


def _context(module: str) -> Any:
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")  # pragma: no cover - not POSIX
    context = multiprocessing.get_context("forkserver")
    _compat.forkserver_preload(context, module)
    return context


def _entry(
    conn: Any,
    target: Callable[..., Any],
    kwargs: Mapping[str, Any],
    stop: Any,
    caller: tuple[str, dict[str, str]],
) -> None:
    """Body of a worker process: run ``target`` and send back what came of it.

    A forked worker starts with the fork server's working directory and environment,
    which are the caller's as they were when the server started; ``caller`` holds them
    as they are now (relative paths, heartbeat settings and the like).
    """
    cwd, environ = caller
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(environ)
    try:
        message: tuple[str, Any, str | None] = ("ok", target(**kwargs, stop=stop), None)
    except BaseException as error:  # reported to the parent
        try:
            pickle.dumps(error)
        except Exception:
            error = RuntimeError(repr(error))
        message = ("error", error, traceback.format_exc())
    try:
        conn.send(message)
    finally:
        conn.close()


@contextlib.contextmanager
def _sigint_ignored() -> Any:
    """SIGINT ignored while workers (and the fork server) start, in the main thread."""
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        yield
    finally:
        if main:
            signal.signal(signal.SIGINT, previous)


def run_processes(
    target: Callable[..., Any],
    jobs: Sequence[Mapping[str, Any]],
    *,
    name: str,
    on_interrupt: str = "terminate",
) -> tuple[list[Outcome], bool]:
    """Run ``target(**job, stop=event)`` in one worker process per job; wait for all.

    Parameters
    ----------
    target : callable
        A module-level function (it is pickled by reference). ``stop`` is an event the
        caller sets to ask it to start no further work.
    jobs : sequence of mapping
        Keyword arguments of each worker; they must pickle.
    name : str
        Processes are named ``f"{name}-{index}"``.
    on_interrupt : {"terminate", "stop"}, default="terminate"
        What a Ctrl-C in the caller does: ``"terminate"`` ends the workers at once and
        raises KeyboardInterrupt; ``"stop"`` sets ``stop``, passes SIGINT on to the
        workers, and keeps waiting for them to finish what they are doing.

    Returns
    -------
    outcomes : list of Outcome
        One per job, in order.
    interrupted : bool
        Whether a Ctrl-C arrived (``on_interrupt="stop"`` only).
    """
    from multiprocessing.connection import wait

    if on_interrupt not in ("terminate", "stop"):
        raise ValueError(f"on_interrupt must be 'terminate' or 'stop'; got {on_interrupt!r}.")
    context = _context(target.__module__)
    stop = context.Event()
    caller = (os.getcwd(), dict(os.environ))
    outcomes = [Outcome(f"{name}-{index}") for index in range(len(jobs))]
    processes: list[Any] = []
    running: dict[Any, int] = {}
    interrupted = False
    try:
        with _sigint_ignored():
            if context.get_start_method() == "forkserver":
                from multiprocessing import forkserver

                forkserver.ensure_running()  # started here, it inherits the ignored SIGINT
            for index, job in enumerate(jobs):
                reader, writer = context.Pipe(duplex=False)
                process = context.Process(
                    target=_entry,
                    args=(writer, target, dict(job), stop, caller),
                    name=outcomes[index].name,
                )
                process.start()
                writer.close()
                processes.append(process)
                running[reader] = index
        while running:
            try:
                ready = wait(list(running))
            except KeyboardInterrupt:
                if on_interrupt == "terminate":
                    raise
                interrupted = True
                stop.set()
                for process in processes:  # a terminal's Ctrl-C reached them already
                    if process.is_alive() and process.pid is not None:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(process.pid, signal.SIGINT)
                continue
            for reader in ready:
                index = running.pop(reader)
                outcome = outcomes[index]
                try:
                    status, payload, outcome.trace = reader.recv()
                except EOFError:  # ended without a word: killed or crashed
                    processes[index].join()
                    outcome.error = RuntimeError(
                        f"{outcome.name} died with exit code {processes[index].exitcode} "
                        "before reporting."
                    )
                else:
                    if status == "ok":
                        outcome.value = payload
                    else:
                        outcome.error = payload
                reader.close()
    finally:
        for reader in running:  # left only if the caller was interrupted or failed
            reader.close()
        for process in processes:
            if running and process.is_alive():
                process.terminate()
            process.join()
    for outcome, process in zip(outcomes, processes):
        outcome.exitcode = process.exitcode
    return outcomes, interrupted
