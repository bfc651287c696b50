"""The fast paths (flat parameter vector, fused batch-norm passes, in-place updates)
against their plain definitions."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from optuna_dl.estimator import SINGLE_THREAD_FLOPS, _blas_threads
from optuna_dl.nn.activations import ACTIVATIONS
from optuna_dl.nn.layers import BatchNorm
from optuna_dl.nn.network import Network


def reference_batchnorm_backward(z, gamma, dout, eps):
    """The textbook backward pass, term by term (CS231n style)."""
    m = z.shape[0]
    mu = z.mean(axis=0)
    var = ((z - mu) ** 2).mean(axis=0)
    xhat = (z - mu) / np.sqrt(var + eps)
    dxhat = dout * gamma
    dvar = np.sum(dxhat * (z - mu) * -0.5 * (var + eps) ** -1.5, axis=0)
    dmu = np.sum(-dxhat / np.sqrt(var + eps), axis=0) + dvar * np.mean(-2 * (z - mu), axis=0)
    dz = dxhat / np.sqrt(var + eps) + dvar * 2 * (z - mu) / m + dmu / m
    return dz, np.sum(dout * xhat, axis=0), np.sum(dout, axis=0)


def test_fused_batchnorm_backward_matches_the_textbook_derivation():
    rng = np.random.default_rng(0)
    z = rng.normal(3.0, 2.0, (16, 5))
    dout = rng.standard_normal((16, 5))
    layer = BatchNorm(5, dtype=np.float64)
    layer.gamma[...] = rng.uniform(0.5, 2.0, 5)
    layer.forward(z, training=True)
    dz = layer.backward(dout)
    expected_dz, expected_dgamma, expected_dbeta = reference_batchnorm_backward(
        z, layer.gamma, dout, layer.eps
    )
    np.testing.assert_allclose(dz, expected_dz, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.dgamma, expected_dgamma, rtol=1e-12)
    np.testing.assert_allclose(layer.dbeta, expected_dbeta, rtol=1e-12)


def test_batchnorm_leaves_its_inputs_alone():
    rng = np.random.default_rng(1)
    z = rng.standard_normal((8, 4))
    dout = rng.standard_normal((8, 4))
    z_before, dout_before = z.copy(), dout.copy()
    layer = BatchNorm(4, dtype=np.float64)
    layer.forward(z, training=True)
    layer.backward(dout)
    assert np.array_equal(z, z_before)
    assert np.array_equal(dout, dout_before)


def make_network(dtype=np.float32):
    return Network(
        6, 3, [8, 8], batch_norm=True, rng=np.random.default_rng(0), dtype=np.dtype(dtype)
    )


def test_parameters_are_views_of_one_flat_vector():
    network = make_network()
    assert network.flat_params.size == sum(p.size for p in network.params)
    for param, grad in zip(network.params, network.grads):
        assert np.shares_memory(param, network.flat_params)
        assert np.shares_memory(grad, network.flat_grads)
    network.flat_params[...] = 7.0
    assert all(np.all(p == 7.0) for p in network.params)
    assert np.all(network.dense[0].W == 7.0)


def test_flat_gradients_are_what_backward_writes():
    network = make_network(np.float64)
    rng = np.random.default_rng(2)
    network.forward(rng.standard_normal((10, 6)), training=True)
    network.backward(rng.standard_normal((10, 3)))
    flat_from_layers = np.concatenate([g.ravel() for g in network.grads])
    assert np.array_equal(flat_from_layers, network.flat_grads)
    assert np.any(network.flat_grads != 0)


def test_pickled_network_keeps_its_views():
    network = pickle.loads(pickle.dumps(make_network()))
    for param in network.params:
        assert np.shares_memory(param, network.flat_params)
    network.flat_params[:] = 0.5
    assert np.all(network.dense[-1].W == 0.5)


def test_blas_threads_are_capped_only_for_small_layers():
    small = Network(64, 10, [32], rng=np.random.default_rng(0))
    large = Network(784, 10, [256, 256], rng=np.random.default_rng(0))
    assert 6 * 128 * sum(W.size for W in small.weights) < SINGLE_THREAD_FLOPS
    assert _blas_threads(small, 128) == 1
    assert _blas_threads(large, 128) is None


def test_a_small_last_batch_is_merged_into_the_one_before():
    from optuna_dl.estimator import _batch_bounds

    assert _batch_bounds(1347, 64)[-1] == (1280, 1347)  # 3 leftover rows merged
    assert _batch_bounds(1376, 64)[-1] == (1344, 1376)  # 32 rows: a batch of their own
    assert _batch_bounds(10, 64) == [(0, 10)]
    bounds = _batch_bounds(1000, 128)
    assert bounds[0] == (0, 128) and bounds[-1][1] == 1000
    assert all(a == b for (_, a), (b, _) in zip(bounds, bounds[1:]))


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("batch_norm", [True, False])
def test_output_bound_bounds_every_inference_value(activation, batch_norm):
    rng = np.random.default_rng(3)
    network = Network(
        5,
        4,
        [7, 6],
        activation=activation,
        batch_norm=batch_norm,
        dropout=0.2,
        rng=rng,
        dtype=np.dtype(np.float64),
    )
    for layer in network.layers:  # move the batch-norm statistics off their defaults
        for buffer in layer.buffers:
            buffer[...] = rng.uniform(0.1, 3.0, buffer.shape)
    X = rng.normal(0, 10, (200, 5))
    bound = network.output_bound(np.abs(X).max(axis=0))
    values = X
    for layer in network.layers:
        values = layer.forward(values.copy(), training=False)
        assert np.abs(values).max() <= bound
    assert bound < 1e6  # and it is not vacuous


def test_huge_weights_give_an_infinite_or_huge_bound():
    network = make_network()
    network.dense[0].W[...] = 1e30
    assert network.output_bound(np.full(6, 1e10)) > 1e38


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch_norm", [True, False])
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_folded_inference_matches_the_layer_by_layer_forward_pass(
    activation, batch_norm, dtype, monkeypatch
):
    import optuna_dl.nn.network as network_module

    # Blocks of 64 rows: 150 rows cover full blocks and a partial last one.
    monkeypatch.setattr(network_module, "INFERENCE_BLOCK_BYTES", 64 * 9 * np.dtype(dtype).itemsize)
    rng = np.random.default_rng(1)
    network = Network(
        6,
        4,
        [9, 7],
        activation=activation,
        batch_norm=batch_norm,
        dropout=0.3,
        rng=rng,
        dtype=dtype,
    )
    for _ in range(3):  # moving statistics away from their initial 0 and 1
        network.forward(rng.normal(2.0, 3.0, (32, 6)).astype(dtype), training=True)
    for layer in network.layers:
        if isinstance(layer, BatchNorm):
            layer.gamma[...] = rng.uniform(-2.0, 2.0, layer.gamma.shape)
            layer.beta[...] = rng.uniform(-1.0, 1.0, layer.beta.shape)
    X = rng.normal(2.0, 3.0, (150, 6)).astype(dtype)
    expected = network.forward(X.copy(), training=False)
    got = network.infer(X)
    assert got.dtype == dtype and got.shape == (150, 4)
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, expected, rtol=tolerance, atol=tolerance)


def test_folded_inference_leaves_parameters_and_input_alone():
    rng = np.random.default_rng(2)
    network = Network(5, 3, [8], rng=rng)
    network.forward(rng.standard_normal((16, 5)).astype(np.float32), training=True)
    state = [a.copy() for a in network.state_arrays()]
    X = rng.standard_normal((40, 5)).astype(np.float32)
    X_before = X.copy()
    network.infer(X)
    assert network.infer(X[:0]).shape == (0, 3)
    np.testing.assert_array_equal(X, X_before)
    for before, after in zip(state, network.state_arrays()):
        np.testing.assert_array_equal(before, after)
