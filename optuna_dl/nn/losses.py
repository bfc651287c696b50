"""Softmax output and cross-entropy loss, numerically stable."""

from __future__ import annotations

import numpy as np

from optuna_dl.nn import kernels


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise ``log(softmax(logits))`` through the log-sum-exp trick.

    Subtracting the row maximum first keeps ``exp`` from overflowing, so logits of
    1e4 are handled exactly.
    """
    shifted = logits - logits.max(axis=1, keepdims=True)
    shifted -= np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return shifted


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax; every row is a probability vector."""
    probabilities = logits - logits.max(axis=1, keepdims=True)
    np.exp(probabilities, out=probabilities)
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    return probabilities


def softmax_cross_entropy(logits: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy of integer labels ``y`` and its gradient at the logits.

    Parameters
    ----------
    logits : ndarray of shape (m, n_classes)
    y : ndarray of shape (m,)
        Class indices in ``[0, n_classes)``.

    Returns
    -------
    loss : float
        ``-mean(log softmax(logits)[i, y_i])``.
    dlogits : ndarray of shape (m, n_classes)
        ``(softmax(logits) - Y) / m`` with ``Y`` the one-hot labels.
    """
    m = logits.shape[0]
    if m and logits.ndim == 2 and kernels.fusable(logits) and np.asarray(y).dtype.kind in "iu":
        return kernels.softmax_cross_entropy(logits, np.asarray(y))
    rows = np.arange(m)
    log_probabilities = log_softmax(logits)
    loss = -float(log_probabilities[rows, y].sum(dtype=np.float64)) / m
    dlogits = np.exp(log_probabilities, out=log_probabilities)
    dlogits[rows, y] -= 1
    dlogits *= 1.0 / m
    return loss, dlogits
