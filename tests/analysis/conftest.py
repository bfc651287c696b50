"""Studies built from ``optuna.trial.create_trial``: fast, deterministic, known truth."""

from __future__ import annotations

import datetime
import math
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.distributions import (
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState, create_trial

optuna.logging.set_verbosity(optuna.logging.ERROR)

#: The package's default space, in sampled names (one_minus_beta only with momentum).
SPACE = {
    "learning_rate": FloatDistribution(1e-4, 1.0, log=True),
    "optimizer": CategoricalDistribution(["adam", "momentum"]),
    "n_layers": IntDistribution(1, 4),
    "learning_rate_decay": FloatDistribution(1e-3, 1.0, log=True),
    "one_minus_beta": FloatDistribution(1e-3, 1e-1, log=True),
    "n_units": IntDistribution(16, 512, log=True),
    "log2_batch_size": IntDistribution(5, 9),
}
START = datetime.datetime(2026, 1, 1, 12, 0, 0)


def sample_params(rng: np.random.Generator) -> dict[str, Any]:
    """One configuration of :data:`SPACE`, drawn on its scales."""
    params: dict[str, Any] = {
        "learning_rate": float(10 ** rng.uniform(-4, 0)),
        "optimizer": str(rng.choice(["adam", "momentum"])),
        "n_layers": int(rng.integers(1, 5)),
        "learning_rate_decay": float(10 ** rng.uniform(-3, 0)),
        "n_units": int(round(math.exp(rng.uniform(math.log(16), math.log(512))))),
        "log2_batch_size": int(rng.integers(5, 10)),
    }
    if params["optimizer"] == "momentum":
        params["one_minus_beta"] = float(10 ** rng.uniform(-3, -1))
    return params


def accuracy(params: dict[str, Any]) -> float:
    """A made-up validation accuracy that the learning rate dominates (peak at 1e-2)."""
    lr = math.log10(params["learning_rate"])
    return 0.95 - 0.12 * (lr + 2) ** 2 - 0.005 * params["n_layers"]


def build_trial(
    number: int,
    params: dict[str, Any],
    *,
    value: float | None = None,
    state: TrialState = TrialState.COMPLETE,
    curve: list[float] | None = None,
    seconds: float = 1.0,
    start_offset: float | None = None,
    user_attrs: dict[str, Any] | None = None,
) -> optuna.trial.FrozenTrial:
    """A trial with the given outcome; trials run one after the other unless
    ``start_offset`` (seconds after :data:`START`) says otherwise."""
    start = START + datetime.timedelta(
        seconds=number * 10 if start_offset is None else start_offset
    )
    attrs = {"estimator_params": dict(params)}
    if curve is not None:
        attrs.update(learning_curve=curve, epochs=len(curve))
    attrs.update(user_attrs or {})
    trial = create_trial(
        state=state,
        value=value if state == TrialState.COMPLETE else None,
        params=params,
        distributions={name: SPACE.get(name, FloatDistribution(0, 1)) for name in params},
        intermediate_values={i + 1: v for i, v in enumerate(curve or [])},
        user_attrs=attrs,
    )
    return with_times(trial, start, seconds)


def with_times(
    trial: optuna.trial.FrozenTrial, start: datetime.datetime, seconds: float
) -> optuna.trial.FrozenTrial:
    """Set the trial's start and completion times (``create_trial`` has no arguments for
    them in Optuna 5; ``add_trial`` copies the attributes)."""
    trial.datetime_start = start
    trial.datetime_complete = start + datetime.timedelta(seconds=seconds)
    return trial


@pytest.fixture
def make_study() -> Callable[..., optuna.Study]:
    """``make_study(trials, name=..., direction=...)``: an in-memory study of ``trials``."""

    def make(
        trials: list[optuna.trial.FrozenTrial],
        name: str = "synthetic",
        direction: str = "maximize",
    ) -> optuna.Study:
        study = optuna.create_study(study_name=name, direction=direction)
        study.add_trials(trials)
        return study

    return make


@pytest.fixture
def tuned_study(make_study: Callable[..., optuna.Study]) -> optuna.Study:
    """80 trials of the default space: learning rate dominates; about half pruned after
    2 epochs; two failed; two diverged; two workers (trials overlap in time)."""
    rng = np.random.default_rng(0)
    trials = []
    for number in range(80):
        params = sample_params(rng)
        final = accuracy(params) + 0.005 * rng.normal()
        curve = [final * (1 - 0.5 ** (epoch + 1)) for epoch in range(6)]
        offset = (number // 2) * 6.0 + (number % 2) * 2.0
        if number in (7, 31):
            trials.append(build_trial(number, params, state=TrialState.FAIL, start_offset=offset))
        elif number in (11, 47):
            trials.append(
                build_trial(
                    number,
                    params,
                    state=TrialState.PRUNED,
                    curve=curve[:1],
                    start_offset=offset,
                    user_attrs={"diverged": "loss is nan at epoch 2"},
                )
            )
        elif number >= 10 and final < 0.8:
            trials.append(
                build_trial(
                    number, params, state=TrialState.PRUNED, curve=curve[:2], start_offset=offset
                )
            )
        else:
            trials.append(
                build_trial(
                    number,
                    params,
                    value=max(curve),
                    curve=curve,
                    seconds=0.5 + params["n_units"] / 64,
                    start_offset=offset,
                    user_attrs={"best_epoch": 6, "fit_seconds": 1.0},
                )
            )
    return make_study(trials, name="tuned")


@pytest.fixture
def helpers() -> SimpleNamespace:
    """The module's builders, for tests (conftest modules cannot be imported)."""
    return SimpleNamespace(
        SPACE=SPACE,
        START=START,
        sample_params=sample_params,
        accuracy=accuracy,
        build_trial=build_trial,
        with_times=with_times,
    )
