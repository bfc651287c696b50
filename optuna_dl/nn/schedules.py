"""Learning-rate decay: the rate used during epoch ``epoch`` (0 for the first).

A decay of 0 keeps the rate constant under every schedule.
"""

from __future__ import annotations

import math
from collections.abc import Callable


def inverse_time(learning_rate: float, decay: float, epoch: int) -> float:
    """The course's rule ``lr0 / (1 + decay * epoch)``."""
    return learning_rate / (1.0 + decay * epoch)


def exponential(learning_rate: float, decay: float, epoch: int) -> float:
    """``lr0 * exp(-decay * epoch)`` (``0.95**epoch`` is ``decay = -log 0.95``)."""
    return learning_rate * math.exp(-decay * epoch)


def step(learning_rate: float, decay: float, epoch: int) -> float:
    """Staircase: ``lr0 * 0.5 ** floor(decay * epoch)``, halving every 1/decay epochs."""
    # Past 2000 halvings the rate is 0.0 anyway; the cap keeps floor() away from inf
    # (decay=1e308, epoch=2), which it cannot convert to an int.
    return learning_rate * 0.5 ** math.floor(min(decay * epoch, 2000.0))


SCHEDULES: dict[str, Callable[[float, float, int], float]] = {
    "inverse_time": inverse_time,
    "exponential": exponential,
    "step": step,
}
