"""Opening study storage: heartbeats on, passwords never shown.

Every trial run by ``study.optimize`` on a storage opened here sends a heartbeat every
``HEARTBEAT_INTERVAL`` seconds. A RUNNING trial whose heartbeat is older than
``GRACE_PERIOD`` seconds (its process was killed, its machine lost) is marked FAIL by
the next worker that looks, and a copy with the same parameters is queued (WAITING)
for any worker to run again.

Two environment variables override the defaults, for tests and for clusters that
want faster recovery: ``OPTUNA_DL_HEARTBEAT_INTERVAL`` (seconds, default 10) and
``OPTUNA_DL_GRACE_PERIOD`` (seconds, default 30; it must exceed the interval, or live
trials would be failed between two heartbeats). Every process sharing a study should
use the same values.

Processes that run trials switch an SQLite file to SQLite's write-ahead log with
``synchronous=NORMAL`` (:func:`use_write_ahead_log`), so a commit (a
trial's report after every epoch) appends to the log instead of waiting for the disk
to flush. A killed process loses nothing it committed; only a power cut or an
operating-system crash can lose the last commits, and never corrupts the file.
:func:`close_storage` turns the file back into an ordinary rollback-journal database
when the last such process lets go of it, so it stays readable from a read-only
folder.

A storage is a database URL (SQLite, PostgreSQL, any SQLAlchemy URL) or, for the
commands that only read a study, the path of an Optuna journal file
(:func:`journal_file`), as Optuna's command line and optuna-dashboard accept it.
Trials are run into databases only: a journal file keeps no heartbeats, so the trial
of a killed process would stay RUNNING for ever and a run waiting for it would wait
for ever.

A database that fails while a study runs (a full disk, a read-only file, a server
that went away) is reported as one :class:`StorageError` line (:func:`storage_errors`,
:class:`QuietStorageFailures`). The trial it interrupted stays RUNNING, like the trial
of a killed process, and is failed and run again once the study resumes.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import re
import sqlite3
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import optuna
from optuna.exceptions import ExperimentalWarning

from optuna_dl import _compat

HEARTBEAT_INTERVAL = 10
GRACE_PERIOD = 30
HEARTBEAT_INTERVAL_ENV = "OPTUNA_DL_HEARTBEAT_INTERVAL"
GRACE_PERIOD_ENV = "OPTUNA_DL_GRACE_PERIOD"
WAL_PAGES = 256  # pages of the write-ahead log between two checkpoints
SQLITE_HEADER = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***``.

    >>> redact("postgresql+psycopg://tuner:s3cret@db:5432/studies")
    'postgresql+psycopg://tuner:***@db:5432/studies'
    >>> redact("sqlite:///studies/digits.db")
    'sqlite:///studies/digits.db'
    """
    return re.sub(r"(?<=://)([^:/@]*):([^@]*)@", r"\1:***@", url)


class StorageError(RuntimeError):
    """A storage URL that cannot be opened; ``str(error)`` is one line, password hidden."""


def _seconds_from_env(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise StorageError(f"{name} must be a positive whole number of seconds; got {text!r}.")
    return value


def heartbeat_settings() -> tuple[int, int]:
    """``(heartbeat interval, grace period)`` in seconds, from the environment or defaults.

    Raises
    ------
    StorageError
        A value that is not a positive integer, or a grace period that does not exceed
        the interval.
    """
    interval = _seconds_from_env(HEARTBEAT_INTERVAL_ENV, HEARTBEAT_INTERVAL)
    grace = _seconds_from_env(GRACE_PERIOD_ENV, GRACE_PERIOD)
    if grace <= interval:
        raise StorageError(
            f"the heartbeat grace period ({grace} s, {GRACE_PERIOD_ENV}) must exceed the "
            f"heartbeat interval ({interval} s, {HEARTBEAT_INTERVAL_ENV}); otherwise "
            "running trials would be failed between two heartbeats."
        )
    return interval, grace


def hide_password(text: str, url: str) -> str:
    """``text`` with the password of ``url`` (as written and percent-decoded) replaced by
    ``***``, for messages that come from a database driver.

    >>> hide_password("login as tuner/s3cr@t refused", "postgresql://tuner:s3cr%40t@db/x")
    'login as tuner/*** refused'
    """
    found = re.search(r"(?<=://)[^:/@]*:([^@]*)@", url)
    if found and found.group(1):
        for secret in sorted({found.group(1), unquote(found.group(1))}, key=len, reverse=True):
            text = text.replace(secret, "***")
    return text


def sqlite_file(url: str) -> Path | None:
    """The database file of an SQLite URL.

    Parameters
    ----------
    url : str
        A storage URL.

    Returns
    -------
    Path or None
        None for other databases, in-memory databases and ``file:`` URIs.

    Examples
    --------
    >>> sqlite_file("sqlite:///studies/digits.db")
    PosixPath('studies/digits.db')
    >>> sqlite_file("postgresql+psycopg://tuner@db/studies") is None
    True
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return None
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    if database.startswith("file:"):
        return None
    return Path(database)


def journal_file(url: str) -> Path | None:
    """The file of a journal-file storage: ``url`` when it is a path, not a URL.

    Anything that starts like a URL (``scheme:``) is one, so a mistyped URL such as
    ``sqlite:/x.db`` is reported as a URL that cannot be opened.

    Parameters
    ----------
    url : str
        A storage URL (``scheme://...``) or the path of an Optuna journal file.

    Returns
    -------
    Path or None
        None for a URL.

    Examples
    --------
    >>> journal_file("studies/digits.log")
    PosixPath('studies/digits.log')
    >>> journal_file("sqlite:///studies/digits.db") is None
    True
    >>> journal_file("sqlite:/studies/digits.db") is None
    True
    """
    if not url or re.match(r"[A-Za-z][\w+.-]*:", url):
        return None
    return Path(url)


def _chain(error: BaseException) -> list[BaseException]:
    """``error`` and the exceptions it was raised from or while handling."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain:
        chain.append(current)
        suppressed = current.__suppress_context__
        current = current.__cause__ or (None if suppressed else current.__context__)
    return chain


def storage_failure(error: BaseException | None) -> BaseException | None:
    """The database error behind ``error``, if any.

    Parameters
    ----------
    error : BaseException or None

    Returns
    -------
    BaseException or None
        A SQLAlchemy error or Optuna's ``StorageInternalError`` (which wraps one):
        ``error`` itself, its cause, or the error being handled when it was raised
        (Optuna may fail a second time while it records a trial whose write failed).
        SQLAlchemy's "no row found" lookups do not count: Optuna turns them into
        KeyError.
    """
    from optuna.exceptions import StorageInternalError
    from sqlalchemy.exc import MultipleResultsFound, NoResultFound, SQLAlchemyError

    if error is None:
        return None
    lookups = (NoResultFound, MultipleResultsFound)  # Optuna turns these into KeyError
    return next(
        (
            e
            for e in _chain(error)
            if isinstance(e, (SQLAlchemyError, StorageInternalError))
            and not isinstance(e, lookups)
        ),
        None,
    )


def describe_failure(error: BaseException, url: str) -> str:
    """One line on why the database failed.

    Parameters
    ----------
    error : BaseException
        The failure (Optuna wraps a failed commit in ``StorageInternalError``; the
        reason is its cause).
    url : str
        The storage URL, whose password is hidden in the result.

    Returns
    -------
    str
        The first line of the SQLAlchemy error in ``error``'s chain of causes (it
        names the driver's error), else the error's type and first line.
    """
    from sqlalchemy.exc import SQLAlchemyError

    chain = _chain(error)
    found = next((e for e in chain if isinstance(e, SQLAlchemyError)), chain[-1])
    lines = str(found).strip().splitlines()
    reason = lines[0] if lines else type(found).__name__
    if not isinstance(found, SQLAlchemyError):
        reason = f"{type(found).__name__}: {reason}"
    return hide_password(reason, url)


@contextlib.contextmanager
def storage_errors(url: str) -> Iterator[None]:
    """Context manager: a database that fails inside the block (a full disk, a
    read-only file, a server that went away) raises a one-line :class:`StorageError`
    naming the storage (password hidden) and the cause, instead of SQLAlchemy's or
    Optuna's multi-line errors. Other exceptions pass through unchanged.

    Parameters
    ----------
    url : str
        The storage URL, for the message.

    Raises
    ------
    StorageError
        For an exception whose chain holds a database error (:func:`storage_failure`),
        including :class:`TrialStorageFailure`.
    """
    try:
        yield
    except (Exception, TrialStorageFailure) as error:
        failure = storage_failure(error)
        if failure is None or isinstance(error, StorageError):
            raise
        raise StorageError(
            f"storage {redact(url)} failed: {describe_failure(failure, url)}"
        ) from None


class QuietStorageFailures:
    """Context manager: while a study runs, a failing database is reported once, by
    the command, as one line.

    Optuna's log of a trial whose write failed (with a traceback), its warning that a
    query failed (with the SQL), and the traceback of a heartbeat thread that failed
    are dropped. The failure reaches the main thread at its next write, where
    :func:`storage_errors` reports it; if it does not (a transient failure of a
    heartbeat alone), :meth:`report` prints it as one warning line.

    Parameters
    ----------
    url : str
        The storage URL, for the messages (its password is hidden).
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.errors: list[str] = []
        self._previous: Any = None
        self._dropped: str | None = None

    def __enter__(self) -> QuietStorageFailures:
        self._previous = threading.excepthook
        threading.excepthook = self._hook
        logging.getLogger(_compat.OPTIMIZE_LOGGER).addFilter(self._quiet)
        logging.getLogger(_compat.RDB_LOGGER).addFilter(self._quiet_query)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        logging.getLogger(_compat.RDB_LOGGER).removeFilter(self._quiet_query)
        logging.getLogger(_compat.OPTIMIZE_LOGGER).removeFilter(self._quiet)
        threading.excepthook = self._previous

    @staticmethod
    def _quiet_query(record: logging.LogRecord) -> bool:
        # Optuna retries a failed query for trials another way, after this warning (its
        # second attempt fails as well when the database is gone).
        return not record.getMessage().startswith("Caught an error from sqlalchemy")

    def _quiet(self, record: logging.LogRecord) -> bool:
        # Optuna logs a failed trial twice: "Trial N failed with parameters ... because
        # of the following error" (with the traceback), then "Trial N failed with value".
        trial = re.match(r"Trial (\d+) failed with ", record.getMessage())
        if record.exc_info and storage_failure(record.exc_info[1]):
            self._dropped = trial.group(1) if trial else None
            return False
        if trial and trial.group(1) == self._dropped:
            return False
        return True

    def _hook(self, args: Any) -> None:
        if storage_failure(args.exc_value) is None:
            self._previous(args)
            return
        name = args.thread.name if args.thread is not None else "a thread"
        self.errors.append(f"{name}: {describe_failure(args.exc_value, self.url)}")

    def report(self) -> None:
        """Print the first background failure, if any, as one warning line."""
        if self.errors:
            print(
                f"optuna-dl: warning: storage {redact(self.url)} failed in a background "
                f"thread ({self.errors[0]})",
                file=sys.stderr,
            )


class TrialStorageFailure(BaseException):
    """Raised out of an objective whose write to the database failed.

    Not an ``Exception``: Optuna then does not try to record the trial as failed (on a
    database that is failing), so the trial stays RUNNING and, like the trial of a
    killed process, is failed by heartbeat and run again when the study resumes,
    rather than counted as a finished trial. :func:`storage_errors` reports it.
    """


def guard_storage(objective: Callable[[optuna.Trial], float]) -> Callable[[optuna.Trial], float]:
    """``objective``, raising :class:`TrialStorageFailure` when a database write inside
    it fails (``trial.report``, ``trial.set_user_attr``, ...).

    Parameters
    ----------
    objective : callable
        ``objective(trial) -> float``.

    Returns
    -------
    callable
        The wrapped objective; other exceptions pass through unchanged.
    """

    def guarded(trial: optuna.Trial) -> float:
        try:
            return objective(trial)
        except Exception as error:
            if storage_failure(error) is None:
                raise
            raise TrialStorageFailure(error) from error

    return guarded


def open_storage(url: str, *, retries: int = 3) -> optuna.storages.BaseStorage:
    """An RDB storage with heartbeats: a trial whose process died is marked failed
    after the grace period and retried up to ``retries`` times by a live worker.
    A path (:func:`journal_file`) opens that existing journal file, without heartbeats.

    An SQLite file that did not exist is removed again when it cannot be set up (for
    example on a full disk), so a failed attempt leaves nothing behind.

    Raises
    ------
    StorageError
        The URL cannot be parsed, its driver is missing, or the database cannot be
        opened (a missing directory, a file that is not a database, an old schema);
        the journal file does not exist or cannot be read as one.
    """
    journal = journal_file(url)
    if journal is not None:
        return _open_journal(journal)
    interval, grace = heartbeat_settings()
    file = sqlite_file(url)
    new_file = file is not None and not file.exists()
    try:
        return _open(url, retries, interval, grace)
    except StorageError:
        if new_file:
            remove_sqlite_file(file)
        raise


def use_write_ahead_log(storage: Any) -> None:
    """Write an SQLite storage through its write-ahead log, with ``synchronous=NORMAL``.

    For a process about to run trials, once its input is validated (the switch
    changes the file's header). Other databases are not affected. A file that cannot
    be switched (read-only) stays as it is; its first write then reports the problem.
    Call :func:`close_storage` when done.

    Parameters
    ----------
    storage : optuna.storages.RDBStorage
        From :func:`open_storage`.
    """
    from sqlalchemy import event
    from sqlalchemy.exc import SQLAlchemyError

    url = getattr(storage, "url", None)
    if not isinstance(url, str) or sqlite_file(url) is None:
        return
    if not event.contains(storage.engine, "connect", _normal_sync_under_wal):
        event.listen(storage.engine, "connect", _normal_sync_under_wal)
    with contextlib.suppress(SQLAlchemyError), storage.engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA journal_mode=WAL")
    storage.engine.dispose()  # new connections get synchronous=NORMAL


def _normal_sync_under_wal(connection: sqlite3.Connection, _record: Any) -> None:
    """SQLAlchemy ``connect`` hook: ``synchronous=NORMAL`` on a write-ahead-log file
    (where it cannot corrupt the file; in rollback-journal mode it could, on power loss).
    """
    cursor = connection.cursor()
    try:
        if cursor.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
            cursor.execute("PRAGMA synchronous=NORMAL")
            # Copy the log into the file every WAL_PAGES pages (about 1 MB; SQLite's
            # default lets it reach 4 MB) and truncate it after each copy, so a full
            # disk is reported at the next commit rather than once the log outgrows
            # the room it kept.
            cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_PAGES}")
            cursor.execute("PRAGMA journal_size_limit=0")
    finally:
        cursor.close()


def close_storage(storage: Any) -> None:
    """Close the connections of a storage from :func:`open_storage` (best effort).

    An SQLite file in write-ahead-log mode is turned back into a rollback-journal
    database (its ``-wal`` and ``-shm`` files go away) unless another process still has
    it open; the last process to close it does it. Such a file can be read from a
    read-only folder, which a write-ahead-log database cannot.

    Parameters
    ----------
    storage : optuna.storages.RDBStorage
    """
    with contextlib.suppress(Exception):
        storage.remove_session()
        storage.engine.dispose()
    url = getattr(storage, "url", None)
    file = sqlite_file(url) if isinstance(url, str) else None
    if file is None or not file.exists():
        return
    try:
        # mode=rw: never create a file that is gone; timeout=0: never wait for others.
        connection = sqlite3.connect(
            f"file:{quote(str(file.resolve()))}?mode=rw", uri=True, timeout=0
        )
    except sqlite3.Error:
        return
    try:
        connection.execute("PRAGMA journal_mode=DELETE")
    except sqlite3.Error:
        pass  # another process has it open, or it cannot be written
    finally:
        connection.close()


def remove_sqlite_file(file: Path) -> None:
    """Delete an SQLite database with its rollback journal and write-ahead log, if
    they exist.

    Parameters
    ----------
    file : Path
        The database file.
    """
    for suffix in ("", "-journal", "-wal", "-shm"):
        with contextlib.suppress(OSError):
            file.with_name(file.name + suffix).unlink()


def _folder_problem(folder: Path) -> str:
    """Why SQLite may be unable to create a file in ``folder``."""
    if not folder.exists():
        return f"folder {str(folder)!r} does not exist"
    if not folder.is_dir():
        return f"{str(folder)!r} is not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"folder {str(folder)!r} is not writable"
    return f"check that folder {str(folder)!r} exists and is writable"


def _open(url: str, retries: int, interval: int, grace: int) -> optuna.storages.RDBStorage:
    from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        # Wait for a lock instead of failing at once when several processes write.
        engine_kwargs["connect_args"] = {"timeout": 60}
    try:
        for attempt in range(3):
            try:
                with warnings.catch_warnings():
                    # Heartbeats are marked experimental; they are what is needed here.
                    warnings.simplefilter("ignore", ExperimentalWarning)
                    return optuna.storages.RDBStorage(
                        url,
                        engine_kwargs=engine_kwargs,
                        heartbeat_interval=interval,
                        grace_period=grace,
                        heartbeat_stale_trial_callback=(
                            optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=retries)
                        ),
                    )
            except (IntegrityError, OperationalError) as error:
                # Another process created the schema of a new database at the same
                # moment (several workers starting together); it exists now.
                racing = isinstance(error, IntegrityError) or "already exists" in str(error)
                if attempt == 2 or not racing:
                    raise
                time.sleep(0.1 * (attempt + 1))
        raise AssertionError("unreachable")  # pragma: no cover
    except (SQLAlchemyError, ImportError, RuntimeError, ValueError) as error:
        # RuntimeError includes Optuna's StorageInternalError (a failed commit).
        reason = describe_failure(error, url)
        if isinstance(error, ModuleNotFoundError) and url.startswith("postgresql"):
            reason += " (install the driver with: pip install 'optuna-dl[postgres]')"
        file = sqlite_file(url)
        if file is not None and "unable to open database file" in reason:
            reason += f" ({_folder_problem(file.parent)})"
        # The password may appear in the driver's message; hide it there too.
        raise StorageError(f"cannot open storage {redact(url)}: {reason}") from None


def _open_journal(file: Path) -> optuna.storages.JournalStorage:
    """The journal-file storage in ``file``, which must exist (nothing is created)."""
    from optuna.storages.journal import JournalFileBackend

    def refuse(reason: str) -> StorageError:
        return StorageError(f"cannot open journal file {str(file)!r}: {reason}")

    if not file.exists():
        raise refuse("it does not exist (a storage URL looks like sqlite:///study.db)")
    if file.is_dir():
        raise refuse("it is a folder")
    try:
        with file.open("rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
        if header == SQLITE_HEADER:
            raise refuse(f"it is an SQLite database; give it as sqlite:///{file}")
        # Optuna reads the whole journal here: a file that is not one fails now.
        return optuna.storages.JournalStorage(JournalFileBackend(str(file)))
    except StorageError:
        raise
    except OSError as error:
        raise refuse(f"it cannot be read ({error.strerror or error})") from None
    except (ValueError, KeyError, TypeError) as error:
        lines = str(error).strip().splitlines()
        detail = lines[0] if lines else ""
        raise refuse(f"not an Optuna journal ({type(error).__name__}: {detail})") from None


def fail_stale_trials(study: optuna.Study) -> None:
    """Mark trials whose worker stopped sending heartbeats as failed (and retry them).

    Optuna's check passes over a RUNNING trial that never recorded a heartbeat: one
    whose process died, or lost its database, between creating the trial and the first
    beat of its heartbeat thread. Such a trial would stay RUNNING for ever, and a run
    waiting for it would wait for ever; it is failed and retried here too, once it
    started more than the grace period ago (by the clock of this machine, since
    Optuna records a trial's start in the creating process's local time).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
        for trial_id in _trials_without_heartbeat(study):
            _fail_and_retry(study, trial_id)


def _trials_without_heartbeat(study: optuna.Study) -> list[int]:
    """RUNNING trials of ``study`` that have no heartbeat and started more than the
    grace period ago (none for a storage without heartbeats)."""
    import datetime

    silent = _compat.running_trials_without_heartbeat(study)
    if not silent:
        return []
    backend = _compat.rdb_backend(study)
    assert backend is not None and backend.heartbeat_interval is not None
    grace = backend.grace_period or 2 * backend.heartbeat_interval
    started_before = datetime.datetime.now() - datetime.timedelta(seconds=grace)
    storage = _compat.study_storage(study)
    # FrozenTrial.datetime_start is local time (the column is UTC; Optuna converts it).
    return [
        trial_id
        for trial_id in silent
        if (started := storage.get_trial(trial_id).datetime_start) is not None
        and started < started_before
    ]


def _fail_and_retry(study: optuna.Study, trial_id: int) -> None:
    """What Optuna does to a stale trial: FAIL it, then run the storage's stale-trial
    callback (which queues a copy to run again)."""
    storage = _compat.study_storage(study)
    try:
        if not storage.set_trial_state_values(trial_id, state=optuna.trial.TrialState.FAIL):
            return
    except optuna.exceptions.UpdateFinishedTrialError:
        return  # another process got there first
    callback = storage.get_heartbeat_stale_trial_callback()
    if callback is not None:
        callback(study, copy.deepcopy(storage.get_trial(trial_id)))
