"""Hyperparameter rules: each rule checks one value and says what it expected."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Interval:
    """A number of ``kind`` ("int" or "float") between ``low`` and ``high``."""

    kind: str
    low: float | None = None
    high: float | None = None
    closed: str = "both"  # "both", "left", "right" or "neither"

    def accepts(self, value: Any) -> bool:
        if isinstance(value, bool):
            return False
        if self.kind == "int" and not isinstance(value, numbers.Integral):
            return False
        if not isinstance(value, numbers.Real):
            return False
        if self.kind == "float":
            # inf and nan are outside every interval; so is a number too big for a float
            # (math.isfinite(10**400) raises OverflowError).
            try:
                if not math.isfinite(value):
                    return False
            except OverflowError:
                return False
        if self.low is not None:
            if value < self.low or (value == self.low and self.closed in ("right", "neither")):
                return False
        if self.high is not None:
            if value > self.high or (value == self.high and self.closed in ("left", "neither")):
                return False
        return True

    def describe(self) -> str:
        noun = "an integer" if self.kind == "int" else "a number"
        low = "-inf" if self.low is None else f"{self.low:g}"
        high = "inf" if self.high is None else f"{self.high:g}"
        left = "[" if self.closed in ("both", "left") and self.low is not None else "("
        right = "]" if self.closed in ("both", "right") and self.high is not None else ")"
        return f"{noun} in {left}{low}, {high}{right}"


@dataclass(frozen=True)
class OneOf:
    """One of a fixed set of strings (built from a lookup table's keys)."""

    options: tuple[str, ...]

    @classmethod
    def keys_of(cls, table: Iterable[str]) -> OneOf:
        return cls(tuple(table))

    def accepts(self, value: Any) -> bool:
        return isinstance(value, str) and value in self.options

    def describe(self) -> str:
        return "one of " + ", ".join(repr(o) for o in self.options)


@dataclass(frozen=True)
class Boolean:
    """True or False (NumPy booleans included)."""

    def accepts(self, value: Any) -> bool:
        return isinstance(value, bool) or type(value).__name__ == "bool_"

    def describe(self) -> str:
        return "True or False"


@dataclass(frozen=True)
class RandomState:
    """None, an int seed, a numpy Generator or a RandomState."""

    def accepts(self, value: Any) -> bool:
        import numpy as np

        if value is None or isinstance(value, (np.random.Generator, np.random.RandomState)):
            return True
        return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 0

    def describe(self) -> str:
        return "None, a non-negative int, a numpy Generator or a RandomState"


def check_parameters(owner: str, params: dict[str, Any], rules: dict[str, Any]) -> None:
    """Raise ValueError naming the first parameter of ``params`` that breaks its rule."""
    for name, rule in rules.items():
        value = params[name]
        if not rule.accepts(value):
            raise ValueError(
                f"{owner}: parameter {name!r} must be {rule.describe()}; "
                f"got {value!r} ({type(value).__name__})."
            )


@dataclass(frozen=True)
class ClassWeight:
    """None, ``"balanced"`` or a dict from class label to a finite non-negative weight.

    Whether the dict's labels are classes of the data is checked when fitting.
    """

    def accepts(self, value: Any) -> bool:
        if value is None or (isinstance(value, str) and value == "balanced"):
            return True
        if not isinstance(value, dict):
            return False
        return all(Interval("float", 0, None).accepts(weight) for weight in value.values())

    def describe(self) -> str:
        return "None, 'balanced' or a dict from class label to a finite number >= 0"


def check_sample_weight(sample_weight: Any, n_samples: int):
    """``sample_weight`` as a float64 array of shape ``(n_samples,)``, or None.

    Raises ValueError naming ``sample_weight`` unless it is one finite, non-negative
    number per sample and not all zero.
    """
    import numpy as np

    if sample_weight is None:
        return None
    try:
        weights = np.array(sample_weight, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"sample_weight must be an array of numbers; got {type(sample_weight).__name__}."
        ) from None
    if weights.shape != (n_samples,):
        raise ValueError(
            f"sample_weight must have shape ({n_samples},), one weight per sample; got "
            f"shape {weights.shape}."
        )
    if not np.isfinite(weights).all():
        raise ValueError(
            f"sample_weight must be finite; got {np.count_nonzero(~np.isfinite(weights))} "
            "non-finite weights."
        )
    if (weights < 0).any():
        raise ValueError(
            f"sample_weight must be non-negative; got a minimum of {weights.min():g}."
        )
    if not weights.any():
        raise ValueError("sample_weight must have at least one non-zero weight; got all zeros.")
    return weights
