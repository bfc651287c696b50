"""Each numba kernel against the NumPy reference it replaces.

Tolerances: float64 results agree to 1e-12 relative (fast-math may contract and
reorder a few operations); float32 to 2e-6 relative (a few float32 roundings), or
exactly where the kernel performs the very operations of the reference.
"""

from __future__ import annotations

import numpy as np
import pytest

from optuna_dl.nn import kernels
from optuna_dl.nn.kernels._flags import JIT_OPTIONS
from optuna_dl.nn.optimizers import make_optimizer

numba = pytest.importorskip("numba")

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


def test_the_backend_is_numba_by_default_here():
    # numba is installed in this environment and OPTUNA_DL_KERNELS is unset or "numba".
    assert kernels.BACKEND == "numba"


def test_use_backend_switches_and_restores():
    with kernels.use_backend("numpy"):
        assert kernels.BACKEND == "numpy"
        assert not kernels.fusable(np.zeros(3))
    assert kernels.BACKEND == "numba"
    assert kernels.fusable(np.zeros(3), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="backend must be one of"):
        with kernels.use_backend("cuda"):
            pass


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
    ir = float32_ir(getattr(kernels._optimizers, name), *args)
    assert not promotes_to_float64(ir)
    assert " x float>" in ir  # the loop runs on SIMD vectors of float32


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
