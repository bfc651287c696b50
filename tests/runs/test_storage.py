"""SQLite files opened for writing use the write-ahead log; closing restores an
ordinary rollback-journal file (readable from a read-only folder); stale trials,
including ones that never sent a heartbeat, are failed and retried."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from optuna_dl.runs.storage import (
    GRACE_PERIOD_ENV,
    HEARTBEAT_INTERVAL_ENV,
    WAL_PAGES,
    close_storage,
    fail_stale_trials,
    open_storage,
    remove_sqlite_file,
    use_write_ahead_log,
)

# A study written outside study.optimize: its heartbeat settings are unused here.
pytestmark = pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")


def journal_mode(db: Path) -> str:
    connection = sqlite3.connect(db)
    try:
        return connection.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        connection.close()


def write_a_trial(storage) -> None:
    study = optuna.create_study(storage=storage, study_name="s", load_if_exists=True)
    trial = study.ask()
    trial.report(0.5, 1)
    study.tell(trial, 0.5)


def test_a_writer_commits_through_the_write_ahead_log(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    storage = open_storage(f"sqlite:///{db}")
    use_write_ahead_log(storage)
    write_a_trial(storage)
    assert journal_mode(db) == "wal"
    with storage.engine.connect() as connection:
        pragma = lambda name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()  # noqa: E731
        assert pragma("synchronous") == 1  # NORMAL
        assert pragma("wal_autocheckpoint") == WAL_PAGES
        assert pragma("journal_size_limit") == 0  # the log is truncated after a checkpoint
    close_storage(storage)
    assert journal_mode(db) == "delete"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.db"]
    reopened = optuna.load_study(study_name="s", storage=f"sqlite:///{db}")
    assert [t.intermediate_values for t in reopened.trials] == [{1: 0.5}]


def test_the_last_writer_to_close_restores_the_rollback_journal(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    first = open_storage(f"sqlite:///{db}")
    use_write_ahead_log(first)
    second = open_storage(f"sqlite:///{db}")
    use_write_ahead_log(second)
    write_a_trial(first)
    write_a_trial(second)
    close_storage(first)  # the second still has it open: it stays as it is
    assert journal_mode(db) == "wal"
    write_a_trial(second)
    close_storage(second)
    assert journal_mode(db) == "delete"
    assert len(optuna.load_study(study_name="s", storage=f"sqlite:///{db}").trials) == 3


def test_a_reader_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    writer = open_storage(f"sqlite:///{db}")
    use_write_ahead_log(writer)
    write_a_trial(writer)
    close_storage(writer)
    before = db.read_bytes()
    reader = open_storage(f"sqlite:///{db}")
    assert len(optuna.load_study(study_name="s", storage=reader).trials) == 1
    with reader.engine.connect() as connection:
        synchronous = connection.exec_driver_sql("PRAGMA synchronous").scalar()
    assert synchronous == 2  # FULL, SQLite's default for a rollback journal
    close_storage(reader)
    assert db.read_bytes() == before  # not a byte changed


def test_closing_a_removed_file_does_not_create_it_again(tmp_path: Path) -> None:
    db = tmp_path / "gone.db"
    storage = open_storage(f"sqlite:///{db}")
    use_write_ahead_log(storage)
    write_a_trial(storage)
    storage.engine.dispose()
    remove_sqlite_file(db)
    close_storage(storage)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_a_running_trial_that_never_sent_a_heartbeat_is_failed_and_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process that dies (or loses its database) between creating a trial and the
    first heartbeat leaves a RUNNING trial with no heartbeat, which Optuna never fails:
    a resumed run would wait for it for ever."""
    monkeypatch.setenv(HEARTBEAT_INTERVAL_ENV, "1")
    monkeypatch.setenv(GRACE_PERIOD_ENV, "2")
    study = optuna.create_study(storage=open_storage(f"sqlite:///{tmp_path / 'h.db'}"))
    study.ask({"x": FloatDistribution(0.0, 1.0)})  # created; no heartbeat thread ran
    fail_stale_trials(study)
    assert [t.state for t in study.trials] == [TrialState.RUNNING]  # may still be alive
    time.sleep(2.5)  # past the grace period
    optuna.storages.fail_stale_trials(study)
    assert [t.state for t in study.trials] == [TrialState.RUNNING]  # Optuna leaves it
    fail_stale_trials(study)
    first, retry = study.trials
    assert (first.state, retry.state) == (TrialState.FAIL, TrialState.WAITING)
    assert retry.params == first.params
    assert retry.system_attrs["failed_trial"] == first.number
    fail_stale_trials(study)  # nothing more to do: no second retry
    assert len(study.trials) == 2
