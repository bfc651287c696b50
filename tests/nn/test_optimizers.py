"""Optimizers: one step against the written-out course formulas, state round-trips."""

from __future__ import annotations

import numpy as np
import pytest

from optuna_dl.nn import OPTIMIZERS
from optuna_dl.nn.optimizers import SGD, Adam, Momentum, RMSprop, make_optimizer

SHAPES = [(3, 4), (4,), (2, 2)]
LR = 0.03


def arrays(rng: np.random.Generator, dtype=np.float64, scale: float = 1.0) -> list[np.ndarray]:
    return [(scale * rng.standard_normal(shape)).astype(dtype) for shape in SHAPES]


def positive_arrays(rng: np.random.Generator) -> list[np.ndarray]:
    return [rng.uniform(0.01, 2.0, shape) for shape in SHAPES]


def make(name: str):
    return make_optimizer(name, beta=0.8, beta1=0.85, beta2=0.97, epsilon=1e-3)


def assert_arrays_close(actual, expected, rtol=1e-13, atol=1e-15):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(a, e, rtol=rtol, atol=atol)


def test_registry_and_factory():
    assert OPTIMIZERS == {"sgd": SGD, "momentum": Momentum, "rmsprop": RMSprop, "adam": Adam}
    momentum = make("momentum")
    assert isinstance(momentum, Momentum) and momentum.beta == 0.8
    rmsprop = make("rmsprop")
    assert isinstance(rmsprop, RMSprop) and (rmsprop.beta2, rmsprop.epsilon) == (0.97, 1e-3)
    adam = make("adam")
    assert isinstance(adam, Adam)
    assert (adam.beta1, adam.beta2, adam.epsilon) == (0.85, 0.97, 1e-3)
    assert isinstance(make("sgd"), SGD)


def test_sgd_is_exact():
    rng = np.random.default_rng(0)
    params, grads = arrays(rng), arrays(rng)
    expected = [p - LR * g for p, g in zip(params, grads)]
    objects = [id(p) for p in params]
    optimizer = SGD()
    optimizer.update(params, grads, LR)
    assert [id(p) for p in params] == objects  # in place
    for p, e in zip(params, expected):
        np.testing.assert_array_equal(p, e)
    assert optimizer.t == 1
    assert optimizer.state() == {}


def test_momentum_step_from_hand_set_state():
    rng = np.random.default_rng(1)
    params, grads, velocity = arrays(rng), arrays(rng), arrays(rng)
    beta = 0.8
    v_new = [beta * v + (1 - beta) * g for v, g in zip(velocity, grads)]
    expected = [p - LR * v for p, v in zip(params, v_new)]
    optimizer = Momentum(beta)
    optimizer.load_state(4, {"velocity": velocity})
    optimizer.update(params, grads, LR)
    assert optimizer.t == 5
    assert_arrays_close(params, expected)
    assert_arrays_close(optimizer.state()["velocity"], v_new)


def test_rmsprop_step_from_hand_set_state():
    rng = np.random.default_rng(2)
    params, grads, square = arrays(rng), arrays(rng), positive_arrays(rng)
    beta2, eps = 0.97, 1e-3
    s_new = [beta2 * s + (1 - beta2) * g**2 for s, g in zip(square, grads)]
    expected = [p - LR * g / (np.sqrt(s) + eps) for p, g, s in zip(params, grads, s_new)]
    optimizer = RMSprop(beta2, eps)
    optimizer.load_state(9, {"square_average": square})
    optimizer.update(params, grads, LR)
    assert optimizer.t == 10
    assert_arrays_close(params, expected)
    assert_arrays_close(optimizer.state()["square_average"], s_new)


@pytest.mark.parametrize("t_before", [0, 1, 6, 250])
def test_adam_step_from_hand_set_state(t_before):
    rng = np.random.default_rng(3 + t_before)
    params, grads = arrays(rng), arrays(rng)
    first, second = arrays(rng, scale=0.3), positive_arrays(rng)
    beta1, beta2, eps = 0.85, 0.97, 1e-3
    t = t_before + 1  # the step count AFTER incrementing
    v_new = [beta1 * v + (1 - beta1) * g for v, g in zip(first, grads)]
    s_new = [beta2 * s + (1 - beta2) * g**2 for s, g in zip(second, grads)]
    expected = []
    for p, v, s in zip(params, v_new, s_new):
        v_hat = v / (1 - beta1**t)
        s_hat = s / (1 - beta2**t)
        expected.append(p - LR * v_hat / (np.sqrt(s_hat) + eps))
    optimizer = Adam(beta1, beta2, eps)
    optimizer.load_state(t_before, {"first_moment": first, "second_moment": second})
    optimizer.update(params, grads, LR)
    assert optimizer.t == t
    assert_arrays_close(params, expected, rtol=1e-12)
    assert_arrays_close(optimizer.state()["first_moment"], v_new)
    assert_arrays_close(optimizer.state()["second_moment"], s_new)


@pytest.mark.parametrize("epsilon", [1e-8, 1e-1])
def test_adam_multi_step_from_zero_state_matches_a_reference_loop(epsilon):
    rng = np.random.default_rng(11)
    beta1, beta2 = 0.9, 0.999
    params = arrays(rng)
    reference = [p.copy() for p in params]
    v = [np.zeros_like(p) for p in params]
    s = [np.zeros_like(p) for p in params]
    optimizer = Adam(beta1, beta2, epsilon)
    for t in range(1, 26):
        grads = arrays(rng, scale=0.5 + 0.1 * t)
        lr = LR / t
        optimizer.update(params, grads, lr)
        for i, g in enumerate(grads):
            v[i] = beta1 * v[i] + (1 - beta1) * g
            s[i] = beta2 * s[i] + (1 - beta2) * g * g
            v_hat = v[i] / (1 - beta1**t)
            s_hat = s[i] / (1 - beta2**t)
            reference[i] = reference[i] - lr * v_hat / (np.sqrt(s_hat) + epsilon)
    assert optimizer.t == 25
    assert_arrays_close(params, reference, rtol=1e-11, atol=1e-13)


def test_adam_first_step_is_about_lr_times_the_gradient_sign():
    params = [np.zeros(5)]
    grads = [np.array([-3.0, -1e-2, 0.5, 2.0, 1e3])]
    Adam().update(params, grads, 0.1)
    np.testing.assert_allclose(params[0], -0.1 * np.sign(grads[0]), rtol=1e-5)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_state_round_trip_makes_continuation_identical(name):
    rng = np.random.default_rng(5)
    gradients = [arrays(rng) for _ in range(8)]
    params_a = arrays(rng)
    optimizer_a = make(name)
    for grads in gradients[:3]:
        optimizer_a.update(params_a, grads, LR)
    saved_t = optimizer_a.t
    saved = {slot: [a.copy() for a in state] for slot, state in optimizer_a.state().items()}
    assert set(saved) == set(type(optimizer_a).slots)

    params_b = [p.copy() for p in params_a]
    optimizer_b = make(name)
    optimizer_b.load_state(saved_t, saved)
    # load_state copies: scribbling on the saved arrays changes nothing.
    for state in saved.values():
        for a in state:
            a[...] = np.nan
    for grads in gradients[3:]:
        optimizer_a.update(params_a, grads, LR)
        optimizer_b.update(params_b, grads, LR)
    assert optimizer_a.t == optimizer_b.t == len(gradients)
    for a, b in zip(params_a, params_b):
        np.testing.assert_array_equal(a, b)
    for slot in optimizer_a.state():
        for a, b in zip(optimizer_a.state()[slot], optimizer_b.state()[slot]):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", [name for name in sorted(OPTIMIZERS) if OPTIMIZERS[name].slots])
def test_restarting_without_the_state_would_differ(name):
    """The round-trip test can fail: a fresh optimizer does not continue identically."""
    rng = np.random.default_rng(6)
    grads_1, grads_2 = arrays(rng), arrays(rng)
    params_a = arrays(rng)
    optimizer_a = make(name)
    optimizer_a.update(params_a, grads_1, LR)
    params_b = [p.copy() for p in params_a]
    optimizer_a.update(params_a, grads_2, LR)
    make(name).update(params_b, grads_2, LR)
    assert not all(np.array_equal(a, b) for a, b in zip(params_a, params_b))


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_float32_parameters_stay_float32(name):
    rng = np.random.default_rng(7)
    params = arrays(rng, np.float32)
    params64 = [p.astype(np.float64) for p in params]
    objects = [id(p) for p in params]
    optimizer, optimizer64 = make(name), make(name)
    for _ in range(5):
        grads = arrays(rng, np.float32)
        optimizer.update(params, grads, np.float64(LR))
        optimizer64.update(params64, [g.astype(np.float64) for g in grads], LR)
    assert [id(p) for p in params] == objects
    assert all(p.dtype == np.float32 for p in params)
    for state in optimizer.state().values():
        assert all(a.dtype == np.float32 for a in state)
    # Same numbers as the float64 run, to float32 precision.
    assert_arrays_close(params, params64, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_zero_learning_rate_changes_nothing(name):
    rng = np.random.default_rng(8)
    params = arrays(rng)
    before = [p.copy() for p in params]
    make(name).update(params, arrays(rng), 0.0)
    for p, b in zip(params, before):
        np.testing.assert_array_equal(p, b)
