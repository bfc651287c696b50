"""Fused, compiled (numba) versions of the memory-bound passes, and their dispatch.

The NumPy code in ``optuna_dl.nn`` stays the reference; each of its fast paths asks
this module whether to run a kernel instead. The backend is read once, here, from the
environment variable ``OPTUNA_DL_KERNELS``:

- ``numba`` (the default when numba can be imported): compiled kernels;
- ``numpy``: the NumPy reference everywhere.

Without numba the NumPy reference runs, silently. Kernels are serial (no
``parallel=True``): they never start threads of their own, so the BLAS thread limit the
estimator sets is the only parallelism. They are compiled with ``cache=True`` (the
machine code lands in ``__pycache__`` beside these modules) and with every fast-math
flag except ``nnan``/``ninf``, so NaN and inf propagate as in NumPy. Every kernel keeps
float32 data in float32: its scalars are converted to the data's dtype before the
call.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

import numpy as np

from optuna_dl.nn.activations import ACTIVATIONS, LEAKY_RELU_SLOPE

ENVIRONMENT_VARIABLE = "OPTUNA_DL_KERNELS"
BACKENDS = ("numba", "numpy")
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))

# The kernel modules (``_compiled``), imported with numba only once the numba backend
# is selected, so that OPTUNA_DL_KERNELS=numpy never pays for importing numba.
_compiled: ModuleType | None = None


def _load_kernels() -> bool:
    """Import the kernel modules; False if numba cannot be imported."""
    global _compiled
    if _compiled is None:
        try:
            import numba  # noqa: F401
        except ImportError:
            return False
        _compiled = importlib.import_module(f"{__name__}._compiled")
    return True


def _backend_from_environment() -> str:
    requested = os.environ.get(ENVIRONMENT_VARIABLE, "").strip().lower()
    if requested not in ("", *BACKENDS):
        raise ValueError(
            f"{ENVIRONMENT_VARIABLE} must be one of {BACKENDS} or unset, got {requested!r}"
        )
    if requested == "numpy":
        return "numpy"
    # numba missing (or unable to load): the NumPy reference runs, silently.
    return "numba" if _load_kernels() else "numpy"


#: The backend in use: "numba" or "numpy".
BACKEND = _backend_from_environment()


def numba_available() -> bool:
    """Whether numba can be imported (importing the kernels if it can)."""
    return _load_kernels()


@contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Run a block with the backend ``name`` (for tests and benchmarks; users set
    ``OPTUNA_DL_KERNELS``).

    Parameters
    ----------
    name : {"numba", "numpy"}

    Raises
    ------
    ValueError
        For an unknown name.
    RuntimeError
        For "numba" when numba cannot be imported.
    """
    global BACKEND
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    if name == "numba" and not numba_available():
        raise RuntimeError("the numba backend needs numba installed")
    previous, BACKEND = BACKEND, name
    try:
        yield
    finally:
        BACKEND = previous


def fusable(*arrays: np.ndarray) -> bool:
    """Whether a kernel may run on ``arrays``.

    Parameters
    ----------
    *arrays : ndarray
        The arrays the kernel would read or write.

    Returns
    -------
    bool
        True when the numba backend is active and the arrays are C-contiguous float32
        or float64 arrays of one dtype; the caller runs the NumPy reference otherwise.
    """
    if BACKEND != "numba":
        return False
    dtype = arrays[0].dtype
    return dtype in _FLOATS and all(a.dtype == dtype and a.flags.c_contiguous for a in arrays)


def activation_code(name: str) -> int | None:
    """The kernels' code of the activation ``name``, or None if no kernel has it."""
    return _compiled._activation.CODES.get(name) if _compiled is not None else None


def _leaky_slope(dtype: np.dtype) -> np.generic:
    return dtype.type(LEAKY_RELU_SLOPE)


# Optimizers: the caller has checked ``fusable``; arrays may have any shape. Each
# step updates ``param`` and its state arrays in place from ``grad``; the scalars are
# converted to the arrays' dtype before the kernel sees them.


def sgd_step(param: np.ndarray, grad: np.ndarray, learning_rate: float) -> None:
    """SGD step in place (see ``optuna_dl.nn.optimizers.SGD``)."""
    t = param.dtype.type
    _compiled._optimizers.sgd(param.reshape(-1), grad.reshape(-1), t(learning_rate))


def momentum_step(
    param: np.ndarray, grad: np.ndarray, velocity: np.ndarray, beta: float, learning_rate: float
) -> None:
    """Momentum step in place (see ``optuna_dl.nn.optimizers.Momentum``)."""
    t = param.dtype.type
    _compiled._optimizers.momentum(
        param.reshape(-1), grad.reshape(-1), velocity.reshape(-1), t(1.0 - beta), t(learning_rate)
    )


def rmsprop_step(
    param: np.ndarray,
    grad: np.ndarray,
    square_average: np.ndarray,
    beta2: float,
    epsilon: float,
    learning_rate: float,
) -> None:
    """RMSprop step in place (see ``optuna_dl.nn.optimizers.RMSprop``)."""
    t = param.dtype.type
    _compiled._optimizers.rmsprop(
        param.reshape(-1),
        grad.reshape(-1),
        square_average.reshape(-1),
        t(1.0 - beta2),
        t(epsilon),
        t(learning_rate),
    )


def adam_step(
    param: np.ndarray,
    grad: np.ndarray,
    first: np.ndarray,
    second: np.ndarray,
    beta1: float,
    beta2: float,
    epsilon_hat: float,
    step_size: float,
) -> None:
    """Adam step in place, bias correction folded into ``epsilon_hat`` and ``step_size``
    (see ``optuna_dl.nn.optimizers.Adam``)."""
    t = param.dtype.type
    _compiled._optimizers.adam(
        param.reshape(-1),
        grad.reshape(-1),
        first.reshape(-1),
        second.reshape(-1),
        t(1.0 - beta1),
        t(1.0 - beta2),
        t(epsilon_hat),
        t(step_size),
    )


# Batch norm + activation.


def batchnorm_activation_forward(
    z: np.ndarray,
    gamma: np.ndarray,
    beta: np.ndarray,
    eps: float,
    activation: str,
    running_mean: np.ndarray,
    running_var: np.ndarray,
    momentum: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Training-mode batch norm followed by ``activation``, written over ``z``; the
    running averages move toward the batch's statistics in the same call
    (``running = momentum * running + (1 - momentum) * batch``, in place).

    tanh and sigmoid are applied by NumPy after the kernel (its SIMD loops beat a
    compiled scalar call per element); the other activations inside the kernel.

    Returns
    -------
    xhat : ndarray of shape z.shape
        The normalized batch (needed by the backward pass).
    inv_std : ndarray of shape (z.shape[1],)
        ``1 / sqrt(var + eps)`` of the batch's biased variance.
    """
    kernel_module = _compiled._activation
    numpy_forward = activation in kernel_module.NUMPY_FORWARD
    code = kernel_module.IDENTITY if numpy_forward else kernel_module.CODES[activation]
    t = z.dtype.type
    n = z.shape[1]
    xhat = np.empty_like(z)
    mean, var, inv_std = (np.empty(n, dtype=z.dtype) for _ in range(3))
    _compiled._batchnorm.forward(
        z,
        gamma,
        beta,
        t(eps),
        code,
        _leaky_slope(z.dtype),
        t(momentum),
        t(1.0 - momentum),
        running_mean,
        running_var,
        xhat,
        mean,
        var,
        inv_std,
    )
    if numpy_forward:
        ACTIVATIONS[activation](z)
    return xhat, inv_std


def batchnorm_activation_backward(
    da: np.ndarray,
    a: np.ndarray,
    xhat: np.ndarray,
    gamma: np.ndarray,
    inv_std: np.ndarray,
    activation: str,
    dgamma: np.ndarray,
    dbeta: np.ndarray,
) -> np.ndarray:
    """Gradient at the batch-norm input from ``da``, the gradient at the output ``a``
    of ``activation``; fills ``dgamma`` and ``dbeta``. ``da`` and ``xhat`` are
    overwritten; the result is ``xhat``'s memory."""
    code = _compiled._activation.CODES[activation]
    _compiled._batchnorm.backward(
        da, a, xhat, gamma, inv_std, code, _leaky_slope(da.dtype), dgamma, dbeta
    )
    return xhat


def softmax_cross_entropy(logits: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Fused ``optuna_dl.nn.losses.softmax_cross_entropy`` (same contract).

    Parameters
    ----------
    logits : ndarray of shape (m, n_classes)
        C-contiguous float32 or float64, ``m > 0``; left unchanged.
    y : ndarray of int of shape (m,)
        Class indices; one outside ``[0, n_classes)`` raises IndexError.

    Returns
    -------
    loss : float
        Mean cross-entropy.
    dlogits : ndarray of shape (m, n_classes)
        ``(softmax(logits) - Y) / m``, in the logits' dtype.
    """
    dlogits = np.empty_like(logits)
    total = _compiled._softmax.softmax_cross_entropy(logits, np.ascontiguousarray(y), dlogits)
    return total / logits.shape[0], dlogits


def take_rows(X: np.ndarray, rows: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``np.take(X, rows, axis=0, out=out)``, through a kernel when one applies.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    rows : ndarray of int of shape (m,)
    out : ndarray of shape (m, n_features), X's dtype

    Returns
    -------
    out : ndarray
        The gathered rows.
    """
    if fusable(X, out) and X.ndim == 2 and rows.ndim == 1 and rows.dtype.kind in "iu":
        _compiled._gather.take_rows(X, rows, out)
        return out
    return np.take(X, rows, axis=0, out=out)


def dropout_forward(
    x: np.ndarray, uniform: np.ndarray, keep: float
) -> tuple[np.ndarray, np.ndarray]:
    """Inverted dropout from float32 uniform draws: ``(x * mask, mask)`` with
    ``mask = (uniform < keep) / keep`` in ``x``'s dtype."""
    mask = np.empty_like(x)
    out = np.empty_like(x)
    _compiled._dropout.dropout(x, uniform, np.float32(keep), x.dtype.type(1.0 / keep), mask, out)
    return out, mask


def bias_activation(z: np.ndarray, b: np.ndarray | None, activation: str | None) -> bool:
    """``z = g(z + b)`` in place through a kernel; False (nothing done) when no kernel
    applies: no bias, an activation without a kernel, or tanh and sigmoid, which NumPy
    computes faster (see ``batchnorm_activation_forward``)."""
    if b is None or not fusable(z, b):
        return False
    kernel_module = _compiled._activation
    if activation is None:
        code = kernel_module.IDENTITY
    elif activation in kernel_module.NUMPY_FORWARD:
        return False
    else:
        code = kernel_module.CODES.get(activation)
        if code is None:
            return False
    _compiled._inference.bias_activation(z, b, code, _leaky_slope(z.dtype))
    return True
