"""Batch norm: normalization, moving averages, inference independence, gamma/beta."""

from __future__ import annotations

import numpy as np
import pytest

from optuna_dl.nn import Network
from optuna_dl.nn.layers import BatchNorm

DTYPES = [np.float32, np.float64]


def batch(rng: np.random.Generator, m: int, n: int, dtype) -> np.ndarray:
    """Features with very different means and scales."""
    means = np.linspace(-20, 30, n)
    scales = np.geomspace(0.5, 40, n)
    return (means + scales * rng.standard_normal((m, n))).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_training_output_has_zero_mean_and_unit_variance(dtype):
    rng = np.random.default_rng(0)
    layer = BatchNorm(6, dtype=dtype)
    z = batch(rng, 64, 6, dtype)
    z_before = z.copy()
    out = layer.forward(z, training=True)
    assert out.dtype == dtype
    np.testing.assert_array_equal(z, z_before)  # the input is not overwritten
    out64 = out.astype(np.float64)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(out64.mean(axis=0), 0.0, atol=tol)
    # The (biased) variance is exactly var / (var + eps) ...
    variance = z.astype(np.float64).var(axis=0)
    np.testing.assert_allclose(out64.var(axis=0), variance / (variance + layer.eps), rtol=tol)
    # ... which is 1 up to eps / var <= 4e-5 at these scales.
    np.testing.assert_allclose(out64.var(axis=0), 1.0, rtol=1e-4)


def test_training_output_matches_the_definition():
    rng = np.random.default_rng(1)
    layer = BatchNorm(4, dtype=np.float64, eps=1e-3)
    z = batch(rng, 9, 4, np.float64)
    expected = (z - z.mean(axis=0)) / np.sqrt(z.var(axis=0) + 1e-3)
    np.testing.assert_allclose(layer.forward(z, training=True), expected, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("dtype", DTYPES)
def test_running_statistics_follow_the_ema_definition(dtype):
    rng = np.random.default_rng(2)
    n = 5
    layer = BatchNorm(n, dtype=dtype)
    assert layer.momentum == 0.9
    running_mean, running_var = np.zeros(n), np.ones(n)
    np.testing.assert_array_equal(layer.running_mean, running_mean)
    np.testing.assert_array_equal(layer.running_var, running_var)
    for m in (8, 32, 3, 17, 50):
        z = batch(rng, m, n, dtype)
        z64 = z.astype(np.float64)
        layer.forward(z, training=True)
        running_mean = 0.9 * running_mean + 0.1 * np.mean(z64, axis=0)
        running_var = 0.9 * running_var + 0.1 * np.var(z64, axis=0)  # biased, ddof=0
        rtol = 1e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(layer.running_mean, running_mean, rtol=rtol, atol=rtol)
        np.testing.assert_allclose(layer.running_var, running_var, rtol=rtol)
        assert layer.running_mean.dtype == dtype and layer.running_var.dtype == dtype
    # Inference never changes the moving averages.
    before = [layer.running_mean.copy(), layer.running_var.copy()]
    layer.forward(batch(rng, 10, n, dtype), training=False)
    np.testing.assert_array_equal(layer.running_mean, before[0])
    np.testing.assert_array_equal(layer.running_var, before[1])


def test_buffers_are_the_running_statistics_in_place():
    layer = BatchNorm(3, dtype=np.float64)
    buffers = layer.buffers
    layer.forward(batch(np.random.default_rng(3), 10, 3, np.float64), training=True)
    assert buffers[0] is layer.running_mean and buffers[1] is layer.running_var
    assert not np.array_equal(buffers[0], np.zeros(3))


@pytest.mark.parametrize("dtype", DTYPES)
def test_gamma_and_beta_are_applied(dtype):
    rng = np.random.default_rng(4)
    n = 4
    layer = BatchNorm(n, dtype=dtype)
    gamma = np.array([2.0, -0.5, 3.0, 0.1])
    beta = np.array([1.0, -3.0, 0.0, 7.5])
    layer.gamma[...] = gamma
    layer.beta[...] = beta
    z = batch(rng, 30, n, dtype)
    z64 = z.astype(np.float64)
    rtol = 1e-4 if dtype == np.float32 else 1e-11
    out = layer.forward(z, training=True).astype(np.float64)
    z_norm = (z64 - z64.mean(axis=0)) / np.sqrt(z64.var(axis=0) + layer.eps)
    np.testing.assert_allclose(out, gamma * z_norm + beta, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(out.mean(axis=0), beta, atol=rtol * 10)
    shrink = np.sqrt(z64.var(axis=0) / (z64.var(axis=0) + layer.eps))
    np.testing.assert_allclose(out.std(axis=0), np.abs(gamma) * shrink, rtol=rtol * 10)
    np.testing.assert_allclose(out.std(axis=0), np.abs(gamma), rtol=1e-4)
    # Inference: the moving averages replace the batch statistics.
    z_new = batch(rng, 5, n, dtype)
    out = layer.forward(z_new, training=False).astype(np.float64)
    mean, var = layer.running_mean.astype(np.float64), layer.running_var.astype(np.float64)
    expected = gamma * (z_new.astype(np.float64) - mean) / np.sqrt(var + layer.eps) + beta
    np.testing.assert_allclose(out, expected, rtol=rtol, atol=rtol)


def trained_network(dtype, seed=5) -> Network:
    rng = np.random.default_rng(seed)
    network = Network(6, 4, [8, 7], activation="tanh", batch_norm=True, rng=rng, dtype=dtype)
    for param in network.params:
        param += (0.2 * rng.standard_normal(param.shape)).astype(dtype)
    for _ in range(5):  # non-trivial moving averages
        network.forward(batch(rng, 16, 6, dtype), training=True)
    return network


@pytest.mark.parametrize("dtype", DTYPES)
def test_inference_output_of_a_sample_does_not_depend_on_the_batch(dtype):
    network = trained_network(dtype)
    rng = np.random.default_rng(6)
    X = batch(rng, 40, 6, dtype)
    row = X[17:18].copy()
    alone = network.forward(row, training=False)
    inside = network.forward(X, training=False)[17:18]
    others = batch(rng, 40, 6, dtype)
    others[3] = row[0]
    elsewhere = network.forward(others, training=False)[3:4]
    assert alone.dtype == inside.dtype == dtype
    rtol = 1e-6 if dtype == np.float32 else 1e-13
    scale = np.abs(alone).max()
    np.testing.assert_allclose(inside, alone, rtol=rtol, atol=rtol * scale)
    np.testing.assert_allclose(elsewhere, alone, rtol=rtol, atol=rtol * scale)


@pytest.mark.parametrize("dtype", DTYPES)
def test_training_output_of_a_sample_does_depend_on_the_batch(dtype):
    """The counterpart: batch statistics make training mode batch-dependent."""
    network = trained_network(dtype)
    rng = np.random.default_rng(7)
    X, others = batch(rng, 40, 6, dtype), batch(rng, 40, 6, dtype)
    others[3] = X[17]
    a = network.forward(X, training=True)[17]
    b = network.forward(others, training=True)[3]
    assert np.abs(a - b).max() > 1e-3


def test_backward_sums_for_gamma_and_beta():
    rng = np.random.default_rng(8)
    layer = BatchNorm(3, dtype=np.float64)
    z = batch(rng, 11, 3, np.float64)
    layer.forward(z, training=True)
    dout = rng.standard_normal((11, 3))
    dz = layer.backward(dout)
    z_norm = (z - z.mean(axis=0)) / np.sqrt(z.var(axis=0) + layer.eps)
    np.testing.assert_allclose(layer.dbeta, dout.sum(axis=0), rtol=1e-13)
    np.testing.assert_allclose(layer.dgamma, (dout * z_norm).sum(axis=0), rtol=1e-12)
    # Shifting every sample by the same amount changes nothing, so dz sums to 0 per feature.
    np.testing.assert_allclose(dz.sum(axis=0), 0.0, atol=1e-13 * np.abs(dz).sum())
