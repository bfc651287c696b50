"""The planted-truth problem, and the importance code on it: exactly two parameters
matter, so every evaluator must rank them first with intervals that exclude the rest."""

from __future__ import annotations

import warnings

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.importance import FanovaImportanceEvaluator, MeanDecreaseImpurityImportanceEvaluator
from optuna.trial import TrialState

from optuna_dl.analysis.importance import (
    ImportanceResult,
    importances_at_epoch,
    param_importances,
)
from optuna_dl.tuning.planted import PlantedObjective, planted_study, unit_position
from optuna_dl.tuning.space import SearchSpace

PLANTED = ("learning_rate_decay", "log2_batch_size")


#: Resamples per evaluator (the forests are shallow and small so that each is fast).
N_BOOTSTRAP = {"ped_anova": 20, "fanova": 20, "mdi": 20}


def evaluator(name: str) -> str | optuna.importance.BaseImportanceEvaluator:
    """The evaluators with fewer, shallower trees than Optuna's (64 trees, depth 64)."""
    if name == "fanova":
        return FanovaImportanceEvaluator(n_trees=8, max_depth=6, seed=0)
    if name == "mdi":
        return MeanDecreaseImpurityImportanceEvaluator(n_trees=16, max_depth=6, seed=0)
    return name


def assert_planted_first(result: ImportanceResult, planted: tuple[str, ...]) -> None:
    """The planted parameters rank first, and their intervals exclude the others'."""
    assert set(result.names[: len(planted)]) == set(planted), result.names
    ours = [result.get(n) for n in planted]
    others = [p for p in result.params if p.name not in planted]
    assert others, "nothing to compare the planted parameters with"
    assert max(p.rank_high for p in ours) <= len(planted)
    assert min(p.rank_low for p in others) > len(planted)
    assert min(p.low for p in ours) > max(p.high for p in others)


@pytest.fixture(scope="module")
def unpruned() -> optuna.Study:
    return planted_study(300, pruner=optuna.pruners.NopPruner(), seed=3)


@pytest.fixture(scope="module")
def halved() -> optuna.Study:
    """Random sampling with the README study's successive halving (rungs 2, 6, 18)."""
    return planted_study(300, seed=4)


def test_unit_position_on_each_scale() -> None:
    assert unit_position(FloatDistribution(1e-3, 1.0, log=True), 10**-1.5) == pytest.approx(0.5)
    assert unit_position(FloatDistribution(0.0, 4.0), 1.0) == pytest.approx(0.25)
    assert unit_position(IntDistribution(5, 9), 9) == pytest.approx(1.0)
    assert unit_position(CategoricalDistribution(["a", "b", "c"]), "b") == pytest.approx(0.5)


def test_only_the_planted_parameters_change_the_curve() -> None:
    objective = PlantedObjective(important=("learning_rate_decay", "batch_size"))
    assert objective.important == PLANTED
    base = {
        "learning_rate": 1e-2,
        "optimizer": "adam",
        "n_layers": 2,
        "learning_rate_decay": 0.1,
        "n_units": 64,
        "log2_batch_size": 7,
    }
    other = dict(base, learning_rate=0.5, optimizer="momentum", one_minus_beta=0.01, n_units=500)
    np.testing.assert_array_equal(objective.curve(base, 7), objective.curve(other, 7))
    moved = dict(base, learning_rate_decay=0.9)
    assert objective.final_score(moved) != objective.final_score(base)
    best = dict(base, learning_rate_decay=10 ** (-3 + 3 * 0.7), log2_batch_size=5 + 4 * 0.7)
    assert objective.final_score(best) == pytest.approx(objective.ceiling)


def test_curve_rises_to_the_final_score() -> None:
    objective = PlantedObjective(noise=0.0, max_epochs=60)
    params = {"learning_rate_decay": 0.05, "log2_batch_size": 8}
    curve = objective.curve(params, 0)
    assert np.all(np.diff(curve) > 0)
    assert curve[-1] == pytest.approx(objective.final_score(params), abs=1e-4)


def test_rejects_a_parameter_outside_the_space() -> None:
    with pytest.raises(ValueError, match="'beta1' is not an active entry"):
        PlantedObjective(important=("beta1",))
    with pytest.raises(ValueError, match="max_epochs"):
        PlantedObjective(max_epochs=0)


def test_samples_the_package_space(halved: optuna.Study) -> None:
    expected = SearchSpace.default().to_distributions()
    for trial in halved.trials:
        for name, dist in trial.distributions.items():
            assert dist == expected[name]
    assert any("one_minus_beta" in t.params for t in halved.trials)


def test_successive_halving_prunes_at_the_rungs(halved: optuna.Study) -> None:
    pruned = halved.get_trials(states=(TrialState.PRUNED,))
    complete = halved.get_trials(states=(TrialState.COMPLETE,))
    assert len(pruned) > len(complete) > 0
    assert {len(t.intermediate_values) for t in pruned} <= {2, 6, 18}
    assert all(len(t.intermediate_values) == 40 for t in complete)


@pytest.mark.parametrize("name", ["ped_anova", "fanova", "mdi"])
def test_unpruned_study_ranks_the_planted_parameters_first(
    unpruned: optuna.Study, name: str
) -> None:
    """Without pruning every evaluator recovers the truth from the completed trials."""
    result = param_importances(unpruned, evaluator=evaluator(name), n_bootstrap=N_BOOTSTRAP[name])
    assert result.n_trials == 300
    assert_planted_first(result, PLANTED)


@pytest.mark.parametrize("name", ["ped_anova", "fanova", "mdi"])
def test_pruned_study_ranks_them_first_at_the_first_rung(halved: optuna.Study, name: str) -> None:
    """Under successive halving every trial reaches epoch 2; pruned ones are evidence."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # enough trials: no InsufficientTrialsWarning
        result = importances_at_epoch(
            halved, 2, evaluator=evaluator(name), n_bootstrap=N_BOOTSTRAP[name]
        )
    assert result.n_trials == 300
    assert_planted_first(result, PLANTED)
