"""The stack: ``(Dense -> [BatchNorm] -> activation -> [Dropout]) * n_layers -> Dense``.

The output layer produces logits; the softmax lives in the loss.
"""

from __future__ import annotations

import numpy as np

from optuna_dl.nn import kernels
from optuna_dl.nn.activations import ACTIVATIONS
from optuna_dl.nn.initializers import BATCH_NORM_INITIALIZER, INITIALIZER_FOR_ACTIVATION
from optuna_dl.nn.layers import Activation, BatchNorm, Dense, Dropout, Layer

# Rows per inference block: about this many bytes per hidden activation.
INFERENCE_BLOCK_BYTES = 1 << 20


class Network:
    """A fully connected classifier network.

    Parameters
    ----------
    n_inputs, n_outputs : int
        Feature count and class count.
    hidden : list of int
        Width of each hidden layer.
    activation : str
        Key of ``ACTIVATIONS``.
    batch_norm : bool
        Normalize every hidden pre-activation (and drop its Dense bias).
    dropout : float
        Inverted-dropout rate after each hidden activation (0 turns it off).
    rng : numpy.random.Generator
        Source of the initial weights and of the dropout masks.
    dtype : numpy dtype
        float32 or float64; every parameter and buffer has it.
    """

    def __init__(
        self,
        n_inputs: int,
        n_outputs: int,
        hidden: list[int],
        *,
        activation: str = "relu",
        batch_norm: bool = True,
        dropout: float = 0.0,
        rng: np.random.Generator,
        dtype: np.dtype = np.float32,
    ) -> None:
        self.dtype = np.dtype(dtype)
        # Under batch norm the weight scale only sets the effective learning rate;
        # PyTorch's smaller default reached 0.56 held-out accuracy after two epochs of
        # benchmarks/train_speed.py's W2 where He/Glorot reached 0.43.
        if batch_norm:
            initializer = output_initializer = BATCH_NORM_INITIALIZER
        else:
            initializer = INITIALIZER_FOR_ACTIVATION[activation]
            output_initializer = "glorot_uniform"
        self.layers: list[Layer] = []
        self.dense: list[Dense] = []
        width = n_inputs
        for i, units in enumerate(hidden):
            dense = Dense(
                width,
                units,
                use_bias=not batch_norm,
                initializer=initializer,
                rng=rng,
                dtype=self.dtype,
                input_grad=i > 0,
            )
            self.dense.append(dense)
            self.layers.append(dense)
            if batch_norm:
                self.layers.append(BatchNorm(units, dtype=self.dtype))
            self.layers.append(Activation(activation))
            if dropout > 0:
                self.layers.append(Dropout(dropout, rng))
            width = units
        output = Dense(
            width,
            n_outputs,
            use_bias=True,
            initializer=output_initializer,
            rng=rng,
            dtype=self.dtype,
            input_grad=bool(hidden),
        )
        self.dense.append(output)
        self.layers.append(output)
        self._flatten()

    def _flatten(self) -> None:
        """Move every parameter (and gradient) into one contiguous vector.

        The layers keep working on views of the same memory, while an optimizer
        updates ``flat_params`` from ``flat_grads`` in a handful of vectorized passes
        instead of a Python loop over arrays.
        """
        params = [p for layer in self.layers for p in layer.params]
        total = sum(p.size for p in params)
        self.flat_params = np.empty(total, dtype=self.dtype)
        self.flat_grads = np.zeros(total, dtype=self.dtype)
        self._bind_views(copy_values=True)

    def _bind_views(self, copy_values: bool) -> None:
        offset = 0
        for layer in self.layers:
            views, grad_views = [], []
            for p in layer.params:
                view = self.flat_params[offset : offset + p.size].reshape(p.shape)
                if copy_values:
                    view[...] = p
                views.append(view)
                grad_views.append(self.flat_grads[offset : offset + p.size].reshape(p.shape))
                offset += p.size
            layer.bind(views, grad_views)

    def __setstate__(self, state: dict) -> None:
        # Pickle stores views as separate arrays: make the layers views again.
        self.__dict__.update(state)
        self._bind_views(copy_values=False)

    @property
    def params(self) -> list[np.ndarray]:
        """Trainable arrays, in a fixed order (views into ``flat_params``)."""
        return [p for layer in self.layers for p in layer.params]

    @property
    def grads(self) -> list[np.ndarray]:
        """Gradients, aligned with ``params``."""
        return [g for layer in self.layers for g in layer.grads]

    @property
    def buffers(self) -> list[np.ndarray]:
        """Non-trainable state (batch-norm moving averages), in a fixed order."""
        return [b for layer in self.layers for b in layer.buffers]

    @property
    def weights(self) -> list[np.ndarray]:
        """The Dense weight matrices (what an L2 penalty applies to)."""
        return [dense.W for dense in self.dense]

    @property
    def weight_grads(self) -> list[np.ndarray]:
        """Gradients of ``weights``."""
        return [dense.dW for dense in self.dense]

    def forward(self, X: np.ndarray, training: bool) -> np.ndarray:
        """Logits for ``X``; ``training`` selects batch statistics and dropout.

        In training, a batch norm and the activation after it run as one fused kernel
        when the kernels backend is active (``optuna_dl.nn.kernels``).
        """
        out = X
        layers = self.layers
        fuse = training and kernels.BACKEND == "numba"
        i = 0
        while i < len(layers):
            layer = layers[i]
            following = layers[i + 1] if i + 1 < len(layers) else None
            if (
                fuse
                and isinstance(layer, BatchNorm)
                and isinstance(following, Activation)
                and layer.fuses_with(out, following.name)
            ):
                out = layer.forward_activation(out, following.name)
                i += 2
                continue
            out = layer.forward(out, training)
            i += 1
        return out

    def infer(self, X: np.ndarray) -> np.ndarray:
        """Logits at inference, as ``forward(X, training=False)`` computes them up to
        rounding, but faster and in bounded memory.

        Each batch norm is folded into the Dense layer before it (``W * scale``,
        ``b * scale + shift``), dropout is skipped, and the rows go through in blocks
        of about ``INFERENCE_BLOCK_BYTES`` per hidden activation, so the intermediate
        results stay in cache and are allocated once instead of once per layer.
        """
        plan = self._inference_plan()
        n = X.shape[0]
        widest = max(W.shape[1] for W, _, _ in plan)
        block = max(64, INFERENCE_BLOCK_BYTES // (widest * self.dtype.itemsize))
        block = max(1, min(block, n))  # no rows: an empty result, no zero-step range
        logits = np.empty((n, plan[-1][0].shape[1]), dtype=self.dtype)
        buffers = [np.empty((block, W.shape[1]), dtype=self.dtype) for W, _, _ in plan[:-1]]
        for start in range(0, n, block):
            stop = min(start + block, n)
            out = X[start:stop]
            for (W, b, activation), buffer in zip(plan, [*buffers, None]):
                target = logits[start:stop] if buffer is None else buffer[: stop - start]
                np.matmul(out, W, out=target)
                # The bias and the activation in one fused pass, or in NumPy.
                if not kernels.bias_activation(target, b, activation):
                    if b is not None:
                        target += b
                    if activation is not None:
                        ACTIVATIONS[activation](target)
                out = target
        return logits

    def _inference_plan(self) -> list[tuple[np.ndarray, np.ndarray | None, str | None]]:
        """``(W, b, activation)`` per Dense layer with batch norm folded in (float64
        arithmetic, then the network's dtype)."""
        plan: list[tuple[np.ndarray, np.ndarray | None, str | None]] = []
        for layer in self.layers:
            if isinstance(layer, Dense):
                plan.append((layer.W, layer.b, None))
            elif isinstance(layer, BatchNorm):
                W, b, _ = plan[-1]
                scale = layer.gamma.astype(np.float64) / np.sqrt(
                    layer.running_var.astype(np.float64) + layer.eps
                )
                shift = layer.beta - layer.running_mean.astype(np.float64) * scale
                if b is not None:
                    shift = shift + b * scale
                plan[-1] = (
                    (W * scale).astype(self.dtype),
                    shift.astype(self.dtype),
                    None,
                )
            elif isinstance(layer, Activation):
                W, b, _ = plan[-1]
                plan[-1] = (W, b, layer.name)
        return plan

    def backward(self, dlogits: np.ndarray) -> None:
        """Back-propagate the gradient at the logits, filling ``grads``."""
        dout: np.ndarray | None = dlogits
        layers = self.layers
        i = len(layers) - 1
        while i >= 0:
            layer, before = layers[i], layers[i - 1] if i > 0 else None
            if isinstance(layer, Activation) and isinstance(before, BatchNorm):
                if before.fused_pending:
                    dout = before.backward_activation(dout)
                    i -= 2
                    continue
            dout = layer.backward(dout)
            i -= 1

    def output_bound(self, input_bound: np.ndarray) -> float:
        """An upper bound of every value computed at inference (hidden layers and
        logits) for any input whose column ``j`` stays within ``+-input_bound[j]``:
        when it is far below the dtype's largest value, inference cannot overflow and
        needs no trial run to prove it."""
        v = np.asarray(input_bound, dtype=np.float64)
        top = 0.0
        with np.errstate(over="ignore", invalid="ignore"):
            for layer in self.layers:
                v = layer.bound(v)
                top = max(top, float(np.max(v, initial=0.0)))
        return top if np.isfinite(top) else np.inf

    def state_arrays(self) -> list[np.ndarray]:
        """Every array that defines the trained model: ``params + buffers``."""
        return self.params + self.buffers

    def set_state_arrays(self, arrays: list[np.ndarray]) -> None:
        """Copy ``arrays`` (as from ``state_arrays``) into the network, in place."""
        targets = self.state_arrays()
        if len(arrays) != len(targets):
            raise ValueError(f"expected {len(targets)} arrays for this network, got {len(arrays)}")
        for target, source in zip(targets, arrays):
            if target.shape != np.shape(source):
                raise ValueError(
                    f"array shape {np.shape(source)} does not match the network's {target.shape}"
                )
            target[...] = source

    def absorb_input_scaling(self, mean: np.ndarray, scale: np.ndarray) -> None:
        """Fold a preceding ``(x - mean) / scale`` into the first layer, in place.

        Afterwards the network takes raw inputs and computes what it computed on
        standardized ones: the first weights become ``W / scale[:, None]`` and the
        constant ``c = (mean / scale) @ W`` moves into the bias, or, when batch norm
        follows, into its moving mean (training-mode batch statistics absorb it).
        """
        first = self.dense[0]
        scale = np.asarray(scale, dtype=np.float64)
        mean = np.asarray(mean, dtype=np.float64)
        W = first.W.astype(np.float64)
        shift = (mean / scale) @ W
        first.W[...] = W / scale[:, None]
        following = self.layers[1] if len(self.layers) > 1 else None
        if first.b is not None:
            first.b[...] = first.b - shift
        elif isinstance(following, BatchNorm):
            following.running_mean[...] = following.running_mean + shift
        else:  # pragma: no cover - a bias-free Dense is always followed by batch norm
            raise ValueError("cannot fold input scaling into this network")
