"""Batch normalization (training mode) fused with the activation that follows it.

Forward: batch mean and biased variance per column (which also move the running
averages), ``xhat = (z - mean) * inv_std`` kept for backward, and
``g(gamma * xhat + beta)`` written over ``z``: three passes over the batch where NumPy
makes about eight. The last pass runs in a loop of its own
per activation (``_normalize_activate``): with the code a constant the loop
vectorizes, with a branch on it per element it does not (3.7x slower at 128 x 256).

Backward: ``dy = da * g'(a)`` with its column sums ``dbeta = sum(dy)`` and
``dgamma = sum(dy * xhat)`` in one pass, then
``dz = gamma * inv_std * (dy - (dbeta + xhat * dgamma) / m)`` written over ``xhat``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from optuna_dl.nn.kernels._activation import (
    IDENTITY,
    LEAKY_RELU,
    RELU,
    activate,
    derivative,
)
from optuna_dl.nn.kernels._flags import JIT_OPTIONS


@njit(inline="always", **JIT_OPTIONS)
def _normalize_activate(z, gamma, beta, code, slope, xhat, inv_std):
    """``xhat *= inv_std`` and ``z = g(gamma * xhat + beta)`` (inlined: ``code`` is a
    constant wherever the caller passes one)."""
    m, n = z.shape
    one = gamma.dtype.type(1)
    half = gamma.dtype.type(0.5)
    for i in range(m):
        for j in range(n):
            x = xhat[i, j] * inv_std[j]
            xhat[i, j] = x
            z[i, j] = activate(gamma[j] * x + beta[j], code, slope, one, half)


@njit(**JIT_OPTIONS)
def forward(
    z,
    gamma,
    beta,
    eps,
    code,
    slope,
    keep,
    one_minus_keep,
    running_mean,
    running_var,
    xhat,
    mean,
    var,
    inv_std,
):
    """Normalize and activate ``z`` in place; fill ``xhat``, ``mean``, ``var``, ``inv_std``
    and move ``running_mean``/``running_var`` toward the batch's statistics:
    ``running = keep * running + (1 - keep) * batch``."""
    m, n = z.shape
    one = gamma.dtype.type(1)
    inv_m = one / gamma.dtype.type(m)
    mean[:] = 0
    var[:] = 0
    for i in range(m):
        for j in range(n):
            mean[j] += z[i, j]
    for j in range(n):
        mean[j] *= inv_m
    for i in range(m):
        for j in range(n):
            centered = z[i, j] - mean[j]
            xhat[i, j] = centered
            var[j] += centered * centered
    for j in range(n):
        var[j] *= inv_m
        inv_std[j] = one / np.sqrt(var[j] + eps)
        # As the NumPy reference: ``running *= keep`` then ``running += (1 - keep) * batch``.
        running_mean[j] = running_mean[j] * keep + one_minus_keep * mean[j]
        running_var[j] = running_var[j] * keep + one_minus_keep * var[j]
    # The codes the training step uses, each as a constant (see the module docstring);
    # tanh and sigmoid reach the kernel as IDENTITY (NumPy applies them).
    if code == RELU:
        _normalize_activate(z, gamma, beta, RELU, slope, xhat, inv_std)
    elif code == LEAKY_RELU:
        _normalize_activate(z, gamma, beta, LEAKY_RELU, slope, xhat, inv_std)
    elif code == IDENTITY:
        _normalize_activate(z, gamma, beta, IDENTITY, slope, xhat, inv_std)
    else:
        _normalize_activate(z, gamma, beta, code, slope, xhat, inv_std)


@njit(**JIT_OPTIONS)
def backward(da, a, xhat, gamma, inv_std, code, slope, dgamma, dbeta):
    """Fill ``dgamma`` and ``dbeta``; overwrite ``da`` with ``dy`` and ``xhat`` with ``dz``."""
    m, n = da.shape
    one = gamma.dtype.type(1)
    inv_m = one / gamma.dtype.type(m)
    dgamma[:] = 0
    dbeta[:] = 0
    for i in range(m):
        for j in range(n):
            dy = da[i, j] * derivative(a[i, j], code, slope, one)
            da[i, j] = dy
            dbeta[j] += dy
            dgamma[j] += dy * xhat[i, j]
    for i in range(m):
        for j in range(n):
            xhat[i, j] = (
                gamma[j] * inv_std[j] * (da[i, j] - (dbeta[j] + xhat[i, j] * dgamma[j]) * inv_m)
            )
