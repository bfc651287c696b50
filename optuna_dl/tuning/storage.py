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
"""

from __future__ import annotations

import os
import re
import time
import warnings
from typing import Any
from urllib.parse import unquote

import optuna
from optuna.exceptions import ExperimentalWarning

HEARTBEAT_INTERVAL = 10
GRACE_PERIOD = 30
HEARTBEAT_INTERVAL_ENV = "OPTUNA_DL_HEARTBEAT_INTERVAL"
GRACE_PERIOD_ENV = "OPTUNA_DL_GRACE_PERIOD"


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


def open_storage(url: str, *, retries: int = 3) -> optuna.storages.BaseStorage:
    """An RDB storage with heartbeats: a trial whose process died is marked failed
    after the grace period and retried up to ``retries`` times by a live worker.

    Raises
    ------
    StorageError
        The URL cannot be parsed, its driver is missing, or the database cannot be
        opened (a missing directory, a file that is not a database, an old schema).
    """
    from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

    interval, grace = heartbeat_settings()
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
        lines = str(error).strip().splitlines()
        reason = lines[0] if lines else type(error).__name__
        if isinstance(error, ModuleNotFoundError) and url.startswith("postgresql"):
            reason += " (install the driver with: pip install 'optuna-dl[postgres]')"
        # The password may appear in the driver's message; hide it there too.
        raise StorageError(
            f"cannot open storage {redact(url)}: {hide_password(reason, url)}"
        ) from None


def fail_stale_trials(study: optuna.Study) -> None:
    """Mark trials whose worker stopped sending heartbeats as failed (and retry them)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
