"""Every private name of Optuna, scikit-learn and the standard library that the package
uses, in one place.

Each entry says why no public API does the job. ``tests/test_compat.py`` pins the
versions these were checked against and keeps private names out of every other module:
after an upgrade, this module is the one place to look.
"""

from __future__ import annotations

import multiprocessing
from typing import Any

import optuna

#: The versions the names below were checked against (``tests/test_compat.py``).
CHECKED_OPTUNA = "5.1"
CHECKED_SKLEARN = "1.9"

#: Logger that Optuna's ``study.optimize`` reports a failed trial on (with a
#: traceback). Commands filter it to say what happened in their own words; Optuna
#: has no public switch for that one message.
OPTIMIZE_LOGGER = "optuna.study._optimize"

#: Logger of Optuna's RDB storage, which logs failed queries before raising them; a
#: storage failure is reported once, as one line, by ``optuna_dl.runs.storage``.
RDB_LOGGER = "optuna.storages._rdb.storage"


def study_storage(study: optuna.Study) -> optuna.storages.BaseStorage:
    """The storage behind ``study``.

    ``optuna.Study`` keeps it private; stale-trial handling needs the storage's trial
    and heartbeat calls, and the report needs to know whether it is in memory.
    """
    return study._storage


def study_id(study: optuna.Study) -> int:
    """The storage's id of ``study`` (private in Optuna; the storage API is keyed by it)."""
    return study._study_id


def rdb_backend(study: optuna.Study) -> optuna.storages.RDBStorage | None:
    """The RDBStorage behind ``study``, unwrapping Optuna's private caching layer
    (``_CachedStorage._backend``); None for other storages."""
    storage = study_storage(study)
    backend = getattr(storage, "_backend", storage)
    return backend if isinstance(backend, optuna.storages.RDBStorage) else None


def running_trials_without_heartbeat(study: optuna.Study) -> list[int]:
    """Ids of the RUNNING trials of ``study`` that never recorded a heartbeat.

    Optuna's stale-trial check skips such trials and its storage API has no query for
    heartbeats, so this reads Optuna's private ORM models of the RDB schema. Empty for
    storages without heartbeats.
    """
    from optuna.storages._rdb import models
    from sqlalchemy import select

    backend = rdb_backend(study)
    if backend is None or backend.heartbeat_interval is None:
        return []
    trial, heartbeat = models.TrialModel, models.TrialHeartbeatModel
    query = select(trial.trial_id).where(
        trial.study_id == study_id(study),
        trial.state == optuna.trial.TrialState.RUNNING,
        trial.trial_id.not_in(select(heartbeat.trial_id)),
    )
    with backend.engine.connect() as connection:
        return [row[0] for row in connection.execute(query)]


def pruner_settings(pruner: optuna.pruners.BasePruner) -> dict[str, Any]:
    """The step rules of Optuna's built-in pruners, read from their private attributes.

    Optuna's pruners do not expose their warm-up, interval or rung settings; without
    them every epoch would have to ask the pruner (a storage read). Missing values are
    None, and :func:`optuna_dl.tuning.pruning.may_prune` then asks at every step.
    """
    names = (
        "n_warmup_steps",
        "interval_steps",
        "min_early_stopping_rate",
        "min_resource",
        "max_resource",
        "reduction_factor",
    )
    return {name: getattr(pruner, f"_{name}", None) for name in names}


def sklearn_callbacks(estimator: Any) -> list[Any]:
    """The callbacks registered with ``estimator.set_callbacks`` (scikit-learn's
    callback API keeps them in a private attribute and offers no getter)."""
    return list(getattr(estimator, "_skl_callbacks", []))


def forkserver_preload(context: Any, module: str) -> None:
    """Add ``module`` to the modules the forkserver imports once, keeping what is
    already there (``set_forkserver_preload`` replaces the list, and the current list
    is private). Effective only before the server first starts."""
    from multiprocessing import forkserver

    current = getattr(forkserver._forkserver, "_preload_modules", None) or ["__main__"]
    if module not in current:
        context.set_forkserver_preload([*current, module])


__all__ = [
    "CHECKED_OPTUNA",
    "CHECKED_SKLEARN",
    "OPTIMIZE_LOGGER",
    "RDB_LOGGER",
    "forkserver_preload",
    "multiprocessing",
    "pruner_settings",
    "rdb_backend",
    "running_trials_without_heartbeat",
    "sklearn_callbacks",
    "study_id",
    "study_storage",
]
