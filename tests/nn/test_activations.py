"""Activations: values, in-place contract, derivatives from the output, no overflow."""

from __future__ import annotations

import numpy as np
import pytest

from optuna_dl.nn import ACTIVATIONS, DERIVATIVES
from optuna_dl.nn.activations import LEAKY_RELU_SLOPE
from optuna_dl.nn.layers import Dropout

NAMES = sorted(ACTIVATIONS)


def away_from_zero(z: np.ndarray, margin: float = 1e-4) -> np.ndarray:
    """Push values with ``|z| < margin`` out of the kink region of (leaky) ReLU."""
    z = z.copy()
    small = np.abs(z) < margin
    z[small] = np.where(z[small] < 0, -margin, margin) * 10
    return z


def apply(name: str, z: np.ndarray) -> np.ndarray:
    return ACTIVATIONS[name](np.array(z, copy=True))


def test_tables_have_the_same_keys():
    assert set(ACTIVATIONS) == set(DERIVATIVES)
    assert {"relu", "leaky_relu", "tanh", "sigmoid"} <= set(ACTIVATIONS)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", NAMES)
def test_activation_and_derivative_work_in_place(name, dtype):
    rng = np.random.default_rng(0)
    z = rng.standard_normal((6, 5)).astype(dtype)
    out = ACTIVATIONS[name](z)
    assert out is z
    assert out.dtype == dtype
    da = rng.standard_normal((6, 5)).astype(dtype)
    result = DERIVATIVES[name](out, da)
    assert result is da
    assert result.dtype == dtype


@pytest.mark.parametrize("name", NAMES)
def test_derivative_matches_finite_differences_elementwise(name):
    rng = np.random.default_rng(1)
    z = away_from_zero(3 * rng.standard_normal((20, 7)))
    upstream = rng.standard_normal(z.shape)
    step = 1e-6
    numeric = (apply(name, z + step) - apply(name, z - step)) / (2 * step)
    a = apply(name, z)
    analytic = DERIVATIVES[name](a, upstream.copy())
    np.testing.assert_allclose(analytic, upstream * numeric, rtol=1e-7, atol=1e-9)
    # With a unit upstream gradient the derivative itself comes out.
    np.testing.assert_allclose(
        DERIVATIVES[name](a, np.ones_like(z)), numeric, rtol=1e-7, atol=1e-9
    )


@pytest.mark.parametrize("name", NAMES)
def test_derivative_does_not_modify_the_activation_output(name):
    rng = np.random.default_rng(2)
    a = apply(name, rng.standard_normal((4, 4)))
    a_before = a.copy()
    DERIVATIVES[name](a, rng.standard_normal((4, 4)))
    np.testing.assert_array_equal(a, a_before)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_never_overflows(dtype):
    z = np.array([-1e4, -1e3, -50.0, 0.0, 50.0, 1e3, 1e4], dtype=dtype)
    with np.errstate(all="raise"):
        a = ACTIVATIONS["sigmoid"](z.copy())
        da = DERIVATIVES["sigmoid"](a, np.ones_like(a))
    assert np.isfinite(a).all() and np.isfinite(da).all()
    assert a.dtype == dtype
    assert a[0] == 0.0 and a[-1] == 1.0
    assert a[3] == 0.5
    assert np.all((a >= 0) & (a <= 1))
    assert np.all(np.diff(a) >= 0)
    np.testing.assert_array_equal(da[[0, 1, -2, -1]], 0.0)


def test_sigmoid_matches_the_logistic_formula():
    z = np.linspace(-30, 30, 121)
    expected = 1.0 / (1.0 + np.exp(-z))
    np.testing.assert_allclose(apply("sigmoid", z), expected, rtol=1e-12, atol=1e-15)


def test_tanh_matches_numpy():
    z = np.linspace(-5, 5, 41)
    np.testing.assert_allclose(apply("tanh", z), np.tanh(z), rtol=1e-15)
    with np.errstate(all="raise"):
        big = apply("tanh", np.array([-1e4, 1e4]))
    np.testing.assert_array_equal(big, [-1.0, 1.0])


Z = np.array([-2.0, -0.5, 0.0, 0.5, 2.0])


def test_relu_values_and_derivative():
    a = apply("relu", Z)
    np.testing.assert_array_equal(a, [0.0, 0.0, 0.0, 0.5, 2.0])
    np.testing.assert_array_equal(DERIVATIVES["relu"](a, np.full(5, 3.0)), [0, 0, 0, 3, 3])


def test_leaky_relu_values_and_derivative():
    assert LEAKY_RELU_SLOPE == 0.01
    a = apply("leaky_relu", Z)
    np.testing.assert_allclose(a, [-0.02, -0.005, 0.0, 0.5, 2.0], rtol=1e-15)
    d = DERIVATIVES["leaky_relu"](a, np.full(5, 3.0))
    np.testing.assert_allclose(d, [0.03, 0.03, 0.03, 3, 3], rtol=1e-15)


# Dropout sits right after the activation in every hidden block.


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
def test_inverted_dropout_keeps_the_expected_activation(rate, dtype):
    layer = Dropout(rate, np.random.default_rng(0))
    x = np.random.default_rng(1).uniform(0.5, 1.5, (400, 500)).astype(dtype)
    x_before = x.copy()
    out = layer.forward(x, training=True)
    np.testing.assert_array_equal(x, x_before)  # not in place: the activation keeps x
    assert out.dtype == dtype
    keep = 1 - rate
    kept = out != 0
    # Kept units are scaled by 1 / keep, the others are zero.
    np.testing.assert_allclose(out[kept], x[kept] / keep, rtol=1e-6)
    # About ``rate`` of the units dropped (binomial standard error ~ 1e-3 here).
    assert abs(1 - kept.mean() - rate) < 0.005
    # The mean activation is unchanged in expectation.
    assert abs(out.astype(np.float64).mean() / x.astype(np.float64).mean() - 1) < 0.01 * (
        1 + rate / keep
    )
    # The backward pass applies the same mask and scale.
    dout = np.ones_like(x)
    dx = layer.backward(dout)
    np.testing.assert_allclose(dx, np.where(kept, 1 / keep, 0.0), rtol=1e-6)


@pytest.mark.parametrize("rate", [0.0, 0.5])
def test_dropout_is_the_identity_at_inference(rate):
    layer = Dropout(rate, np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((50, 20))
    out = layer.forward(x, training=False)
    np.testing.assert_array_equal(out, x)
    dout = np.random.default_rng(2).standard_normal((50, 20))
    np.testing.assert_array_equal(layer.backward(dout.copy()), dout)


def test_dropout_rate_zero_is_the_identity_in_training():
    layer = Dropout(0.0, np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((50, 20))
    np.testing.assert_array_equal(layer.forward(x, training=True), x)
    dout = np.random.default_rng(2).standard_normal((50, 20))
    np.testing.assert_array_equal(layer.backward(dout.copy()), dout)


def test_dropout_masks_differ_between_batches():
    layer = Dropout(0.5, np.random.default_rng(0))
    x = np.ones((20, 30))
    first = layer.forward(x, training=True) != 0
    second = layer.forward(x, training=True) != 0
    assert not np.array_equal(first, second)
