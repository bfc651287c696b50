"""Open a study for a command: one context manager for ``run``, ``worker``, ``babysit``,
``best`` and ``export``.

:func:`open_study` opens the storage (heartbeats on, see :mod:`optuna_dl.runs.storage`),
turns database failures into one-line :class:`~optuna_dl.runs.storage.StorageError`s,
loads or creates the study, switches an SQLite file to its write-ahead log when the
command writes trials, and closes the storage again, whatever happens inside.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna

from optuna_dl.runs.config import CONFIG_ATTR, StudyConfig, config_from_dict, config_to_dict
from optuna_dl.runs.storage import (
    QuietStorageFailures,
    StorageError,
    close_storage,
    journal_file,
    open_storage,
    redact,
    remove_sqlite_file,
    sqlite_file,
    storage_errors,
    use_write_ahead_log,
)

MODES = ("read", "run", "babysit", "join")

__all__ = ["MODES", "OpenStudy", "open_study", "stored_config"]


@dataclasses.dataclass
class OpenStudy:
    """A study opened by :func:`open_study`.

    Attributes
    ----------
    study : optuna.Study
    config : StudyConfig
        The study file's definition, or for ``mode="join"`` the one stored with the
        study.
    storage : optuna.storages.RDBStorage
    created : bool
        Whether this call created the study.
    """

    study: optuna.Study
    config: StudyConfig
    storage: Any
    created: bool


def stored_config(storage: Any, url: str, name: str) -> StudyConfig:
    """The definition ``run`` stored with study ``name``, with ``url`` as its storage.

    Raises
    ------
    LookupError
        No such study, or it holds no optuna-dl definition (one line each).
    """
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        raise LookupError(
            f"no study named {name!r} in {redact(url)}; create it with "
            "'optuna-dl run CONFIG --storage URL' first."
        ) from None
    raw = storage.get_study_user_attrs(study_id).get(CONFIG_ATTR)
    if raw is None:
        raise LookupError(
            f"study {name!r} has no stored optuna-dl definition (user attribute "
            f"{CONFIG_ATTR!r}); it was not created by 'optuna-dl run'."
        )
    return config_from_dict(raw, storage=url, origin=f"study {name!r} (stored definition)")


@contextlib.contextmanager
def open_study(
    config: StudyConfig | None = None,
    *,
    mode: str = "read",
    url: str | None = None,
    name: str | None = None,
    seed_offset: int = 0,
) -> Iterator[OpenStudy]:
    """Open a study for one command, and close its storage afterwards.

    Parameters
    ----------
    config : StudyConfig, optional
        The study file's definition (not for ``mode="join"``).
    mode : {"read", "run", "babysit", "join"}, default="read"
        ``"read"``: load an existing study, write nothing. ``"run"``: create or resume
        the study, refusing one stored with another direction; store the definition;
        write-ahead log on. ``"babysit"``: create or resume it, store the definition if
        missing, write-ahead log on. ``"join"``: a worker joining study ``name`` in
        ``url`` with the definition stored there, its sampler seeded ``seed_offset``
        past the trials it holds; write-ahead log on.
    url, name : str, optional
        For ``mode="join"`` only.
    seed_offset : int, default=0
        For ``mode="join"`` only.

    Yields
    ------
    OpenStudy

    Raises
    ------
    StorageError
        The storage cannot be opened or fails (one line, password hidden), or the
        study does not exist (``"read"``, ``"join"``) or was stored with another
        direction (``"run"``). A study that ``"run"`` created and that holds no
        trial when the storage fails is removed again, with its SQLite file if this
        call created the file.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}.")
    if (mode == "join") != (config is None) or (mode == "join") != (url is not None):
        raise ValueError("give a config, or for mode='join' a url and a study name.")
    url = url if config is None else config.storage
    assert url is not None
    if mode != "read" and journal_file(url) is not None:
        raise StorageError(
            f"trials are run into a database, not the journal file {url!r} (it keeps no "
            "heartbeats to retry a killed process's trial); give a URL such as "
            "sqlite:///study.db. Journal files can be read: report, importance, best, export."
        )
    if mode in ("read", "join"):
        _require_file(url)
    file = sqlite_file(url)
    new_file = file is not None and not file.exists()
    storage = open_storage(url)
    opened: OpenStudy | None = None
    created: list[str] = []  # the study's name, once this call created it
    try:
        with storage_errors(url), QuietStorageFailures(url) as background:
            opened = _open(storage, config, mode, url, name, seed_offset, created)
            if mode != "read":
                use_write_ahead_log(storage)
            yield opened
        background.report()
    except StorageError as error:
        if mode == "run" and created:
            _discard_if_empty(storage, created[0], file if new_file else None)
        if mode != "run" or opened is None:
            raise
        reason = str(error).rstrip(".")
        raise StorageError(
            f"{reason}. Finished trials are kept; run 'optuna-dl run "
            f"{opened.config.path}' again once the storage works, to resume."
        ) from None
    finally:
        close_storage(storage)


def _require_file(url: str) -> None:
    file = sqlite_file(url)
    if file is not None and not file.exists():
        raise StorageError(f"storage file {str(file)!r} does not exist yet.")


def _open(
    storage: Any,
    config: StudyConfig | None,
    mode: str,
    url: str,
    name: str | None,
    seed_offset: int,
    created: list[str],
) -> OpenStudy:
    if mode == "join":
        assert name is not None
        try:
            config = stored_config(storage, url, name)
        except LookupError as error:
            raise StorageError(str(error)) from None
        existing = len(
            storage.get_all_trials(storage.get_study_id_from_name(name), deepcopy=False)
        )
        study = optuna.load_study(
            study_name=name,
            storage=storage,
            sampler=config.make_sampler(resumed=existing + seed_offset),
            pruner=config.make_pruner(),
        )
        return OpenStudy(study, config, storage, created=False)
    assert config is not None
    stored = _stored_directions(storage, config.name)
    if mode == "read":
        if stored is None:
            raise StorageError(
                f"no study named {config.name!r} in {redact(url)}; run "
                f"'optuna-dl run {config.path}' first."
            )
        study = optuna.load_study(study_name=config.name, storage=storage)
        return OpenStudy(study, config, storage, created=False)
    if mode == "run" and stored is not None and stored != list(config.directions):
        key = "directions" if config.multi_objective or len(stored) > 1 else "direction"
        raise StorageError(
            f"{config.path}: key {key!r}: study {config.name!r} in "
            f"{redact(url)} was created to {' and '.join(stored)}, not "
            f"to {' and '.join(config.directions)}; change {key} or the study's name."
        )
    study = config.create_study(storage)
    if stored is None:
        created.append(config.name)
    if mode == "run" or CONFIG_ATTR not in study.user_attrs:
        study.set_user_attr(CONFIG_ATTR, config_to_dict(config))
    return OpenStudy(study, config, storage, created=stored is None)


def _stored_directions(storage: Any, name: str) -> list[str] | None:
    """The directions of study ``name`` in ``storage`` (None: there is no such study)."""
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        return None
    return [d.name.lower() for d in storage.get_study_directions(study_id)]


def _discard_if_empty(storage: Any, name: str, new_file: Path | None) -> None:
    """After a storage failure, remove what this run created if it holds no trial: the
    study, or the SQLite file it created. Best effort; nothing is removed if the
    storage cannot even be read."""
    with contextlib.suppress(Exception):
        study_id = storage.get_study_id_from_name(name)
        if storage.get_all_trials(study_id, deepcopy=False):
            return
        others = [s for s in storage.get_all_studies() if s.study_name != name]
        if new_file is not None and not others:
            close_storage(storage)
            remove_sqlite_file(new_file)
        else:
            storage.delete_study(study_id)
