"""Property-based fuzzing of DeepNetClassifier.fit / predict.

Every input (shape, container and dtype of X, type of the labels, degenerate or
extreme values, hyperparameters, sometimes invalid) must end in one of two ways:

* a clean fit, after which ``predict_proba`` is finite with rows summing to 1 and
  ``predict`` returns labels from ``classes_``;
* a ValueError or TypeError with a non-empty message (at fit or at prediction).

A DivergenceWarning is allowed. Any other exception, a NaN probability or a hang is a
failure. Inputs that are invalid by construction (NaN, inf, empty or 3-D X, mixed
label types, a single class, an invalid hyperparameter) must raise.

Hypothesis runs derandomized with no example database, so the same inputs are tried
on every run. The number of inputs tried is written to ``fuzz_counts.json`` in
pytest's base temporary directory and printed by the last test (``pytest -s``).
"""

from __future__ import annotations

import collections
import json
import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optuna_dl import DeepNetClassifier
from optuna_dl.estimator import DivergenceWarning
from optuna_dl.nn.activations import ACTIVATIONS
from optuna_dl.nn.optimizers import OPTIMIZERS
from optuna_dl.nn.schedules import SCHEDULES

#: outcome counts per test, e.g. COUNTS["random_inputs"]["clean_fit"]
COUNTS: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
#: first words of the errors raised for inputs not invalid by construction
ERRORS: collections.Counter = collections.Counter()
#: how often each kind of input (X kind and dtype, label type, option...) was drawn
COVERAGE: collections.Counter = collections.Counter()
CATEGORICAL = [
    "activation",
    "optimizer",
    "decay_schedule",
    "batch_norm",
    "early_stopping",
    "dtype",
    "n_layers",
]


def fuzz_settings(max_examples: int) -> settings:
    """Deterministic (derandomized, no example database), no deadline."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        database=None,
        derandomize=True,
    )


FLOAT32_MAX = float(np.finfo(np.float32).max)

X_DTYPES = [
    "float16",
    "float32",
    "float64",
    "int8",
    "int32",
    "int64",
    "uint8",
    "bool",
    "object",
    "list",
]
X_KINDS = [
    "normal",
    "constant_features",
    "all_zero",
    "duplicate_rows",
    "huge",  # 1e30
    "tiny",  # 1e-30
    "near_float32_max",
    "mixed_magnitudes",  # 1e30, 1e-30, 0 and ordinary values side by side
    "denormal",
    # invalid by construction: must raise
    "nan",
    "inf",
    "empty_rows",
    "empty_features",
    "three_d",
]
MUST_RAISE_X = {"nan", "inf", "empty_rows", "empty_features", "three_d"}
VALID_X = [kind for kind in X_KINDS if kind not in MUST_RAISE_X]
LABEL_KINDS = [
    "int",
    "negative_int",
    "str",
    "unicode",
    "bool",
    "integral_float",
    "object_str",
    "mixed_str_int",  # invalid: must raise
]
UNICODE = ["α", "日本語", "🙂", "Ωmega", "straße", "ü", "—", "ℵ"]

# One or more invalid values per hyperparameter (each breaks its rule).
INVALID = {
    "n_layers": [-1, 1.5, "2", None, True],
    "n_units": [0, -4, 3.0, float("nan")],
    "activation": ["softmax", "", None, 3],
    "batch_norm": ["yes", 1, None],
    "optimizer": ["adagrad", None],
    "learning_rate": [0, -1e-3, float("nan"), float("inf"), "0.01", 10**400],
    "beta": [1.0, -0.1, float("nan")],
    "beta1": [1.0, 2],
    "beta2": [1.0, -1],
    "epsilon": [0, -1e-8, float("inf")],
    "learning_rate_decay": [-0.5, float("inf"), float("nan")],
    "decay_schedule": ["cosine", None],
    "batch_size": [0, -1, 2.5, True],
    "max_epochs": [0, -1, 1.0, np.int64(0)],
    "l2": [-1, float("inf"), float("nan")],
    "dropout": [1.0, -0.1, 1.5],
    "early_stopping": ["no", 0, None],
    "validation_fraction": [0, 1, 1.5, -0.2],
    "n_iter_no_change": [0, 1.5],
    "tol": [-1, float("nan"), float("inf")],
    "dtype": ["float16", "int32", np.float32, None],
    "random_state": [-1, "seed", 1.5],
    "verbose": [-1, 0.5],
    "warm_start": [1, "no"],
}


@dataclass
class Case:
    """One fuzz input; ``must_raise`` says why it is invalid, if it is."""

    X: Any
    y: Any
    params: dict[str, Any]
    description: str
    must_raise: list[str] = field(default_factory=list)
    invalid_parameter: str | None = None
    method: str = "fit"
    tags: list[str] = field(default_factory=list)  # what kind of input, for COVERAGE


# ----------------------------------------------------------------- strategies
def sometimes(rng: np.random.Generator, probability: float) -> bool:
    """A rare choice, made with the case's seeded generator: hypothesis's own draws
    are biased towards simple values, which would make rare choices rarer still."""
    return bool(rng.random() < probability)


def log_uniform(low: float, high: float) -> st.SearchStrategy[float]:
    return st.floats(math.log10(low), math.log10(high)).map(lambda e: float(10.0**e))


@st.composite
def hyperparameters(draw) -> dict[str, Any]:
    """Valid values, drawn from the whole legal range (small enough to run fast)."""
    return {
        "n_layers": draw(st.integers(0, 3)),
        "n_units": draw(st.integers(1, 16)),
        "activation": draw(st.sampled_from(sorted(ACTIVATIONS))),
        "batch_norm": draw(st.booleans()),
        "optimizer": draw(st.sampled_from(sorted(OPTIMIZERS))),
        "learning_rate": draw(log_uniform(1e-6, 1e4)),
        "beta": draw(st.sampled_from([0.0, 0.5, 0.9, 0.999999])),
        "beta1": draw(st.sampled_from([0.0, 0.9, 0.999999])),
        "beta2": draw(st.sampled_from([0.0, 0.999, 0.9999999])),
        "epsilon": draw(st.sampled_from([1e-300, 1e-8, 1.0, 1e300])),
        "learning_rate_decay": draw(st.sampled_from([0.0, 0.5, 3.0, 1e300])),
        "decay_schedule": draw(st.sampled_from(sorted(SCHEDULES))),
        "batch_size": draw(st.sampled_from([1, 2, 3, 7, 16, 128, 10**6])),
        "max_epochs": draw(st.integers(1, 3)),
        "l2": draw(st.sampled_from([0.0, 1e-4, 1.0, 1e3, 1e300])),
        "dropout": draw(st.sampled_from([0.0, 0.1, 0.5, 0.95])),
        "early_stopping": draw(st.booleans()),
        "validation_fraction": draw(st.sampled_from([1e-9, 0.1, 0.5, 0.9, 0.999])),
        "n_iter_no_change": draw(st.integers(1, 5)),
        "tol": draw(st.sampled_from([0.0, 1e-4, 0.5])),
        "dtype": draw(st.sampled_from(["float32", "float64"])),
        "random_state": draw(st.integers(0, 2**32 - 1)),
    }


def make_X(rng: np.random.Generator, n: int, d: int, kind: str, dtype: str) -> tuple[Any, str]:
    values = rng.normal(size=(n, d))
    if kind == "constant_features":
        constant = rng.random(d) < 0.5
        constant[rng.integers(d)] = True
        values[:, constant] = rng.normal(size=int(constant.sum())) * 10
    elif kind == "all_zero":
        values[:] = 0.0
    elif kind == "duplicate_rows" and n > 1:
        values = values[rng.integers(0, max(1, n // 3), size=n)]
    elif kind == "huge":
        values *= 1e30
    elif kind == "tiny":
        values *= 1e-30
    elif kind == "near_float32_max":
        values = np.sign(values) * FLOAT32_MAX * rng.uniform(0.5, 1.0, size=(n, d))
    elif kind == "mixed_magnitudes":
        scale = rng.choice([1e30, 1e-30, 0.0, 1.0, -1e30], size=(n, d))
        values *= scale
    elif kind == "denormal":
        values *= 5e-324 * 10
    elif kind in ("nan", "inf"):
        if dtype not in ("float16", "float32", "float64", "object", "list"):
            dtype = "float64"  # integers and bools cannot hold NaN or inf
        values[rng.integers(n), rng.integers(d)] = np.nan if kind == "nan" else -np.inf
    elif kind == "empty_rows":
        values = values[:0]
    elif kind == "empty_features":
        values = values[:, :0]
    elif kind == "three_d":
        values = values.reshape(n, d, 1)

    if dtype in ("float16", "float32", "float64"):
        with np.errstate(over="ignore"):
            return values.astype(dtype), dtype
    if dtype == "bool":
        return values > 0, dtype
    if dtype in ("int8", "int32", "int64", "uint8"):
        info = np.iinfo(dtype)
        if kind == "normal":
            values = values * 20
        clipped = np.clip(np.round(values), info.min / 2, info.max / 2)
        return clipped.astype(dtype), dtype
    if dtype == "object":  # Python floats and ints mixed
        out = values.astype(object)
        flat = out.reshape(-1)
        for i in range(0, flat.size, 3):
            if math.isfinite(flat[i]) and abs(flat[i]) < 1e15:
                flat[i] = int(flat[i])
        return out, dtype
    return values.tolist(), dtype  # "list": nested Python lists


def make_labels(
    rng: np.random.Generator, n: int, n_classes: int, kind: str, container: str
) -> tuple[Any, np.ndarray]:
    """Labels for n samples covering n_classes classes; returns (y, class index)."""
    if kind == "bool":
        n_classes = min(n_classes, 2)
    index = np.concatenate([np.arange(min(n_classes, n)), rng.integers(0, n_classes, n)])[:n]
    rng.shuffle(index)
    table: list[Any]
    if kind == "int":
        table = [int(c) * 7 + 2 for c in range(n_classes)]
    elif kind == "negative_int":
        table = [-(int(c) + 1) * 1000 for c in range(n_classes)]
    elif kind in ("str", "object_str"):
        table = [f"class_{c}" for c in range(n_classes)]
    elif kind == "unicode":
        table = [UNICODE[c % len(UNICODE)] + str(c) for c in range(n_classes)]
    elif kind == "bool":
        table = [False, True]
    elif kind == "integral_float":
        table = [float(c) * 2.0 - 3.0 for c in range(n_classes)]
    else:  # mixed_str_int: even classes are strings, odd ones ints
        table = [f"s{c}" if c % 2 == 0 else int(c) for c in range(n_classes)]
    labels = [table[i] for i in index]
    if kind in ("object_str", "mixed_str_int") and container == "ndarray":
        return np.array(labels, dtype=object), index
    if container == "list":
        return labels, index
    if container == "tuple":
        return tuple(labels), index
    return np.array(labels), index


@st.composite
def cases(draw, invalid: str | None = None) -> Case:
    """A fuzz input; ``invalid`` names a hyperparameter to make invalid."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n = draw(st.integers(1, 60))
    d = draw(st.integers(1, 20))
    invalid_x = sometimes(rng, 0.15)  # X that must be refused
    x_kind = draw(st.sampled_from(sorted(MUST_RAISE_X) if invalid_x else VALID_X))
    x_dtype = draw(st.sampled_from(X_DTYPES))
    mixed = sometimes(rng, 0.08)  # labels mixing str and int
    label_kind = "mixed_str_int" if mixed else draw(st.sampled_from(LABEL_KINDS[:-1]))
    container = draw(st.sampled_from(["ndarray", "list", "tuple"]))
    two_per_class = sometimes(rng, 0.12)
    single_class = sometimes(rng, 0.05)  # one class only
    if single_class or n == 1:
        n_classes = 1
    elif two_per_class:
        n_classes = n // 2
    else:
        n_classes = draw(st.integers(2, min(n, 8)))
    if two_per_class and n >= 2:
        n = 2 * n_classes

    X, x_dtype = make_X(rng, n, d, x_kind, x_dtype)
    y, index = make_labels(rng, n, n_classes, label_kind, container)
    params = draw(hyperparameters())
    method = draw(st.sampled_from(["fit", "fit", "fit", "partial_fit"]))

    must_raise = []
    if x_kind in MUST_RAISE_X:
        must_raise.append(f"X is {x_kind}")
    if np.unique(index).size < 2 and x_kind not in ("empty_rows",):
        must_raise.append("a single class")
    if label_kind == "mixed_str_int" and np.unique(index % 2).size == 2:
        must_raise.append("labels mix strings and ints")

    invalid_parameter = None
    if invalid is not None or sometimes(rng, 0.12):  # one invalid hyperparameter
        names = sorted(INVALID)
        invalid_parameter = invalid or names[rng.integers(len(names))]
        values = INVALID[invalid_parameter]
        params[invalid_parameter] = values[rng.integers(len(values))]
        must_raise.insert(0, f"invalid {invalid_parameter}")

    description = (
        f"X {x_kind}/{x_dtype}, {n_classes} {label_kind} classes in a {container}, "
        f"{'2 per class, ' if two_per_class else ''}seed {seed}"
    )
    tags = [
        f"X kind: {x_kind}",
        f"X dtype: {x_dtype}",
        f"labels: {label_kind}",
        f"label container: {container}",
        f"method: {method}",
        *(f"{name}: {params[name]}" for name in CATEGORICAL if name != invalid_parameter),
    ]
    if two_per_class:
        tags.append("two samples per class")
    if invalid_parameter is not None:
        tags.append(f"invalid parameter: {invalid_parameter}")
    return Case(X, y, params, description, must_raise, invalid_parameter, method, tags)


# ------------------------------------------------------------------ the oracle
def run_case(case: Case, counts: collections.Counter) -> DeepNetClassifier | None:
    """Fit and predict; check the outcome; return the model after a clean fit."""
    model = DeepNetClassifier(**case.params)
    stage = "fit"
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if case.method == "partial_fit":
                classes = list(dict.fromkeys(np.asarray(case.y, dtype=object).ravel()))
                model.partial_fit(case.X, case.y, classes=classes)
            else:
                model.fit(case.X, case.y)
            stage = "predict"
            proba = model.predict_proba(case.X)
            predicted = model.predict(case.X)
    except (ValueError, TypeError) as error:
        message = str(error)
        assert message.strip(), f"{type(error).__name__} without a message at {stage}"
        if case.invalid_parameter is not None:
            assert stage == "fit"
            assert f"parameter {case.invalid_parameter!r}" in message, message
        counts[f"{stage}_error"] += 1
        if not case.must_raise:  # what refuses a valid-looking input, for the record
            kind = ", ".join(case.tags[:2]) if case.tags else case.description
            ERRORS[f"{case.method}/{stage}: {' '.join(message.split()[:6])} [{kind}]"] += 1
        counts["must_raise_and_raised" if case.must_raise else "valid_input_error"] += 1
        return None
    # Any other exception type propagates and fails the test.

    assert not case.must_raise, f"no error although {case.must_raise}"
    if any(issubclass(w.category, DivergenceWarning) for w in caught):
        counts["divergence_warning"] += 1
    n = np.shape(case.X)[0]
    classes = model.classes_
    assert np.array_equal(classes, np.unique(np.asarray(case.y)))
    assert proba.shape == (n, classes.size)
    assert proba.dtype == np.float64
    assert np.all(np.isfinite(proba)), "non-finite probabilities"
    assert np.all(proba >= 0)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-6)
    assert predicted.shape == (n,)
    assert np.all(np.isin(predicted, classes))
    # predict is the argmax of the logits: its class has the highest probability (ties
    # within rounding allowed: logits 1e-31 apart give equal float64 probabilities)
    chosen = proba[np.arange(n), np.searchsorted(classes, predicted)]
    assert np.all(chosen >= proba.max(axis=1) * (1 - 1e-9))
    counts["clean_fit"] += 1
    return model


@pytest.mark.slow
@fuzz_settings(1500)
@given(case=cases())
def test_random_inputs_fit_cleanly_or_raise_value_or_type_error(case):
    counts = COUNTS["random_inputs"]
    counts["tried"] += 1
    COVERAGE.update(case.tags)
    run_case(case, counts)


@pytest.mark.parametrize("name", sorted(INVALID))
@fuzz_settings(8)
@given(data=st.data())
def test_an_invalid_hyperparameter_is_named_whatever_the_data(name, data):
    case = data.draw(cases(invalid=name))
    counts = COUNTS["invalid_hyperparameter"]
    counts["tried"] += 1
    COVERAGE.update(case.tags)
    assert run_case(case, counts) is None


@st.composite
def new_data(draw) -> tuple[str, float]:
    return draw(
        st.sampled_from(["scaled", "one_hot_huge", "nan", "extra_feature", "float32_overflow"])
    ), draw(st.sampled_from([0.0, 1e-30, 1.0, 1e10, 1e30, 1e300]))


@pytest.mark.slow
@fuzz_settings(300)
@given(params=hyperparameters(), seed=st.integers(0, 2**32 - 1), query=new_data())
def test_predicting_on_other_data_is_finite_or_a_value_error(params, seed, query):
    """After a clean fit on ordinary data, predict_proba on new, possibly wild, inputs."""
    counts = COUNTS["predict_other_data"]
    counts["tried"] += 1
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(30, 4))
    y = np.arange(30) % 3
    params = {**params, "early_stopping": False}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DivergenceWarning)
        model = DeepNetClassifier(**params).fit(X, y)
    kind, scale = query
    X_new = rng.normal(size=(12, 4)) * scale
    if kind == "one_hot_huge":
        X_new[:, 0] = 1e300
    elif kind == "nan":
        X_new[3, 1] = np.nan
    elif kind == "extra_feature":
        X_new = np.hstack([X_new, X_new[:, :1]])
    elif kind == "float32_overflow":
        X_new[0, 0] = 1e39
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # numpy's cast overflow
            proba = model.predict_proba(X_new)
            predicted = model.predict(X_new)
    except ValueError as error:
        assert str(error).strip()
        counts["value_error"] += 1
        return
    assert kind not in ("nan", "extra_feature")
    assert np.all(np.isfinite(proba))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-6)
    assert np.all(np.isin(predicted, model.classes_))
    counts["finite"] += 1


@fuzz_settings(30)
@given(
    n_classes=st.integers(100, 250),
    label_kind=st.sampled_from(["int", "str", "unicode", "negative_int"]),
    params=hyperparameters(),
    seed=st.integers(0, 2**32 - 1),
)
def test_hundreds_of_classes_with_two_samples_each(n_classes, label_kind, params, seed):
    counts = COUNTS["hundreds_of_classes"]
    counts["tried"] += 1
    rng = np.random.default_rng(seed)
    index = rng.permutation(np.repeat(np.arange(n_classes), 2))  # two samples per class
    y = make_labels_exactly(index, label_kind)
    X = rng.normal(size=(index.size, 5))
    case = Case(X, y, params, f"{n_classes} {label_kind} classes x 2")
    model = run_case(case, counts)
    if model is not None:
        assert model.classes_.size == n_classes


def make_labels_exactly(index: np.ndarray, kind: str) -> np.ndarray:
    if kind == "int":
        return index * 7 + 2
    if kind == "negative_int":
        return -(index + 1) * 1000
    if kind == "str":
        return np.array([f"class_{i}" for i in index])
    return np.array([UNICODE[i % len(UNICODE)] + str(i) for i in index])


# ------------------------------------------------------- targeted regressions
@pytest.mark.parametrize(
    "y",
    [
        [0, "a"] * 5,  # NumPy alone would silently make this ["0", "a", ...]
        np.array([0, "a"] * 5, dtype=object),
        np.array([True, "True"] * 5, dtype=object),  # used to be a TypeError from sorting
        [1.5, "b"] * 5,
    ],
    ids=["list", "object_array", "bool_and_str", "float_and_str"],
)
def test_labels_mixing_strings_and_numbers_are_refused(y):
    X = np.random.default_rng(0).normal(size=(10, 3))
    with pytest.raises(ValueError, match="y mixes strings with other values"):
        DeepNetClassifier(max_epochs=1).fit(X, y)
    with pytest.raises(ValueError, match="classes mixes strings with other values"):
        DeepNetClassifier(max_epochs=1).partial_fit(X, ["a", "b"] * 5, classes=["a", "b", 3])


@pytest.mark.parametrize("value", [float("inf"), 10**400])
@pytest.mark.parametrize("name", ["learning_rate", "learning_rate_decay", "l2", "tol"])
def test_non_finite_or_unrepresentable_float_parameters_are_refused(name, value):
    X = np.random.default_rng(0).normal(size=(10, 3))
    with pytest.raises(ValueError, match=f"parameter '{name}' must be"):
        DeepNetClassifier(**{name: value}, max_epochs=1).fit(X, [0, 1] * 5)


def test_huge_integer_parameters_are_validated_without_overflow():
    X = np.random.default_rng(0).normal(size=(10, 3))
    # batch_size is clipped to the sample count, so any huge int is fine
    model = DeepNetClassifier(batch_size=10**400, n_units=4, max_epochs=1).fit(X, [0, 1] * 5)
    assert model.n_iter_ == 1


def test_step_schedule_with_a_huge_decay_does_not_overflow():
    X = np.random.default_rng(0).normal(size=(10, 3))
    model = DeepNetClassifier(
        learning_rate_decay=1e308,
        decay_schedule="step",
        max_epochs=3,
        n_iter_no_change=10,
        n_units=4,
        random_state=0,
    ).fit(X, [0, 1] * 5)
    assert [record.learning_rate for record in model.history_][1:] == [0.0, 0.0]


def test_early_stopping_falls_back_to_an_unstratified_split():
    # 4 classes of 2+ samples, 90 % held out: a stratified split cannot put every class
    # on the single training sample (train_test_split raised "The train_size = 1 should be
    # greater or equal to the number of classes = 4").
    X = np.random.default_rng(0).normal(size=(10, 3))
    y = np.array([0, 0, 1, 1, 2, 2, 3, 3, 3, 3])
    model = DeepNetClassifier(
        early_stopping=True, validation_fraction=0.9, max_epochs=2, n_units=4, random_state=0
    ).fit(X, y)
    assert len(model.validation_scores_) == model.n_iter_


@pytest.mark.parametrize("early_stopping", [False, True])
def test_fit_never_returns_a_model_whose_outputs_overflow(early_stopping):
    # The last update leaves finite weights that overflow at inference: fit must notice
    # (DivergenceWarning) and restore usable weights, not return NaN probabilities.
    X = np.random.default_rng(0).normal(size=(46, 5))
    X[:] = X[0]  # constant features
    params = dict(
        n_layers=3,
        n_units=12,
        activation="relu",
        batch_norm=False,
        optimizer="momentum",
        learning_rate=436.4,
        beta=0.999999,
        l2=1e300,
        max_epochs=1,
        dtype="float64",
        random_state=20,
        early_stopping=early_stopping,
        validation_fraction=0.5,
    )
    y = np.arange(46) % 2
    with pytest.warns(DivergenceWarning, match="became non-finite"):
        model = DeepNetClassifier(**params).fit(X, y)
    assert model.diverged_
    assert np.all(np.isfinite(model.predict_proba(X)))


@pytest.mark.filterwarnings("ignore:.*encountered in matmul:RuntimeWarning")
def test_a_model_whose_outputs_overflow_refuses_to_give_probabilities():
    X = np.random.default_rng(0).normal(size=(20, 3))
    y = np.arange(20) % 2
    model = DeepNetClassifier(n_units=4, max_epochs=1, random_state=0).fit(X, y)
    # Weights 1000 times what training left: inputs near float32 max overflow.
    model.network_.dense[0].W[...] *= 1e3
    X_huge = np.full((2, 3), 3e38)
    with pytest.raises(ValueError, match="output is not finite for 2 of 2 samples"):
        model.predict_proba(X_huge)
    with pytest.raises(ValueError, match="output is not finite"):
        model.predict_log_proba(X_huge)


# ---------------------------------------------------------------- the tally
@pytest.fixture(scope="module", autouse=True)
def write_counts(tmp_path_factory):
    yield
    path = tmp_path_factory.getbasetemp() / "fuzz_counts.json"
    report = {"counts": COUNTS, "errors": ERRORS, "coverage": COVERAGE}
    path.write_text(json.dumps(report, indent=2, sort_keys=True))


def test_zz_inputs_tried(tmp_path_factory):
    """Print the tally (runs last in this file: pytest keeps definition order)."""
    if not COUNTS:
        pytest.skip("the fuzz tests did not run in this session")
    total = sum(c["tried"] for c in COUNTS.values())
    print(f"\nfuzz inputs tried: {total} {json.dumps(COUNTS, sort_keys=True)}")
    print(f"errors on inputs not invalid by construction: {json.dumps(ERRORS, indent=1)}")
    random_inputs = COUNTS.get("random_inputs")
    if random_inputs:  # the fuzzing is not vacuous: both outcomes occur often ...
        assert random_inputs["clean_fit"] >= random_inputs["tried"] // 3
        assert random_inputs["must_raise_and_raised"] >= random_inputs["tried"] // 10
        # ... and every kind of input was drawn
        expected = (
            [f"X kind: {kind}" for kind in X_KINDS]
            + [f"X dtype: {dtype}" for dtype in X_DTYPES]
            + [f"labels: {kind}" for kind in LABEL_KINDS]
            + [f"invalid parameter: {name}" for name in INVALID]
            + [f"activation: {name}" for name in ACTIVATIONS]
            + [f"optimizer: {name}" for name in OPTIMIZERS]
            + [f"decay_schedule: {name}" for name in SCHEDULES]
            + [f"n_layers: {n}" for n in range(4)]
            + ["batch_norm: True", "batch_norm: False", "early_stopping: True"]
            + ["early_stopping: False", "dtype: float32", "dtype: float64"]
            + ["two samples per class", "method: partial_fit"]
        )
        missing = [tag for tag in expected if not COVERAGE[tag]]
        assert not missing, f"never drawn: {missing}"
        print(f"least drawn: {sorted(COVERAGE.items(), key=lambda kv: kv[1])[:5]}")
