"""DeepNetRegressor: fits, target scaling, sample weights, early stopping, errors."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_friedman1, make_regression
from sklearn.metrics import r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from optuna_dl import DeepNetClassifier, DeepNetRegressor, DivergenceWarning
from optuna_dl.estimator import _r2


def small(**params):
    defaults = dict(n_units=32, max_epochs=60, batch_size=32, learning_rate=1e-2, random_state=0)
    return DeepNetRegressor(**{**defaults, **params})


def exact(**params):
    """Full-batch plain SGD without batch norm, dropout or L2, in float64."""
    defaults = dict(
        n_units=8,
        batch_norm=False,
        optimizer="sgd",
        learning_rate=0.05,
        batch_size=1000,
        max_epochs=25,
        tol=0.0,
        n_iter_no_change=1000,
        dtype="float64",
        random_state=0,
    )
    return DeepNetRegressor(**{**defaults, **params})


def linear_data(n_samples=300, n_targets=1, seed=0):
    return make_regression(
        n_samples=n_samples,
        n_features=5,
        n_informative=5,
        n_targets=n_targets,
        noise=1.0,
        random_state=seed,
    )


def state(model):
    return [a.copy() for a in model.network_.state_arrays()]


# ------------------------------------------------------------------ accuracy
def test_fits_a_linear_target():
    X, y = linear_data()
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    model = small().fit(X_train, y_train)
    assert model.score(X_test, y_test) > 0.97
    predicted = model.predict(X_test)
    assert predicted.shape == y_test.shape and predicted.dtype == np.float64


def test_fits_the_nonlinear_friedman1_target():
    X, y = make_friedman1(n_samples=1500, noise=0.5, random_state=0)
    X = StandardScaler().fit_transform(X)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    model = small(n_units=64, max_epochs=100).fit(X_train, y_train)
    assert model.score(X_test, y_test) > 0.85
    # A linear model cannot get there: the network learned the nonlinear terms.
    linear = small(n_layers=0, max_epochs=100).fit(X_train, y_train)
    assert linear.score(X_test, y_test) < 0.8


def test_multi_output_targets():
    X, y = linear_data(n_targets=2)
    assert y.shape == (300, 2)
    model = small().fit(X, y)
    assert model.n_outputs_ == 2
    assert model.y_mean_.shape == model.y_scale_.shape == (2,)
    predicted = model.predict(X)
    assert predicted.shape == (300, 2)
    assert r2_score(y, predicted) > 0.97
    single_column = small().fit(X, y[:, :1])
    assert single_column.predict(X).shape == (300, 1)


# ------------------------------------------------------------ target scaling
def test_target_scaling_is_stored_and_undone():
    X, y = linear_data()
    shifted = 1000.0 * y + 1e4
    model = small(dtype="float64").fit(X, shifted)
    np.testing.assert_allclose(model.y_mean_, shifted.mean(), rtol=1e-12)
    np.testing.assert_allclose(model.y_scale_, shifted.std(), rtol=1e-12)
    assert model.y_mean_.shape == ()
    reference = small(dtype="float64").fit(X, y)
    # The standardized targets are the same, so is the network: predictions differ by
    # the affine map only (up to the rounding of the standardization).
    np.testing.assert_allclose(
        model.predict(X), 1000.0 * reference.predict(X) + 1e4, rtol=1e-6, atol=1e-3
    )
    # In the units of y, not standardized ones.
    assert abs(model.predict(X).mean() - shifted.mean()) < 0.05 * shifted.std()


def test_a_constant_target_gets_a_unit_scale():
    X, _ = linear_data(n_samples=50)
    y = np.full(50, 7.5)
    model = small().fit(X, y)
    assert model.y_mean_ == 7.5 and model.y_scale_ == 1.0
    assert not model._encode(y).any()  # the network learns to output 0
    np.testing.assert_allclose(model.predict(X), 7.5, atol=0.05)


# ------------------------------------------------------------- sample weights
def test_a_weight_of_two_trains_like_a_duplicated_row():
    X, y = linear_data(n_samples=60)
    weights = np.ones(len(y))
    weights[[4, 9]] = 2.0
    weighted = exact().fit(X, y, sample_weight=weights)
    repeated = exact().fit(np.vstack([X, X[[4, 9]]]), np.concatenate([y, y[[4, 9]]]))
    np.testing.assert_allclose(weighted.y_mean_, repeated.y_mean_, rtol=1e-12)
    np.testing.assert_allclose(weighted.y_scale_, repeated.y_scale_, rtol=1e-12)
    # Only the order of the summed rows differs (the shuffle), hence rounding only.
    for a, b in zip(state(weighted), state(repeated), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(weighted.loss_curve_, repeated.loss_curve_, rtol=1e-10)
    plain = exact().fit(X, y)
    assert max(np.abs(a - b).max() for a, b in zip(state(plain), state(weighted))) > 1e-4


def test_score_is_the_weighted_r2():
    X, y = linear_data()
    model = small(max_epochs=5).fit(X, y)
    weights = np.random.default_rng(0).uniform(0, 3, len(y))
    expected = r2_score(y, model.predict(X), sample_weight=weights)
    assert model.score(X, y, sample_weight=weights) == pytest.approx(expected, rel=1e-12)
    assert expected != pytest.approx(model.score(X, y), rel=1e-6)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("n_targets", [1, 3])
def test_the_held_out_r2_is_scikit_learns(weighted, n_targets):
    rng = np.random.default_rng(n_targets)
    y = rng.standard_normal((40, n_targets))
    predicted = y + 0.5 * rng.standard_normal(y.shape)
    weights = rng.uniform(0, 2, 40) if weighted else None
    assert _r2(y, predicted, weights) == pytest.approx(
        r2_score(y, predicted, sample_weight=weights), rel=1e-12
    )
    y[:, 0] = 1.0  # a constant column: perfect prediction 1, else 0, as scikit-learn
    assert _r2(y, predicted, weights) == pytest.approx(
        r2_score(y, predicted, sample_weight=weights), rel=1e-12
    )


def test_early_stopping_scores_the_held_out_r2_and_keeps_the_best():
    X, y = linear_data()
    model = small(early_stopping=True, max_epochs=40).fit(X, y)
    scores = model.validation_scores_
    assert len(scores) == model.n_iter_ == len(model.history_)
    assert all(score <= 1.0 for score in scores)
    assert model.best_validation_score_ == max(scores) > 0.9
    assert model.score(X, y) > 0.9


def test_partial_fit_keeps_the_first_target_scaling():
    X, y = linear_data()
    model = small().partial_fit(X[:100], y[:100])
    mean, scale = model.y_mean_.copy(), model.y_scale_.copy()
    for _ in range(5):
        model.partial_fit(X[100:], y[100:])
    assert model.n_iter_ == 6
    np.testing.assert_array_equal(model.y_mean_, mean)
    np.testing.assert_array_equal(model.y_scale_, scale)


# -------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "y, error, message",
    [
        (np.r_[np.ones(59), np.nan], ValueError, "NaN"),
        (np.r_[np.ones(59), np.inf], ValueError, "infinity"),
        (np.ones(59), ValueError, "inconsistent numbers of samples"),
    ],
)
def test_bad_targets_are_refused(y, error, message):
    X, _ = linear_data(n_samples=60)
    with pytest.raises(error, match=message):
        small().fit(X, y)


def test_string_targets_are_refused():
    X, _ = linear_data(n_samples=4)
    with pytest.raises(ValueError):
        small().fit(X, ["a", "b", "c", "d"])


@pytest.mark.parametrize(
    "sample_weight, message",
    [
        (np.ones(3), r"sample_weight must have shape \(60,\)"),
        (-np.ones(60), "sample_weight must be non-negative"),
        (np.zeros(60), "sample_weight must have at least one non-zero weight"),
    ],
)
def test_bad_sample_weights_are_refused(sample_weight, message):
    X, y = linear_data(n_samples=60)
    with pytest.raises(ValueError, match=message):
        small().fit(X, y, sample_weight=sample_weight)


def test_bad_parameters_name_the_regressor():
    X, y = linear_data(n_samples=60)
    with pytest.raises(ValueError, match=r"DeepNetRegressor: parameter 'n_units' must be"):
        small(n_units=0).fit(X, y)
    with pytest.raises(TypeError):
        DeepNetRegressor(class_weight="balanced")  # a classifier's parameter


def test_partial_fit_refuses_a_different_number_of_targets():
    X, y = linear_data(n_targets=2)
    model = small().partial_fit(X, y)
    with pytest.raises(ValueError, match="y has 1 target columns; the model was fit on 2"):
        model.partial_fit(X, y[:, 0])


def test_divergence_warns_and_leaves_a_finite_model():
    X, y = linear_data()
    model = small(optimizer="sgd", learning_rate=1e6, batch_norm=False, max_epochs=20)
    with pytest.warns(DivergenceWarning, match="training diverged"):
        model.fit(X, y)
    assert model.diverged_
    assert len(model.loss_curve_) == model.n_iter_
    assert np.isfinite(model.loss_curve_).all()
    assert np.isfinite(model.predict(X)).all()


# --------------------------------------------------------------- persistence
@pytest.mark.parametrize("n_targets", [1, 2])
def test_save_load_round_trip(tmp_path, n_targets):
    X, y = linear_data(n_targets=n_targets)
    model = small(max_epochs=5, early_stopping=True).fit(X, y)
    model.save(tmp_path / "model.npz")
    loaded = DeepNetRegressor.load(tmp_path / "model.npz")
    assert type(loaded) is DeepNetRegressor
    assert loaded.get_params() == model.get_params()
    assert loaded.n_outputs_ == model.n_outputs_
    np.testing.assert_array_equal(loaded.y_mean_, model.y_mean_)
    np.testing.assert_array_equal(loaded.y_scale_, model.y_scale_)
    assert loaded.y_mean_.shape == model.y_mean_.shape
    assert loaded.loss_curve_ == model.loss_curve_
    assert loaded.validation_scores_ == model.validation_scores_
    predicted = loaded.predict(X)
    assert predicted.shape == model.predict(X).shape
    np.testing.assert_array_equal(predicted, model.predict(X))
    # Training continues identically.
    loaded.partial_fit(X, y)
    model.partial_fit(X, y)
    for a, b in zip(state(loaded), state(model), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_regressor_file_is_not_a_classifier(tmp_path):
    X, y = linear_data(n_samples=60)
    small(max_epochs=2).fit(X, y).save(tmp_path / "regressor.npz")
    with pytest.raises(ValueError, match="holds a 'DeepNetRegressor' model, not a"):
        DeepNetClassifier.load(tmp_path / "regressor.npz")


def test_metadata_routing_in_cross_validate():
    import sklearn
    from sklearn.model_selection import cross_validate

    X, y = linear_data()
    weights = np.random.default_rng(1).uniform(0, 4, len(y))
    with sklearn.config_context(enable_metadata_routing=True):
        model = small(max_epochs=5).set_fit_request(sample_weight=True)
        model.set_score_request(sample_weight=True)
        routed = cross_validate(model, X, y, cv=3, params={"sample_weight": weights})
        unrouted = cross_validate(small(max_epochs=5), X, y, cv=3)
    assert routed["test_score"].shape == (3,)
    assert not np.allclose(routed["test_score"], unrouted["test_score"])


# ---------------------------------------------------------------- huber loss
@pytest.mark.parametrize("n_layers", [0, 2])
def test_huber_loss_resists_outliers(n_layers):
    X, y = linear_data(n_samples=400)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    corrupted = y_train.copy()
    corrupted[:15] += 10 * y_train.std()  # a few wild targets
    squared = small(n_layers=n_layers, max_epochs=100).fit(X_train, corrupted)
    robust = small(n_layers=n_layers, max_epochs=100, loss="huber").fit(X_train, corrupted)
    assert robust.score(X_test, y_test) > squared.score(X_test, y_test) + 0.2
    if n_layers == 0:  # a linear model cannot memorize the outliers
        assert robust.score(X_test, y_test) > 0.95


def test_bad_loss_is_refused():
    X, y = linear_data(n_samples=60)
    with pytest.raises(ValueError, match=r"parameter 'loss' must be one of 'squared_error'"):
        small(loss="absolute").fit(X, y)


def test_a_huber_model_file_keeps_its_loss(tmp_path):
    X, y = linear_data(n_samples=60)
    model = small(max_epochs=2, loss="huber").fit(X, y)
    model.save(tmp_path / "huber.npz")
    loaded = DeepNetRegressor.load(tmp_path / "huber.npz")
    assert loaded.loss == "huber"
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    loaded.partial_fit(X, y)
    model.partial_fit(X, y)
    for a, b in zip(state(loaded), state(model), strict=True):
        np.testing.assert_array_equal(a, b)
