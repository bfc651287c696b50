"""Opening study storage: heartbeats on, passwords never shown."""

from __future__ import annotations

import re
import warnings
from typing import Any

import optuna
from optuna.exceptions import ExperimentalWarning

HEARTBEAT_INTERVAL = 10
GRACE_PERIOD = 30


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***``.

    >>> redact("postgresql+psycopg://tuner:s3cret@db:5432/studies")
    'postgresql+psycopg://tuner:***@db:5432/studies'
    >>> redact("sqlite:///studies/digits.db")
    'sqlite:///studies/digits.db'
    """
    return re.sub(r"(?<=://)([^:/@]*):([^@]*)@", r"\1:***@", url)


def open_storage(url: str, *, retries: int = 3) -> optuna.storages.BaseStorage:
    """An RDB storage with heartbeats: a trial whose process died is marked failed
    after the grace period and retried up to ``retries`` times by a live worker."""
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        # Wait for a lock instead of failing at once when several processes write.
        engine_kwargs["connect_args"] = {"timeout": 60}
    with warnings.catch_warnings():
        # Heartbeats are marked experimental; they are exactly what is needed here.
        warnings.simplefilter("ignore", ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=HEARTBEAT_INTERVAL,
            grace_period=GRACE_PERIOD,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                max_retry=retries
            ),
        )


def fail_stale_trials(study: optuna.Study) -> None:
    """Mark trials whose worker stopped sending heartbeats as failed (and retry them)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
