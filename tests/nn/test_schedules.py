"""Learning-rate schedules against their formulas."""

from __future__ import annotations

import math

import pytest

from optuna_dl.nn import SCHEDULES

EPOCHS = [0, 1, 2, 3, 4, 5, 7, 10, 37, 100]
LEARNING_RATE = 0.05


def test_the_three_schedules_are_registered():
    assert set(SCHEDULES) >= {"inverse_time", "exponential", "step"}


@pytest.mark.parametrize("epoch", EPOCHS)
@pytest.mark.parametrize("decay", [0.1, 0.5, 2.0])
def test_inverse_time(decay, epoch):
    expected = LEARNING_RATE / (1 + decay * epoch)
    assert SCHEDULES["inverse_time"](LEARNING_RATE, decay, epoch) == pytest.approx(
        expected, rel=1e-14
    )


@pytest.mark.parametrize("epoch", EPOCHS)
@pytest.mark.parametrize("decay", [0.1, 0.5, 2.0])
def test_exponential(decay, epoch):
    expected = LEARNING_RATE * math.exp(-decay * epoch)
    assert SCHEDULES["exponential"](LEARNING_RATE, decay, epoch) == pytest.approx(
        expected, rel=1e-14
    )


@pytest.mark.parametrize("epoch", EPOCHS)
def test_exponential_with_log_decay_is_a_power(epoch):
    rate = SCHEDULES["exponential"](LEARNING_RATE, -math.log(0.95), epoch)
    assert rate == pytest.approx(LEARNING_RATE * 0.95**epoch, rel=1e-12)


@pytest.mark.parametrize(
    ("epoch", "halvings"),
    [(0, 0), (1, 0), (3, 0), (4, 1), (5, 1), (7, 1), (8, 2), (11, 2), (12, 3), (40, 10)],
)
def test_step_halves_every_one_over_decay_epochs(epoch, halvings):
    # decay 0.25: halve every 4 epochs.
    assert SCHEDULES["step"](LEARNING_RATE, 0.25, epoch) == LEARNING_RATE / 2**halvings


@pytest.mark.parametrize("epoch", EPOCHS)
@pytest.mark.parametrize("decay", [0.1, 0.5, 2.0])
def test_step_formula(decay, epoch):
    expected = LEARNING_RATE * 0.5 ** math.floor(decay * epoch)
    assert SCHEDULES["step"](LEARNING_RATE, decay, epoch) == expected


@pytest.mark.parametrize("epoch", EPOCHS)
@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_zero_decay_keeps_the_rate_constant(name, epoch):
    assert SCHEDULES[name](LEARNING_RATE, 0.0, epoch) == LEARNING_RATE


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_first_epoch_uses_the_initial_rate_and_rates_never_increase(name):
    for decay in (0.01, 0.3, 1.0):
        rates = [SCHEDULES[name](LEARNING_RATE, decay, epoch) for epoch in range(200)]
        assert rates[0] == LEARNING_RATE
        assert all(b <= a for a, b in zip(rates, rates[1:]))
        assert rates[-1] < LEARNING_RATE
        assert all(r > 0 for r in rates)
