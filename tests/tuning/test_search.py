"""DeepNetSearchCV: scikit-learn compatibility, results layout, studies, processes."""

from __future__ import annotations

import os
import pickle

import numpy as np
import optuna
import pytest
from sklearn.base import clone
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from optuna_dl import DeepNetClassifier, DeepNetSearchCV
from optuna_dl.tuning import Dimension, SearchSpace

# Only the learning rate, in a range where a small network learns in a few epochs.
FAST_SPACE = SearchSpace.default(max_tier=1).override("learning_rate", low=0.01, high=0.1)


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def make_search(**params) -> DeepNetSearchCV:
    settings = dict(
        estimator=DeepNetClassifier(n_units=16, n_layers=1),
        space=FAST_SPACE,
        n_trials=3,
        max_epochs=5,
        cv=2,
        random_state=0,
    )
    settings.update(params)
    return DeepNetSearchCV(**settings)


# The Pipeline configuration covers the path where the steps, not the search, validate
# X. One check is expected to fail, as for the estimator itself
# (tests/test_estimator_checks.py): repeated rows also land in other folds and other
# mini-batches than weighted ones. Tests below check that the search slices the
# weights to each fold and uses them all in the refit.
@pytest.mark.slow
@parametrize_with_checks(
    [
        make_search(n_trials=2, max_epochs=10),
        make_search(
            estimator=make_pipeline(StandardScaler(), DeepNetClassifier(n_units=16)),
            n_trials=2,
            max_epochs=10,
        ),
    ],
    expected_failed_checks=lambda estimator: {
        "check_sample_weight_equivalence_on_dense_data": (
            "repeated rows fall into other folds and mini-batches than weighted ones"
        )
    },
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_results_agree_with_study(iris):
    X, y = iris
    search = make_search(n_trials=4, cv=3).fit(X, y)
    results, study = search.cv_results_, search.study_

    assert search.n_trials_ == len(study.trials) == 4
    assert search.n_splits_ == 3
    assert search.best_trial_.number == study.best_trial.number
    assert search.best_score_ == pytest.approx(study.best_value)
    assert results["mean_test_score"][search.best_index_] == search.best_score_
    assert results["rank_test_score"][search.best_index_] == 1
    assert results["rank_test_score"].min() == 1
    order = np.argsort(results["rank_test_score"], kind="stable")
    assert np.all(np.diff(results["mean_test_score"][order]) <= 0)
    assert search.best_params_ == study.best_trial.user_attrs["estimator_params"]
    assert search.best_params_ == results["params"][search.best_index_]
    assert set(search.best_params_) == {"learning_rate"}

    for key in ("mean_test_score", "std_test_score", "rank_test_score", "mean_fit_time"):
        assert results[key].shape == (4,)
    assert isinstance(results["param_learning_rate"], np.ma.MaskedArray)
    assert results["param_learning_rate"].dtype.kind == "f"
    splits = np.column_stack([results[f"split{k}_test_score"] for k in range(3)])
    np.testing.assert_allclose(splits.mean(axis=1), results["mean_test_score"])
    np.testing.assert_allclose(splits.std(axis=1), results["std_test_score"])
    for i, trial in enumerate(study.trials):
        assert results["state"][i] == trial.state.name == "COMPLETE"
        assert results["n_epochs"][i] == trial.user_attrs["epochs"]
        assert results["mean_test_score"][i] == pytest.approx(trial.value)
        assert results["param_learning_rate"][i] == pytest.approx(
            trial.user_attrs["estimator_params"]["learning_rate"]
        )
    assert np.all(results["mean_fit_time"] > 0)
    np.testing.assert_array_equal(search.classes_, [0, 1, 2])
    assert search.n_features_in_ == 4


def test_conditional_parameters_are_masked(iris):
    X, y = iris
    space = SearchSpace(
        (
            Dimension("learning_rate", "float", 0.01, 0.1, "log"),
            Dimension("optimizer", "categorical", choices=("adam", "momentum")),
            Dimension(
                "beta", "float", 0.8, 0.99, "reverse_log", when=("optimizer", ("momentum",))
            ),
        )
    )
    search = make_search(
        space=space, n_trials=6, sampler=optuna.samplers.RandomSampler(seed=1)
    ).fit(X, y)
    results = search.cv_results_
    optimizers = [p["optimizer"] for p in results["params"]]
    assert set(optimizers) == {"adam", "momentum"}
    np.testing.assert_array_equal(
        results["param_beta"].mask, [o != "momentum" for o in optimizers]
    )
    # in the estimator's terms, not the sampled one_minus_beta
    assert all(0.8 <= p["beta"] <= 0.99 for p in results["params"] if "beta" in p)
    assert not any(key.startswith("param_one_minus") for key in results)


def test_refit_trains_for_the_best_epoch(iris):
    X, y = iris
    search = make_search(max_epochs=8, patience=2).fit(X, y)
    best_epoch = search.best_trial_.user_attrs["best_epoch"]
    model = search.best_estimator_
    assert 1 <= best_epoch <= 8
    assert model.max_epochs == best_epoch
    assert 1 <= model.n_iter_ <= best_epoch
    assert model.learning_rate == search.best_params_["learning_rate"]
    assert model.random_state == 0  # the search's seed, as in the trials
    assert search.refit_time_ > 0
    np.testing.assert_array_equal(search.predict(X), model.predict(X))
    np.testing.assert_allclose(search.predict_proba(X), model.predict_proba(X))
    np.testing.assert_allclose(search.predict_log_proba(X), model.predict_log_proba(X))


def test_pipeline_names_get_the_step_prefix():
    X, y = load_iris(return_X_y=True)
    pipeline = make_pipeline(StandardScaler(), DeepNetClassifier(n_units=16, n_layers=1))
    search = make_search(estimator=pipeline).fit(X, y)
    assert set(search.best_params_) == {"deepnetclassifier__learning_rate"}
    assert "param_deepnetclassifier__learning_rate" in search.cv_results_
    assert all(set(p) == set(search.best_params_) for p in search.cv_results_["params"])
    best = search.best_estimator_
    assert best.get_params()["deepnetclassifier__learning_rate"] == pytest.approx(
        search.best_params_["deepnetclassifier__learning_rate"]
    )
    assert best[-1].max_epochs == search.best_trial_.user_attrs["best_epoch"]
    assert search.score(X, y) > 0.5
    assert pipeline.get_params()["deepnetclassifier__max_epochs"] == 100  # template untouched


def test_every_fit_starts_a_fresh_study(iris, tmp_path):
    X, y = iris
    search = make_search(n_trials=2)
    first = search.fit(X, y).study_.study_name
    second = search.fit(X, y).study_.study_name
    assert first != second
    assert search.n_trials_ == 2

    # a storage without a study name: a new, uniquely named study per fit
    storage = f"sqlite:///{tmp_path}/fresh.db"
    search = make_search(n_trials=2, storage=storage)
    names = {search.fit(X, y).study_.study_name for _ in range(2)}
    assert len(names) == 2
    assert search.n_trials_ == 2
    assert {s.study_name for s in optuna.get_all_study_summaries(storage)} == names


def test_storage_and_study_name_resume(iris, tmp_path):
    X, y = iris
    storage = f"sqlite:///{tmp_path}/s.db"
    search = make_search(n_trials=2, storage=storage, study_name="deepnet")
    search.fit(X, y)
    assert search.n_trials_ == 2
    search.fit(X, y)
    assert search.n_trials_ == 4
    assert search.study_.study_name == "deepnet"
    assert len(optuna.load_study(study_name="deepnet", storage=storage).trials) == 4
    assert search.cv_results_["mean_test_score"].shape == (4,)


def test_resumed_unfinished_trials_score_nan_and_rank_last(iris):
    X, y = iris
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage, study_name="old", direction="maximize")
    study.add_trial(
        optuna.trial.create_trial(
            state=optuna.trial.TrialState.PRUNED,
            params={"learning_rate": 0.05},
            distributions=FAST_SPACE.to_distributions(),
            intermediate_values={1: 0.2},
        )
    )
    search = make_search(n_trials=2, storage=storage, study_name="old").fit(X, y)
    results = search.cv_results_
    assert list(results["state"]) == ["PRUNED", "COMPLETE", "COMPLETE"]
    assert np.isnan(results["mean_test_score"][0])
    assert np.isnan(results["split0_test_score"][0])
    assert results["rank_test_score"][0] == 3
    assert results["params"][0] == {"learning_rate": 0.05}
    assert search.best_index_ in (1, 2)


def test_no_completed_trial_is_an_error(iris):
    X, y = iris
    search = make_search(n_trials=2).fit(X, y)
    search.set_params(pruner=optuna.pruners.ThresholdPruner(lower=1.5))  # prunes all
    with pytest.raises(ValueError, match="no trial completed"):
        search.fit(X, y)
    assert list(search.cv_results_["state"]) == ["PRUNED", "PRUNED"]
    # nothing from the earlier, successful fit is left to be mistaken for this one's
    assert not hasattr(search, "best_params_")
    assert not hasattr(search, "best_estimator_")


def test_given_sampler_and_pruner_are_copied_per_fit(iris):
    X, y = iris
    sampler = optuna.samplers.RandomSampler(seed=3)
    pruner = optuna.pruners.MedianPruner()
    search = make_search(sampler=sampler, pruner=pruner)
    first = search.fit(X, y).cv_results_["params"]
    assert search.study_.sampler is not sampler
    assert search.study_.pruner is not pruner
    second = search.fit(X, y).cv_results_["params"]
    assert first == second
    assert clone(search).fit(X, y).cv_results_["params"] == first


def test_parallel_trials_run_in_several_processes(iris):
    X, y = iris
    search = make_search(n_trials=5, n_jobs=2).fit(X, y)
    assert search.n_trials_ == 5
    pids = [t.user_attrs["pid"] for t in search.study_.trials]
    assert len(set(pids)) == 2
    assert os.getpid() not in pids
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in search.study_.trials)
    # the temporary journal was copied into memory before its folder went away
    assert isinstance(search.study_._storage, optuna.storages.InMemoryStorage)
    assert search.predict(X).shape == y.shape
    assert pickle.loads(pickle.dumps(search)).n_trials_ == 5


def test_parallel_worker_errors_reach_the_caller(iris):
    X, y = iris
    X = X.copy()
    X[0, 0] = np.nan  # StandardScaler lets NaN through, the network refuses it
    search = make_search(
        estimator=make_pipeline(StandardScaler(), DeepNetClassifier(n_units=16)),
        n_trials=2,
        n_jobs=2,
    )
    with pytest.raises(ValueError, match="NaN"):
        search.fit(X, y)


def test_cross_validate_fits_independent_searches(iris):
    X, y = iris
    result = cross_validate(make_search(n_trials=2), X, y, cv=2, return_estimator=True)
    assert result["test_score"].shape == (2,)
    assert np.all((result["test_score"] >= 0) & (result["test_score"] <= 1))
    names = {est.study_.study_name for est in result["estimator"]}
    assert len(names) == 2
    assert all(est.n_trials_ == 2 for est in result["estimator"])


def test_score_uses_scoring(iris):
    X, y = iris
    search = make_search(n_trials=2, scoring="balanced_accuracy").fit(X, y)
    assert search.score(X, y) == pytest.approx(balanced_accuracy_score(y, search.predict(X)))


def test_refit_false_keeps_results_but_cannot_predict(iris):
    X, y = iris
    search = make_search(n_trials=2, refit=False).fit(X, y)
    assert search.best_params_
    assert not hasattr(search, "best_estimator_")
    assert not hasattr(search, "predict")
    with pytest.raises(AttributeError, match="refit=False"):
        search.predict_proba(X)
    np.testing.assert_array_equal(search.classes_, [0, 1, 2])


def test_small_classes_reduce_the_folds(iris):
    X, y = iris
    rows = np.r_[0:20, 50:70, 100:102]  # the last class has 2 samples
    with pytest.warns(UserWarning, match="using 2 stratified folds"):
        search = make_search(n_trials=2, cv=3).fit(X[rows], y[rows])
    assert search.n_splits_ == 2
    rows = np.r_[0:10, 50:60, 100:101]  # a class with a single sample
    with pytest.warns(UserWarning, match="unstratified"):
        search = make_search(n_trials=2, cv=3).fit(X[rows], y[rows])
    assert search.n_splits_ == 3
    np.testing.assert_array_equal(search.classes_, [0, 1, 2])


def test_dataframe_feature_names(iris):
    pd = pytest.importorskip("pandas")
    X, y = iris
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    search = make_search(n_trials=2).fit(frame, y)
    np.testing.assert_array_equal(search.feature_names_in_, ["a", "b", "c", "d"])
    assert search.predict(frame).shape == y.shape


def test_clone_and_pickle(iris):
    X, y = iris
    search = make_search(n_trials=2)
    copy = clone(search)
    assert copy.get_params()["n_trials"] == 2
    assert copy.space == FAST_SPACE
    search.fit(X, y)
    restored = pickle.loads(pickle.dumps(search))
    np.testing.assert_array_equal(restored.predict(X), search.predict(X))
    assert restored.best_params_ == search.best_params_
    assert len(restored.study_.trials) == 2
    assert not hasattr(clone(search), "study_")


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"n_trials": 0}, "n_trials"),
        ({"n_trials": None}, "n_trials"),
        ({"n_trials": 2.5}, "n_trials"),
        ({"timeout": -1}, "timeout"),
        ({"cv": 1}, "cv"),
        ({"cv": "five"}, "cv"),
        ({"scoring": "no_such_score"}, "scoring"),
        ({"estimator": LogisticRegression()}, "estimator"),
        ({"estimator": make_pipeline(StandardScaler())}, "estimator"),
        ({"space": {"learning_rate": (0.1, 1)}}, "space"),
        ({"max_epochs": 0}, "max_epochs"),
        ({"patience": 0}, "patience"),
        ({"n_jobs": 0}, "n_jobs"),
        ({"refit": "yes"}, "refit"),
        ({"sampler": "tpe"}, "sampler"),
        ({"pruner": "median"}, "pruner"),
        ({"storage": 3}, "storage"),
        ({"n_jobs": 2, "storage": optuna.storages.InMemoryStorage()}, "storage"),
        ({"random_state": -1}, "random_state"),
        ({"scoring": {}}, "scoring"),
        ({"scoring": {"acc": "no_such_score"}}, "scoring"),
        ({"scoring": {"acc": 3}}, "scoring"),
        ({"scoring": {1: "accuracy"}}, "scoring"),
        ({"scoring": {"acc": "accuracy", "f1": "f1_macro"}}, "refit"),  # refit=True
        ({"scoring": {"acc": "accuracy"}, "refit": "f1"}, "refit"),
        ({"scoring": "accuracy", "refit": "accuracy"}, "refit"),
    ],
)
def test_invalid_parameters_are_named(iris, params, name):
    X, y = iris
    search = make_search(**params)  # __init__ only stores
    with pytest.raises(ValueError, match=rf"parameter '{name}' must be .*; got "):
        search.fit(X, y)
    assert not hasattr(search, "study_")


# ------------------------------------------------------------- several metrics
def test_several_metrics_get_their_own_columns_and_refit_picks_the_optimized_one(iris):
    X, y = iris
    scoring = {"acc": "accuracy", "f1": "f1_macro", "bal": "balanced_accuracy"}
    search = make_search(scoring=scoring, refit="f1", n_trials=4).fit(X, y)
    results = search.cv_results_
    assert search.multimetric_ and set(search.scorer_) == set(scoring)
    for name in scoring:
        for column in ("mean_test_", "std_test_", "rank_test_", "split0_test_", "split1_test_"):
            assert f"{column}{name}" in results
    assert "mean_test_score" not in results
    complete = results["state"] == "COMPLETE"
    # The study optimizes f1: the trials' values are its mean fold scores.
    values = np.array([t.value if t.value is not None else np.nan for t in search.study_.trials])
    np.testing.assert_allclose(results["mean_test_f1"][complete], values[complete])
    assert search.best_score_ == pytest.approx(np.nanmax(results["mean_test_f1"]))
    assert results["rank_test_f1"][search.best_index_] == 1
    for name in ("acc", "bal"):
        row = [results[f"split{k}_test_{name}"][search.best_index_] for k in range(2)]
        assert results[f"mean_test_{name}"][search.best_index_] == pytest.approx(np.mean(row))
    # score() uses the refit metric.
    assert search.score(X, y) == pytest.approx(search.scorer_["f1"](search.best_estimator_, X, y))


def test_the_recorded_metrics_match_a_hand_trained_fold(iris):
    """Train each fold's network by hand for the best epoch's number of epochs and
    score it: the recorded accuracy and macro-F1 are exactly those."""
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.model_selection import StratifiedKFold

    X, y = iris
    cv = list(StratifiedKFold(2, shuffle=True, random_state=1).split(X, y))
    search = make_search(
        scoring={"f1": "f1_macro", "acc": "accuracy"}, refit="f1", n_trials=1, cv=cv
    ).fit(X, y)
    trial = search.best_trial_
    params = trial.user_attrs["estimator_params"]
    for k, (train, val) in enumerate(cv):
        model = clone(search.estimator).set_params(**params, max_epochs=5, random_state=0)
        for _ in range(trial.user_attrs["best_epoch"]):
            model.partial_fit(X[train], y[train], classes=np.unique(y))
        predicted = model.predict(X[val])
        assert search.cv_results_[f"split{k}_test_acc"][0] == accuracy_score(y[val], predicted)
        assert search.cv_results_[f"split{k}_test_f1"][0] == pytest.approx(
            f1_score(y[val], predicted, average="macro"), abs=1e-12
        )


def test_refit_false_with_several_metrics_optimizes_the_first(iris):
    X, y = iris
    search = make_search(scoring={"bal": "balanced_accuracy", "acc": "accuracy"}, refit=False)
    search.fit(X, y)
    complete = search.cv_results_["state"] == "COMPLETE"
    values = np.array([t.value if t.value is not None else np.nan for t in search.study_.trials])
    np.testing.assert_allclose(search.cv_results_["mean_test_bal"][complete], values[complete])
    assert not hasattr(search, "best_estimator_")


# -------------------------------------------------------------- sample weights
def test_sample_weights_are_sliced_to_each_folds_training_and_validation_rows(iris):
    """Train each fold by hand with the weights of its own rows: the search recorded
    exactly the weighted validation accuracy of those networks."""
    from sklearn.metrics import accuracy_score
    from sklearn.model_selection import StratifiedKFold

    X, y = iris
    weights = np.random.default_rng(0).integers(1, 5, len(y)).astype(float)
    cv = list(StratifiedKFold(2, shuffle=True, random_state=3).split(X, y))
    search = make_search(n_trials=1, cv=cv).fit(X, y, sample_weight=weights)
    trial = search.best_trial_
    params = trial.user_attrs["estimator_params"]
    for k, (train, val) in enumerate(cv):
        model = clone(search.estimator).set_params(**params, max_epochs=5, random_state=0)
        for _ in range(trial.user_attrs["best_epoch"]):
            model.partial_fit(
                X[train], y[train], classes=np.unique(y), sample_weight=weights[train]
            )
        expected = accuracy_score(y[val], model.predict(X[val]), sample_weight=weights[val])
        assert search.cv_results_[f"split{k}_test_score"][0] == expected
    unweighted = make_search(n_trials=1, cv=cv).fit(X, y)
    assert unweighted.best_trial_.params == trial.params  # same configuration...
    assert not np.array_equal(  # ...trained and scored differently
        unweighted.best_estimator_.network_.flat_params,
        search.best_estimator_.network_.flat_params,
    )


def test_the_refit_uses_every_weight(iris):
    X, y = iris
    weights = np.random.default_rng(1).integers(1, 4, len(y)).astype(float)
    search = make_search(n_trials=1).fit(X, y, sample_weight=weights)
    by_hand = clone(search.estimator).set_params(
        **search.best_params_,
        max_epochs=search.best_trial_.user_attrs["best_epoch"],
        random_state=0,
    )
    by_hand.fit(X, y, sample_weight=weights)
    np.testing.assert_array_equal(
        by_hand.network_.flat_params, search.best_estimator_.network_.flat_params
    )


@pytest.mark.parametrize(
    ("weights", "message"),
    [([1.0, 2.0], "shape"), (np.full(150, np.nan), "finite"), (np.zeros(150), "zero")],
)
def test_bad_sample_weights_are_refused(iris, weights, message):
    X, y = iris
    search = make_search()
    with pytest.raises(ValueError, match=rf"sample_weight.*{message}"):
        search.fit(X, y, sample_weight=weights)
    assert not hasattr(search, "study_")


def test_the_search_requests_sample_weights_in_scikit_learns_way(iris):
    import sklearn
    from sklearn.model_selection import cross_validate

    X, y = iris
    weights = np.ones(len(y))
    with sklearn.config_context(enable_metadata_routing=True):
        search = make_search(n_trials=1, max_epochs=2).set_fit_request(sample_weight=True)
        results = cross_validate(search, X, y, cv=2, params={"sample_weight": weights})
    assert len(results["test_score"]) == 2


# ------------------------------------------------------------------ regression
def _regression_data():
    from sklearn.datasets import make_friedman1

    X, y = make_friedman1(n_samples=200, random_state=0)
    return StandardScaler().fit_transform(X), y


def make_regressor_search(**params):
    from optuna_dl import DeepNetRegressor, DeepNetRegressorSearchCV

    settings = dict(
        estimator=DeepNetRegressor(n_units=16, n_layers=1),
        space=FAST_SPACE,
        n_trials=2,
        max_epochs=10,
        cv=2,
        random_state=0,
    )
    settings.update(params)
    return DeepNetRegressorSearchCV(**settings)


@pytest.mark.slow
@parametrize_with_checks(
    [make_regressor_search()],
    expected_failed_checks=lambda estimator: {
        "check_sample_weight_equivalence_on_dense_data": (
            "repeated rows fall into other folds and mini-batches than weighted ones"
        )
    },
)
def test_the_regressor_search_is_sklearn_compatible(estimator, check):
    check(estimator)


def test_the_regressor_search_scores_r2_on_plain_folds_and_refits():
    from sklearn.metrics import r2_score
    from sklearn.model_selection import KFold

    X, y = _regression_data()
    search = make_regressor_search(n_trials=3).fit(X, y)
    assert search.scorer_._score_func is r2_score
    assert not hasattr(search, "classes_") and not hasattr(search, "predict_proba")
    folds = list(KFold(2, shuffle=True, random_state=0).split(X, y))
    assert search.n_splits_ == 2
    trial = search.best_trial_
    params = trial.user_attrs["estimator_params"]
    for k, (train, val) in enumerate(folds):
        model = clone(search.estimator).set_params(**params, max_epochs=10, random_state=0)
        for _ in range(trial.user_attrs["best_epoch"]):
            model.partial_fit(X[train], y[train])
        expected = r2_score(y[val], model.predict(X[val]))
        assert search.cv_results_[f"split{k}_test_score"][search.best_index_] == pytest.approx(
            expected, abs=1e-12
        )
    assert search.score(X, y) == pytest.approx(r2_score(y, search.predict(X)))


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"estimator": DeepNetClassifier()}, "estimator"),
        ({"scoring": "no_such_score"}, "scoring"),
    ],
)
def test_the_regressor_search_names_bad_parameters(params, name):
    X, y = _regression_data()
    with pytest.raises(ValueError, match=rf"DeepNetRegressorSearchCV: parameter '{name}'"):
        make_regressor_search(**params).fit(X, y)


def test_a_classifier_search_refuses_a_regressor():
    from optuna_dl import DeepNetRegressor

    X, y = load_iris(return_X_y=True)
    with pytest.raises(ValueError, match=r"parameter 'estimator' must be a DeepNetClassifier"):
        make_search(estimator=DeepNetRegressor()).fit(X, y)
