"""Each numba kernel against the NumPy reference it replaces.

Tolerances: float64 results agree to 1e-12 relative (fast-math may contract and
reorder a few operations); float32 to 2e-6 relative (a few float32 roundings), or
exactly where the kernel performs the very operations of the reference.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from optuna_dl.nn import ACTIVATIONS, Network, kernels, softmax_cross_entropy
from optuna_dl.nn.kernels import _flags as kernels_flags
from optuna_dl.nn.kernels._flags import JIT_OPTIONS
from optuna_dl.nn.layers import BatchNorm, Dropout
from optuna_dl.nn.optimizers import make_optimizer

numba = pytest.importorskip("numba")
_compiled = pytest.importorskip("optuna_dl.nn.kernels._compiled")

DTYPES = [np.float32, np.float64]
TOLERANCE = {np.float32: 2e-6, np.float64: 1e-12}
OPTIMIZER_NAMES = ["sgd", "momentum", "rmsprop", "adam"]


def run(backend: str, function, *args):
    """``function(*args)`` under ``backend``, on copies of every array argument."""
    args = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    with kernels.use_backend(backend):
        result = function(*args)
    return result, args


def make(name: str):
    return make_optimizer(name, beta=0.8, beta1=0.85, beta2=0.97, epsilon=1e-3)


def optimizer_steps(name: str, backend: str, dtype, steps: int = 5, grad_scale: float = 1.0):
    rng = np.random.default_rng(0)
    param = rng.standard_normal(1001).astype(dtype)
    optimizer = make(name)
    with kernels.use_backend(backend):
        for _ in range(steps):
            grad = (grad_scale * rng.standard_normal(param.shape)).astype(dtype)
            optimizer.update([param], [grad], 0.03)
    return param, optimizer


@pytest.fixture(autouse=True)
def numba_backend():
    """Every test here starts on the numba backend, whatever OPTUNA_DL_KERNELS says."""
    with kernels.use_backend("numba"):
        yield


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, "numba"), ("", "numba"), ("numba", "numba"), ("numpy", "numpy"), (" NumPy ", "numpy")],
)
def test_the_environment_variable_chooses_the_backend(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv(kernels.ENVIRONMENT_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(kernels.ENVIRONMENT_VARIABLE, value)
    assert kernels._backend_from_environment() == expected


def test_an_unknown_environment_value_is_an_error(monkeypatch):
    monkeypatch.setenv(kernels.ENVIRONMENT_VARIABLE, "cuda")
    with pytest.raises(ValueError, match="OPTUNA_DL_KERNELS must be one of"):
        kernels._backend_from_environment()


def test_use_backend_switches_and_restores():
    with kernels.use_backend("numpy"):
        assert kernels.BACKEND == "numpy"
        assert not kernels.fusable(np.zeros(3))
    assert kernels.BACKEND == "numba"
    assert kernels.fusable(np.zeros(3), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="backend must be one of"):
        with kernels.use_backend("cuda"):
            pass
    assert kernels.BACKEND == "numba"


def test_only_contiguous_float_arrays_of_one_dtype_are_fusable():
    assert not kernels.fusable(np.zeros(3, np.float32), np.zeros(3, np.float64))
    assert not kernels.fusable(np.zeros(3, np.int64))
    assert not kernels.fusable(np.zeros((4, 4))[:, ::2])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
def test_optimizer_kernels_match_the_numpy_updates(name, dtype):
    expected, reference = optimizer_steps(name, "numpy", dtype)
    got, fused = optimizer_steps(name, "numba", dtype)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, expected, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype])
    assert fused.t == reference.t == 5
    for slot in reference.slots:
        for a, b in zip(fused.state()[slot], reference.state()[slot]):
            assert a.dtype == dtype
            np.testing.assert_allclose(a, b, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype])


@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
def test_optimizer_kernels_update_multi_dimensional_parameters_in_place(name):
    rng = np.random.default_rng(1)
    params = [rng.standard_normal((5, 3)).astype(np.float32), np.ones(4, np.float32)]
    views = list(params)
    grads = [rng.standard_normal(p.shape).astype(np.float32) for p in params]
    expected = [p.copy() for p in params]
    with kernels.use_backend("numpy"):
        make(name).update(expected, grads, 0.1)
    make(name).update(params, grads, 0.1)
    for param, view, e in zip(params, views, expected):
        assert param is view
        np.testing.assert_allclose(param, e, rtol=2e-6, atol=2e-6)


def float32_ir(kernel, *args) -> str:
    """LLVM IR of ``kernel`` compiled afresh (numba does not show IR of cached code)
    for the types of ``args``, after checking no argument type is float64."""
    fresh = numba.njit(**{**JIT_OPTIONS, "cache": False})(kernel.py_func)
    fresh(*args)
    (signature,) = fresh.signatures
    assert all("float64" not in str(arg) for arg in signature), signature
    return fresh.inspect_llvm(signature)


def promotes_to_float64(ir: str) -> bool:
    return any(op in ir for op in ("fpext", "fadd double", "fmul double", "fdiv double"))


def test_the_float64_check_catches_a_promoting_loop():
    def careless(param, grad):
        for i in range(param.size):
            param[i] -= grad[i] * 0.1  # a float64 constant

    array = np.ones(16, np.float32)
    careless.py_func = careless
    assert promotes_to_float64(float32_ir(careless, array, array.copy()))


@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
def test_optimizer_kernels_stay_float32_and_vectorize(name):
    param = np.ones(64, np.float32)
    n_arrays = {"sgd": 2, "momentum": 3, "rmsprop": 3, "adam": 4}[name]
    n_scalars = {"sgd": 1, "momentum": 2, "rmsprop": 3, "adam": 4}[name]
    args = [param.copy() for _ in range(n_arrays)] + [np.float32(0.1)] * n_scalars
    ir = float32_ir(getattr(_compiled._optimizers, name), *args)
    assert not promotes_to_float64(ir)
    assert " x float>" in ir  # the loop runs on SIMD vectors of float32


def test_every_kernel_is_serial():
    """No kernel starts threads of its own: the BLAS thread limit that the estimator
    sets with threadpoolctl stays the only parallelism, whatever numba's thread count."""
    assert "parallel" not in JIT_OPTIONS
    dispatchers = [
        value
        for module in (getattr(_compiled, name) for name in _compiled.__all__)
        for value in vars(module).values()
        if isinstance(value, numba.core.registry.CPUDispatcher)
    ]
    assert len(dispatchers) >= 10, dispatchers
    assert not any(d.targetoptions.get("parallel") for d in dispatchers)


@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
def test_a_nan_gradient_gives_nan_parameters_under_fast_math(name):
    param = np.ones(64, np.float32)
    grad = np.full(64, 0.5, np.float32)
    grad[7] = np.nan
    grad[9] = np.inf
    make(name).update([param], [grad], 0.1)
    assert np.isnan(param[7])
    assert not np.isfinite(param[9])
    assert np.isfinite(np.delete(param, [7, 9])).all()


def random_network(activation: str, dtype, dropout: float = 0.0, seed: int = 0) -> Network:
    rng = np.random.default_rng(seed)
    network = Network(
        12,
        5,
        [16, 9],
        activation=activation,
        batch_norm=True,
        dropout=dropout,
        rng=rng,
        dtype=np.dtype(dtype),
    )
    for param in network.params:  # gamma off 1, beta off 0: every term counts
        param += (0.3 * rng.standard_normal(param.shape)).astype(dtype)
    return network


def training_step(network: Network, X: np.ndarray, y: np.ndarray, backend: str):
    """Logits, loss, gradient, moving averages of one forward/backward under ``backend``."""
    network = copy.deepcopy(network)
    with kernels.use_backend(backend):
        logits = network.forward(X, training=True)
        loss, dlogits = softmax_cross_entropy(logits.copy(), y)
        network.backward(dlogits.copy())
    return logits, loss, dlogits, network.flat_grads.copy(), network.buffers


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_fused_batchnorm_activation_matches_the_layers(activation, dtype):
    network = random_network(activation, dtype)
    rng = np.random.default_rng(1)
    X = rng.normal(1.0, 2.0, (33, 12)).astype(dtype)
    y = rng.integers(0, 5, 33)
    X_before = X.copy()
    got = training_step(network, X, y, "numba")
    expected = training_step(network, X, y, "numpy")
    np.testing.assert_array_equal(X, X_before)
    tolerance = 1e-5 if dtype == np.float32 else 1e-12  # float32: after three layers
    for g, e in zip(got[:3], expected[:3]):
        assert np.asarray(g).dtype == np.asarray(e).dtype
        np.testing.assert_allclose(g, e, rtol=tolerance, atol=tolerance)
    assert got[3].dtype == dtype
    np.testing.assert_allclose(got[3], expected[3], rtol=tolerance, atol=tolerance)
    for g, e in zip(got[4], expected[4]):  # moving mean and variance
        np.testing.assert_allclose(g, e, rtol=tolerance, atol=tolerance)


def test_a_batchnorm_pickled_before_fusion_still_trains(backend):
    network = random_network("relu", np.float32)
    for layer in network.layers:
        if isinstance(layer, BatchNorm):
            del layer._xhat, layer._a, layer._activation  # as in an older pickle
    X = np.random.default_rng(8).standard_normal((8, 12)).astype(np.float32)
    _, dlogits = softmax_cross_entropy(network.forward(X, training=True), np.arange(8) % 5)
    network.backward(dlogits)
    assert np.isfinite(network.flat_grads).all() and network.flat_grads.any()


def test_backward_follows_the_latest_forward_whichever_path_ran_it():
    network = random_network("relu", np.float64)
    rng = np.random.default_rng(9)
    stale = rng.standard_normal((8, 12))
    X, y = rng.standard_normal((8, 12)), np.arange(8) % 5
    expected = training_step(network, X, y, "numpy")[3]
    network.forward(stale, training=True)  # fused, never back-propagated
    with kernels.use_backend("numpy"):
        _, dlogits = softmax_cross_entropy(network.forward(X, training=True), y)
        network.backward(dlogits)
    np.testing.assert_allclose(network.flat_grads, expected, rtol=1e-12, atol=1e-12)


def test_the_fused_pass_is_used_and_compiled_for_float32_only():
    network = random_network("relu", np.float32)
    X = np.random.default_rng(2).standard_normal((8, 12)).astype(np.float32)
    network.forward(X, training=True)
    assert all(layer.fused_pending for layer in network.layers if isinstance(layer, BatchNorm))
    for kernel in (_compiled._batchnorm.forward, _compiled._softmax.softmax_cross_entropy):
        float32 = [s for s in kernel.signatures if str(s[0].dtype) == "float32"]
        assert float32 and all("float64" not in str(arg) for s in float32 for arg in s), (
            kernel.signatures
        )


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_nan_in_the_batch_reaches_the_output_of_every_fused_activation(dtype):
    # Under "nnan" the compiler may fold the NaN test in the ReLU away and output 0.
    for activation in sorted(ACTIVATIONS):
        layer = BatchNorm(4, dtype=np.dtype(dtype))
        z = np.ones((6, 4), dtype)
        z[2, 1] = np.nan
        out = layer.forward_activation(z, activation)
        assert np.isnan(out[:, 1]).all(), activation
        assert np.isfinite(np.delete(out, 1, axis=1)).all()
    assert not {"nnan", "ninf", "fast"} & kernels_flags.FASTMATH


@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_softmax_cross_entropy_matches_the_reference(dtype):
    rng = np.random.default_rng(3)
    logits = (rng.standard_normal((40, 7)) * 5).astype(dtype)
    logits[0] = [1e4, -1e4, 0, 3, 1e4, 2, 1]  # log-sum-exp must not overflow
    y = rng.integers(0, 7, 40)
    (loss, dlogits), (logits_after, _) = run("numba", softmax_cross_entropy, logits, y)
    (expected_loss, expected), _ = run("numpy", softmax_cross_entropy, logits, y)
    np.testing.assert_array_equal(logits_after, logits)  # the input is left alone
    assert dlogits.dtype == dtype and isinstance(loss, float)
    assert loss == pytest.approx(expected_loss, rel=TOLERANCE[dtype])
    np.testing.assert_allclose(dlogits, expected, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype])
    np.testing.assert_allclose(dlogits.sum(axis=1), 0, atol=10 * TOLERANCE[dtype])


def test_fused_softmax_cross_entropy_rejects_a_label_out_of_range():
    logits = np.zeros((4, 3), np.float32)
    with pytest.raises(IndexError):
        softmax_cross_entropy(logits, np.array([0, 1, 3, 2]))
    with pytest.raises(IndexError):
        softmax_cross_entropy(logits, np.array([0, -1, 1, 2]))


def test_nan_logits_give_a_nan_loss_under_fast_math():
    logits = np.ones((4, 3), np.float32)
    logits[2, 1] = np.nan
    loss, dlogits = softmax_cross_entropy(logits, np.array([0, 1, 2, 0]))
    assert np.isnan(loss) and np.isnan(dlogits[2]).all()
    assert np.isfinite(np.delete(dlogits, 2, axis=0)).all()


@pytest.mark.parametrize("dtype", DTYPES + [np.int64])
def test_take_rows_matches_np_take(dtype):
    rng = np.random.default_rng(4)
    X = (rng.standard_normal((50, 6)) * 10).astype(dtype)
    rows = rng.permutation(50)[:17]
    out = np.empty((17, 6), dtype)
    got = kernels.take_rows(X, rows, out)
    assert got is out
    np.testing.assert_array_equal(got, X[rows])  # a copy: exact
    with pytest.raises(IndexError):
        kernels.take_rows(X, np.array([0, 50]), out[:2])


def test_take_rows_falls_back_to_np_take_for_fortran_ordered_data():
    X = np.asfortranarray(np.arange(20.0).reshape(5, 4))
    assert not kernels.fusable(X)
    out = np.empty((2, 4))
    np.testing.assert_array_equal(kernels.take_rows(X, np.array([4, 1]), out), X[[4, 1]])


@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_dropout_draws_the_reference_masks(dtype):
    x = np.random.default_rng(5).standard_normal((30, 8)).astype(dtype)
    results = []
    for backend in ("numpy", "numba"):
        layer = Dropout(0.35, np.random.default_rng(6))
        with kernels.use_backend(backend):
            out = layer.forward(x, training=True)
            mask = layer._mask.copy()
            dx = layer.backward(np.ones_like(x))
        results.append((out, mask, dx))
    (out, mask, dx), (fused_out, fused_mask, fused_dx) = results
    assert (mask == 0).any() and fused_out.dtype == dtype and fused_mask.dtype == dtype
    np.testing.assert_array_equal(fused_mask, mask)  # the same draws and operations
    np.testing.assert_array_equal(fused_out, out)
    np.testing.assert_array_equal(fused_dx, dx)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_fused_inference_matches_the_numpy_inference(activation, dtype):
    network = random_network(activation, dtype)
    rng = np.random.default_rng(7)
    for _ in range(2):
        network.forward(rng.normal(1.0, 2.0, (32, 12)).astype(dtype), training=True)
    X = rng.normal(1.0, 2.0, (70, 12)).astype(dtype)
    got, _ = run("numba", network.infer, X)
    expected, _ = run("numpy", network.infer, X)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, expected, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype])
