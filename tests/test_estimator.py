"""Behaviour of DeepNetClassifier as a scikit-learn classifier."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.callback import ProgressBar
from sklearn.datasets import load_digits, make_blobs, make_classification
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import optuna_dl
from optuna_dl import DeepNetClassifier, DivergenceWarning, EpochLogger, EpochRecord
from optuna_dl.estimator import DivergenceWarning as EstimatorDivergenceWarning


def make_data(n_samples=150, n_features=6, n_classes=3, seed=0):
    return make_classification(
        n_samples=n_samples,
        n_features=n_features,
        n_informative=4,
        n_redundant=0,
        n_classes=n_classes,
        random_state=seed,
    )


def easy_data(n_samples=200, seed=0):
    """Three well separated blobs: every reasonable model reaches 100%."""
    return make_blobs(n_samples=n_samples, centers=3, cluster_std=0.5, random_state=seed)


def small(**params):
    """A small, fast, seeded model."""
    defaults = dict(n_units=16, max_epochs=5, batch_size=32, random_state=0)
    return DeepNetClassifier(**{**defaults, **params})


def state(model):
    return [a.copy() for a in model.network_.state_arrays()]


def assert_same_state(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.dtype == y.dtype
        assert np.array_equal(x, y)


# ---------------------------------------------------------------- accuracy
def test_default_hyperparameters_reach_97_percent_on_digits():
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=0
    )
    model = make_pipeline(StandardScaler(), DeepNetClassifier(random_state=0))
    model.fit(X_train, y_train)
    assert model.score(X_test, y_test) >= 0.97


# ------------------------------------------------- scikit-learn integration
@pytest.mark.slow
def test_grid_search_with_two_jobs():
    X, y = make_data()
    grid = {"learning_rate": [1e-2, 1e-3], "n_units": [4, 16]}
    search = GridSearchCV(small(max_epochs=3), grid, cv=3, n_jobs=2)
    search.fit(X, y)
    assert len(search.cv_results_["params"]) == 4
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    assert search.best_params_["learning_rate"] in grid["learning_rate"]
    assert search.best_params_["n_units"] in grid["n_units"]
    best = search.best_estimator_
    assert isinstance(best, DeepNetClassifier)
    assert best.n_units == search.best_params_["n_units"]
    assert best.predict(X).shape == (X.shape[0],)


def test_clone_keeps_parameters_and_drops_the_fit():
    model = small(
        n_layers=3, activation="tanh", optimizer="rmsprop", learning_rate=0.01, l2=0.1
    ).fit(*make_data())
    copy = clone(model)
    assert copy.get_params() == model.get_params()
    assert not hasattr(copy, "network_")
    assert not hasattr(copy, "classes_")


def test_pickle_round_trip_gives_identical_probabilities():
    X, y = make_data()
    model = small(dropout=0.2).fit(X, y)
    restored = pickle.loads(pickle.dumps(model))
    assert np.array_equal(restored.predict_proba(X), model.predict_proba(X))
    assert np.array_equal(restored.predict(X), model.predict(X))
    # ... and training continues identically (weights, optimizer and random state).
    model.partial_fit(X, y)
    restored.partial_fit(X, y)
    assert_same_state(state(restored), state(model))


# ----------------------------------------------------------- reproducibility
@pytest.mark.parametrize(
    "params",
    [
        {},
        {"dropout": 0.3, "optimizer": "momentum"},
        {"early_stopping": True, "validation_fraction": 0.2},
        {"dtype": "float64", "optimizer": "sgd", "learning_rate": 0.05},
    ],
)
def test_same_seed_gives_bit_identical_models(params):
    X, y = make_data()
    first = small(**params).fit(X, y).predict_proba(X)
    second = small(**params).fit(X, y).predict_proba(X)
    assert np.array_equal(first, second)
    other = small(**{**params, "random_state": 1}).fit(X, y).predict_proba(X)
    assert not np.array_equal(first, other)


# ------------------------------------------------------------------- inputs
def test_string_labels():
    X, y = make_data()
    names = np.array(["cat", "dog", "emu"])[y]
    model = small().fit(X, names)
    assert list(model.classes_) == ["cat", "dog", "emu"]
    predicted = model.predict(X)
    assert set(predicted) <= {"cat", "dog", "emu"}
    assert model.score(X, names) == np.mean(predicted == names)
    index = small().fit(X, y)
    assert np.array_equal(model.predict_proba(X), index.predict_proba(X))


def test_pandas_input_sets_feature_names_and_checks_them():
    X, y = make_data()
    columns = [f"f{i}" for i in range(X.shape[1])]
    frame = pd.DataFrame(X, columns=columns)
    labels = pd.Series(np.array(["a", "b", "c"])[y], name="target")
    model = small().fit(frame, labels)
    assert list(model.feature_names_in_) == columns
    assert model.n_features_in_ == X.shape[1]
    assert np.array_equal(model.predict_proba(frame), small().fit(X, y).predict_proba(X))

    renamed = frame.rename(columns={"f0": "zero"})
    with pytest.raises(ValueError, match="feature names should match"):
        model.predict(renamed)
    with pytest.raises(ValueError, match="same order"):
        model.predict(frame[columns[::-1]])
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        model.predict(X)


def test_array_fitted_model_warns_on_named_columns():
    X, y = make_data()
    model = small().fit(X, y)
    assert not hasattr(model, "feature_names_in_")
    with pytest.warns(UserWarning, match="fitted without feature names"):
        model.predict(pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])]))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_input_dtypes_are_converted_to_the_model_dtype(dtype):
    X, y = make_data()
    X_int = np.round(X * 4).astype(np.int64)
    as_int = small(dtype=dtype).fit(X_int, y)
    as_float = small(dtype=dtype).fit(X_int.astype(np.float64), y)
    assert np.array_equal(as_int.predict_proba(X_int), as_float.predict_proba(X_int))

    X32 = X.astype(np.float32)
    from_32 = small(dtype=dtype).fit(X32, y)
    from_64 = small(dtype=dtype).fit(X32.astype(np.float64), y)
    assert np.array_equal(from_32.predict_proba(X32), from_64.predict_proba(X32))


@pytest.mark.parametrize("dtype, expected", [("float32", np.float32), ("float64", np.float64)])
@pytest.mark.parametrize("optimizer", ["adam", "momentum"])
def test_dtype_parameter_sets_the_network_precision(dtype, expected, optimizer):
    X, y = make_data()
    model = small(dtype=dtype, optimizer=optimizer).fit(X.astype(np.float32), y)
    assert model.network_.params
    assert all(p.dtype == expected for p in model.network_.params)
    assert all(b.dtype == expected for b in model.network_.buffers)
    for arrays in model.optimizer_.state().values():
        assert all(a.dtype == expected for a in arrays)
    assert model.predict_proba(X).dtype == np.float64


# -------------------------------------------------------------- partial_fit
def test_partial_fit_trains_one_epoch_per_call():
    X, y = make_data()
    model = small()
    batches_per_epoch = math.ceil(X.shape[0] / 32)
    for call in range(1, 4):
        network = getattr(model, "network_", None)
        model.partial_fit(X, y)
        assert model.n_iter_ == call
        assert len(model.loss_curve_) == len(model.history_) == call
        assert model.optimizer_.t == call * batches_per_epoch
        if network is not None:
            assert model.network_ is network  # same weights object, updated in place


def test_partial_fit_continues_exactly_like_fit():
    X, y = make_data()
    fitted = small(max_epochs=3, n_iter_no_change=100).fit(X, y)
    incremental = small()
    for _ in range(3):
        incremental.partial_fit(X, y)
    assert_same_state(state(incremental), state(fitted))
    assert incremental.optimizer_.t == fitted.optimizer_.t
    assert incremental.loss_curve_ == fitted.loss_curve_


def test_partial_fit_needs_classes_when_the_first_batch_lacks_some():
    X, y = make_data()
    first = y != 2

    without = small().partial_fit(X[first], y[first])
    assert list(without.classes_) == [0, 1]
    with pytest.raises(ValueError, match=r"labels \[.*2.*\] not seen"):
        without.partial_fit(X, y)

    model = small().partial_fit(X[first], y[first], classes=[0, 1, 2])
    assert list(model.classes_) == [0, 1, 2]
    model.partial_fit(X[~first], y[~first])
    model.partial_fit(X, y, classes=[2, 1, 0])  # same set, any order
    assert model.n_iter_ == 3
    assert model.predict_proba(X).shape == (X.shape[0], 3)


def test_warm_start_keeps_weights_and_optimizer_state():
    X, y = make_data()
    model = small(max_epochs=2, n_iter_no_change=100, warm_start=True)
    model.fit(X, y)
    network, t = model.network_, model.optimizer_.t
    model.set_params(max_epochs=3).fit(X, y)
    assert model.network_ is network
    assert model.n_iter_ == 5
    assert model.optimizer_.t > t
    assert len(model.loss_curve_) == len(model.history_) == 5
    assert [r.epoch for r in model.history_] == [1, 2, 3, 4, 5]

    straight = small(max_epochs=5, n_iter_no_change=100).fit(X, y)
    assert_same_state(state(model), state(straight))
    assert model.optimizer_.t == straight.optimizer_.t


def test_without_warm_start_fit_reinitializes():
    X, y = make_data()
    model = small(max_epochs=2, n_iter_no_change=100).fit(X, y)
    first = state(model)
    model.fit(X, y)
    assert model.n_iter_ == 2
    assert model.optimizer_.t == 2 * math.ceil(X.shape[0] / 32)
    assert_same_state(state(model), first)  # same seed, fresh start: same model


def test_reset_optimizer_carries_the_state_over_to_new_coefficients():
    X, y = make_data()
    model = small(optimizer="adam", max_epochs=2, n_iter_no_change=100).fit(X, y)
    old = model.optimizer_
    moments = {slot: [a.copy() for a in arrays] for slot, arrays in old.state().items()}
    model.set_params(beta1=0.5, epsilon=1e-6)
    assert model.reset_optimizer() is True
    new = model.optimizer_
    assert new is not old
    assert (new.beta1, new.epsilon, new.t) == (0.5, 1e-6, old.t)
    for slot, arrays in moments.items():
        for saved, carried in zip(arrays, new.state()[slot], strict=True):
            assert np.array_equal(saved, carried)
            assert not np.shares_memory(carried, old.state()[slot][0])


def test_reset_optimizer_without_state_keeps_the_step_count():
    X, y = make_data()
    model = small(optimizer="sgd", max_epochs=1).fit(X, y)
    t = model.optimizer_.t
    assert model.reset_optimizer() is True
    assert model.optimizer_.t == t > 0
    assert model.optimizer_.state() == {}


@pytest.mark.parametrize("change, keep_state", [({"optimizer": "momentum"}, True), ({}, False)])
def test_reset_optimizer_starts_from_zero(change, keep_state):
    X, y = make_data()
    model = small(optimizer="adam", max_epochs=1).fit(X, y)
    model.set_params(**change)
    assert model.reset_optimizer(keep_state=keep_state) is False
    assert type(model.optimizer_).__name__.lower() == model.optimizer
    assert model.optimizer_.t == 0
    assert model.optimizer_.state() == {}


def test_reset_optimizer_needs_a_fitted_model():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        small().reset_optimizer()


def test_warm_start_may_switch_early_stopping_on():
    X, y = easy_data()
    model = small(max_epochs=2, n_iter_no_change=100).fit(X, y)
    assert model.validation_scores_ is None
    model.set_params(warm_start=True, early_stopping=True).fit(X, y)
    assert model.n_iter_ == 4
    assert len(model.validation_scores_) == 2


# ----------------------------------------------------------- early stopping
def test_early_stopping_stops_and_restores_the_best_epoch():
    X, y = easy_data()
    snapshots = []

    class Snapshots(EpochLogger):
        def on_epoch_end(self, estimator, record):
            snapshots.append(state(estimator))
            return super().on_epoch_end(estimator, record)

    model = small(
        early_stopping=True, n_iter_no_change=3, tol=0.0, max_epochs=200, n_units=8
    ).set_callbacks(Snapshots())
    model.fit(X, y)

    scores = model.validation_scores_
    assert len(scores) == model.n_iter_ == len(model.history_) == len(snapshots)
    assert [r.validation_score for r in model.history_] == scores
    assert model.n_iter_ < 200
    assert model.best_validation_score_ == max(scores)
    best_epoch = scores.index(max(scores))  # the first epoch reaching the best score
    assert model.n_iter_ == best_epoch + 1 + 3  # then 3 epochs without improvement
    assert_same_state(state(model), snapshots[best_epoch])


def test_without_early_stopping_there_are_no_validation_scores():
    model = small(max_epochs=3).fit(*make_data())
    assert model.validation_scores_ is None
    assert model.best_validation_score_ is None
    assert all(r.validation_score is None for r in model.history_)


def test_training_loss_plateau_stops_fit():
    X, y = easy_data()
    model = small(max_epochs=500, n_iter_no_change=2, tol=10.0).fit(X, y)
    assert model.n_iter_ == 3  # no epoch improves on the first by 10


# --------------------------------------------------------- learning rate decay
SCHEDULES = {
    "inverse_time": lambda lr, decay, epoch: lr / (1 + decay * epoch),
    "exponential": lambda lr, decay, epoch: lr * math.exp(-decay * epoch),
    "step": lambda lr, decay, epoch: lr * 0.5 ** math.floor(decay * epoch),
}


@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
def test_history_follows_the_decay_schedule(schedule):
    X, y = make_data()
    model = small(
        learning_rate=0.01,
        learning_rate_decay=0.5,
        decay_schedule=schedule,
        max_epochs=4,
        n_iter_no_change=100,
        warm_start=True,
    ).fit(X, y)
    model.fit(X, y)  # warm start: the epoch count, hence the decay, continues
    rates = [r.learning_rate for r in model.history_]
    expected = [SCHEDULES[schedule](0.01, 0.5, epoch) for epoch in range(8)]
    assert rates == pytest.approx(expected, rel=1e-12)
    assert rates[-1] < rates[0]


def test_zero_decay_keeps_the_rate_constant():
    model = small(learning_rate=0.02, decay_schedule="exponential").fit(*make_data())
    assert [r.learning_rate for r in model.history_] == [0.02] * model.n_iter_


# ---------------------------------------------------------------- callbacks
def test_epoch_logger_receives_one_record_per_epoch():
    X, y = easy_data()
    seen = []
    logger = EpochLogger(seen.append)
    model = small(early_stopping=True, max_epochs=4, n_iter_no_change=100)
    model.set_callbacks(logger).fit(X, y)
    assert len(logger.records) == model.n_iter_ == 4
    assert logger.records == model.history_ == seen
    for number, record in enumerate(logger.records, start=1):
        assert isinstance(record, EpochRecord)
        assert record._fields == (
            "epoch",
            "loss",
            "validation_score",
            "learning_rate",
            "seconds",
        )
        assert record.epoch == number
        assert record.loss == model.loss_curve_[number - 1]
        assert 0.0 <= record.validation_score <= 1.0
        assert record.validation_score == model.validation_scores_[number - 1]
        assert record.learning_rate == model.learning_rate
        assert record.seconds >= 0.0


def test_callback_returning_true_stops_training():
    X, y = make_data()
    logger = EpochLogger(lambda record: record.epoch == 3)
    model = small(max_epochs=50, n_iter_no_change=100).set_callbacks(logger).fit(X, y)
    assert model.n_iter_ == 3
    assert [r.epoch for r in logger.records] == [1, 2, 3]

    model.set_params(warm_start=True)
    model.partial_fit(X, y)  # a partial_fit epoch is reported too
    assert model.n_iter_ == 4
    assert [r.epoch for r in logger.records] == [1, 2, 3, 4]


def test_sklearn_progress_bar_shows_the_epochs(capsys):
    ended = []

    class RecordingProgressBar(ProgressBar):
        def on_fit_task_end(self, estimator, context):
            ended.append(context.task_name)
            return super().on_fit_task_end(estimator, context)

    X, y = make_data()
    logger = EpochLogger()
    model = small(max_epochs=4, n_iter_no_change=100)
    model.set_callbacks(RecordingProgressBar(), logger).fit(X, y)
    assert model.n_iter_ == 4
    assert ended == ["epoch"] * 4 + ["fit"]
    assert len(logger.records) == 4
    output = capsys.readouterr()
    assert "DeepNetClassifier - fit" in output.out + output.err

    model.set_callbacks(ProgressBar())
    model.partial_fit(X, y)
    model.fit(X, y)
    assert model.n_iter_ == 4


def test_verbose_prints_one_line_per_epoch(capsys):
    small(max_epochs=3, n_iter_no_change=100, verbose=1).fit(*make_data())
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("epoch 1/3  loss ")


# ---------------------------------------------------------------- divergence
def diverging_model(**params):
    return DeepNetClassifier(
        **{
            "learning_rate": 1e6,
            "optimizer": "sgd",
            "batch_norm": False,
            "max_epochs": 10,
            "random_state": 0,
            **params,
        }
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_divergence_warns_and_keeps_a_usable_model(seed):
    # Unscaled digits: the weights after the first epoch are finite but so large that
    # inference overflows, so restoring "the weights before the diverging epoch" is
    # not enough on its own.
    X, y = load_digits(return_X_y=True)
    X, y = X[:200], y[:200]
    model = diverging_model(random_state=seed)
    with np.errstate(all="ignore"):
        with pytest.warns(
            DivergenceWarning, match=r"diverged in epoch \d+ at learning_rate=1e\+06"
        ):
            model.fit(X, y)
    assert model.diverged_
    assert model.n_iter_ < 10
    assert len(model.loss_curve_) == len(model.history_) == model.n_iter_
    probabilities = model.predict_proba(X)
    assert np.all(np.isfinite(probabilities))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)
    assert np.all(np.isfinite(model.predict_log_proba(X)))
    assert all(np.isfinite(p).all() for p in model.network_.params)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_divergence_in_partial_fit_keeps_a_usable_model(seed):
    X, y = load_digits(return_X_y=True)
    X, y = X[:200], y[:200]
    model = diverging_model(random_state=seed)
    with np.errstate(all="ignore"):
        with pytest.warns(DivergenceWarning, match=r"epoch \d+ at learning_rate=1e\+06"):
            for _ in range(3):
                model.partial_fit(X, y)
                if model.diverged_:
                    break
    assert model.diverged_
    probabilities = model.predict_proba(X)
    assert np.all(np.isfinite(probabilities))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)


def test_divergence_during_warm_start_rolls_back_to_the_last_usable_state():
    X, y = load_digits(return_X_y=True)
    X, y = StandardScaler().fit_transform(X[:200]), y[:200]
    model = diverging_model(learning_rate=0.01, max_epochs=3, n_iter_no_change=100).fit(X, y)
    before, curve = state(model), list(model.loss_curve_)
    model.set_params(learning_rate=1e6, warm_start=True)
    with np.errstate(all="ignore"):
        with pytest.warns(
            DivergenceWarning,
            match=r"diverged in epoch 5 at learning_rate=1e\+06.*weights from before epoch 4",
        ):
            model.fit(X, y)
    assert model.diverged_
    assert model.n_iter_ == 3
    assert model.loss_curve_ == curve
    assert [r.epoch for r in model.history_] == [1, 2, 3]
    assert_same_state(state(model), before)
    assert model.optimizer_.t == 0  # a fresh optimizer after divergence


def test_divergence_warning_is_exported():
    assert optuna_dl.DivergenceWarning is EstimatorDivergenceWarning
    assert issubclass(DivergenceWarning, UserWarning)
    model = small().fit(*make_data())
    assert not model.diverged_


# --------------------------------------------------------------- predictions
@pytest.mark.parametrize("n_layers", [0, 2])
def test_prediction_methods_agree(n_layers):
    X, y = make_data()
    model = small(n_layers=n_layers).fit(X, y)
    probabilities = model.predict_proba(X)
    assert probabilities.shape == (X.shape[0], 3)
    assert probabilities.dtype == np.float64
    assert np.all((probabilities >= 0) & (probabilities <= 1))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-12)
    assert np.array_equal(model.predict(X), model.classes_[probabilities.argmax(axis=1)])
    np.testing.assert_allclose(
        model.predict_log_proba(X), np.log(probabilities), rtol=1e-10, atol=1e-12
    )


def test_binary_problem():
    X, y = make_data(n_classes=2)
    model = small(max_epochs=20, learning_rate=0.01).fit(X, y)
    assert list(model.classes_) == [0, 1]
    assert model.predict_proba(X).shape == (X.shape[0], 2)
    assert model.score(X, y) > 0.9


# ------------------------------------------------------ sample and class weights
def exact(**params):
    """Full-batch plain SGD without batch norm, dropout or L2, in float64: training is
    a deterministic function of the weighted loss, whatever the row order."""
    defaults = dict(
        n_units=8,
        batch_norm=False,
        optimizer="sgd",
        learning_rate=0.1,
        batch_size=1000,
        max_epochs=25,
        tol=0.0,
        n_iter_no_change=1000,
        dtype="float64",
        random_state=0,
    )
    return DeepNetClassifier(**{**defaults, **params})


def test_a_weight_of_two_trains_like_a_duplicated_row():
    X, y = make_data(n_samples=60)
    weights = np.ones(len(y))
    weights[[3, 17]] = 2.0
    weighted = exact().fit(X, y, sample_weight=weights)
    repeated = exact().fit(np.vstack([X, X[[3, 17]]]), np.concatenate([y, y[[3, 17]]]))
    # Only the order of the summed rows differs (the shuffle), hence rounding only.
    for a, b in zip(state(weighted), state(repeated), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(weighted.loss_curve_, repeated.loss_curve_, rtol=1e-10)
    # ... and the weights matter: the unweighted model is elsewhere.
    plain = exact().fit(X, y)
    assert max(np.abs(a - b).max() for a, b in zip(state(plain), state(weighted))) > 1e-4


def test_zero_weights_train_like_removed_rows():
    X, y = make_data(n_samples=60)
    weights = np.ones(len(y))
    weights[:10] = 0.0
    weighted = exact().fit(X, y, sample_weight=weights)
    removed = exact().fit(X[10:], y[10:])
    for a, b in zip(state(weighted), state(removed), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_unit_weights_change_nothing():
    X, y = make_data()
    weighted = small().fit(X, y, sample_weight=np.ones(len(y)))
    plain = small().fit(X, y)
    for a, b in zip(state(weighted), state(plain), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_partial_fit_takes_sample_weight():
    X, y = make_data(n_samples=60)
    weights = np.ones(len(y))
    weights[5] = 3.0
    weighted = exact().partial_fit(X, y, classes=[0, 1, 2], sample_weight=weights)
    repeated = exact().partial_fit(
        np.vstack([X, X[[5, 5]]]), np.concatenate([y, y[[5, 5]]]), classes=[0, 1, 2]
    )
    for a, b in zip(state(weighted), state(repeated), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_score_is_the_weighted_accuracy():
    X, y = make_data()
    model = small().fit(X, y)
    weights = np.random.default_rng(0).uniform(0, 3, len(y))
    correct = model.predict(X) == y
    assert 0 < correct.mean() < 1  # otherwise weighting could not change the score
    assert model.score(X, y, sample_weight=weights) == pytest.approx(
        np.average(correct, weights=weights), rel=1e-12
    )
    assert model.score(X, y, sample_weight=weights) != pytest.approx(model.score(X, y))


def test_early_stopping_splits_the_weights_with_their_rows():
    X, y = make_data()
    X[:, 0] = np.arange(len(y))  # each row names itself
    weights = np.arange(len(y), dtype=float) + 1.0
    model = small(early_stopping=True).fit(X, y, sample_weight=weights)
    X_train, X_val, _, y_val, w_train, w_val = model._validation_split(
        X, model._encode(y), weights
    )
    np.testing.assert_array_equal(w_train, X_train[:, 0] + 1)
    np.testing.assert_array_equal(w_val, X_val[:, 0] + 1)
    from optuna_dl.estimator import _Holdout

    correct = model._predict_index(X_val) == y_val
    assert model._holdout_score(_Holdout(X_val, y_val, w_val)) == pytest.approx(
        np.average(correct, weights=w_val), rel=1e-12
    )
    assert len(model.validation_scores_) == model.n_iter_


@pytest.mark.parametrize(
    "sample_weight, message",
    [
        (np.ones(5), r"sample_weight must have shape \(150,\).*got shape \(5,\)"),
        (np.ones((150, 2)), r"sample_weight must have shape \(150,\).*\(150, 2\)"),
        (np.r_[np.ones(149), np.nan], "sample_weight must be finite; got 1 non-finite"),
        (np.r_[np.ones(149), np.inf], "sample_weight must be finite"),
        (np.r_[np.ones(149), -1.0], "sample_weight must be non-negative; got a minimum of -1"),
        (np.zeros(150), "sample_weight must have at least one non-zero weight; got all zeros"),
        (["a"] * 150, "sample_weight must be an array of numbers"),
    ],
)
def test_bad_sample_weights_are_refused(sample_weight, message):
    X, y = make_data()
    with pytest.raises(ValueError, match=message):
        small().fit(X, y, sample_weight=sample_weight)


def test_early_stopping_refuses_an_all_zero_validation_part():
    X, y = make_data()
    weights = np.zeros(len(y))
    weights[0] = 1.0
    with pytest.raises(ValueError, match="sample_weight is zero for every"):
        small(early_stopping=True, validation_fraction=0.5).fit(X, y, sample_weight=weights)


def test_balanced_class_weight_equals_balanced_sample_weight():
    from sklearn.utils.class_weight import compute_sample_weight

    X, y = make_data()
    X, y = X[20:], y[20:]  # unequal class counts
    assert len(set(np.bincount(y))) > 1
    balanced = exact(class_weight="balanced").fit(X, y)
    explicit = exact().fit(X, y, sample_weight=compute_sample_weight("balanced", y))
    for a, b in zip(state(balanced), state(explicit), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    plain = exact().fit(X, y)
    assert max(np.abs(a - b).max() for a, b in zip(state(plain), state(balanced))) > 1e-4


def test_dict_class_weight_multiplies_sample_weight():
    X, y = make_data(n_samples=60)
    names = np.array(["a", "b", "c"])[y]
    sample_weight = np.linspace(0.5, 2.0, len(y))
    by_class = exact(class_weight={"b": 3.0, "c": 0.5}).fit(X, names, sample_weight=sample_weight)
    factor = np.select([names == "b", names == "c"], [3.0, 0.5], 1.0)
    explicit = exact().fit(X, names, sample_weight=sample_weight * factor)
    for a, b in zip(state(by_class), state(explicit), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(
    "class_weight, message",
    [
        ("auto", r"parameter 'class_weight' must be None, 'balanced' or a dict.*got 'auto'"),
        ({0: -1.0}, r"parameter 'class_weight' must be .*got \{0: -1.0\}"),
        ({0: float("nan")}, r"parameter 'class_weight' must be"),
        ({7: 1.0}, r"class_weight has labels \[7\] that are not classes of y"),
        ({0: 0.0, 1: 0.0, 2: 0.0}, "zero for every sample"),
    ],
)
def test_bad_class_weights_are_refused(class_weight, message):
    with pytest.raises(ValueError, match=message):
        small(class_weight=class_weight).fit(*make_data())


def test_metadata_routing_passes_weights_through_a_pipeline_and_cross_validate():
    import sklearn
    from sklearn.model_selection import cross_validate
    from sklearn.pipeline import Pipeline

    X, y = make_data()
    weights = np.random.default_rng(1).uniform(0, 4, len(y))
    with sklearn.config_context(enable_metadata_routing=True):
        pipeline = Pipeline(
            [
                ("scale", StandardScaler().set_fit_request(sample_weight=False)),
                ("net", small().set_fit_request(sample_weight=True)),
            ]
        )
        pipeline.fit(X, y, sample_weight=weights)
        direct = small().fit(StandardScaler().fit_transform(X), y, sample_weight=weights)
        assert_same_state(state(pipeline.named_steps["net"]), state(direct))
        unweighted = small().fit(StandardScaler().fit_transform(X), y)
        assert not np.array_equal(state(unweighted)[0], state(direct)[0])

        net = small().set_fit_request(sample_weight=True).set_score_request(sample_weight=True)
        routed = cross_validate(net, X, y, cv=3, params={"sample_weight": weights})
        unrouted = cross_validate(small(), X, y, cv=3)
    assert routed["test_score"].shape == (3,)
    assert not np.allclose(routed["test_score"], unrouted["test_score"])
