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


def weighted_softmax_cross_entropy(
    logits: np.ndarray, y: np.ndarray, weight: np.ndarray
) -> tuple[float, np.ndarray]:
    """Weighted mean cross-entropy ``sum(w_i * l_i) / sum(w_i)`` and its gradient.

    A row of integer weight ``k`` counts as ``k`` copies of the row: the loss and the
    gradient are those of :func:`softmax_cross_entropy` on the repeated rows. A batch
    whose weights are all zero has loss 0 and a zero gradient.

    Parameters
    ----------
    logits : ndarray of shape (m, n_classes)
    y : ndarray of shape (m,)
        Class indices in ``[0, n_classes)``.
    weight : ndarray of shape (m,)
        Non-negative row weights.

    Returns
    -------
    loss : float
    dlogits : ndarray of shape (m, n_classes)
        ``w_i * (softmax(logits) - Y) / sum(w)``, in the dtype of ``logits``.
    """
    m = logits.shape[0]
    rows = np.arange(m)
    w = np.asarray(weight, dtype=np.float64)
    total = float(w.sum())
    scale = 1.0 / total if total > 0 else 0.0
    log_probabilities = log_softmax(logits)
    loss = -float(np.dot(w, log_probabilities[rows, y].astype(np.float64))) * scale
    dlogits = np.exp(log_probabilities, out=log_probabilities)
    dlogits[rows, y] -= 1
    dlogits *= (w * scale).astype(dlogits.dtype)[:, None]
    return loss, dlogits


def squared_error(
    outputs: np.ndarray, y: np.ndarray, weight: np.ndarray | None = None
) -> tuple[float, np.ndarray]:
    """Half the (weighted) mean squared error and its gradient at the outputs.

    ``loss = sum_i w_i * sum_j (o_ij - y_ij)**2 / (2 * k * sum(w))`` with ``k`` outputs
    and ``w = 1`` when ``weight`` is None: the mean over rows (a row of integer weight
    ``n`` counts as ``n`` copies) of the mean over outputs, halved as in
    scikit-learn's ``MLPRegressor``. A batch whose weights are all zero has loss 0 and
    a zero gradient.

    Parameters
    ----------
    outputs : ndarray of shape (m, k)
        The network's linear outputs.
    y : ndarray of shape (m, k)
        Targets.
    weight : ndarray of shape (m,), optional
        Non-negative row weights.

    Returns
    -------
    loss : float
    doutputs : ndarray of shape (m, k)
        ``w_i * (o_i - y_i) / (k * sum(w))``, in the dtype of ``outputs``.
    """
    k = outputs.shape[1]
    residual = np.subtract(outputs, y, dtype=outputs.dtype)
    per_row = np.einsum("ij,ij->i", residual, residual, dtype=np.float64)
    loss, row_scale = _row_average(per_row, weight, k)
    doutputs = residual
    doutputs *= row_scale.astype(outputs.dtype, copy=False)
    return 0.5 * loss, doutputs


def huber(
    outputs: np.ndarray, y: np.ndarray, weight: np.ndarray | None = None, delta: float = 1.0
) -> tuple[float, np.ndarray]:
    """(Weighted) mean Huber loss and its gradient at the outputs.

    Per element, ``r**2 / 2`` for a residual ``|r| <= delta`` and
    ``delta * (|r| - delta / 2)`` beyond: squared error near the target, absolute error
    for outliers. Averaged like :func:`squared_error` (over outputs, then rows with
    weights ``w``), so it equals ``squared_error`` when every residual is within
    ``delta``.

    Parameters
    ----------
    outputs : ndarray of shape (m, k)
    y : ndarray of shape (m, k)
    weight : ndarray of shape (m,), optional
    delta : float, default=1.0

    Returns
    -------
    loss : float
    doutputs : ndarray of shape (m, k)
        ``w_i * clip(o_i - y_i, -delta, delta) / (k * sum(w))``.
    """
    k = outputs.shape[1]
    residual = np.subtract(outputs, y, dtype=outputs.dtype)
    size = np.abs(residual)
    elementwise = np.where(size <= delta, 0.5 * residual**2, delta * (size - 0.5 * delta))
    per_row = elementwise.sum(axis=1, dtype=np.float64)
    loss, row_scale = _row_average(per_row, weight, k)
    doutputs = np.clip(residual, -delta, delta, out=residual)
    doutputs *= row_scale.astype(outputs.dtype, copy=False)
    return loss, doutputs


#: The regression losses by name: ``(outputs, y, weight) -> (loss, doutputs)``.
REGRESSION_LOSSES = {"squared_error": squared_error, "huber": huber}


def _row_average(
    per_row: np.ndarray, weight: np.ndarray | None, k: int
) -> tuple[float, np.ndarray]:
    """The (weighted) mean over rows of ``per_row / k``, and the factor that scales
    each row's gradient to match: ``w_i / (k * sum(w))`` (a 0-d array without
    weights, shape ``(m, 1)`` with them). Zero total weight gives 0."""
    if weight is None:
        total, loss_sum = float(per_row.size), float(per_row.sum())
        row_weight: np.ndarray = np.asarray(1.0)
    else:
        w = np.asarray(weight, dtype=np.float64)
        total, loss_sum = float(w.sum()), float(np.dot(w, per_row))
        row_weight = w[:, None]
    scale = 1.0 / (k * total) if total > 0 else 0.0
    return loss_sum * scale, row_weight * scale
