"""Gradient-descent update rules over flat lists of arrays.

An optimizer never sees layers: ``update(params, grads, learning_rate)`` changes each
array of ``params`` in place. Its state (velocities, moments) is one array per
parameter, created on the first update, exposed by ``state()`` and restored with
``load_state()`` so that training can resume exactly.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from optuna_dl.nn import kernels

Arrays = list[np.ndarray]


class Optimizer:
    """Base class: keeps the step count ``t`` and per-parameter state slots.

    Updates run in place with one scratch array per parameter, so a step allocates
    nothing.
    """

    #: Names of the per-parameter state arrays, in order.
    slots: ClassVar[tuple[str, ...]] = ()

    def __init__(self) -> None:
        self.t = 0
        self._state: dict[str, Arrays] = {}
        self._scratch: Arrays = []

    def _ensure_state(self, params: Arrays) -> None:
        if not self._state and self.slots:
            self._state = {s: [np.zeros_like(p) for p in params] for s in self.slots}
        if len(self._scratch) != len(params) or any(
            a.shape != p.shape or a.dtype != p.dtype for a, p in zip(self._scratch, params)
        ):
            self._scratch = [np.empty_like(p) for p in params]

    def update(self, params: Arrays, grads: Arrays, learning_rate: float) -> None:
        """Apply one step to ``params`` in place."""
        self._ensure_state(params)
        self.t += 1
        for i, (param, grad) in enumerate(zip(params, grads)):
            self._update_one(i, param, grad, float(learning_rate), self._scratch[i])

    def _update_one(
        self,
        i: int,
        param: np.ndarray,
        grad: np.ndarray,
        learning_rate: float,
        scratch: np.ndarray,
    ) -> None:
        raise NotImplementedError

    def state(self) -> dict[str, Arrays]:
        """The per-parameter state arrays by slot name (not copies)."""
        return self._state

    def load_state(self, t: int, state: dict[str, Arrays]) -> None:
        """Restore the step count and the state arrays (copied)."""
        self.t = int(t)
        self._state = {s: [np.array(a, copy=True) for a in state[s]] for s in self.slots}

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_scratch"] = []  # recreated on the next update
        return state


class SGD(Optimizer):
    """Plain gradient descent: ``W -= lr * dW``."""

    def _update_one(self, i, param, grad, learning_rate, scratch):
        if kernels.fusable(param, grad):
            kernels.sgd_step(param, grad, learning_rate)
            return
        np.multiply(grad, learning_rate, out=scratch)
        param -= scratch


class Momentum(Optimizer):
    """Gradient descent with momentum, as in the course notes.

    ``v = beta * v + (1 - beta) * dW``; ``W -= lr * v``.
    """

    slots = ("velocity",)

    def __init__(self, beta: float = 0.9) -> None:
        super().__init__()
        self.beta = float(beta)

    def _update_one(self, i, param, grad, learning_rate, scratch):
        v = self._state["velocity"][i]
        if kernels.fusable(param, grad, v):
            kernels.momentum_step(param, grad, v, self.beta, learning_rate)
            return
        # v += (1 - beta) * (dW - v)  is  v = beta * v + (1 - beta) * dW
        np.subtract(grad, v, out=scratch)
        scratch *= 1.0 - self.beta
        v += scratch
        np.multiply(v, learning_rate, out=scratch)
        param -= scratch


class RMSprop(Optimizer):
    """RMSprop: ``s = beta2 * s + (1 - beta2) * dW**2``; ``W -= lr * dW / (sqrt(s) + eps)``."""

    slots = ("square_average",)

    def __init__(self, beta2: float = 0.999, epsilon: float = 1e-8) -> None:
        super().__init__()
        self.beta2 = float(beta2)
        self.epsilon = float(epsilon)

    def _update_one(self, i, param, grad, learning_rate, scratch):
        s = self._state["square_average"][i]
        if kernels.fusable(param, grad, s):
            kernels.rmsprop_step(param, grad, s, self.beta2, self.epsilon, learning_rate)
            return
        np.multiply(grad, grad, out=scratch)
        scratch -= s
        scratch *= 1.0 - self.beta2
        s += scratch
        np.sqrt(s, out=scratch)
        scratch += self.epsilon
        np.divide(grad, scratch, out=scratch)
        scratch *= learning_rate
        param -= scratch


class Adam(Optimizer):
    """Adam with bias correction (Kingma and Ba, 2015).

    ``v = beta1 v + (1 - beta1) dW``; ``s = beta2 s + (1 - beta2) dW**2``;
    ``W -= lr * (v / (1 - beta1**t)) / (sqrt(s / (1 - beta2**t)) + eps)``.

    The step is computed in the algebraically identical form
    ``lr * sqrt(1 - beta2**t) / (1 - beta1**t) * v / (sqrt(s) + eps * sqrt(1 - beta2**t))``
    which needs no bias-corrected copies of the moments: twelve in-place passes over
    memory per step and no allocation.
    """

    slots = ("first_moment", "second_moment")

    def __init__(self, beta1: float = 0.9, beta2: float = 0.999, epsilon: float = 1e-8) -> None:
        super().__init__()
        self.beta1 = float(beta1)
        self.beta2 = float(beta2)
        self.epsilon = float(epsilon)

    def update(self, params: Arrays, grads: Arrays, learning_rate: float) -> None:
        self._ensure_state(params)
        self.t += 1
        correction2 = math.sqrt(1.0 - self.beta2**self.t)
        step_size = float(learning_rate) * correction2 / (1.0 - self.beta1**self.t)
        epsilon_hat = self.epsilon * correction2
        first, second = self._state["first_moment"], self._state["second_moment"]
        for param, grad, v, s, scratch in zip(params, grads, first, second, self._scratch):
            if kernels.fusable(param, grad, v, s):
                kernels.adam_step(
                    param, grad, v, s, self.beta1, self.beta2, epsilon_hat, step_size
                )
                continue
            np.subtract(grad, v, out=scratch)
            scratch *= 1.0 - self.beta1
            v += scratch
            np.multiply(grad, grad, out=scratch)
            scratch -= s
            scratch *= 1.0 - self.beta2
            s += scratch
            np.sqrt(s, out=scratch)
            scratch += epsilon_hat
            np.divide(v, scratch, out=scratch)
            scratch *= step_size
            param -= scratch


OPTIMIZERS: dict[str, type[Optimizer]] = {
    "sgd": SGD,
    "momentum": Momentum,
    "rmsprop": RMSprop,
    "adam": Adam,
}


def make_optimizer(
    name: str, *, beta: float, beta1: float, beta2: float, epsilon: float
) -> Optimizer:
    """Build the optimizer ``name`` with the hyperparameters it uses."""
    if name == "sgd":
        return SGD()
    if name == "momentum":
        return Momentum(beta)
    if name == "rmsprop":
        return RMSprop(beta2, epsilon)
    return Adam(beta1, beta2, epsilon)
