"""Layers with an explicit mode and an explicit cache.

Every layer has ``forward(x, training) -> out``, which keeps what ``backward`` needs,
and ``backward(dout) -> dx``, which fills ``grads`` (same order as ``params``).
"""

from __future__ import annotations

import functools

import numpy as np

from optuna_dl.nn import kernels
from optuna_dl.nn.activations import ACTIVATIONS, DERIVATIVES
from optuna_dl.nn.initializers import INITIALIZERS


@functools.lru_cache(maxsize=16)
def _ones(m: int, dtype: np.dtype) -> np.ndarray:
    """A read-only vector of ``m`` ones."""
    ones = np.ones(m, dtype=dtype)
    ones.flags.writeable = False
    return ones


class Layer:
    """Protocol shared by all layers."""

    params: list[np.ndarray]
    grads: list[np.ndarray]
    #: Arrays that are learned state but not trained by gradients (BN statistics).
    buffers: list[np.ndarray]

    #: Attribute names of ``params`` and of ``grads``, in order.
    param_names: tuple[str, ...] = ()
    grad_names: tuple[str, ...] = ()

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        raise NotImplementedError

    def bound(self, v: np.ndarray) -> np.ndarray:
        """Given ``v[j] >= |x[:, j]|`` for the input, a float64 vector bounding
        ``|out[:, i]|`` at inference. Dropout is the identity there."""
        return v

    def bind(self, params: list[np.ndarray], grads: list[np.ndarray]) -> None:
        """Make the layer use ``params``/``grads`` (e.g. views into one flat buffer)
        instead of its own arrays; values of ``params`` are taken as they are."""
        for name, array in zip(self.param_names, params, strict=True):
            setattr(self, name, array)
        for name, array in zip(self.grad_names, grads, strict=True):
            setattr(self, name, array)
        self.params, self.grads = list(params), list(grads)


class Dense(Layer):
    """Affine map ``x @ W + b``; the bias is omitted in front of batch norm.

    Parameters
    ----------
    n_in, n_out : int
        Input and output widths.
    use_bias : bool
        False when batch norm follows: its ``beta`` makes a bias redundant.
    initializer : str
        Key of ``INITIALIZERS``.
    rng : numpy.random.Generator
    dtype : numpy dtype
    input_grad : bool
        False for the first layer, whose input gradient nobody needs.
    """

    def __init__(
        self,
        n_in: int,
        n_out: int,
        *,
        use_bias: bool,
        initializer: str,
        rng: np.random.Generator,
        dtype: np.dtype,
        input_grad: bool = True,
    ) -> None:
        self.W = INITIALIZERS[initializer](n_in, n_out, rng, dtype)
        self.dW = np.zeros_like(self.W)
        self.params = [self.W]
        self.grads = [self.dW]
        self.b: np.ndarray | None = None
        self.param_names, self.grad_names = ("W",), ("dW",)
        if use_bias:
            self.b = np.zeros(n_out, dtype=dtype)
            self.db = np.zeros_like(self.b)
            self.params.append(self.b)
            self.grads.append(self.db)
            self.param_names, self.grad_names = ("W", "b"), ("dW", "db")
        self.buffers = []
        self.input_grad = input_grad
        self._x: np.ndarray | None = None

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        out = x @ self.W
        if self.b is not None:
            out += self.b
        self._x = x if training else None
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        x = self._x
        np.matmul(x.T, dout, out=self.dW)
        if self.b is not None:
            # The column sums as a GEMV (ones @ dout): within a training step, after
            # the GEMMs have filled the caches, np.sum's reduction took 20-25 us more
            # per W2 step at (128, 10).
            np.matmul(_ones(dout.shape[0], dout.dtype), dout, out=self.db)
        self._x = None
        return dout @ self.W.T if self.input_grad else None

    def bound(self, v: np.ndarray) -> np.ndarray:
        out = v @ np.abs(self.W.astype(np.float64))
        if self.b is not None:
            out += np.abs(self.b)
        return out


class BatchNorm(Layer):
    """Batch normalization of pre-activations (Ioffe and Szegedy, 2015).

    Training: ``z_norm = (z - mu) / sqrt(var + eps)`` with the mini-batch's mean and
    (biased) variance, ``out = gamma * z_norm + beta``; the moving averages of mu and
    var are updated with ``momentum``. Inference: the moving averages replace the batch
    statistics, so a sample's output does not depend on the rest of the batch.
    """

    def __init__(
        self, n: int, *, dtype: np.dtype, momentum: float = 0.9, eps: float = 1e-5
    ) -> None:
        self.gamma = np.ones(n, dtype=dtype)
        self.beta = np.zeros(n, dtype=dtype)
        self.dgamma = np.zeros_like(self.gamma)
        self.dbeta = np.zeros_like(self.beta)
        self.running_mean = np.zeros(n, dtype=dtype)
        self.running_var = np.ones(n, dtype=dtype)
        self.params = [self.gamma, self.beta]
        self.grads = [self.dgamma, self.dbeta]
        self.param_names, self.grad_names = ("gamma", "beta"), ("dgamma", "dbeta")
        self.buffers = [self.running_mean, self.running_var]
        self.momentum = float(momentum)
        self.eps = float(eps)
        self._centered: np.ndarray | None = None
        self._inv_std: np.ndarray | None = None
        # Set by forward_activation, for backward_activation.
        self._xhat: np.ndarray | None = None
        self._a: np.ndarray | None = None
        self._activation: str | None = None

    def forward(self, z: np.ndarray, training: bool) -> np.ndarray:
        if training:
            m = z.shape[0]
            mean = z.mean(axis=0)
            centered = z - mean
            var = np.einsum("ij,ij->j", centered, centered)
            var *= 1.0 / m
            inv_std = var + self.eps
            np.sqrt(inv_std, out=inv_std)
            np.reciprocal(inv_std, out=inv_std)
            # Backward needs z_norm = centered * inv_std; keeping the two factors
            # instead saves a pass over the batch here.
            self._centered, self._inv_std = centered, inv_std
            self._xhat = None  # a fused forward before this one is superseded
            self._update_moving_averages(mean, var)
            out = centered * (self.gamma * inv_std)
            out += self.beta
            return out
        scale = self.gamma / np.sqrt(self.running_var + self.eps)
        shift = self.beta - self.running_mean * scale
        out = z * scale
        out += shift
        return out

    def _update_moving_averages(self, mean: np.ndarray, var: np.ndarray) -> None:
        keep = self.momentum
        self.running_mean *= keep
        self.running_mean += (1.0 - keep) * mean
        self.running_var *= keep
        self.running_var += (1.0 - keep) * var

    def fuses_with(self, z: np.ndarray, activation: str) -> bool:
        """Whether ``forward_activation(z, activation)`` runs a fused kernel."""
        return (
            z.ndim == 2
            and kernels.fusable(z, self.gamma, self.beta, self.running_mean, self.running_var)
            and kernels.activation_code(activation) is not None
        )

    def forward_activation(self, z: np.ndarray, activation: str) -> np.ndarray:
        """Training forward pass followed by the activation ``activation``, fused into
        one kernel (tanh and sigmoid: the kernel, then NumPy's activation; check
        ``fuses_with`` first); overwrites ``z`` with the result.

        ``backward_activation`` then back-propagates through both.
        """
        # The kernel also moves the running averages (``_update_moving_averages``).
        xhat, inv_std = kernels.batchnorm_activation_forward(
            z,
            self.gamma,
            self.beta,
            self.eps,
            activation,
            self.running_mean,
            self.running_var,
            self.momentum,
        )
        self._xhat, self._inv_std, self._a = xhat, inv_std, z
        self._activation = activation
        self._centered = None  # a plain forward before this one is superseded
        return z

    @property
    def fused_pending(self) -> bool:
        """Whether the last forward was ``forward_activation`` and awaits its backward."""
        # getattr: a BatchNorm pickled before fusion existed has no _xhat.
        return getattr(self, "_xhat", None) is not None

    def backward_activation(self, da: np.ndarray) -> np.ndarray:
        """Gradient at the batch-norm input from ``da``, the gradient at the fused
        activation's output; fills ``dgamma`` and ``dbeta`` and overwrites ``da``."""
        da = np.ascontiguousarray(da)
        dz = kernels.batchnorm_activation_backward(
            da,
            self._a,
            self._xhat,
            self.gamma,
            self._inv_std,
            self._activation,
            self.dgamma,
            self.dbeta,
        )
        self._xhat = self._a = self._inv_std = None
        return dz

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """``dz = gamma * inv_std / m * (m * dout - sum(dout) - z_norm * sum(dout * z_norm))``
        with ``z_norm = centered * inv_std``, written into the cached ``centered`` (no
        longer needed), so nothing of the batch's size is allocated."""
        centered, inv_std = self._centered, self._inv_std
        m = dout.shape[0]
        np.sum(dout, axis=0, out=self.dbeta)
        np.einsum("ij,ij->j", dout, centered, out=self.dgamma)
        self.dgamma *= inv_std
        dz = centered
        dz *= self.dgamma * inv_std * (1.0 / m)
        dz += self.dbeta * (1.0 / m)
        np.subtract(dout, dz, out=dz)
        dz *= self.gamma * inv_std
        self._centered = self._inv_std = None
        return dz

    def bound(self, v: np.ndarray) -> np.ndarray:
        scale = self.gamma.astype(np.float64) / np.sqrt(self.running_var + self.eps)
        shift = self.beta - self.running_mean * scale
        return v * np.abs(scale) + np.abs(shift)


class Activation(Layer):
    """A hidden-layer nonlinearity from the ``ACTIVATIONS`` table."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.params, self.grads, self.buffers = [], [], []
        self._a: np.ndarray | None = None

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        a = ACTIVATIONS[self.name](x)
        self._a = a if training else None
        return a

    def backward(self, dout: np.ndarray) -> np.ndarray:
        da = DERIVATIVES[self.name](self._a, dout)
        self._a = None
        return da

    def bound(self, v: np.ndarray) -> np.ndarray:
        # relu, leaky_relu and tanh shrink |z|; sigmoid stays below 1.
        return np.maximum(v, 1.0)


class Dropout(Layer):
    """Inverted dropout: in training keep each unit with probability ``1 - rate``
    and scale the kept ones by ``1 / (1 - rate)``; identity at inference."""

    def __init__(self, rate: float, rng: np.random.Generator) -> None:
        self.rate = float(rate)
        self.rng = rng
        self.params, self.grads, self.buffers = [], [], []
        self._mask: np.ndarray | None = None

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        if not training or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        uniform = self.rng.random(x.shape, dtype=np.float32)
        if x.ndim == 2 and kernels.fusable(x):
            out, self._mask = kernels.dropout_forward(x, uniform, keep)
            return out
        mask = uniform < keep
        self._mask = mask.astype(x.dtype)
        self._mask *= 1.0 / keep
        # Not in place: the activation before us keeps x for its derivative.
        return x * self._mask

    def backward(self, dout: np.ndarray) -> np.ndarray:
        if self._mask is None:
            return dout
        dout *= self._mask
        self._mask = None
        return dout
