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
