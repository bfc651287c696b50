"""Every bad input fails loudly, with a message that says what was wrong."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from optuna_dl import DeepNetClassifier


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 4))
    y = (X[:, 0] > 0).astype(int)
    return X, y


def small(**params):
    defaults = dict(n_units=8, max_epochs=2, random_state=0)
    return DeepNetClassifier(**{**defaults, **params})


# ------------------------------------------------------------------------ X
@pytest.mark.parametrize(
    "bad, message",
    [
        (np.nan, "Input X contains NaN"),
        (np.inf, "Input X contains infinity"),
        (-np.inf, "Input X contains infinity"),
    ],
)
@pytest.mark.parametrize("method", ["fit", "partial_fit", "predict", "predict_proba"])
def test_non_finite_X(data, bad, message, method):
    X, y = data
    X_bad = X.copy()
    X_bad[3, 2] = bad
    if method in ("fit", "partial_fit"):
        with pytest.raises(ValueError, match=message):
            getattr(small(), method)(X_bad, y)
    else:
        model = small().fit(X, y)
        with pytest.raises(ValueError, match=message):
            getattr(model, method)(X_bad)


def test_one_dimensional_X(data):
    X, y = data
    with pytest.raises(ValueError, match="Expected 2D array, got 1D array"):
        small().fit(X[:, 0], y)
    model = small().fit(X, y)
    with pytest.raises(ValueError, match="Expected 2D array, got 1D array"):
        model.predict(X[0])


def test_three_dimensional_X(data):
    X, y = data
    with pytest.raises(ValueError, match="Found array with dim 3"):
        small().fit(X.reshape(40, 2, 2), y)
    model = small().fit(X, y)
    with pytest.raises(ValueError, match="Found array with dim 3"):
        model.predict_proba(X.reshape(40, 2, 2))


def test_empty_X(data):
    X, y = data
    with pytest.raises(ValueError, match="0 sample"):
        small().fit(X[:0], y[:0])


def test_strings_in_X(data):
    X, y = data
    X_text = X.astype(str)
    X_text[5, 1] = "seven"
    with pytest.raises(ValueError, match="could not convert string to float: .*seven"):
        small().fit(X_text, y)


def test_complex_X(data):
    X, y = data
    with pytest.raises(ValueError, match="Complex data not supported"):
        small().fit(X + 1j, y)
    model = small().fit(X, y)
    with pytest.raises(ValueError, match="Complex data not supported"):
        model.predict(X + 0j)


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
def test_values_too_large_for_float32_are_rejected(data):
    X, y = data
    X_big = X.copy()
    X_big[0, 0] = 1e39  # finite in float64, inf in float32
    with pytest.raises(ValueError, match=r"too large for dtype\('float32'\)"):
        small(dtype="float32").fit(X_big, y)
    with pytest.raises(ValueError, match=r"too large for dtype\('float32'\)"):
        small(dtype="float32").partial_fit(X_big, y)
    model = small(dtype="float32").fit(X, y)
    with pytest.raises(ValueError, match=r"too large for dtype\('float32'\)"):
        model.predict_proba(X_big)
    # A float64 model represents the value, so it is not an input error there.
    probabilities = small(dtype="float64").fit(X, y).predict_proba(X_big)
    assert np.all(np.isfinite(probabilities))


def test_different_feature_count_at_predict(data):
    X, y = data
    model = small().fit(X, y)
    for method in ("predict", "predict_proba", "predict_log_proba", "score"):
        args = (X[:, :3], y) if method == "score" else (X[:, :3],)
        with pytest.raises(
            ValueError, match="X has 3 features, but DeepNetClassifier is expecting 4"
        ):
            getattr(model, method)(*args)


def test_different_feature_count_at_partial_fit(data):
    X, y = data
    model = small().partial_fit(X, y)
    with pytest.raises(ValueError, match="X has 5 features, but DeepNetClassifier is expecting 4"):
        model.partial_fit(np.hstack([X, X[:, :1]]), y)


def test_predict_before_fit(data):
    X, _ = data
    assert issubclass(NotFittedError, ValueError)
    for method in ("predict", "predict_proba", "predict_log_proba"):
        with pytest.raises(NotFittedError, match="not fitted yet"):
            getattr(small(), method)(X)


# ------------------------------------------------------------------------ y
def test_y_length_mismatch(data):
    X, y = data
    with pytest.raises(ValueError, match=r"inconsistent numbers of samples: \[40, 39\]"):
        small().fit(X, y[:-1])


def test_y_with_two_columns(data):
    X, y = data
    with pytest.raises(ValueError, match="y should be a 1d array"):
        small().fit(X, np.column_stack([y, y]))


@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_a_single_class(data, method):
    X, _ = data
    with pytest.raises(ValueError, match="at least 2 classes; got 1 class"):
        getattr(small(), method)(X, np.full(40, "only"))


def test_continuous_targets(data):
    X, _ = data
    with pytest.raises(ValueError, match="Unknown label type: continuous"):
        small().fit(X, X[:, 0])


def test_early_stopping_on_too_few_samples(data):
    X, y = data
    with pytest.raises(ValueError, match="leaves no training or no validation samples"):
        small(early_stopping=True, validation_fraction=0.9).fit(X[:2], y[:2])


# ------------------------------------------------------------- partial_fit
def test_partial_fit_labels_outside_classes(data):
    X, y = data
    with pytest.raises(ValueError, match=r"labels \[.*5.*\] that are not in classes="):
        small().partial_fit(X, np.where(y == 1, 5, 0), classes=[0, 1])


def test_partial_fit_later_unseen_label(data):
    X, y = data
    model = small().partial_fit(X, y)
    with pytest.raises(ValueError, match=r"labels \[.*7.*\] not seen when the model was"):
        model.partial_fit(X, np.where(y == 1, 7, 0))
    assert model.n_iter_ == 1  # the failed call did not train


def test_partial_fit_with_different_classes(data):
    X, y = data
    model = small().partial_fit(X, y, classes=[0, 1])
    with pytest.raises(ValueError, match="differs from the classes of the first partial_fit"):
        model.partial_fit(X, y, classes=[0, 1, 2])


def test_warm_start_with_a_different_dtype(data):
    X, y = data
    model = small(warm_start=True).fit(X, y)
    model.set_params(dtype="float64")
    with pytest.raises(ValueError, match="dtype='float64' differs from the fitted network"):
        model.fit(X, y)


def test_set_callbacks_rejects_non_callbacks():
    with pytest.raises(TypeError, match="FitCallback protocol"):
        small().set_callbacks(print)


# ---------------------------------------------------------- hyperparameters
BAD_PARAMETERS = [
    ("n_layers", -1),
    ("n_layers", 1.5),
    ("n_units", 0),
    ("activation", "foo"),
    ("batch_norm", "yes"),
    ("optimizer", "adagrad"),
    ("learning_rate", 0),
    ("learning_rate", -1),
    ("learning_rate", float("nan")),
    ("beta", 1.0),
    ("beta1", -0.1),
    ("beta2", 1.5),
    ("epsilon", 0),
    ("learning_rate_decay", -1),
    ("decay_schedule", "cosine"),
    ("batch_size", 0),
    ("max_epochs", 0),
    ("max_epochs", np.int64(0)),
    ("l2", -1),
    ("dropout", 1.0),
    ("early_stopping", "no"),
    ("validation_fraction", 0),
    ("validation_fraction", 1),
    ("n_iter_no_change", 0),
    ("tol", -1),
    ("dtype", "float16"),
    ("random_state", "abc"),
    ("random_state", -1),
    ("warm_start", 1),
    ("verbose", -1),
]


@pytest.mark.parametrize("method", ["fit", "partial_fit"])
@pytest.mark.parametrize(
    "name, value", BAD_PARAMETERS, ids=[f"{n}={v!r}" for n, v in BAD_PARAMETERS]
)
def test_invalid_hyperparameter_is_named(data, name, value, method):
    X, y = data
    model = small(**{name: value})
    with pytest.raises((ValueError, TypeError), match=rf"parameter '{name}' must be") as info:
        getattr(model, method)(X, y)
    assert repr(value) in str(info.value)
    assert not hasattr(model, "network_")


def test_invalid_hyperparameter_set_after_fit_is_caught(data):
    X, y = data
    model = small().fit(X, y)
    model.set_params(learning_rate=-0.5, warm_start=True)
    with pytest.raises(ValueError, match="parameter 'learning_rate' must be a number in"):
        model.partial_fit(X, y)
