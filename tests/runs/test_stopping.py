"""``[stop]``: a study ends once its ranking is settled, and the rule's bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest

from optuna_dl.runs.budget import run_budget
from optuna_dl.runs.config import ConfigError, StopRule, load_config
from optuna_dl.runs.interrupts import InterruptGuard
from optuna_dl.runs.stopping import settled_ranking


def _run(objective, rule: StopRule, n_trials: int) -> tuple[optuna.Study, str | None]:
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0)
    )
    with InterruptGuard() as interrupts:
        result = run_budget(
            study,
            objective,
            n_trials=n_trials,
            timeout=None,
            interrupts=interrupts,
            should_stop=settled_ranking(rule),
        )
    return study, result.stopped


def _dominated_by_x(trial: optuna.Trial) -> float:
    x, y, z = (trial.suggest_float(name, 0, 1) for name in "xyz")
    return x + 1e-3 * y + 1e-3 * z


@pytest.mark.slow
def test_a_study_whose_first_place_is_clear_stops_early():
    study, stopped = _run(_dominated_by_x, StopRule(1, min_trials=10, check_every=5), 200)
    assert stopped is not None and "(x)" in stopped
    assert 10 <= len(study.trials) < 200
    assert (len(study.trials) - 10) % 5 == 0  # only at the checks


@pytest.mark.slow
def test_a_study_with_no_clear_order_runs_its_whole_budget():
    rng = np.random.default_rng(0)

    def noise(trial: optuna.Trial) -> float:
        for name in "xyz":
            trial.suggest_float(name, 0, 1)
        return float(rng.random())

    study, stopped = _run(noise, StopRule(1, min_trials=10, check_every=5), 30)
    assert stopped is None
    assert len(study.trials) == 30


@pytest.mark.slow
def test_no_look_before_min_trials():
    study, stopped = _run(_dominated_by_x, StopRule(1, min_trials=25, check_every=5), 200)
    assert stopped is not None and len(study.trials) >= 25


BASE = 'n_trials = 40\n[data]\nsource = "iris"\n'


@pytest.mark.parametrize(
    ("table", "key", "expected"),
    [
        ("[stop]\nconfident = 1\n", "stop.confident", "unknown key"),
        ('[stop]\nconfident_top = "1"\n', "stop.confident_top", "must be an integer"),
        ("[stop]\nconfident_top = 0\n", "stop.confident_top", "between 1 and the"),
        ("[stop]\nconfident_top = 99\n", "stop.confident_top", "between 1 and the"),
        ("[stop]\nmin_trials = 1\n", "stop.min_trials", "between 2 and"),
        ("[stop]\nmin_trials = 41\n", "stop.min_trials", "more than n_trials = 40"),
        ("[stop]\ncheck_every = 0\n", "stop.check_every", "between 1 and"),
        ("[stop]\ncheck_every = 2.5\n", "stop.check_every", "must be an integer"),
        ("stop = 3\n", "stop", "must be a table"),
    ],
)
def test_bad_stop_rules_are_one_line_errors(tmp_path: Path, table, key, expected):
    path = tmp_path / "study.toml"
    if table.startswith("stop ="):
        path.write_text(table + BASE)
    else:
        path.write_text(BASE + table)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    assert f"key {key!r}" in message and expected in message


def test_a_stop_rule_is_read_with_its_defaults(tmp_path: Path):
    path = tmp_path / "study.toml"
    path.write_text(BASE + "[stop]\nconfident_top = 2\n")
    assert load_config(path).stop == StopRule(confident_top=2, min_trials=20, check_every=5)
    path.write_text(BASE)
    assert load_config(path).stop is None
