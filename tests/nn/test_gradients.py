"""Finite-difference proof of the analytical back-propagation, in float64."""

from __future__ import annotations

import numpy as np
import pytest

from optuna_dl.nn import ACTIVATIONS, Network, softmax_cross_entropy
from optuna_dl.nn.layers import Activation, BatchNorm, Dense, Dropout

N_INPUTS, N_CLASSES, BATCH = 4, 3, 7
HIDDEN = [5, 5]
STEP = 1e-6
TOLERANCE = 1e-6
# Pre-activations closer than this to 0 could cross the ReLU kink under the step.
KINK_MARGIN = 1e-4


def relative_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """``|a - n| / max(|a| + |n|, tiny)`` on the whole (flattened) vector."""
    analytic, numeric = np.ravel(analytic), np.ravel(numeric)
    scale = np.linalg.norm(analytic) + np.linalg.norm(numeric)
    return float(np.linalg.norm(analytic - numeric) / max(scale, 1e-300))


def numeric_gradient(loss_fn, array: np.ndarray, step: float = STEP) -> np.ndarray:
    """Central differences of ``loss_fn()`` with respect to ``array``, perturbed in place."""
    grad = np.zeros_like(array)
    for index in np.ndindex(*array.shape):
        original = array[index]
        array[index] = original + step
        plus = loss_fn()
        array[index] = original - step
        minus = loss_fn()
        array[index] = original
        grad[index] = (plus - minus) / (2 * step)
    return grad


def make_problem(activation: str, batch_norm: bool, dropout: float = 0.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    network = Network(
        N_INPUTS,
        N_CLASSES,
        HIDDEN,
        activation=activation,
        batch_norm=batch_norm,
        dropout=dropout,
        rng=rng,
        dtype=np.float64,
    )
    # Move every parameter off its special initial value (zero biases, gamma = 1,
    # beta = 0) so that every term of every gradient is exercised.
    for param in network.params:
        param += 0.3 * rng.standard_normal(param.shape)
    X = rng.standard_normal((BATCH, N_INPUTS))
    y = rng.integers(0, N_CLASSES, BATCH)
    y[:N_CLASSES] = np.arange(N_CLASSES)
    return network, X, y


def smallest_pre_activation(network: Network, X: np.ndarray) -> float:
    """min |z| over the inputs of every Activation layer for a training forward."""
    out, smallest = X, np.inf
    for layer in network.layers:
        if isinstance(layer, Activation):
            smallest = min(smallest, float(np.abs(out).min()))
        out = layer.forward(out, True)
    return smallest


def reseed_dropout(network: Network, seed: int = 1234) -> None:
    """Give every Dropout layer a fresh generator, so the next forward draws the same masks."""
    for i, layer in enumerate(network.layers):
        if isinstance(layer, Dropout):
            layer.rng = np.random.default_rng([seed, i])


def check_network_gradients(network: Network, X: np.ndarray, y: np.ndarray) -> None:
    X_before = X.copy()
    reseed_dropout(network)
    logits = network.forward(X, training=True)
    loss, dlogits = softmax_cross_entropy(logits, y)
    network.backward(dlogits)
    analytic = [g.copy() for g in network.grads]
    np.testing.assert_array_equal(X, X_before)  # the forward must not touch its input
    assert np.isfinite(loss) and loss > 0

    def loss_fn() -> float:
        reseed_dropout(network)
        return softmax_cross_entropy(network.forward(X, training=True), y)[0]

    assert loss_fn() == pytest.approx(loss, rel=1e-12)
    params = network.params
    assert len(params) == len(analytic)
    numeric = [numeric_gradient(loss_fn, p) for p in params]
    for i, (a, n) in enumerate(zip(analytic, numeric)):
        assert a.shape == params[i].shape
        assert np.abs(n).max() > 1e-8, f"param {i} has a vanishing numeric gradient"
        error = relative_error(a, n)
        assert error < TOLERANCE, f"param {i} ({a.shape}): relative error {error:.2e}"
    total = relative_error(
        np.concatenate([a.ravel() for a in analytic]), np.concatenate([n.ravel() for n in numeric])
    )
    assert total < TOLERANCE


@pytest.mark.parametrize("batch_norm", [False, True], ids=["plain", "batch_norm"])
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_network_gradients_match_finite_differences(activation, batch_norm, backend):
    network, X, y = make_problem(activation, batch_norm)
    assert smallest_pre_activation(network, X) > KINK_MARGIN
    network.forward(X, training=True)
    fused = [layer.fused_pending for layer in network.layers if isinstance(layer, BatchNorm)]
    assert fused == ([backend == "numba"] * len(HIDDEN) if batch_norm else [])
    network.backward(softmax_cross_entropy(network.forward(X, training=True), y)[1])
    check_network_gradients(network, X, y)


@pytest.mark.parametrize("batch_norm", [False, True], ids=["plain", "batch_norm"])
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_network_gradients_with_a_fixed_dropout_mask(activation, batch_norm, backend):
    network, X, y = make_problem(activation, batch_norm, dropout=0.4, seed=1)
    assert any(isinstance(layer, Dropout) for layer in network.layers)
    assert smallest_pre_activation(network, X) > KINK_MARGIN
    # The reseeded masks really drop units (otherwise this is the plain test again).
    reseed_dropout(network)
    network.forward(X, training=True)
    masks = [layer._mask for layer in network.layers if isinstance(layer, Dropout)]
    assert all(mask is not None and (mask == 0).any() for mask in masks)
    check_network_gradients(network, X, y)


def test_the_gradient_check_detects_a_wrong_gradient(backend):
    """The checker itself can fail: a corrupted backward is caught."""
    network, X, y = make_problem("tanh", batch_norm=True)
    layer = next(layer for layer in network.layers if isinstance(layer, BatchNorm))
    # The numba backend runs the batch norm and its activation as one fused pass.
    name = "backward_activation" if backend == "numba" else "backward"
    original_backward = getattr(layer, name)

    def wrong_backward(dout):
        dz = original_backward(dout)
        layer.dgamma *= 1.001
        return dz

    setattr(layer, name, wrong_backward)
    with pytest.raises(AssertionError, match="relative error"):
        check_network_gradients(network, X, y)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_input_gradient_of_a_dense_batchnorm_stack(activation):
    rng = np.random.default_rng(7)
    dtype = np.float64
    layers = [
        Dense(4, 6, use_bias=False, initializer="glorot_uniform", rng=rng, dtype=dtype),
        BatchNorm(6, dtype=dtype),
        Activation(activation),
        Dense(6, 3, use_bias=True, initializer="glorot_uniform", rng=rng, dtype=dtype),
    ]
    for layer in layers:
        for param in layer.params:
            param += 0.3 * rng.standard_normal(param.shape)
    X = rng.standard_normal((BATCH, 4))
    weights = rng.standard_normal((BATCH, 3))

    def forward() -> np.ndarray:
        out = X
        for layer in layers:
            out = layer.forward(out, True)
        return out

    def loss_fn() -> float:
        return float(np.sum(forward() * weights))

    out = X
    for layer in layers:
        if isinstance(layer, Activation):
            assert np.abs(out).min() > KINK_MARGIN
        out = layer.forward(out, True)
    dout = weights.copy()
    for layer in reversed(layers):
        dout = layer.backward(dout)
    dX = dout
    assert dX.shape == X.shape
    numeric = numeric_gradient(loss_fn, X)
    assert np.abs(numeric).max() > 1e-6
    assert relative_error(dX, numeric) < TOLERANCE


def test_first_dense_layer_skips_its_input_gradient():
    network, X, y = make_problem("relu", batch_norm=True)
    assert network.layers[0].input_grad is False
    logits = network.forward(X, training=True)
    _, dlogits = softmax_cross_entropy(logits, y)
    network.backward(dlogits)  # must not fail on the missing input gradient
    assert all(np.isfinite(g).all() for g in network.grads)


@pytest.mark.parametrize("dropout", [0.0, 0.3])
@pytest.mark.parametrize("batch_norm", [False, True], ids=["plain", "batch_norm"])
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_float32_network_stays_float32(activation, batch_norm, dropout, backend):
    rng = np.random.default_rng(3)
    network = Network(
        N_INPUTS,
        N_CLASSES,
        HIDDEN,
        activation=activation,
        batch_norm=batch_norm,
        dropout=dropout,
        rng=rng,
        dtype=np.float32,
    )
    assert network.dtype == np.float32
    assert all(a.dtype == np.float32 for a in network.state_arrays())
    assert all(g.dtype == np.float32 for g in network.grads)
    X = rng.standard_normal((BATCH, N_INPUTS)).astype(np.float32)
    y = rng.integers(0, N_CLASSES, BATCH)
    for training in (True, False):
        assert network.forward(X, training=training).dtype == np.float32
    logits = network.forward(X, training=True)
    loss, dlogits = softmax_cross_entropy(logits, y)
    assert dlogits.dtype == np.float32 and np.isfinite(loss)
    grads_before = [g.copy() for g in network.grads]
    network.backward(dlogits)
    assert all(g.dtype == np.float32 for g in network.grads)
    assert all(a.dtype == np.float32 for a in network.state_arrays())
    assert any(not np.array_equal(a, b) for a, b in zip(network.grads, grads_before))
    # Every layer's backward output is float32 too.
    out = X
    for layer in network.layers:
        out = layer.forward(out, True)
    dout = dlogits.copy()
    for layer in reversed(network.layers):
        dout = layer.backward(dout)
        if dout is not None:
            assert dout.dtype == np.float32, type(layer).__name__


def test_float32_gradients_agree_with_float64(backend):
    net64, X, y = make_problem("tanh", batch_norm=True)
    net32 = Network(
        N_INPUTS,
        N_CLASSES,
        HIDDEN,
        activation="tanh",
        rng=np.random.default_rng(),
        dtype=np.float32,
    )
    net32.set_state_arrays(net64.state_arrays())
    for net, dtype in ((net64, np.float64), (net32, np.float32)):
        _, dlogits = softmax_cross_entropy(net.forward(X.astype(dtype), training=True), y)
        net.backward(dlogits)
    for g32, g64 in zip(net32.grads, net64.grads):
        assert relative_error(g32.astype(np.float64), g64) < 1e-5


@pytest.mark.parametrize("batch_norm", [False, True], ids=["plain", "batch_norm"])
def test_weighted_loss_gradients_match_finite_differences(batch_norm):
    from optuna_dl.nn import weighted_softmax_cross_entropy

    network, X, y = make_problem("tanh", batch_norm, seed=2)
    weights = np.array([0.0, 2.5, 1.0, 0.3, 4.0, 1.0, 0.7])
    logits = network.forward(X, training=True)
    loss, dlogits = weighted_softmax_cross_entropy(logits, y, weights)
    network.backward(dlogits)
    analytic = [g.copy() for g in network.grads]

    def loss_fn() -> float:
        return weighted_softmax_cross_entropy(network.forward(X, training=True), y, weights)[0]

    assert loss_fn() == pytest.approx(loss, rel=1e-12)
    for i, param in enumerate(network.params):
        numeric = numeric_gradient(loss_fn, param)
        assert np.abs(numeric).max() > 1e-8
        error = relative_error(analytic[i], numeric)
        assert error < TOLERANCE, f"param {i}: relative error {error:.2e}"
    # The weights matter: the unweighted gradient differs.
    _, plain = softmax_cross_entropy(network.forward(X, training=True), y)
    assert relative_error(plain, dlogits) > 1e-2


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("batch_norm", [False, True], ids=["plain", "batch_norm"])
def test_squared_error_gradients_match_finite_differences(batch_norm, weighted):
    from optuna_dl.nn import squared_error

    network, X, _ = make_problem("tanh", batch_norm, seed=3)
    targets = np.random.default_rng(5).standard_normal((BATCH, N_CLASSES))
    weights = np.array([0.0, 2.5, 1.0, 0.3, 4.0, 1.0, 0.7]) if weighted else None
    loss, doutputs = squared_error(network.forward(X, training=True), targets, weights)
    network.backward(doutputs)
    analytic = [g.copy() for g in network.grads]

    def loss_fn() -> float:
        return squared_error(network.forward(X, training=True), targets, weights)[0]

    assert loss_fn() == pytest.approx(loss, rel=1e-12)
    for i, param in enumerate(network.params):
        numeric = numeric_gradient(loss_fn, param)
        assert np.abs(numeric).max() > 1e-8
        error = relative_error(analytic[i], numeric)
        assert error < TOLERANCE, f"param {i}: relative error {error:.2e}"
