"""The search space: each hyperparameter on the scale that suits it, with its tier.

Scales (from the course notes):

- ``linear``: uniform between ``low`` and ``high``.
- ``log``: ``10**r`` with ``r`` uniform, e.g. the learning rate ``alpha = 10**(-4 rand)``.
- ``reverse_log``: ``1 - 10**r``, for averaging coefficients such as momentum's
  ``beta``: ``1 - beta`` is sampled log-uniformly, because ``1 / (1 - beta)`` is the
  averaging window and sensitivity grows as ``beta`` nears 1. The sampled quantity is
  stored as ``one_minus_<name>`` so a plot's axis says what was sampled.
- ``power_of_two``: ``2**k`` with ``k`` an integer, for sizes vectorized code likes.

Tiers are the notes' priorities (1 matters most). They are data: the report compares
them with the ranking measured on a study.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from optuna_dl.records import TrialRecord

SCALES = ("linear", "log", "reverse_log", "power_of_two")
KINDS = ("float", "int", "categorical")


@dataclass(frozen=True)
class Dimension:
    """One hyperparameter of the estimator, as the sampler sees it.

    Parameters
    ----------
    name : str
        The estimator parameter it sets.
    kind : {"float", "int", "categorical"}
    low, high : float, optional
        Bounds in the estimator's own terms (``beta`` in [0.9, 0.999], not 1 - beta).
    scale : {"linear", "log", "reverse_log", "power_of_two"}
    choices : tuple, optional
        Values of a categorical dimension.
    tier : int
        Priority, 1 most important.
    enabled : bool
        Off dimensions stay in the space (for the prior) but are not sampled.
    when : tuple of (str, tuple), optional
        ``(parent, values)``: sampled only when the parent parameter takes one of the
        values, e.g. ``("optimizer", ("momentum",))`` for ``beta``.
    """

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    scale: str = "linear"
    choices: tuple[Any, ...] | None = None
    tier: int = 3
    enabled: bool = True
    when: tuple[str, tuple[Any, ...]] | None = None

    def __post_init__(self) -> None:
        where = f"search space entry {self.name!r}"
        if self.kind not in KINDS:
            raise ValueError(f"{where}: kind must be one of {KINDS}; got {self.kind!r}.")
        if not isinstance(self.tier, int) or isinstance(self.tier, bool) or self.tier < 1:
            raise ValueError(f"{where}: tier must be a positive integer; got {self.tier!r}.")
        if self.kind == "categorical":
            if not self.choices:
                raise ValueError(f"{where}: a categorical entry needs non-empty choices.")
            return
        if self.scale not in SCALES:
            raise ValueError(f"{where}: scale must be one of {SCALES}; got {self.scale!r}.")
        for bound in ("low", "high"):
            value = getattr(self, bound)
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise ValueError(f"{where}: {bound} must be a number; got {value!r}.")
            if not math.isfinite(value):
                raise ValueError(f"{where}: {bound} must be finite; got {value!r}.")
        if self.kind == "int" and not all(float(b).is_integer() for b in (self.low, self.high)):
            raise ValueError(
                f"{where}: an int entry needs integer bounds; got low={self.low!r}, "
                f"high={self.high!r}."
            )
        if self.low >= self.high:
            raise ValueError(
                f"{where}: low must be < high; got low={self.low!r}, high={self.high!r}."
            )
        if self.scale in ("log", "power_of_two") and self.low <= 0:
            raise ValueError(f"{where}: a {self.scale} scale needs low > 0; got low={self.low!r}.")
        if self.scale == "reverse_log" and not (self.low < self.high < 1):
            raise ValueError(
                f"{where}: the reverse_log scale samples 1 - value log-uniformly, so it "
                f"needs low < high < 1; got low={self.low!r}, high={self.high!r}."
            )
        if self.scale == "power_of_two":
            for bound in (self.low, self.high):
                if bound != 2 ** round(math.log2(bound)):
                    raise ValueError(
                        f"{where}: power_of_two bounds must be powers of two; got {bound!r}."
                    )

    @property
    def sampled_name(self) -> str:
        """Name of the quantity the sampler draws (what plots and importances show)."""
        if self.scale == "reverse_log" and self.kind != "categorical":
            return f"one_minus_{self.name}"
        if self.scale == "power_of_two" and self.kind != "categorical":
            return f"log2_{self.name}"
        return self.name

    def distribution(self) -> BaseDistribution:
        """The Optuna distribution of the sampled quantity."""
        if self.kind == "categorical":
            return CategoricalDistribution(list(self.choices))
        if self.scale == "reverse_log":
            return FloatDistribution(_complement(self.high), _complement(self.low), log=True)
        if self.scale == "power_of_two":
            return IntDistribution(round(math.log2(self.low)), round(math.log2(self.high)))
        log = self.scale == "log"
        if self.kind == "int":
            return IntDistribution(int(self.low), int(self.high), log=log)
        return FloatDistribution(float(self.low), float(self.high), log=log)

    def to_estimator(self, sampled: Any) -> Any:
        """Map a sampled value to the estimator's value."""
        if self.kind == "categorical":
            return sampled
        if self.scale == "reverse_log":
            return _complement(sampled)
        if self.scale == "power_of_two":
            return 2 ** int(sampled)
        return int(sampled) if self.kind == "int" else float(sampled)

    def from_estimator(self, value: Any) -> Any:
        """Map an estimator value to the sampled quantity (inverse of to_estimator)."""
        if self.kind == "categorical":
            return value
        if self.scale == "reverse_log":
            return _complement(value)
        if self.scale == "power_of_two":
            return round(math.log2(value))
        return int(value) if self.kind == "int" else float(value)

    def suggest(self, trial: optuna.Trial) -> Any:
        """Draw the sampled quantity from ``trial`` and return the estimator's value."""
        dist, name = self.distribution(), self.sampled_name
        if isinstance(dist, CategoricalDistribution):
            sampled = trial.suggest_categorical(name, dist.choices)
        elif isinstance(dist, IntDistribution):
            sampled = trial.suggest_int(name, dist.low, dist.high, log=dist.log)
        else:
            sampled = trial.suggest_float(name, dist.low, dist.high, log=dist.log)
        return self.to_estimator(sampled)

    def applies(self, chosen: Mapping[str, Any]) -> bool:
        """Whether this entry is active given the parameters chosen so far."""
        if self.when is None:
            return True
        parent, values = self.when
        return parent not in chosen or chosen[parent] in values


def _complement(value: Any) -> float:
    """``1 - value`` rounded to 15 decimals, the resolution of a float near 1, so that
    1 - 0.999 is 0.001 rather than 0.0010000000000000009."""
    return round(1.0 - float(value), 15)


def _default_dimensions() -> list[Dimension]:
    return [
        Dimension("learning_rate", "float", 1e-4, 1.0, "log", tier=1),
        Dimension("optimizer", "categorical", choices=("adam", "momentum"), tier=2),
        Dimension("n_layers", "int", 1, 4, tier=2),
        Dimension("learning_rate_decay", "float", 1e-3, 1.0, "log", tier=2),
        Dimension(
            "beta", "float", 0.9, 0.999, "reverse_log", tier=2, when=("optimizer", ("momentum",))
        ),
        Dimension("n_units", "int", 16, 512, "log", tier=3),
        Dimension("batch_size", "int", 32, 512, "power_of_two", tier=3),
        Dimension(
            "beta1", "float", 0.8, 0.999, "reverse_log", tier=4, when=("optimizer", ("adam",))
        ),
        Dimension(
            "beta2", "float", 0.99, 0.9999, "reverse_log", tier=4, when=("optimizer", ("adam",))
        ),
        Dimension("epsilon", "float", 1e-10, 1e-6, "log", tier=4, when=("optimizer", ("adam",))),
    ]


@dataclass(frozen=True)
class SearchSpace:
    """An ordered set of :class:`Dimension` entries, sampled define-by-run.

    Parameters
    ----------
    dimensions : iterable of Dimension
        Parents (such as ``optimizer``) must come before the entries that depend on
        them.

    Examples
    --------
    >>> import optuna
    >>> from optuna_dl import SearchSpace
    >>> space = SearchSpace.default(max_tier=1)
    >>> [d.name for d in space.active]
    ['learning_rate']
    >>> study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    >>> params = space.suggest(study.ask())
    >>> 1e-4 <= params["learning_rate"] <= 1
    True
    """

    dimensions: tuple[Dimension, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        dims = tuple(self.dimensions)
        object.__setattr__(self, "dimensions", dims)
        names = [d.name for d in dims]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"search space entry {duplicates[0]!r} appears twice.")
        from optuna_dl.estimator import DeepNetClassifier

        known = set(DeepNetClassifier().get_params())
        for d in dims:
            if d.name not in known:
                raise ValueError(
                    f"search space entry {d.name!r} is not a DeepNetClassifier parameter; "
                    f"known: {', '.join(sorted(known))}."
                )
            if d.when is not None and d.when[0] not in names[: names.index(d.name)]:
                raise ValueError(
                    f"search space entry {d.name!r} depends on {d.when[0]!r}, which must "
                    "be an earlier entry of the space."
                )

    @classmethod
    def default(cls, max_tier: int = 3) -> SearchSpace:
        """The course's space, with the entries of tier ``<= max_tier`` switched on.

        Adam's ``beta1``, ``beta2`` and ``epsilon`` are tier 4 ("not important"):
        present, but off unless ``max_tier >= 4``.
        """
        dims = [replace(d, enabled=d.tier <= max_tier) for d in _default_dimensions()]
        return cls(tuple(dims))

    @property
    def active(self) -> tuple[Dimension, ...]:
        """The enabled entries, in order."""
        return tuple(d for d in self.dimensions if d.enabled)

    @property
    def tiers(self) -> dict[str, int]:
        """Prior priority of every enabled entry, keyed by its sampled name."""
        return {d.sampled_name: d.tier for d in self.active}

    def __getitem__(self, name: str) -> Dimension:
        for d in self.dimensions:
            if d.name == name or d.sampled_name == name:
                return d
        raise KeyError(name)

    def override(self, name: str, **changes: Any) -> SearchSpace:
        """A copy with entry ``name`` changed (bounds, scale, tier, enabled, ...)."""
        try:
            target = self[name].name  # ``name`` may be the sampled name
        except KeyError:
            raise ValueError(
                f"search space has no entry {name!r}; entries: "
                f"{', '.join(d.name for d in self.dimensions)}."
            ) from None
        fields = set(Dimension.__dataclass_fields__) - {"name"}
        unknown = sorted(set(changes) - fields)
        if unknown:
            raise ValueError(
                f"search space entry {name!r}: cannot set {unknown[0]!r}; settable: "
                f"{', '.join(sorted(fields))}."
            )
        dims = tuple(replace(d, **changes) if d.name == target else d for d in self.dimensions)
        return SearchSpace(dims)

    def without(self, names: Iterable[str]) -> SearchSpace:
        """A copy with the named entries switched off."""
        names = set(names)
        return SearchSpace(
            tuple(replace(d, enabled=False) if d.name in names else d for d in self.dimensions)
        )

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """Sample the active entries and return estimator parameters.

        Conditional entries are sampled only when their parent took a matching value
        (or the parent is not sampled at all). The result is also stored in the trial's
        record (:attr:`optuna_dl.records.TrialRecord.estimator_params`).
        """
        chosen: dict[str, Any] = {}
        for d in self.active:
            if d.applies(chosen):
                chosen[d.name] = d.suggest(trial)
        TrialRecord(estimator_params=chosen).write(trial)
        return chosen

    def to_distributions(self) -> dict[str, BaseDistribution]:
        """Static ``{sampled name: distribution}`` of the active entries.

        Conditional entries are included unconditionally; tools that need a static
        space (``GridSampler``, ``enqueue_trial``) use these names.
        """
        return {d.sampled_name: d.distribution() for d in self.active}

    def to_estimator_params(self, sampled: Mapping[str, Any]) -> dict[str, Any]:
        """Translate ``{sampled name: value}`` (e.g. ``trial.params``) to estimator terms."""
        result = {}
        for name, value in sampled.items():
            result[self[name].name] = self[name].to_estimator(value)
        return result

    def to_sampled_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Translate estimator parameters to ``{sampled name: value}``, skipping
        parameters that are not active entries of the space."""
        active = {d.name: d for d in self.active}
        return {
            active[name].sampled_name: active[name].from_estimator(value)
            for name, value in params.items()
            if name in active
        }
