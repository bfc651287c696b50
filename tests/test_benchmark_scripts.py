"""Smoke test of the benchmark scripts: each runs with ``--quick`` as a real process.

The numbers of a quick run mean nothing; what is checked is that the script runs to
the end and prints every row and its targets table.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
#: A quick run takes a few seconds on an idle machine; the margin is for a busy one.
TIMEOUT = 180

pytestmark = pytest.mark.slow


def test_tuning_benchmark_quick_run() -> None:
    pytest.importorskip("optuna_integration")
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "tuning.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for row in (
        "DeepNetSearchCV pruned",
        "DeepNetSearchCV unpruned",
        "RandomizedSearchCV(MLP)",
        "OptunaSearchCV(MLP)",
    ):
        assert f"\n{row} " in out, row
    targets = out[out.index("\nTargets\n") :]
    for target in (
        "pruned best CV within 0.5 points of unpruned",
        "pruned epochs <= 40 % of unpruned",
        "pruned held-out >= 0.98",
        "... in <= 0.5x RandomizedSearchCV(MLP) wall",
        "Optuna + storage overhead <= 5 % (SQLite)",
    ):
        line = next((x for x in targets.splitlines() if target in x), None)
        assert line is not None, target
        assert line.split()[-1] in ("yes", "no"), line
    assert "learning curves reproduced" in out
    assert "(seeds: mean held-out accuracy of the best configuration refit" in out


def test_regression_benchmark_quick_run() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "regression.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for data in ("diabetes", "friedman1"):
        for model in (
            "DeepNetRegressor",
            "MLPRegressor",
            "MLPRegressor + scaled y",
            "DeepNet, early stopping",
            "MLP, early stopping",
        ):
            row = next((x for x in lines if x.startswith(f"{data:<10} {model:<24}")), None)
            assert row is not None, (data, model)
            float(row.split()[-1])  # the ratio column is a number
    ours = [x for x in lines if x[11:].startswith("DeepNetRegressor ")]
    assert len(ours) == 2 and all(x.split()[-1] == "1.00" for x in ours)


def test_optimizer_step_benchmark_short_run() -> None:
    pytest.importorskip("numba")
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "optimizer_step.py"), "--steps", "2", "--rounds", "1"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()[2:]]
    names = {"sgd", "momentum", "rmsprop", "adam"}
    assert sorted((row[0], int(row[1])) for row in rows) == sorted(
        (name, n) for name in names for n in (269_834, 65_536)
    )
    for row in rows:
        [float(cell) for cell in row[2:]]  # every column is a number
