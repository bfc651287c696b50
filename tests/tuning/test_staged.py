"""Coarse to fine: stage studies, shrinking in each dimension's own scale, enqueues."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState, create_trial
from sklearn.datasets import make_classification

from optuna_dl.tuning.objective import Objective
from optuna_dl.tuning.space import Dimension, SearchSpace
from optuna_dl.tuning.staged import (
    CoarseToFineResult,
    coarse_to_fine,
    shrink_space,
    top_trials,
)

# The optimum of the synthetic objective, in estimator terms.
OPTIMUM = {
    "learning_rate": 3e-3,
    "optimizer": "momentum",
    "n_layers": 2,
    "learning_rate_decay": 0.03,
    "beta": 0.98,
    "n_units": 64,
    "batch_size": 128,
}


def distance(params: dict) -> float:
    """Squared distance to OPTIMUM, each coordinate in its natural scale."""
    d = (math.log10(params["learning_rate"]) - math.log10(OPTIMUM["learning_rate"])) ** 2
    d += (math.log10(params["learning_rate_decay"]) - math.log10(0.03)) ** 2
    d += (params["n_layers"] - 2) ** 2 / 4
    d += (math.log2(params["n_units"]) - 6) ** 2 / 4
    d += (math.log2(params["batch_size"]) - 7) ** 2 / 4
    if params["optimizer"] == "momentum":
        d += (math.log10(1 - params["beta"]) - math.log10(1 - OPTIMUM["beta"])) ** 2
    else:
        d += 1.0
    return d


def factory(space: SearchSpace):
    def objective(trial: optuna.Trial) -> float:
        return -distance(space.suggest(trial))

    return objective


def sampled_bounds(dim: Dimension) -> tuple[float, float]:
    dist = dim.distribution()
    return dist.low, dist.high


def finished(space: SearchSpace, rows: list[tuple[dict, float]]) -> list:
    """Completed FrozenTrials with the given estimator params and values."""
    distributions = space.to_distributions()
    trials = []
    for params, value in rows:
        sampled = space.to_sampled_params(params)
        trials.append(
            create_trial(
                params=sampled,
                distributions={k: distributions[k] for k in sampled},
                value=value,
            )
        )
    return trials


# ---------------------------------------------------------------- studies
@pytest.mark.slow
def test_stage_studies_in_one_sqlite_file(tmp_path):
    path = tmp_path / "c2f.db"
    storage = f"sqlite:///{path}"
    budget = [12, 8, 6]
    result = coarse_to_fine(
        factory, SearchSpace.default(), n_trials=budget, storage=storage, study_name="lr", seed=0
    )
    assert isinstance(result, CoarseToFineResult)
    assert path.exists()
    names = sorted(optuna.get_all_study_names(storage))
    assert names == ["lr-stage1", "lr-stage2", "lr-stage3"]
    for k, (n, study) in enumerate(zip(budget, result.studies), start=1):
        stored = optuna.load_study(study_name=f"lr-stage{k}", storage=storage)
        assert len(stored.trials) == n
        assert stored.user_attrs["stage"] == k
        assert set(stored.user_attrs["search_space"]) == set(
            result.spaces[k - 1].to_distributions()
        )
        assert study.study_name == f"lr-stage{k}"
    assert result.n_trials == sum(budget)
    assert len(result.spaces) == len(result.studies) == 3


@pytest.mark.parametrize(
    "n_trials, stages, budget",
    [(10, None, [10, 10, 10]), (7, 2, [7, 7]), ([9, 5, 4, 3], None, [9, 5, 4, 3]), ([5], 1, [5])],
)
def test_total_trial_count_equals_the_budget(n_trials, stages, budget):
    result = coarse_to_fine(
        factory, SearchSpace.default(), n_trials=n_trials, stages=stages, seed=1, enqueue_best=2
    )
    assert [len(s.trials) for s in result.studies] == budget
    assert result.n_trials == sum(budget)
    assert all(t.state == TrialState.COMPLETE for s in result.studies for t in s.trials)
    assert not any(t.state == TrialState.WAITING for s in result.studies for t in s.trials)


# -------------------------------------------------------------- enqueueing
@pytest.mark.parametrize("enqueue_best", [1, 3])
def test_best_trials_open_the_next_stage(enqueue_best):
    result = coarse_to_fine(
        factory,
        SearchSpace.default(),
        n_trials=[20, 12, 12],
        seed=2,
        enqueue_best=enqueue_best,
    )
    for previous, study in zip(result.studies, result.studies[1:]):
        best = top_trials(previous.trials, enqueue_best, "maximize")
        opening = study.trials[:enqueue_best]
        assert len(best) == enqueue_best
        for old, new in zip(best, opening):
            assert new.params.keys() == old.params.keys()
            for name, value in old.params.items():
                expected = value if isinstance(value, str) else pytest.approx(value, rel=1e-12)
                assert new.params[name] == expected, name
            assert new.value == pytest.approx(old.value, rel=1e-9)
            assert new.system_attrs["fixed_params"]  # it was enqueued, not sampled
        assert "fixed_params" not in study.trials[enqueue_best].system_attrs
    # So every stage is at least as good as the one before.
    bests = [s.best_value for s in result.studies]
    assert bests == sorted(bests)
    assert result.best_value == max(bests)


def test_enqueued_values_lie_inside_the_new_bounds():
    result = coarse_to_fine(
        factory, SearchSpace.default(), n_trials=[16, 10], seed=3, enqueue_best=4, top_quantile=0.1
    )
    second = result.studies[1]
    for trial in second.trials:
        for name, value in trial.params.items():
            assert trial.distributions[name]._contains(
                trial.distributions[name].to_internal_repr(value)
            ), name
    # top_quantile=0.1 of 16 is 2 trials, but the 4 enqueued ones still fit
    assert len([t for t in second.trials if "fixed_params" in t.system_attrs]) == 4


def test_no_enqueue():
    result = coarse_to_fine(
        factory, SearchSpace.default(), n_trials=[8, 4], seed=4, enqueue_best=0
    )
    assert not any("fixed_params" in t.system_attrs for t in result.studies[1].trials)


# ------------------------------------------------------------- shrinking
def test_bounds_shrink_in_each_dimensions_own_scale():
    space = SearchSpace.default()
    rows = [
        (dict(OPTIMUM, learning_rate=1e-3, beta=0.99, batch_size=64, n_layers=2, n_units=64), 1.0),
        (
            dict(OPTIMUM, learning_rate=1e-2, beta=0.99, batch_size=128, n_layers=3, n_units=100),
            0.9,
        ),
        (dict(OPTIMUM, learning_rate=0.5, beta=0.9, batch_size=512, n_layers=1, n_units=16), 0.1),
        (dict(OPTIMUM, learning_rate=1e-4, optimizer="adam", batch_size=32, n_units=512), 0.0),
    ]
    shrunk = shrink_space(space, finished(space, rows), top_quantile=0.5, margin=0.25)

    # log: [1e-3, 1e-2] padded by 0.25 * 4 decades = 1 decade each side.
    lr = shrunk["learning_rate"]
    assert (lr.low, lr.high) == pytest.approx((1e-4, 1e-1), rel=1e-9)
    # reverse_log: 1 - beta = 0.01 for both; 0.25 * 2 decades = half a decade each side.
    beta = shrunk["beta"]
    assert (1 - beta.high, 1 - beta.low) == pytest.approx((10**-2.5, 10**-1.5), rel=1e-9)
    # power_of_two: exponents 6 and 7, padded by 0.25 * 4 = 1 exponent.
    assert (shrunk["batch_size"].low, shrunk["batch_size"].high) == (32, 256)
    assert sampled_bounds(shrunk["batch_size"]) == (5, 8)
    # linear int: 2 and 3, padded by 0.25 * 3 = 0.75 -> [1.25, 3.75] rounded outward.
    assert (shrunk["n_layers"].low, shrunk["n_layers"].high) == (1, 4)
    # log int: 64 and 100, padded by a factor (512 / 16) ** 0.25 = 2.38 -> [26.9, 237.8].
    assert (shrunk["n_units"].low, shrunk["n_units"].high) == (26, 238)
    # categorical: only the choices the top trials used.
    assert shrunk["optimizer"].choices == ("momentum",)
    # the entries keep their scale, kind and tier
    for old, new in zip(space.dimensions, shrunk.dimensions):
        assert (old.name, old.kind, old.scale, old.tier, old.enabled, old.when) == (
            new.name,
            new.kind,
            new.scale,
            new.tier,
            new.enabled,
            new.when,
        )


def test_a_linear_scale_shrinks_linearly():
    space = SearchSpace.default().override("learning_rate", scale="linear")
    rows = [(dict(OPTIMUM, learning_rate=0.2), 1.0), (dict(OPTIMUM, learning_rate=0.3), 0.5)]
    rows += [(dict(OPTIMUM, learning_rate=0.9), 0.0)] * 2
    shrunk = shrink_space(space, finished(space, rows), top_quantile=0.5, margin=0.1)
    lr = shrunk["learning_rate"]
    assert (lr.low, lr.high) == pytest.approx((0.2 - 0.09999, 0.3 + 0.09999), rel=1e-3)


def test_minimize_takes_the_lowest_values():
    space = SearchSpace.default()
    rows = [(dict(OPTIMUM, n_layers=n), float(n)) for n in (1, 2, 3, 4)]
    shrunk = shrink_space(
        space, finished(space, rows), direction="minimize", top_quantile=0.5, margin=0.0
    )
    assert (shrunk["n_layers"].low, shrunk["n_layers"].high) == (1, 2)
    maximize = shrink_space(space, finished(space, rows), top_quantile=0.5, margin=0.0)
    assert (maximize["n_layers"].low, maximize["n_layers"].high) == (3, 4)


def test_bounds_never_exceed_the_original_nor_collapse():
    space = SearchSpace.default()
    # A single top trial on the upper edge of every range, no margin.
    edge = dict(OPTIMUM, learning_rate=1.0, beta=0.999, batch_size=512, n_layers=4, n_units=512)
    rows = [(edge, 1.0)] + [(OPTIMUM, 0.0)] * 3
    shrunk = shrink_space(space, finished(space, rows), top_quantile=0.25, margin=0.0)
    assert (shrunk["n_layers"].low, shrunk["n_layers"].high) == (3, 4)
    assert (shrunk["batch_size"].low, shrunk["batch_size"].high) == (256, 512)
    assert (shrunk["n_units"].low, shrunk["n_units"].high) == (511, 512)
    lr = shrunk["learning_rate"]
    assert lr.low < 1.0 == lr.high
    beta = shrunk["beta"]
    assert 0.9 < beta.low < beta.high <= 0.999
    # With a margin the same trial pushes against the original bounds only.
    padded = shrink_space(space, finished(space, rows), top_quantile=0.25, margin=0.5)
    for old, new in zip(space.active, padded.active):
        if old.kind != "categorical":
            low, high = sampled_bounds(new)
            old_low, old_high = sampled_bounds(old)
            assert old_low <= low < high <= old_high, old.name


def test_a_single_lower_edge_value_keeps_a_valid_float_range():
    space = SearchSpace((Dimension("learning_rate", "float", 1e-4, 1.0, "log"),))
    rows = [({"learning_rate": 1e-4}, 1.0), ({"learning_rate": 0.5}, 0.0)]
    shrunk = shrink_space(space, finished(space, rows), top_quantile=0.5, margin=0.0)
    lr = shrunk["learning_rate"]
    assert lr.low == 1e-4 < lr.high < 2e-4


def test_conditional_and_inactive_entries_are_left_alone_when_unsampled():
    space = SearchSpace.default()
    adam = dict(OPTIMUM, optimizer="adam")
    del adam["beta"]
    rows = [(adam, 1.0), (adam, 0.9), (OPTIMUM, 0.0), (OPTIMUM, 0.0)]
    shrunk = shrink_space(space, finished(space, rows), top_quantile=0.5)
    assert shrunk["optimizer"].choices == ("adam",)
    assert shrunk["beta"] == space["beta"]  # no top trial used momentum
    assert shrunk["beta1"] == space["beta1"]  # off


def test_no_completed_trial_leaves_the_space():
    space = SearchSpace.default()
    pruned = [create_trial(state=TrialState.PRUNED, intermediate_values={1: 0.5})]
    assert shrink_space(space, pruned) is space
    assert shrink_space(space, []) is space


def test_stages_nest_and_stay_within_the_original():
    result = coarse_to_fine(factory, SearchSpace.default(), n_trials=[30, 20, 20], seed=5)
    original = result.spaces[0]
    for before, after in zip(result.spaces, result.spaces[1:]):
        for old, new, first in zip(before.active, after.active, original.active):
            if old.kind == "categorical":
                assert set(new.choices) <= set(old.choices)
                continue
            low, high = sampled_bounds(new)
            old_low, old_high = sampled_bounds(old)
            first_low, first_high = sampled_bounds(first)
            assert old_low <= low < high <= old_high, new.name
            assert first_low <= low < high <= first_high, new.name
            assert new.low < new.high
    # something really shrank
    lr = [s["learning_rate"] for s in result.spaces]
    assert math.log(lr[-1].high / lr[-1].low) < 0.5 * math.log(lr[0].high / lr[0].low)


# ------------------------------------------------------------ the optimum
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_final_stage_contains_the_optimum(seed):
    space = SearchSpace.default()
    result = coarse_to_fine(factory, space, n_trials=[60, 30, 30], seed=seed)
    final = result.spaces[-1]
    for name, value in OPTIMUM.items():
        dim = final[name]
        if dim.kind == "categorical":
            assert value in dim.choices, name
        else:
            assert dim.low <= value <= dim.high, (name, dim.low, dim.high)
    width = {
        name: np.diff(np.log([final[name].low, final[name].high]))[0]
        / np.diff(np.log([space[name].low, space[name].high]))[0]
        for name in ("learning_rate", "learning_rate_decay")
    }
    assert all(w < 0.7 for w in width.values()), width
    assert result.best_params["optimizer"] == "momentum"
    assert result.best_value > -1.0
    assert result.best_value == max(s.best_value for s in result.studies)
    assert -distance(result.best_params) == pytest.approx(result.best_value)


def test_tpe_stages_and_minimize():
    def minimize_factory(space):
        return lambda trial: distance(space.suggest(trial))

    result = coarse_to_fine(
        minimize_factory,
        SearchSpace.default(),
        n_trials=[20, 15],
        direction="minimize",
        sampler_factory=optuna.samplers.TPESampler,
        seed=0,
    )
    assert all(s.direction == optuna.study.StudyDirection.MINIMIZE for s in result.studies)
    assert isinstance(result.studies[0].sampler, optuna.samplers.TPESampler)
    assert result.best_value == min(s.best_value for s in result.studies)
    assert result.best_value == pytest.approx(distance(result.best_params))


def test_same_seed_same_result():
    first = coarse_to_fine(factory, SearchSpace.default(), n_trials=[10, 6], seed=7)
    second = coarse_to_fine(factory, SearchSpace.default(), n_trials=[10, 6], seed=7)
    assert first.spaces == second.spaces
    assert first.best_params == second.best_params


def test_resume_runs_only_the_missing_trials():
    storage = optuna.storages.InMemoryStorage()
    kwargs = dict(storage=storage, study_name="resume", seed=8)
    coarse_to_fine(factory, SearchSpace.default(), n_trials=[10, 6], **kwargs)
    with pytest.raises(optuna.exceptions.DuplicatedStudyError):
        coarse_to_fine(factory, SearchSpace.default(), n_trials=[10, 6], **kwargs)
    again = coarse_to_fine(
        factory, SearchSpace.default(), n_trials=[10, 6], load_if_exists=True, **kwargs
    )
    assert [len(s.trials) for s in again.studies] == [10, 6]
    more = coarse_to_fine(
        factory, SearchSpace.default(), n_trials=[10, 9], load_if_exists=True, **kwargs
    )
    assert [len(s.trials) for s in more.studies] == [10, 9]
    assert sum("fixed_params" in t.system_attrs for t in more.studies[1].trials) == 1
    # the resumed stage's sampler does not replay the draws it made before
    params = [tuple(sorted(t.params.items())) for t in more.studies[1].trials]
    assert len(set(params)) == len(params)


def test_a_stage_without_completed_trials_keeps_its_space():
    original = SearchSpace.default()
    stages = []

    def pruning_first(space):
        stages.append(space)
        if len(stages) == 1:

            def prune(trial):
                space.suggest(trial)
                raise optuna.TrialPruned("stage 1 never completes")

            return prune
        return factory(space)

    with pytest.warns(UserWarning, match="no trial of stage 1 completed"):
        result = coarse_to_fine(pruning_first, original, n_trials=[4, 4], seed=0)
    assert result.spaces[1] == original and stages[1] == original
    assert all(t.state == TrialState.PRUNED for t in result.studies[0].trials)
    assert result.best_stage == 2
    assert len(result.studies[1].trials) == 4  # nothing to enqueue, all sampled


def test_nothing_completed_at_all():
    def always_pruned(space):
        def prune(trial):
            raise optuna.TrialPruned()

        return prune

    with pytest.warns(UserWarning), pytest.raises(RuntimeError, match="no trial completed"):
        coarse_to_fine(always_pruned, SearchSpace.default(), n_trials=[2, 2])


def test_best_params_keep_parameters_suggested_outside_the_space():
    def with_extra(space):
        def objective(trial):
            params = space.suggest(trial)
            l2 = trial.suggest_float("l2", 0.0, 1.0)
            return -distance(params) - l2

        return objective

    result = coarse_to_fine(with_extra, SearchSpace.default(), n_trials=[6, 4], seed=0)
    assert 0.0 <= result.best_params["l2"] <= 1.0
    assert "batch_size" in result.best_params and "log2_batch_size" not in result.best_params


# ----------------------------------------------------- an Objective as such
def test_with_an_objective_instance():
    X, y = make_classification(n_samples=120, n_features=6, n_informative=4, random_state=0)
    space = SearchSpace(
        (
            Dimension("learning_rate", "float", 1e-3, 1e-1, "log", tier=1),
            Dimension("n_units", "int", 4, 16, "log", tier=3),
        )
    )
    objective = Objective(X, y, space=space, cv=2, max_epochs=2)
    result = coarse_to_fine(objective, n_trials=[4, 3], seed=0)
    assert result.spaces[0] is space
    assert objective.space is space  # the given objective is not modified
    assert result.n_trials == 7
    for study, stage_space in zip(result.studies, result.spaces):
        for trial in study.trials:
            assert trial.state == TrialState.COMPLETE
            assert "learning_curve" in trial.user_attrs
            lr = trial.user_attrs["estimator_params"]["learning_rate"]
            assert stage_space["learning_rate"].low <= lr <= stage_space["learning_rate"].high
    assert 0 < result.best_value <= 1
    assert set(result.best_params) == {"learning_rate", "n_units"}


# -------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"top_quantile": 0.0}, "top_quantile"),
        ({"top_quantile": 1.5}, "top_quantile"),
        ({"margin": -0.1}, "margin"),
        ({"margin": math.nan}, "margin"),
        ({"n_trials": 0}, "n_trials"),
        ({"n_trials": [5, 0]}, "n_trials"),
        ({"n_trials": []}, "n_trials"),
        ({"n_trials": [5, 5], "stages": 3}, "stages=3"),
        ({"stages": 0}, "stages"),
        ({"enqueue_best": -1}, "enqueue_best"),
        ({"direction": "up"}, "direction"),
    ],
)
def test_bad_settings_raise_before_any_trial(kwargs, match):
    calls = []

    def counting_factory(space):
        calls.append(space)
        return factory(space)

    with pytest.raises(ValueError, match=match):
        coarse_to_fine(counting_factory, SearchSpace.default(), **kwargs)
    assert not calls


def test_a_factory_needs_a_space():
    with pytest.raises(ValueError, match="space="):
        coarse_to_fine(factory, n_trials=2)
    with pytest.raises(TypeError, match="factory returned"):
        coarse_to_fine(lambda space: 0.5, SearchSpace.default(), n_trials=2)
