"""Pruning-aware importance candidates: exact bookkeeping on hand-made studies, and
the planted-truth problem under successive halving."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from optuna_dl.analysis.importance import importances_at_epoch, param_importances
from optuna_dl.analysis.pruning_aware import (
    imputed_final_importances,
    imputed_final_values,
    ped_anova_with_pruned,
    pruned_order_values,
    rung_weighted_importances,
)
from optuna_dl.tuning.planted import planted_study

from .test_planted import PLANTED, assert_planted_first, evaluator

DISTS = {"x": FloatDistribution(0, 1), "y": FloatDistribution(0, 1)}


def _trial(
    value: float | None, curve: dict[int, float], state: TrialState, x: float = 0.5, **attrs: str
) -> optuna.trial.FrozenTrial:
    return create_trial(
        params={"x": x, "y": 1 - x},
        distributions=DISTS,
        value=value,
        intermediate_values=curve,
        state=state,
        user_attrs=attrs,
    )


def _study(direction: str, trials: list[optuna.trial.FrozenTrial]) -> optuna.Study:
    study = optuna.create_study(direction=direction)
    study.add_trials(trials)
    return study


@pytest.mark.parametrize("direction, sign", [("maximize", 1.0), ("minimize", -1.0)])
def test_pruned_trials_rank_below_those_that_went_further(direction: str, sign: float) -> None:
    P, C = TrialState.PRUNED, TrialState.COMPLETE
    study = _study(
        direction,
        [
            _trial(sign * 0.50, {2: sign * 0.1, 6: sign * 0.2}, C),  # 0: worst complete
            _trial(sign * 0.90, {2: sign * 0.8, 6: sign * 0.9}, C),  # 1: best complete
            _trial(None, {2: sign * 0.95, 6: sign * 0.99}, P),  # 2: pruned at 6, best score
            _trial(None, {2: sign * 0.30, 6: sign * 0.40}, P),  # 3: pruned at 6
            _trial(None, {2: sign * 0.99}, P),  # 4: pruned at 2, best score
            _trial(None, {2: sign * 0.20}, P),  # 5: pruned at 2
            _trial(None, {2: sign * 0.99}, P, diverged="nan loss"),  # 6: diverged
        ],
    )
    values = pruned_order_values(study)
    order = sorted(values, key=values.get, reverse=True)
    assert order == [1, 0, 2, 3, 4, 5, 6]


def test_imputed_values_follow_the_line_through_the_completed_trials() -> None:
    P, C = TrialState.PRUNED, TrialState.COMPLETE
    completed = [_trial(0.5 + 0.5 * v, {2: v, 6: v + 0.01}, C) for v in (0.2, 0.4, 0.6, 0.8)]
    study = _study(
        "maximize",
        [
            *completed,
            _trial(None, {2: 0.3}, P),
            _trial(None, {2: 0.5, 6: 0.7}, P),
            _trial(None, {2: 0.5}, P, diverged="nan"),
        ],
    )
    values = imputed_final_values(study)
    assert values[4] == pytest.approx(0.5 + 0.5 * 0.3)
    # at epoch 6 the completed trials' final value is 0.5 + 0.5 * (v6 - 0.01)
    assert values[5] == pytest.approx(0.5 + 0.5 * (0.7 - 0.01))
    assert values[6] == pytest.approx(min(t.value for t in completed))
    assert values[0] == completed[0].value


@pytest.fixture(scope="module")
def halved() -> optuna.Study:
    """The planted problem under the README study's successive halving."""
    return planted_study(300, seed=4)


def test_rung_weights_are_the_trial_counts(halved: optuna.Study) -> None:
    combined = rung_weighted_importances(halved, evaluator="ped_anova", n_bootstrap=5)
    levels = [importances_at_epoch(halved, e, n_bootstrap=0) for e in (2, 6, 18)]
    levels.append(param_importances(halved, n_bootstrap=0))
    total = sum(r.n_trials for r in levels)
    for p in combined.params:
        expected = sum(r.n_trials * r.get(p.name).importance for r in levels) / total
        assert p.importance == pytest.approx(expected)
    assert combined.n_trials == 300
    assert combined.bootstrap.shape == (5, len(combined.params))


def test_completed_trials_alone_miss_the_planted_order(halved: optuna.Study) -> None:
    """What the candidates are for: PED-ANOVA on the completed trials only cannot
    separate the planted parameters from the rest."""
    result = param_importances(halved, n_bootstrap=20)
    with pytest.raises(AssertionError):
        assert_planted_first(result, PLANTED)


@pytest.mark.parametrize("name", ["ped_anova", "mdi"])
@pytest.mark.parametrize("candidate", [rung_weighted_importances, imputed_final_importances])
def test_candidates_rank_the_planted_parameters_first(
    halved: optuna.Study, candidate: object, name: str
) -> None:
    result = candidate(halved, evaluator=evaluator(name), n_bootstrap=20)
    assert_planted_first(result, PLANTED)


def test_ped_anova_with_pruned_ranks_the_planted_parameters_first(halved: optuna.Study) -> None:
    result = ped_anova_with_pruned(halved, n_bootstrap=20)
    assert result.n_trials == 300
    assert set(result.names[:2]) == set(PLANTED)
