"""Importances with bootstrap intervals: known ground truth on constructed studies."""

from __future__ import annotations

import datetime
import math
import warnings

import numpy as np
import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from optuna_dl.analysis import (
    InsufficientTrialsWarning,
    duration_importances,
    importances_at_epoch,
    min_trials,
    param_importances,
    ranking_by_epoch,
)
from optuna_dl.analysis.importance import _default_epochs, score_at_epoch

XYZ = {name: FloatDistribution(0.0, 1.0) for name in ("x", "y", "z")}


def _dominated_study(make_study, n: int = 80, direction: str = "minimize") -> optuna.Study:
    """x decides the value; y and z barely matter."""
    rng = np.random.default_rng(1)
    trials = []
    for _ in range(n):
        p = {k: float(v) for k, v in zip("xyz", rng.uniform(size=3))}
        value = 10 * p["x"] ** 2 + 0.01 * p["y"] + 0.01 * p["z"]
        trials.append(create_trial(params=p, distributions=XYZ, value=value))
    return make_study(trials, direction=direction)


@pytest.mark.parametrize(
    ("evaluator", "n_bootstrap"),
    [("ped_anova", 50), ("mdi", 10), pytest.param("fanova", 5, marks=pytest.mark.slow)],
)
def test_dominant_parameter_ranks_first_with_a_separated_interval(
    make_study, evaluator, n_bootstrap
):
    study = _dominated_study(make_study)
    result = param_importances(study, evaluator=evaluator, n_bootstrap=n_bootstrap)
    assert result.names[0] == "x"
    first, others = result.params[0], result.params[1:]
    assert first.rank == 1.0
    assert (first.rank_low, first.rank_high) == (1.0, 1.0)
    assert first.low > max(p.high for p in others)
    assert result.bootstrap.shape == (n_bootstrap, 3)
    assert math.isclose(sum(p.importance for p in result.params), 1.0)
    assert result.warning is None


@pytest.mark.parametrize("evaluator", ["ped_anova", "mdi", "fanova"])
def test_point_estimate_equals_optunas_on_the_real_study(tuned_study, evaluator):
    from optuna.importance import (
        FanovaImportanceEvaluator,
        MeanDecreaseImpurityImportanceEvaluator,
        PedAnovaImportanceEvaluator,
    )

    reference = {
        "ped_anova": PedAnovaImportanceEvaluator(),
        "mdi": MeanDecreaseImpurityImportanceEvaluator(seed=0),
        "fanova": FanovaImportanceEvaluator(seed=0),
    }[evaluator]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = optuna.importance.get_param_importances(tuned_study, evaluator=reference)
    result = param_importances(tuned_study, evaluator=evaluator, n_bootstrap=0)
    assert {p.name: p.importance for p in result.params} == pytest.approx(expected, abs=1e-12)
    assert result.n_bootstrap == 0 and math.isnan(result.params[0].low)
    assert not any("outside its bootstrap interval" in note for note in result.notes)


def test_conditional_parameter_is_assessed_by_ped_anova_only(tuned_study):
    ped = param_importances(tuned_study, n_bootstrap=5)
    mdi = param_importances(tuned_study, evaluator="mdi", n_bootstrap=2)
    assert "one_minus_beta" in ped.names
    assert "one_minus_beta" not in mdi.names
    assert any("one_minus_beta" in note for note in mdi.notes)
    assert ped.names[0] == "learning_rate"


def test_bootstrap_is_reproducible(tuned_study):
    a = param_importances(tuned_study, n_bootstrap=10, random_state=3)
    b = param_importances(tuned_study, n_bootstrap=10, random_state=3)
    np.testing.assert_array_equal(a.bootstrap, b.bootstrap)
    assert a.params == b.params


def test_ranks_interval_comes_from_the_resampled_ranks(tuned_study):
    result = param_importances(tuned_study, n_bootstrap=20)
    ranks = result.bootstrap_ranks
    assert ranks.shape == (20, len(result.params))
    for j, p in enumerate(result.params):
        assert ranks[:, j].min() <= p.rank_low <= p.rank_high <= ranks[:, j].max()
        assert p.rank_low in ranks[:, j] and p.rank_high in ranks[:, j]


def test_too_few_trials_warns_and_says_so(make_study):
    study = _dominated_study(make_study, n=8)
    with pytest.warns(InsufficientTrialsWarning, match="8 usable trial"):
        result = param_importances(study, n_bootstrap=5)
    assert "needs at least 10" in result.warning
    assert result.names  # still computed


def test_threshold_is_documented_value(make_study):
    assert min_trials(3) == 10 and min_trials(7) == 14
    study = _dominated_study(make_study, n=10)
    with warnings.catch_warnings():
        warnings.simplefilter("error", InsufficientTrialsWarning)
        assert param_importances(study, n_bootstrap=2).warning is None


@pytest.mark.parametrize("n", [0, 1])
def test_empty_and_single_trial_studies_give_nan_not_errors(make_study, n):
    study = _dominated_study(make_study, n=n)
    with pytest.warns(InsufficientTrialsWarning):
        result = param_importances(study)
    assert result.n_trials == n and result.n_bootstrap == 0
    assert all(math.isnan(p.importance) and math.isnan(p.rank) for p in result.params)


def test_duration_importance_finds_what_costs_time(make_study, helpers):
    rng = np.random.default_rng(2)
    trials = []
    start = datetime.datetime(2026, 1, 1)
    for i in range(60):
        p = {k: float(v) for k, v in zip("xyz", rng.uniform(size=3))}
        seconds = 1 + 100 * p["z"]  # z (think: n_units) drives the time
        trial = create_trial(params=p, distributions=XYZ, value=p["x"])
        trials.append(helpers.with_times(trial, start + datetime.timedelta(minutes=i), seconds))
    study = make_study(trials)
    result = duration_importances(study, n_bootstrap=30)
    assert result.target == "duration"
    assert result.names[0] == "z"
    assert result.params[0].low > max(p.high for p in result.params[1:])
    assert param_importances(study, n_bootstrap=0).names[0] == "x"


def _epoch_study(make_study) -> optuna.Study:
    """Early on ``a`` decides the score; by epoch 5 only ``b`` does. Half the trials
    are pruned after epoch 1."""
    rng = np.random.default_rng(4)
    dists = {"a": FloatDistribution(0, 1), "b": FloatDistribution(0, 1)}
    trials = []
    for i in range(80):
        p = {"a": float(rng.uniform()), "b": float(rng.uniform())}
        early = 1 - p["a"] + 0.001 * p["b"]
        late = 1 - p["b"] + 0.001 * p["a"]
        curve = {1: early, 2: early, 3: late, 4: late, 5: late}
        if i % 2:
            trials.append(
                create_trial(
                    state=TrialState.PRUNED,
                    params=p,
                    distributions=dists,
                    intermediate_values={1: early},
                )
            )
        else:
            trials.append(
                create_trial(params=p, distributions=dists, value=late, intermediate_values=curve)
            )
    return make_study(trials)


def test_importance_at_epoch_includes_pruned_trials_and_moves_with_the_epoch(make_study):
    study = _epoch_study(make_study)
    early = importances_at_epoch(study, 1, n_bootstrap=20)
    late = importances_at_epoch(study, 5, n_bootstrap=20)
    assert early.n_trials == 80  # pruned trials count at epoch 1
    assert late.n_trials == 40
    assert early.names[0] == "a" and late.names[0] == "b"
    assert early.target == "objective at epoch 1"


def test_a_trial_that_stopped_early_counts_at_later_epochs_with_its_final_value(make_study):
    """Early stopping ended half the completed trials at epoch 3: at epoch 5 they count
    with their final value (their result no longer changes); pruned trials do not."""
    rng = np.random.default_rng(5)
    dists = {"a": FloatDistribution(0, 1), "b": FloatDistribution(0, 1)}
    trials = []
    for i in range(60):
        p = {"a": float(rng.uniform()), "b": float(rng.uniform())}
        final = 1 - p["b"] + 0.001 * p["a"]
        last = 3 if i % 3 == 0 else 5
        curve = {e: final for e in range(1, last + 1)}
        if i % 3 == 1:
            trials.append(
                create_trial(
                    state=TrialState.PRUNED,
                    params=p,
                    distributions=dists,
                    intermediate_values={1: final},
                )
            )
        else:
            trials.append(
                create_trial(params=p, distributions=dists, value=final, intermediate_values=curve)
            )
    study = make_study(trials)
    at_five = importances_at_epoch(study, 5, n_bootstrap=10)
    assert at_five.n_trials == 40  # 20 that ran to epoch 5, 20 that stopped at 3
    assert at_five.names[0] == "b"
    assert importances_at_epoch(study, 1, n_bootstrap=10).n_trials == 60
    stopped = next(
        t
        for t in study.trials
        if t.state == TrialState.COMPLETE and 5 not in t.intermediate_values
    )
    assert score_at_epoch(stopped, 5) == stopped.value
    pruned = next(t for t in study.trials if t.state == TrialState.PRUNED)
    assert score_at_epoch(pruned, 5) is None


def test_ranking_by_epoch_table(make_study):
    study = _epoch_study(make_study)
    table = ranking_by_epoch(study, [1, 5], n_bootstrap=10)
    assert table.epochs == (1, 5)
    assert table.n_trials == (80, 40)
    assert table.n_pruned == (40, 0)
    a, b = table.params.index("a"), table.params.index("b")
    assert table.rank[0, a] == 1 and table.rank[0, b] == 2
    assert table.rank[1, b] == 1 and table.rank[1, a] == 2
    assert table.rank.shape == table.rank_low.shape == table.importance.shape == (2, 2)
    assert table.params[0] == "b"  # ordered by the last epoch


def test_ranking_by_epoch_default_epochs_and_unreached_epoch(make_study):
    study = _epoch_study(make_study)
    table = ranking_by_epoch(study, n_bootstrap=2)
    assert table.epochs == (1, 2, 4, 5)
    with pytest.warns(InsufficientTrialsWarning):
        missing = ranking_by_epoch(study, [99], n_bootstrap=2)
    assert missing.n_trials == (0,) and np.all(np.isnan(missing.rank))
    assert _default_epochs([0, 1, 2, 3]) == [0, 1, 2, 3]
    assert _default_epochs(list(range(1, 51))) == [1, 2, 4, 8, 16, 32, 50]
    assert _default_epochs([]) == []


def test_a_parameter_resumed_with_another_range_is_kept(make_study):
    rng = np.random.default_rng(5)
    trials = []
    for i in range(40):
        high = 1.0 if i < 20 else 0.5  # the study was resumed with a narrower range
        dists = {"x": FloatDistribution(0, high), "y": FloatDistribution(0, 1)}
        p = {"x": float(rng.uniform(0, high)), "y": float(rng.uniform())}
        trials.append(create_trial(params=p, distributions=dists, value=p["x"]))
    study = make_study(trials, direction="minimize")
    result = param_importances(study, evaluator="mdi", n_bootstrap=3)
    assert result.names[0] == "x"
    assert any("2 ranges merged" in note for note in result.notes)


def test_bad_arguments_are_named(tuned_study):
    with pytest.raises(ValueError, match="evaluator must be one of"):
        param_importances(tuned_study, evaluator="shap")
    with pytest.raises(ValueError, match="target must be"):
        param_importances(tuned_study, target="accuracy")
    with pytest.raises(ValueError, match="direction must be"):
        param_importances(tuned_study, direction="up")
    with pytest.raises(ValueError, match="confidence must be in"):
        param_importances(tuned_study, confidence=95)
    with pytest.raises(ValueError, match="n_bootstrap must be"):
        param_importances(tuned_study, n_bootstrap=-1)


def test_callable_target_and_maximize_direction(make_study):
    study = _dominated_study(make_study)
    result = param_importances(
        study, target=lambda t: -t.params["y"], direction="maximize", n_bootstrap=0
    )
    assert result.names[0] == "y"
