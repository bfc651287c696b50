"""Crash recovery: ``optuna-dl run`` killed with SIGKILL at chosen moments, then run again.

Each scenario starts ``optuna-dl run`` as a real process on a small study in a fresh
SQLite file, watches the file (and the command's output) until the chosen moment,
kills the process with SIGKILL (with ``--workers 2``, its whole process group: the
command and its workers), records the trials, and runs the same command again. The
second run must:

* resume the same study (one study in the file, the same name and id);
* leave every trial that was COMPLETE or PRUNED before the kill unchanged (state,
  parameters, value, intermediate values, end time): a trial changed or gone is a
  trial lost;
* mark each trial that was RUNNING at the kill as FAIL once its heartbeat is older
  than the grace period, and run a copy with the same parameters (those drawn before
  the kill, for a trial that had only just begun);
* end with exactly ``n_trials`` finished trials as the workers count them (COMPLETE,
  PRUNED or FAIL, not counting a failure that a retry replaced), none RUNNING or
  WAITING, and exit 0 without a traceback; the HTML report is complete.

Heartbeats are shortened with ``OPTUNA_DL_HEARTBEAT_INTERVAL`` and
``OPTUNA_DL_GRACE_PERIOD`` (1 s and 3 s). The tally (kills injected, trials lost) is
written to ``crash_recovery_counts.json`` in pytest's base temporary directory and
printed by the last test (``pytest -s``).
"""

from __future__ import annotations

import collections
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from optuna_dl.runs.budget import finished_trials

ENV = {
    **os.environ,
    "OPTUNA_DL_HEARTBEAT_INTERVAL": "1",
    "OPTUNA_DL_GRACE_PERIOD": "3",
    "PYTHONUNBUFFERED": "1",
}
N_TRIALS = 4
# Trials of about a second (batch size 4, 40 epochs), so that a process can be killed
# in the middle of one.
STUDY = (
    (Path(__file__).parents[1] / "data" / "slow_iris_study.toml.template")
    .read_text()
    .format(name="crash", n_trials=N_TRIALS, max_epochs=40, max_units=64)
)
DONE = (TrialState.COMPLETE, TrialState.PRUNED)
#: kills injected, trials checked, trials lost, ... (summed over the scenarios)
COUNTS: collections.Counter = collections.Counter()
SCENARIOS: dict[str, dict[str, Any]] = {}


# --------------------------------------------------------------------- helpers
class Run:
    """``optuna-dl run`` as a child process whose output is collected as it comes."""

    def __init__(self, study: Path, *extra: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "optuna_dl.cli", "run", str(study), *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=ENV,
            start_new_session=True,  # its own process group: the workers die with it
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(stream, lines), daemon=True)
            for stream, lines in ((self.process.stdout, self.out), (self.process.stderr, self.err))
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream: Any, lines: list[str]) -> None:
        for line in stream:
            lines.append(line)

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)
        for reader in self._readers:
            reader.join(10)

    def finish(self, timeout: float = 240) -> tuple[int, str, str]:
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"optuna-dl run did not end within {timeout} s: {''.join(self.out)}")
        for reader in self._readers:
            reader.join(10)
        return self.process.returncode, "".join(self.out), "".join(self.err)


def progress(db: Path) -> list[tuple[int, str, int]]:
    """``(number, state, epochs reported)`` of every trial, read with plain sqlite3 (no
    schema check, no heartbeat, nothing written)."""
    if not db.exists():
        return []
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as connection:
            return connection.execute(
                "SELECT t.number, t.state, (SELECT COUNT(*) FROM trial_intermediate_values v "
                "WHERE v.trial_id = t.trial_id) FROM trials t ORDER BY t.number"
            ).fetchall()
    except sqlite3.OperationalError:  # the schema is still being created
        return []


def trials(db: Path) -> list[FrozenTrial]:
    storage = optuna.storages.RDBStorage(f"sqlite:///{db}")
    try:
        return storage.get_all_trials(storage.get_study_id_from_name("crash"))
    finally:
        storage.engine.dispose()


def studies(db: Path) -> list[tuple[int, str]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
        return connection.execute("SELECT study_id, study_name FROM studies").fetchall()


def mid_trial(rows: list[tuple[int, str, int]], finished: int) -> bool:
    """At least ``finished`` trials done, and one RUNNING that has reported an epoch."""
    done = sum(state in ("COMPLETE", "PRUNED", "FAIL") for _, state, _ in rows)
    return done >= finished and any(state == "RUNNING" and epochs for _, state, epochs in rows)


def writing_report(rows: list[tuple[int, str, int]], out: list[str]) -> bool:
    """Every trial done and the summary printed (its importance table is printed
    last, just before the report is written), but the report not yet written."""
    text = "".join(out)
    return (
        len(rows) == N_TRIALS
        and re.search(r"^importance", text, re.MULTILINE) is not None
        and "report: " not in text
    )


def same(before: FrozenTrial, after: FrozenTrial) -> bool:
    return (
        before.state == after.state
        and before.params == after.params
        and before.values == after.values
        and before.intermediate_values == after.intermediate_values
        and before.datetime_complete == after.datetime_complete
    )


# ----------------------------------------------------------------------- tests
KILLS: dict[str, tuple[list[str], Callable[[list[tuple[int, str, int]], list[str]], bool]]] = {
    "during the first trial": ([], lambda rows, out: mid_trial(rows, 0)),
    "mid-study": ([], lambda rows, out: mid_trial(rows, 2)),
    "during the last trial": ([], lambda rows, out: mid_trial(rows, N_TRIALS - 1)),
    "while writing the report": ([], writing_report),
    "mid-study, 2 workers": (["--workers", "2"], lambda rows, out: mid_trial(rows, 2)),
}


@pytest.mark.slow
@pytest.mark.parametrize("moment", KILLS)
def test_a_killed_run_resumes_without_losing_a_trial(tmp_path: Path, moment: str) -> None:
    extra, ready = KILLS[moment]
    study = tmp_path / "crash.toml"
    study.write_text(STUDY)
    db = tmp_path / "crash.db"
    report = tmp_path / "crash.html"

    run = Run(study, *extra)
    deadline = time.monotonic() + 120
    while not ready(progress(db), run.out):
        if run.process.poll() is not None:
            run.finish()
            pytest.fail(f"the run ended before the kill point: {''.join(run.out + run.err)}")
        assert time.monotonic() < deadline, f"kill point not reached: {''.join(run.out)}"
        time.sleep(0.02)
    run.kill()
    killed = {t.number: t for t in trials(db)}
    assert studies(db) == [(1, "crash")]
    running = [n for n, t in killed.items() if t.state == TrialState.RUNNING]
    done = [t for t in killed.values() if t.state in DONE]
    if moment == "while writing the report":
        assert not running and len(done) == N_TRIALS
        assert "report: " not in "".join(run.out)  # the kill came before it was written
        assert not report.exists() or report.read_text().rstrip().endswith("</html>")
    else:
        assert running, f"no trial was RUNNING at the kill: {killed}"
        # One was killed mid-training; with two workers the other may have just begun.
        assert any(killed[n].intermediate_values for n in running)

    code, out, err = Run(study, *extra).finish()
    assert code == 0, err
    assert "Traceback" not in err, err
    assert studies(db) == [(1, "crash")], "the study was not resumed"
    after = {t.number: t for t in trials(db)}
    lost = [t.number for t in done if t.number not in after or not same(t, after[t.number])]
    assert not lost, f"trials changed or lost: {lost}"
    for number in running:
        assert after[number].state == TrialState.FAIL
        retries = [t for t in after.values() if t.system_attrs.get("failed_trial") == number]
        assert len(retries) == 1, f"trial {number} was not retried exactly once"
        if killed[number].intermediate_values:  # killed mid-training: every parameter drawn
            assert retries[0].params == killed[number].params
        else:  # the parameters drawn before the kill are kept, the others drawn again
            assert killed[number].params.items() <= retries[0].params.items()
        assert retries[0].state in DONE
    assert len(finished_trials(after.values())) == N_TRIALS
    states = {t.state for t in after.values()}
    assert not states & {TrialState.RUNNING, TrialState.WAITING}
    assert f": {len(done)} trials finished" in out, out
    assert report.read_text().rstrip().endswith("</html>")

    COUNTS["kills injected"] += 1
    COUNTS["finished trials at the kills"] += len(done)
    COUNTS["trials lost"] += len(lost)
    COUNTS["trials running at the kills"] += len(running)
    COUNTS["killed trials retried"] += len(running)
    SCENARIOS[moment] = {
        "finished at the kill": len(done),
        "running at the kill": running,
        "trials after the second run": len(after),
    }


def test_zz_tally(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Print and save the tally (runs last in this file: pytest keeps definition order)."""
    if not COUNTS:
        pytest.skip("the crash scenarios did not run in this test run")
    path = tmp_path_factory.getbasetemp() / "crash_recovery_counts.json"
    path.write_text(json.dumps({"counts": COUNTS, "scenarios": SCENARIOS}, indent=2))
    print(
        f"\n{COUNTS['kills injected']} kills injected, {COUNTS['trials lost']} trials lost; "
        f"{COUNTS['finished trials at the kills']} finished trials checked unchanged, "
        f"{COUNTS['killed trials retried']} of {COUNTS['trials running at the kills']} "
        f"killed trials retried with the parameters they had drawn. {json.dumps(SCENARIOS)}"
    )
    assert COUNTS["trials lost"] == 0
