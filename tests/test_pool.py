"""The one process pool behind DeepNetSearchCV(n_jobs=...) and run --workers."""

from __future__ import annotations

import os

import pytest

from optuna_dl import _pool


def _square(*, x: int, stop) -> tuple[int, int]:
    return x * x, os.getpid()


def _fail(*, message: str, stop) -> None:
    raise ValueError(message)


def _die(*, stop) -> None:
    os._exit(7)


def _look_around(*, name: str, stop) -> tuple[str, str | None, bool]:
    return os.getcwd(), os.environ.get(name), stop.is_set()


def test_each_job_runs_in_its_own_process_and_results_come_back_in_order():
    outcomes, interrupted = _pool.run_processes(
        _square, [{"x": 2}, {"x": 3}, {"x": 4}], name="squares"
    )
    assert not interrupted
    assert [o.value[0] for o in outcomes] == [4, 9, 16]
    pids = {o.value[1] for o in outcomes}
    assert len(pids) == 3 and os.getpid() not in pids
    assert [o.name for o in outcomes] == ["squares-0", "squares-1", "squares-2"]
    assert all(o.ok and o.exitcode == 0 for o in outcomes)


def test_an_exception_comes_back_with_its_traceback_and_a_death_with_its_exit_code():
    (raised,), _ = _pool.run_processes(_fail, [{"message": "bad input"}], name="w")
    assert isinstance(raised.error, ValueError) and str(raised.error) == "bad input"
    assert "_fail" in raised.trace and not raised.ok
    (died,), _ = _pool.run_processes(_die, [{}], name="w")
    assert isinstance(died.error, RuntimeError)
    assert "exit code 7" in str(died.error) and died.exitcode == 7


def test_workers_see_the_callers_current_directory_and_environment(tmp_path, monkeypatch):
    _pool.run_processes(_square, [{"x": 1}], name="warm")  # the fork server is running
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPTUNA_DL_POOL_TEST", "set after the server started")
    (outcome,), _ = _pool.run_processes(_look_around, [{"name": "OPTUNA_DL_POOL_TEST"}], name="w")
    assert outcome.value == (str(tmp_path), "set after the server started", False)


def test_cores_are_shared_out(monkeypatch):
    monkeypatch.setattr(_pool, "cpu_count", lambda: 8)
    assert [_pool.threads_per_process(k) for k in (1, 2, 3, 8, 16)] == [8, 4, 2, 1, 1]


def test_an_unknown_interrupt_policy_is_refused():
    with pytest.raises(ValueError, match="on_interrupt"):
        _pool.run_processes(_square, [], name="w", on_interrupt="ignore")
