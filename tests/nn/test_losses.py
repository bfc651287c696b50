"""Softmax, log-softmax and cross-entropy: properties checked with Hypothesis."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from optuna_dl.nn import log_softmax, softmax, softmax_cross_entropy

SETTINGS = settings(max_examples=60, deadline=None, database=None)
# Underflow of exp(-huge) to 0 is the intended, harmless outcome; anything else raises.
STRICT = {"over": "raise", "divide": "raise", "invalid": "raise", "under": "ignore"}

shapes = st.tuples(st.integers(1, 12), st.integers(2, 6))


def logits_strategy(bound: float = 50.0, dtype=np.float64):
    return shapes.flatmap(
        lambda shape: arrays(
            dtype,
            shape,
            elements=st.floats(-bound, bound, allow_nan=False, width=np.dtype(dtype).itemsize * 8),
        )
    )


@st.composite
def logits_and_labels(draw, bound: float = 50.0):
    logits = draw(logits_strategy(bound))
    m, k = logits.shape
    labels = draw(arrays(np.int64, (m,), elements=st.integers(0, k - 1)))
    return logits, labels


def one_hot(y: np.ndarray, k: int) -> np.ndarray:
    return np.eye(k)[y]


def reference_softmax(logits: np.ndarray) -> np.ndarray:
    """Straightforward definition, in extended precision, for moderate logits only."""
    e = np.exp(logits.astype(np.longdouble))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float64)


@SETTINGS
@given(logits_strategy())
def test_softmax_rows_are_probability_vectors(logits):
    before = logits.copy()
    p = softmax(logits)
    np.testing.assert_array_equal(logits, before)  # the input is not overwritten
    assert p.shape == logits.shape
    assert np.all(p >= 0) and np.all(p <= 1)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(p, reference_softmax(logits), rtol=1e-10, atol=1e-300)
    np.testing.assert_allclose(np.exp(log_softmax(logits)), p, rtol=1e-10, atol=1e-300)
    # The largest logit of a row gets the largest probability.
    rows = np.arange(len(p))
    assert np.all(p[rows, logits.argmax(axis=1)] == p.max(axis=1))


@SETTINGS
@given(logits_strategy(), st.data())
def test_adding_a_constant_per_row_changes_nothing(logits, data):
    shifts = data.draw(
        arrays(np.float64, (logits.shape[0], 1), elements=st.floats(-1e3, 1e3, allow_nan=False))
    )
    shifted = logits + shifts
    # What is left of the shift after rounding ~ |shift| * 2**-52.
    atol = 1e-12 * (1 + np.abs(shifts).max())
    np.testing.assert_allclose(softmax(shifted), softmax(logits), rtol=1e-9, atol=atol)
    np.testing.assert_allclose(log_softmax(shifted), log_softmax(logits), rtol=0, atol=atol * 10)


@SETTINGS
@given(logits_strategy(bound=1e4))
def test_huge_logits_give_finite_results_without_overflow(logits):
    with np.errstate(**STRICT):
        p = softmax(logits)
        log_p = log_softmax(logits)
        loss, dlogits = softmax_cross_entropy(logits, logits.argmin(axis=1))
    assert np.isfinite(p).all() and np.isfinite(log_p).all()
    assert np.isfinite(loss) and np.isfinite(dlogits).all()
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-12)
    assert np.all(log_p <= 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("magnitude", [1e4, -1e4, 3e38])
def test_extreme_logits_are_handled_exactly(magnitude, dtype):
    logits = np.array([[magnitude, 0.0, -magnitude], [magnitude, magnitude, 0.0]], dtype=dtype)
    if abs(magnitude) > 1e30:
        logits = np.array([[magnitude, 0.0, 0.0], [magnitude, magnitude, 0.0]], dtype=dtype)
    with np.errstate(**STRICT):
        p = softmax(logits)
        log_p = log_softmax(logits)
        loss, dlogits = softmax_cross_entropy(logits, np.array([0, 2]))
    assert p.dtype == log_p.dtype == dlogits.dtype == dtype
    assert np.isfinite(p).all() and np.isfinite(log_p).all() and np.isfinite(loss)
    big = logits.argmax(axis=1)
    assert p[0, big[0]] == 1.0
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-6)


@SETTINGS
@given(logits_and_labels())
def test_cross_entropy_and_its_gradient(data):
    logits, y = data
    m, k = logits.shape
    before = logits.copy()
    loss, dlogits = softmax_cross_entropy(logits, y)
    np.testing.assert_array_equal(logits, before)
    assert isinstance(loss, float)
    expected_loss = -np.mean(np.log(reference_softmax(logits))[np.arange(m), y])
    if np.isfinite(expected_loss):
        assert loss == pytest.approx(expected_loss, rel=1e-9, abs=1e-12)
    assert loss >= 0
    expected = (softmax(logits) - one_hot(y, k)) / m
    np.testing.assert_allclose(dlogits, expected, rtol=1e-12, atol=1e-15)
    # Each row of the gradient sums to 0.
    np.testing.assert_allclose(dlogits.sum(axis=1), 0.0, atol=1e-14)


def test_cross_entropy_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    logits = 2 * rng.standard_normal((5, 4))
    y = np.array([0, 3, 1, 1, 2])
    _, dlogits = softmax_cross_entropy(logits, y)
    numeric = np.zeros_like(logits)
    step = 1e-6
    for index in np.ndindex(*logits.shape):
        plus, minus = logits.copy(), logits.copy()
        plus[index] += step
        minus[index] -= step
        numeric[index] = (
            softmax_cross_entropy(plus, y)[0] - softmax_cross_entropy(minus, y)[0]
        ) / (2 * step)
    np.testing.assert_allclose(dlogits, numeric, rtol=1e-7, atol=1e-10)


@SETTINGS
@given(
    st.tuples(st.integers(1, 10), st.integers(2, 6)).flatmap(
        lambda shape: st.tuples(
            arrays(np.int64, (shape[0],), elements=st.integers(0, shape[1] - 1)),
            st.just(shape[1]),
        )
    )
)
def test_perfect_logits_give_zero_loss(labels_and_k):
    y, k = labels_and_k
    loss, dlogits = softmax_cross_entropy(60.0 * one_hot(y, k), y)
    assert 0 <= loss < 1e-20
    np.testing.assert_allclose(dlogits, 0.0, atol=1e-20)
    with np.errstate(**STRICT):
        loss, _ = softmax_cross_entropy(1e4 * one_hot(y, k), y)
    assert loss == 0.0


def test_uniform_logits_give_log_k():
    for k in (2, 3, 10):
        loss, _ = softmax_cross_entropy(np.zeros((4, k)), np.arange(4) % k)
        assert loss == pytest.approx(np.log(k), rel=1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtypes_are_kept(dtype):
    logits = np.random.default_rng(1).standard_normal((6, 3)).astype(dtype)
    assert softmax(logits).dtype == dtype
    assert log_softmax(logits).dtype == dtype
    _, dlogits = softmax_cross_entropy(logits, np.array([0, 1, 2, 0, 1, 2]))
    assert dlogits.dtype == dtype


def test_integer_weights_equal_repeated_rows():
    from optuna_dl.nn import weighted_softmax_cross_entropy

    rng = np.random.default_rng(2)
    logits = 3 * rng.standard_normal((6, 4))
    y = np.array([0, 3, 1, 1, 2, 0])
    weights = np.array([1, 0, 3, 2, 1, 4])
    loss, dlogits = weighted_softmax_cross_entropy(logits, y, weights)
    rows = np.repeat(np.arange(6), weights)
    repeated_loss, repeated_grad = softmax_cross_entropy(logits[rows], y[rows])
    # Equal up to the rounding of a different summation order.
    assert loss == pytest.approx(repeated_loss, rel=1e-13)
    summed = np.zeros_like(dlogits)
    np.add.at(summed, rows, repeated_grad)
    np.testing.assert_allclose(dlogits, summed, rtol=1e-12, atol=1e-16)
    # Unit weights are the unweighted loss.
    unit_loss, unit_grad = weighted_softmax_cross_entropy(logits, y, np.ones(6))
    assert unit_loss == pytest.approx(softmax_cross_entropy(logits, y)[0], rel=1e-14)
    np.testing.assert_allclose(unit_grad, softmax_cross_entropy(logits, y)[1], rtol=1e-13)


def test_all_zero_weights_give_zero_loss_and_gradient():
    from optuna_dl.nn import weighted_softmax_cross_entropy

    loss, dlogits = weighted_softmax_cross_entropy(
        np.ones((3, 2)), np.array([0, 1, 0]), np.zeros(3)
    )
    assert loss == 0.0
    assert not dlogits.any()


def test_squared_error_and_its_gradient():
    from optuna_dl.nn import squared_error

    rng = np.random.default_rng(3)
    outputs, y = rng.standard_normal((6, 2)), rng.standard_normal((6, 2))
    loss, doutputs = squared_error(outputs, y)
    assert loss == pytest.approx(0.5 * np.mean((outputs - y) ** 2), rel=1e-14)
    np.testing.assert_allclose(doutputs, (outputs - y) / outputs.size, rtol=1e-14)
    numeric = np.zeros_like(outputs)
    step = 1e-6
    for index in np.ndindex(*outputs.shape):
        plus, minus = outputs.copy(), outputs.copy()
        plus[index] += step
        minus[index] -= step
        numeric[index] = (squared_error(plus, y)[0] - squared_error(minus, y)[0]) / (2 * step)
    np.testing.assert_allclose(doutputs, numeric, rtol=1e-7, atol=1e-10)


def test_squared_error_integer_weights_equal_repeated_rows():
    from optuna_dl.nn import squared_error

    rng = np.random.default_rng(4)
    outputs, y = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    weights = np.array([2, 0, 1, 3, 1])
    loss, doutputs = squared_error(outputs, y, weights)
    rows = np.repeat(np.arange(5), weights)
    repeated_loss, repeated_grad = squared_error(outputs[rows], y[rows])
    assert loss == pytest.approx(repeated_loss, rel=1e-13)
    summed = np.zeros_like(doutputs)
    np.add.at(summed, rows, repeated_grad)
    np.testing.assert_allclose(doutputs, summed, rtol=1e-12, atol=1e-16)
    zero_loss, zero_grad = squared_error(outputs, y, np.zeros(5))
    assert zero_loss == 0.0 and not zero_grad.any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_squared_error_keeps_the_output_dtype(dtype):
    from optuna_dl.nn import squared_error

    outputs = np.ones((3, 1), dtype=dtype)
    _, doutputs = squared_error(outputs, np.zeros((3, 1)), np.ones(3))
    assert doutputs.dtype == dtype


def test_huber_gradient_matches_finite_differences():
    from optuna_dl.nn import huber

    rng = np.random.default_rng(6)
    outputs, y = 2 * rng.standard_normal((6, 2)), rng.standard_normal((6, 2))
    weights = rng.uniform(0, 2, 6)
    residual = np.abs(outputs - y)
    assert (residual > 1.2).any() and (residual < 0.8).any()  # both branches
    assert np.abs(residual - 1.0).min() > 1e-3  # no residual at the kink
    _, doutputs = huber(outputs, y, weights)
    numeric = np.zeros_like(outputs)
    step = 1e-6
    for index in np.ndindex(*outputs.shape):
        plus, minus = outputs.copy(), outputs.copy()
        plus[index] += step
        minus[index] -= step
        numeric[index] = (huber(plus, y, weights)[0] - huber(minus, y, weights)[0]) / (2 * step)
    np.testing.assert_allclose(doutputs, numeric, rtol=1e-7, atol=1e-10)


def test_huber_is_squared_error_for_small_residuals_and_linear_beyond():
    from optuna_dl.nn import huber, squared_error

    rng = np.random.default_rng(7)
    y = rng.standard_normal((5, 2))
    near = y + 0.5 * rng.uniform(-1, 1, y.shape)
    loss, grad = huber(near, y)
    expected_loss, expected_grad = squared_error(near, y)
    assert loss == pytest.approx(expected_loss, rel=1e-13)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-13)
    far = y + 10.0
    loss, grad = huber(far, y)
    assert loss == pytest.approx(10.0 - 0.5, rel=1e-13)  # delta * (|r| - delta / 2)
    np.testing.assert_allclose(grad, 1.0 / far.size, rtol=1e-13)  # clipped at delta


def test_huber_integer_weights_equal_repeated_rows():
    from optuna_dl.nn import huber

    rng = np.random.default_rng(8)
    outputs, y = 2 * rng.standard_normal((5, 2)), rng.standard_normal((5, 2))
    weights = np.array([2, 0, 1, 3, 1])
    loss, grad = huber(outputs, y, weights)
    rows = np.repeat(np.arange(5), weights)
    repeated_loss, repeated_grad = huber(outputs[rows], y[rows])
    assert loss == pytest.approx(repeated_loss, rel=1e-13)
    summed = np.zeros_like(grad)
    np.add.at(summed, rows, repeated_grad)
    np.testing.assert_allclose(grad, summed, rtol=1e-12, atol=1e-16)
