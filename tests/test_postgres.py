"""Caviar across processes and machines, on a real PostgreSQL server (and, for
comparison, the same scenarios on one SQLite file).

A throwaway cluster (tests/conftest.py) is made with ``initdb`` on a free loopback port
(unix socket in the temporary directory, a password for the test role) and removed
afterwards. Without PostgreSQL binaries or the psycopg driver the PostgreSQL tests
skip, except under ``CI=true``, where a missing component fails them.

Workers run as real processes (``python -m optuna_dl.cli worker``); heartbeats are
shortened with ``OPTUNA_DL_HEARTBEAT_INTERVAL`` and ``OPTUNA_DL_GRACE_PERIOD``.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from sqlalchemy.engine import make_url

from optuna_dl.cli import main
from optuna_dl.runs.budget import StudyLock, finished_trials
from optuna_dl.runs.config import CONFIG_ATTR, config_to_dict, load_config
from optuna_dl.runs.storage import open_storage

PID_ATTR = "worker_pid"

ENV = {
    **os.environ,
    "OPTUNA_DL_HEARTBEAT_INTERVAL": "1",
    "OPTUNA_DL_GRACE_PERIOD": "2",
    "PYTHONUNBUFFERED": "1",
}
ROLE = "optuna_dl"

# Slow enough trials (1-5 s) that a worker can be killed in the middle of one.
SLOW_STUDY = (Path(__file__).parent / "data" / "slow_iris_study.toml.template").read_text()


# ------------------------------------------------------------------ the server
# ``postgres_url``, a throwaway cluster for the session, comes from tests/conftest.py.
def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _password(url: str) -> str:
    """The password in ``url`` (the cluster's: distinctive, so a leak is found)."""
    return make_url(url).password


@pytest.fixture(params=["sqlite", "postgresql"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    return request.getfixturevalue("postgres_url")


# --------------------------------------------------------------------- helpers
def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "optuna_dl.cli", *args],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=timeout,
    )


def _study_file(tmp_path: Path, name: str, n_trials: int, max_epochs: int = 20) -> Path:
    path = tmp_path / f"{name}.toml"
    text = SLOW_STUDY.format(name=name, n_trials=n_trials, max_epochs=max_epochs, max_units=128)
    path.write_text(text)
    return path


def _create_study(config_path: Path, url: str) -> None:
    """What ``optuna-dl run`` does before its first trial: create the study and store
    its definition (run's own path is tested with ``run --workers`` below)."""
    config = load_config(config_path)
    storage = open_storage(url)
    try:
        study = optuna.create_study(
            study_name=config.name, storage=storage, direction=config.direction
        )
        study.set_user_attr(CONFIG_ATTR, config_to_dict(config))
    finally:
        storage.engine.dispose()


def _start_workers(url: str, name: str, n_trials: int, count: int, logs: Path):
    logs.mkdir(exist_ok=True)
    workers = []
    for index in range(count):
        out = open(logs / f"worker{index}.out", "w")  # noqa: SIM115 - closed in _finish
        err = open(logs / f"worker{index}.err", "w")  # noqa: SIM115
        command = [sys.executable, "-m", "optuna_dl.cli", "worker", "--storage", url]
        command += ["--study", name, "--n-trials", str(n_trials)]
        process = subprocess.Popen(command, stdout=out, stderr=err, env=ENV)
        workers.append((process, out, err))
    return workers


def _finish(workers, timeout: float = 180) -> list[tuple[int, str, str]]:
    deadline = time.monotonic() + timeout
    results = []
    for process, out, err in workers:
        try:
            process.wait(max(deadline - time.monotonic(), 1))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        out.close()
        err.close()
        results.append(
            (process.returncode, Path(out.name).read_text(), Path(err.name).read_text())
        )
    return results


def _trials(url: str, name: str) -> list[optuna.trial.FrozenTrial]:
    storage = open_storage(url)
    try:
        return storage.get_all_trials(storage.get_study_id_from_name(name))
    finally:
        storage.engine.dispose()


def _logged_numbers(stdout: str) -> list[int]:
    return [int(m.group(1)) for m in re.finditer(r"^\s+trial\s+(\d+):", stdout, re.MULTILINE)]


# ----------------------------------------------------------------------- tests
@pytest.mark.slow
def test_three_workers_one_killed_mid_trial_study_ends_exact(
    storage_url: str, tmp_path: Path
) -> None:
    """Three ``worker`` processes share a study; one is SIGKILLed in the middle of a
    trial. Its trial is failed after the grace period and run again by another worker;
    the study ends with exactly n_trials finished trials (COMPLETE + PRUNED + FAIL, not
    counting the stale failure the retry replaced), nothing RUNNING or WAITING, and
    every trial ran in exactly one worker."""
    name, n_trials = f"caviar_kill_{tmp_path.name[-12:]}", 5
    _create_study(_study_file(tmp_path, name, n_trials), storage_url)

    workers = _start_workers(storage_url, name, n_trials, 3, tmp_path / "logs")
    pids = {process.pid: process for process, _, _ in workers}
    victim, killed_trial = None, None
    deadline = time.monotonic() + 120
    storage = open_storage(storage_url)
    study_id = storage.get_study_id_from_name(name)
    try:
        while victim is None and time.monotonic() < deadline:
            for trial in storage.get_all_trials(study_id):
                pid = trial.user_attrs.get(PID_ATTR)
                # Mid-training: parameters drawn and at least one epoch reported.
                if trial.state == TrialState.RUNNING and pid in pids and trial.intermediate_values:
                    victim, killed_trial = pids[pid], trial.number
                    victim.send_signal(signal.SIGKILL)
                    break
            time.sleep(0.05)
    finally:
        storage.engine.dispose()
    results = _finish(workers)
    assert victim is not None, "no worker was seen running a trial"

    trials = {t.number: t for t in _trials(storage_url, name)}
    finished = finished_trials(trials.values())
    assert len(finished) == n_trials
    assert not [t for t in trials.values() if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    # The killed trial was failed by heartbeat and retried (same parameters) elsewhere.
    assert trials[killed_trial].state == TrialState.FAIL
    assert killed_trial not in {t.number for t in finished}
    retries = [t for t in trials.values() if t.system_attrs.get("failed_trial") == killed_trial]
    assert len(retries) == 1
    retry = retries[0]
    assert retry.state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert retry.params == trials[killed_trial].params
    assert retry.user_attrs[PID_ATTR] != victim.pid
    assert all(t.state != TrialState.FAIL for t in finished)  # nothing else failed

    # Exit codes and logs: the survivors ended normally, nothing locked or crashed.
    logged: list[int] = []
    for (process, _, _), (code, stdout, stderr) in zip(workers, results):
        if process is victim:
            assert code == -signal.SIGKILL
        else:
            assert code == 0, stderr
        assert "database is locked" not in stdout + stderr
        assert "Traceback" not in stderr, stderr
        logged += _logged_numbers(stdout)
        for number in _logged_numbers(stdout):
            assert trials[number].user_attrs[PID_ATTR] == process.pid
    # Every trial the workers ran is reported by exactly one of them (none twice).
    assert len(logged) == len(set(logged))
    ran_by_workers = {t.number for t in finished if t.user_attrs.get(PID_ATTR) in pids}
    assert set(logged) == ran_by_workers


@pytest.mark.slow
def test_run_with_workers_on_postgres_hides_password(
    postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``run --workers 2`` against PostgreSQL: exact count, the workers rebuilt the
    study from its stored definition, ``report`` reads it back, and the URL's password
    is in no output of run, best, report or worker."""
    name, n_trials = f"caviar_run_{tmp_path.name[-12:]}", 6
    password = _password(postgres_url)
    config = _study_file(tmp_path, name, n_trials, max_epochs=3)
    ran = _cli("run", str(config), "--storage", postgres_url, "--workers", "2")
    assert ran.returncode == 0, ran.stderr
    assert "starting 2 workers" in ran.stdout
    assert f"{ROLE}:***@127.0.0.1" in ran.stdout
    assert len(finished_trials(_trials(postgres_url, name))) == n_trials
    assert main(["best", str(config), "--storage", postgres_url]) == 0
    # The report of a study the workers filled, read back without running a trial.
    report = tmp_path / "report.html"
    assert main(["report", str(config), "--storage", postgres_url, "-o", str(report)]) == 0
    assert f"<h1>{name}</h1>" in report.read_text(encoding="utf-8")
    assert password not in report.read_text(encoding="utf-8")
    assert len(_trials(postgres_url, name)) == n_trials
    # A worker on "another machine": no study file, the study is complete already.
    assert main(["worker", "--storage", postgres_url, "--study", name]) == 0
    joined = capsys.readouterr()
    assert "ran 0 trials" in joined.out
    for output in (ran.stdout, ran.stderr, joined.out, joined.err):
        assert password not in output
    assert "Traceback" not in ran.stderr


@pytest.mark.slow
def test_failing_connections_never_show_the_password(
    postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A closed port, a wrong password and a missing study: one line, exit 2, password
    hidden."""
    config = _study_file(tmp_path, "nowhere", 1)
    password = _password(postgres_url)
    port = _free_port()  # nothing listens there
    closed = f"postgresql+psycopg://{ROLE}:{password}@127.0.0.1:{port}/studies"
    wrong = postgres_url.replace(password, password + "-wrong")
    cases = [
        ["best", str(config), "--storage", closed],
        ["run", str(config), "--storage", closed],
        ["worker", "--storage", closed, "--study", "nowhere"],
        ["worker", "--storage", wrong, "--study", "nowhere"],
        ["worker", "--storage", postgres_url, "--study", "no_such_study"],
        ["export", str(config), "-o", str(tmp_path / "m.npz"), "--storage", postgres_url],
        ["babysit", str(config), "--storage", closed, "--epochs", "1"],
    ]
    for args in cases:
        assert main(args) == 2, args
        result = capsys.readouterr()
        assert result.err.startswith("optuna-dl: error: "), result.err
        assert len(result.err.strip().splitlines()) == 1, result.err
        assert password not in result.out + result.err
        assert "***@127.0.0.1" in result.err
    # The same through a real process, where nothing is captured by pytest.
    result = _cli("worker", "--storage", closed, "--study", "nowhere")
    assert result.returncode == 2
    assert password not in result.stdout + result.stderr


def test_advisory_lock_excludes_other_workers_of_the_study(postgres_url: str) -> None:
    """The lock under which a worker decides to start a trial: a PostgreSQL advisory
    lock per study (another study's lock is independent)."""
    storages = [open_storage(postgres_url) for _ in range(3)]
    first = StudyLock(storages[0], "locked")
    second = StudyLock(storages[1], "locked")
    unrelated = StudyLock(storages[2], "another study")
    order: list[str] = []
    first.acquire()
    unrelated.acquire()  # does not wait for "locked"

    def contend() -> None:
        with second:
            order.append("second")

    thread = threading.Thread(target=contend)
    thread.start()
    time.sleep(0.5)
    order.append("first releases")
    first.release()
    thread.join(10)
    assert order == ["first releases", "second"]
    for lock in (first, second, unrelated):
        lock.close()
    for storage in storages:
        storage.engine.dispose()
