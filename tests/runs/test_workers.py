"""Caviar on one machine: what counts as finished, the shared lock, the stored study
definition, heartbeat settings, and ``optuna-dl run --workers K`` on one SQLite file.

(Several ``worker`` processes, SIGKILL and PostgreSQL: tests/test_postgres.py.)
"""

from __future__ import annotations

import dataclasses
import json
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState, create_trial
from sqlalchemy.exc import SQLAlchemyError

from optuna_dl import _pool
from optuna_dl.cli import main
from optuna_dl.runs.budget import StudyLock, finished_trials, tally
from optuna_dl.runs.config import (
    CONFIG_ATTR,
    ConfigError,
    config_from_dict,
    config_to_dict,
    load_config,
)
from optuna_dl.runs.storage import StorageError, heartbeat_settings, open_storage

PID_ATTR = "worker_pid"
THREADS_ATTR = "worker_blas_threads"

IRIS_CSV = Path(__file__).resolve().parents[2] / "studies" / "data" / "iris.csv"

STUDY = """\
name = "{name}"
n_trials = {n_trials}
seed = 3

[data]
source = "csv"
path = "iris.csv"
target = "species"

[search]
max_epochs = 3

[space.n_units]
high = 64

[pruner]
name = "NopPruner"
"""


@pytest.fixture
def study_file(tmp_path: Path) -> Path:
    (tmp_path / "iris.csv").write_bytes(IRIS_CSV.read_bytes())
    path = tmp_path / "tiny.toml"
    path.write_text(STUDY.format(name="tiny", n_trials=6))
    return path


def _numbered(*trials: optuna.trial.FrozenTrial) -> list[optuna.trial.FrozenTrial]:
    for number, trial in enumerate(trials):
        trial.number = number
    return list(trials)


# ---------------------------------------------------------------- counting
def test_finished_means_complete_pruned_or_fail_but_not_a_replaced_stale_failure() -> None:
    trials = _numbered(
        create_trial(value=0.9),  # 0 counts
        create_trial(state=TrialState.PRUNED),  # 1 counts
        create_trial(state=TrialState.FAIL),  # 2 an error in the objective: counts
        create_trial(state=TrialState.FAIL),  # 3 stale, replaced by 5, 5 by 6
        create_trial(state=TrialState.RUNNING),  # 4 will finish: committed
        create_trial(state=TrialState.FAIL, system_attrs={"retry_history": [3]}),
        create_trial(value=0.5, system_attrs={"failed_trial": 3, "retry_history": [3, 5]}),
        create_trial(value=0.99, user_attrs={"mode": "babysit"}),  # 7 babysat: never counts
        create_trial(state=TrialState.WAITING, system_attrs={"retry_history": [9]}),
        create_trial(state=TrialState.FAIL),  # 9 stale, its retry 8 is queued
    )
    assert [t.number for t in finished_trials(trials)] == [0, 1, 2, 6]
    counted = tally(trials)
    assert (counted.finished, counted.running, counted.waiting) == (4, 1, 1)
    assert counted.committed == 6


@pytest.mark.slow
def test_run_tops_up_with_the_same_definition(study_file: Path, tmp_path: Path) -> None:
    """``run`` counts finished trials as the workers do: a stale failure that was
    retried and a babysat trial are not part of the study's n_trials."""
    config = load_config(study_file)
    study = optuna.create_study(study_name="tiny", storage=config.storage, direction="maximize")
    study.add_trial(create_trial(value=0.5))
    study.add_trial(create_trial(state=TrialState.FAIL))
    study.add_trial(
        create_trial(value=0.6, system_attrs={"failed_trial": 1, "retry_history": [1]})
    )
    study.add_trial(create_trial(value=0.7, user_attrs={"mode": "babysit"}))
    assert main(["run", str(study_file), "--n-trials", "4", "-q"]) == 0
    trials = study.get_trials()
    assert len(trials) == 6  # 2 finished search trials + 2 new ones
    assert len(finished_trials(trials)) == 4


# ---------------------------------------------------------- stored definition
def test_stored_definition_rebuilds_the_same_config(study_file: Path, tmp_path: Path) -> None:
    config = load_config(study_file)
    stored = json.loads(json.dumps(config_to_dict(config)))  # what the storage holds
    assert Path(stored["data"]["path"]).is_absolute()
    assert "storage" not in stored
    rebuilt = config_from_dict(stored, storage=config.storage)
    same = dataclasses.replace(rebuilt, path=config.path, report=config.report)
    assert same == config
    # A machine without the data file says so, naming the stored definition.
    stored["data"]["path"] = str(tmp_path / "elsewhere.csv")
    with pytest.raises(ConfigError, match=r"stored study definition.*data\.path"):
        config_from_dict(stored, storage=config.storage)


# ------------------------------------------------------------------ heartbeats
def test_heartbeat_settings_come_from_the_environment(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv("OPTUNA_DL_HEARTBEAT_INTERVAL", raising=False)
    monkeypatch.delenv("OPTUNA_DL_GRACE_PERIOD", raising=False)
    assert heartbeat_settings() == (10, 30)
    monkeypatch.setenv("OPTUNA_DL_HEARTBEAT_INTERVAL", "1")
    monkeypatch.setenv("OPTUNA_DL_GRACE_PERIOD", "3")
    storage = open_storage(f"sqlite:///{tmp_path / 'h.db'}")
    assert (storage.heartbeat_interval, storage.grace_period) == (1, 3)
    for interval, grace, problem in [
        ("0", "3", "positive"),
        ("x", "3", "positive"),
        ("3", "3", "exceed"),
    ]:
        monkeypatch.setenv("OPTUNA_DL_HEARTBEAT_INTERVAL", interval)
        monkeypatch.setenv("OPTUNA_DL_GRACE_PERIOD", grace)
        with pytest.raises(StorageError, match=problem):
            heartbeat_settings()


# ------------------------------------------------------------------------ lock
def test_study_lock_excludes_other_holders_of_the_same_sqlite_file(tmp_path: Path) -> None:
    storage = open_storage(f"sqlite:///{tmp_path / 'lock.db'}")
    first, second = StudyLock(storage, "s"), StudyLock(storage, "s")
    order: list[str] = []
    first.acquire()

    def contend() -> None:
        with second:
            order.append("second")

    thread = threading.Thread(target=contend)
    thread.start()
    time.sleep(0.3)
    order.append("first releases")
    first.release()
    first.release()  # releasing twice is harmless (the objective releases early)
    thread.join(10)
    assert order == ["first releases", "second"]
    first.close()
    second.close()


def test_threads_are_the_cores_shared_out(monkeypatch) -> None:
    monkeypatch.setattr(_pool, "cpu_count", lambda: 8)
    assert [_pool.threads_per_process(k) for k in (1, 2, 3, 8, 16)] == [8, 4, 2, 1, 1]


# --------------------------------------------------------------- run --workers
@pytest.mark.slow
def test_run_with_three_workers_on_one_sqlite_file(study_file: Path, tmp_path: Path) -> None:
    """Three processes on one SQLite file: exactly n_trials, no lock errors, each
    worker capped to cores // 3 BLAS threads."""
    result = subprocess.run(
        [sys.executable, "-m", "optuna_dl.cli", "run", str(study_file), "--workers", "3"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert "database is locked" not in output
    assert "Traceback" not in output
    assert output.count("ran ") == 3  # every worker reported and ended
    trials = optuna.load_study(
        study_name="tiny", storage=load_config(study_file).storage
    ).get_trials()
    assert len(trials) == 6
    assert all(t.state == TrialState.COMPLETE for t in trials)
    # Three processes share one stdout pipe, so a progress line can land inside
    # another's; search the whole output rather than line starts.
    numbers = [int(n) for n in re.findall(r"trial +(\d+): ", result.stdout)]
    assert len(numbers) == len(set(numbers))  # no trial ran twice
    assert numbers and set(numbers) <= set(range(6))
    expected = _pool.threads_per_process(3)
    assert {t.user_attrs[THREADS_ATTR] for t in trials} <= {expected}
    assert all(isinstance(t.user_attrs[PID_ATTR], int) for t in trials)
    stored = optuna.load_study(study_name="tiny", storage=load_config(study_file).storage)
    assert stored.user_attrs[CONFIG_ATTR]["name"] == "tiny"


def test_worker_and_workers_errors_are_one_line(
    study_file: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    monkeypatch.delenv("OPTUNA_DL_STORAGE", raising=False)
    url = load_config(study_file).storage
    cases = [
        (["run", str(study_file), "--workers", "0"], "--workers must be between 1 and 256"),
        (["worker", "--study", "tiny"], "OPTUNA_DL_STORAGE"),
        (
            ["worker", "--storage", f"sqlite:///{tmp_path / 'none.db'}", "--study", "x"],
            "does not exist",
        ),
        (["worker", "--storage", url, "--study", "tiny", "--threads", "0"], "--threads"),
    ]
    for args, message in cases:
        assert main(args) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert not Path(url[len("sqlite:///") :]).exists()  # nothing was created
    # A study that optuna-dl did not create has no definition to join.
    optuna.create_study(study_name="foreign", storage=url)
    assert main(["worker", "--storage", url, "--study", "foreign"]) == 2
    assert "no stored optuna-dl definition" in capsys.readouterr().err
    assert main(["worker", "--storage", url, "--study", "missing"]) == 2
    assert "no study named 'missing'" in capsys.readouterr().err


def test_worker_reads_the_url_from_the_environment(study_file: Path, capsys, monkeypatch) -> None:
    """A worker joins with no study file; its storage URL may come from
    OPTUNA_DL_STORAGE (keeping a password off the command line)."""
    url = load_config(study_file).storage
    assert main(["run", str(study_file), "--n-trials", "1", "-q"]) == 0
    capsys.readouterr()
    monkeypatch.setenv("OPTUNA_DL_STORAGE", url)
    assert main(["worker", "--study", "tiny", "--n-trials", "3"]) == 0
    out = capsys.readouterr().out
    assert "ran 2 trials" in out and "has 3 finished trials" in out


@pytest.mark.slow
def test_ctrl_c_stops_all_workers_and_leaves_nothing_running(
    study_file: Path, tmp_path: Path
) -> None:
    """SIGINT to ``run --workers 2`` (forwarded to its workers): exit 130, the trials in
    progress are recorded as failed, none is left RUNNING or WAITING."""
    path = tmp_path / "slow.toml"
    path.write_text(
        # Patience as long as the trial: a running trial cannot end on its own
        # between the poll that sees it and the signal.
        STUDY.format(name="slow", n_trials=50).replace(
            "max_epochs = 3", "max_epochs = 200\npatience = 200"
        )
        + "\n[estimator]\nbatch_size = 4\n\n[space.batch_size]\nenabled = false\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "optuna_dl.cli", "run", str(path), "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    storage_url = load_config(path).storage
    deadline = time.monotonic() + 90
    running = []
    while not running and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
        if Path(storage_url[len("sqlite:///") :]).exists():
            try:
                trials = optuna.load_study(study_name="slow", storage=storage_url).trials
            except (KeyError, SQLAlchemyError):  # the command is still creating it
                continue
            running = [
                t for t in trials if t.state == TrialState.RUNNING and t.intermediate_values
            ]
    assert running, "no trial started"
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "interrupted: storage is consistent" in out
    assert "Traceback" not in err
    trials = optuna.load_study(study_name="slow", storage=storage_url).trials
    states = {t.state for t in trials}
    assert states <= {TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL}
    assert trials[running[0].number].state == TrialState.FAIL
