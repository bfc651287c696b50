"""Study definitions: ``studies/<name>.toml`` parsed into a frozen, validated object.

Every problem is reported as one :class:`ConfigError` line naming the file, the key
and what is allowed, before anything touches storage.
"""

from __future__ import annotations

import codecs
import datetime
import math
import sys
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from optuna_dl._validation import Interval
from optuna_dl.datasets import (
    BUNDLED,
    BUNDLED_TASKS,
    DataError,
    load_bundled,
    load_csv,
    load_npz,
)
from optuna_dl.estimator import DeepNetClassifier, DeepNetRegressor
from optuna_dl.tuning.space import KINDS, SCALES, Dimension, SearchSpace

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

#: User attribute holding the study definition, so workers need no study file.
CONFIG_ATTR = "optuna_dl_config"

SAMPLERS = ("TPESampler", "RandomSampler", "QMCSampler", "GridSampler", "CmaEsSampler")
PRUNERS = (
    "MedianPruner",
    "PercentilePruner",
    "SuccessiveHalvingPruner",
    "HyperbandPruner",
    "PatientPruner",
    "ThresholdPruner",
    "WilcoxonPruner",
    "NopPruner",
)
_RESEEDED_ON_RESUME = ("TPESampler", "RandomSampler", "CmaEsSampler")
DIRECTIONS = ("maximize", "minimize")
#: What a study's network predicts, with its estimator and default scoring.
TASKS = {
    "classification": (DeepNetClassifier, "accuracy"),
    "regression": (DeepNetRegressor, "r2"),
}
#: Objectives a study may add to its validation score (``objectives = [...]``).
EXTRA_OBJECTIVES = {
    "fit_seconds": "training time of the trial over all folds",
    "n_params": "number of trainable parameters of the network",
}
# Characters a study name cannot hold when it names the default storage and report files.
_UNSAFE_IN_FILE_NAMES = set('/\\?#%:*"<>|') | {chr(c) for c in range(32)} | {chr(127)}
SOURCES = (*BUNDLED, "csv", "npz")
#: Upper bounds on the network's size, fixed or searched. Far above any useful value,
#: they stop a typo such as ``n_layers = 10e9`` from hanging or crashing every trial.
SIZE_LIMITS = {"n_layers": 100, "n_units": 65_536}


class ConfigError(ValueError):
    """A study file that cannot be used; ``str(error)`` is one line for the user."""


@dataclass(frozen=True)
class DataConfig:
    """Where the samples come from; ``path`` is resolved against the TOML file."""

    source: str
    path: Path | None = None
    target: str | None = None
    test_fraction: float = 0.2

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        """The whole data set ``(X, y)``."""
        if self.source in BUNDLED:
            return load_bundled(self.source)
        if self.source == "csv":
            X, y, _ = load_csv(self.path, self.target)
            return X, y
        return load_npz(self.path)


@dataclass(frozen=True)
class StopRule:
    """``[stop]``: end a study early once its ranking of hyperparameters is settled.

    After ``min_trials`` finished trials, and then every ``check_every`` more, the
    study's ranking (:func:`optuna_dl.analysis.study_ranking`) is computed; once the
    order of its first ``confident_top`` places is settled (kept by 95 % of bootstrap
    resamples, :func:`optuna_dl.analysis.rank_confidence`), no further trial is
    started. ``n_trials`` (or ``timeout``) stays the maximum budget.
    """

    confident_top: int = 1
    min_trials: int = 20
    check_every: int = 5


@dataclass(frozen=True)
class StudyConfig:
    """A validated study definition. Build it with :func:`load_config`."""

    path: Path
    name: str
    direction: str
    n_trials: int | None
    timeout: float | None
    seed: int
    data: DataConfig
    estimator: dict[str, Any]
    space: SearchSpace
    cv: int | None
    validation_fraction: float
    max_epochs: int
    patience: int | None
    scoring: str
    sampler: dict[str, Any]
    pruner: dict[str, Any]
    storage: str
    report: Path
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)
    stop: StopRule | None = None
    task: str = "classification"
    #: All directions and objective names; one entry each for a single objective.
    directions: tuple[str, ...] = ()
    objectives: tuple[str, ...] = ()

    @property
    def multi_objective(self) -> bool:
        """Whether the study has several objectives (a Pareto front, no single best)."""
        return len(self.directions) > 1

    def make_sampler(self, resumed: int = 0) -> optuna.samplers.BaseSampler:
        """A new sampler instance as configured (seeded with ``seed`` unless given).

        ``resumed`` is the number of trials the study already holds. TPE, random and
        CMA-ES samplers keep their random state in memory only, so a resumed study
        seeded as before would replay the configurations it already tried; their seed
        is shifted by ``resumed``. QMC and grid samplers continue from the storage and
        keep theirs.
        """
        args = {k: v for k, v in self.sampler.items() if k != "name"}
        name = self.sampler["name"]
        args.setdefault("seed", self.seed)
        if resumed and name in _RESEEDED_ON_RESUME and isinstance(args["seed"], int):
            args["seed"] = (args["seed"] + resumed) % 2**32
        return getattr(optuna.samplers, name)(**args)

    def create_study(self, storage: Any) -> optuna.Study:
        """Create this study in ``storage``, or load it if it exists.

        A loaded study gets a sampler seeded past the trials it already holds: one
        seeded as before would replay them.
        """
        study = optuna.create_study(
            study_name=self.name,
            storage=storage,
            directions=list(self.directions),
            sampler=self.make_sampler(),
            pruner=self.make_pruner(),
            load_if_exists=True,
        )
        existing = len(study.get_trials(deepcopy=False))
        if existing:
            study.sampler = self.make_sampler(resumed=existing)
        if study.metric_names is None:
            # The objective's name, shown by optuna-dashboard and `optuna trials`.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names(list(self.objectives))
        return study

    def make_pruner(self) -> optuna.pruners.BasePruner:
        """A new pruner instance as configured."""
        args = {k: v for k, v in self.pruner.items() if k != "name"}
        name = self.pruner["name"]
        if name == "PatientPruner":
            args.setdefault("wrapped_pruner", None)
        return getattr(optuna.pruners, name)(**args)

    def make_estimator(self) -> Any:
        """``StandardScaler -> DeepNetClassifier`` (or ``DeepNetRegressor`` for a
        regression study) with the fixed parameters; the last step is named after the
        task's estimator kind (``"classifier"`` or ``"regressor"``)."""
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import StandardScaler

        params = {"random_state": self.seed, **self.estimator}
        network, _ = TASKS[self.task]
        step = "regressor" if self.task == "regression" else "classifier"
        return Pipeline([("scale", StandardScaler()), (step, network(**params))])

    def load_data(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``X_train, X_test, y_train, y_test``: the study tunes on the first part; the
        held-out part is only used to report the accuracy of the exported model."""
        from sklearn.model_selection import train_test_split

        where = f"{self.path}: key 'data'"
        try:
            X, y = self.data.load()
        except DataError as error:
            raise ConfigError(f"{where}: {error}") from None
        try:
            X = np.asarray(X, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"{where}: features must be numbers ({error}).") from None
        y = np.asarray(y)
        if X.ndim != 2 or y.ndim != 1 or len(X) != len(y):
            raise ConfigError(
                f"{where}: X must be 2-D with one label per row; got X of "
                f"shape {X.shape} and labels of shape {y.shape}."
            )
        if not np.all(np.isfinite(X)):
            raise ConfigError(f"{where}: features must be finite; found NaN or infinity.")
        if self.task == "regression":
            try:
                y = y.astype(np.float64)
            except (TypeError, ValueError):
                raise ConfigError(
                    f"{where}: a regression study needs numeric targets; got {y.dtype} "
                    f"values such as {y[0]!r}."
                ) from None
            if not np.all(np.isfinite(y)):
                raise ConfigError(f"{where}: targets must be finite; found NaN or infinity.")
        classes = np.unique(y)
        if len(classes) < 2:
            raise ConfigError(f"{where}: needs at least two classes; got {len(classes)}.")
        try:
            return train_test_split(
                X,
                y,
                test_size=self.data.test_fraction,
                stratify=y if self.task == "classification" else None,
                random_state=self.seed,
            )
        except ValueError as error:
            raise ConfigError(
                f"{self.path}: key 'data.test_fraction': cannot hold out a stratified "
                f"{self.data.test_fraction:g} of {len(y)} samples ({_first_line(error)})"
            ) from None

    def make_objective(self, X: Any, y: Any) -> Any:
        """The :class:`~optuna_dl.tuning.objective.Objective` this study optimizes."""
        from optuna_dl.tuning.objective import Objective

        try:
            return Objective(
                X,
                y,
                space=self.space,
                estimator=self.make_estimator(),
                cv=self.cv,
                validation_fraction=self.validation_fraction,
                scoring=self.scoring,
                objectives=self.objectives[1:],
                max_epochs=self.max_epochs,
                patience=self.patience,
                random_state=self.seed,
            )
        except ValueError as error:  # e.g. more folds than samples of a class
            raise ConfigError(
                f"{self.path}: key 'search': cannot validate on these {len(y)} training "
                f"samples ({_first_line(error)})"
            ) from None


# ---------------------------------------------------------------------- parsing
_TOP = {
    "name": str,
    "task": str,
    "direction": str,
    "directions": list,
    "objectives": list,
    "n_trials": int,
    "timeout": (int, float),
    "seed": int,
    "storage": str,
    "report": str,
    "data": dict,
    "estimator": dict,
    "search": dict,
    "space": dict,
    "sampler": dict,
    "pruner": dict,
    "stop": dict,
}
_STOP = {"confident_top": int, "min_trials": int, "check_every": int}
_DATA = {"source": str, "path": str, "target": str, "test_fraction": (int, float)}
_SEARCH = {
    "cv": int,
    "validation_fraction": (int, float),
    "max_epochs": int,
    "patience": int,
    "scoring": str,
    "max_tier": int,
}
_DIMENSION = {
    "kind": str,
    "low": (int, float),
    "high": (int, float),
    "scale": str,
    "choices": list,
    "tier": int,
    "enabled": bool,
}


def _type_name(types: Any) -> str:
    types = types if isinstance(types, tuple) else (types,)
    names = {
        int: "an integer",
        float: "a number",
        str: "a string",
        dict: "a table",
        list: "an array",
        bool: "true or false",
    }
    return " or ".join(names[t] for t in types)


class _Parser:
    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.path}: key {key!r}: {message}")

    def check_table(self, table: dict[str, Any], schema: dict[str, Any], prefix: str) -> None:
        for key, value in table.items():
            dotted = f"{prefix}{key}"
            if key not in schema:
                raise self.fail(dotted, f"unknown key; allowed: {', '.join(schema)}.")
            expected = schema[key]
            types = expected if isinstance(expected, tuple) else (expected,)
            ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
            if not ok:
                raise self.fail(
                    dotted,
                    f"must be {_type_name(expected)}; got {value!r} ({type(value).__name__}).",
                )
            if isinstance(value, float) and not math.isfinite(value):
                raise self.fail(dotted, f"must be finite; got {value!r}.")


def load_config(path: str | Path) -> StudyConfig:
    """Read and validate a study file.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    StudyConfig

    Raises
    ------
    ConfigError
        One line naming the file, the key and what is allowed.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such study file.")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ConfigError(f"{path}: cannot read ({error.strerror}).") from None
    if data.startswith(codecs.BOM_UTF8):  # as some editors save UTF-8
        data = data[len(codecs.BOM_UTF8) :]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}: not valid TOML (line {line}: byte {data[error.start]:#04x} is not "
            "UTF-8; save the file as UTF-8)."
        ) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML ({error}).") from None
    return parse_config(raw, path)


def parse_config(raw: dict[str, Any], path: Path) -> StudyConfig:
    """Validate an already-parsed TOML document that came from ``path``."""
    p = _Parser(path)
    p.check_table(raw, _TOP, "")
    _reject_dates(p, raw, "")
    base = path.resolve().parent

    name = raw.get("name", path.stem)
    if not name.strip() or len(name) > 200:
        raise p.fail(
            "name", f"must be a non-empty study name of at most 200 characters; got {name!r}."
        )
    unsafe = sorted(set(name) & _UNSAFE_IN_FILE_NAMES)
    if unsafe and ("storage" not in raw or "report" not in raw):
        raise p.fail(
            "name",
            f"{name!r} names the default storage and report files, so it cannot hold "
            f"{unsafe[0]!r}; rename the study or set both storage and report.",
        )
    direction = raw.get("direction", "maximize")
    if direction not in DIRECTIONS:
        raise p.fail("direction", f"must be one of {', '.join(DIRECTIONS)}; got {direction!r}.")
    directions = _parse_directions(p, raw)
    if directions:
        direction = directions[0]
    n_trials = raw.get("n_trials")
    timeout = raw.get("timeout")
    if n_trials is None and timeout is None:
        raise p.fail("n_trials", "a study needs n_trials, timeout or both.")
    if n_trials is not None and not 1 <= n_trials <= 1_000_000:
        raise p.fail("n_trials", f"must be between 1 and 1000000; got {n_trials}.")
    if timeout is not None and not 0 < timeout <= 30 * 86400:
        raise p.fail("timeout", f"must be a number of seconds in (0, 2592000]; got {timeout}.")
    seed = raw.get("seed", 0)
    if not 0 <= seed < 2**32:
        raise p.fail("seed", f"must be in [0, 2**32); got {seed}.")

    data = _parse_data(p, raw.get("data"), base)
    estimator = _parse_estimator(p, raw.get("estimator", {}))
    search = raw.get("search", {})
    p.check_table(search, _SEARCH, "search.")
    cv = search.get("cv")
    if cv is not None and not 2 <= cv <= 20:
        raise p.fail("search.cv", f"must be between 2 and 20 folds; got {cv}.")
    validation_fraction = float(search.get("validation_fraction", 0.2))
    if not 0 < validation_fraction < 1:
        raise p.fail(
            "search.validation_fraction", f"must be in (0, 1); got {validation_fraction}."
        )
    max_epochs = search.get("max_epochs", 30)
    if not 1 <= max_epochs <= 100_000:
        raise p.fail("search.max_epochs", f"must be between 1 and 100000; got {max_epochs}.")
    patience = search.get("patience", 10)
    if not 1 <= patience <= 100_000:
        raise p.fail("search.patience", f"must be between 1 and 100000; got {patience}.")
    task = raw.get("task", "classification")
    if task not in TASKS:
        raise p.fail("task", f"must be one of {', '.join(TASKS)}; got {task!r}.")
    bundled_task = BUNDLED_TASKS.get(data.source)
    if bundled_task is not None and bundled_task != task:
        raise p.fail(
            "task",
            f"data set {data.source!r} is for {bundled_task}, not {task}; set "
            f'task = "{bundled_task}" or pick another data set.',
        )
    scoring = search.get("scoring", TASKS[task][1])
    from sklearn.metrics import get_scorer_names

    if scoring not in get_scorer_names():
        raise p.fail(
            "search.scoring",
            f"unknown scorer {scoring!r}; see sklearn.metrics.get_scorer_names().",
        )
    if not _scorer_fits(scoring, task):
        raise p.fail(
            "search.scoring",
            f"{scoring!r} cannot score {task}; for example use {TASKS[task][1]!r}.",
        )
    max_tier = search.get("max_tier", 3)
    if not 1 <= max_tier <= 10:
        raise p.fail("search.max_tier", f"must be between 1 and 10; got {max_tier}.")
    space = _parse_space(p, raw.get("space", {}), SearchSpace.default(max_tier=max_tier))
    _check_space_values(p, space)
    fixed_and_searched = sorted(set(estimator) & {d.name for d in space.active})
    if fixed_and_searched:
        raise p.fail(
            f"estimator.{fixed_and_searched[0]}",
            "is both fixed here and searched by the space; switch the space entry off "
            f"with [space.{fixed_and_searched[0]}] enabled = false.",
        )

    sampler = _parse_choice(p, raw.get("sampler", {"name": "TPESampler"}), "sampler", SAMPLERS)
    pruner = _parse_choice(p, raw.get("pruner", {"name": "MedianPruner"}), "pruner", PRUNERS)
    stop = _parse_stop(p, raw.get("stop"), n_trials, len(space.active))
    objectives = _parse_objectives(p, raw, directions, scoring)
    storage = raw.get("storage", f"sqlite:///{base / (name + '.db')}")
    report = Path(raw.get("report", f"{name}.html"))
    config = StudyConfig(
        path=path,
        name=name,
        direction=direction,
        n_trials=n_trials,
        timeout=float(timeout) if timeout is not None else None,
        seed=seed,
        data=data,
        estimator=estimator,
        space=space,
        cv=cv,
        validation_fraction=validation_fraction,
        max_epochs=max_epochs,
        patience=patience,
        scoring=scoring,
        sampler=sampler,
        pruner=pruner,
        storage=storage,
        report=report if report.is_absolute() else base / report,
        raw=raw,
        stop=stop,
        task=task,
        directions=tuple(directions) or (direction,),
        objectives=objectives,
    )
    _try_build(p, config)
    return config


def _scorer_fits(scoring: str, task: str) -> bool:
    """Whether scorer ``scoring`` can score a model of ``task`` (tried on a dummy one)."""
    import warnings

    from sklearn.dummy import DummyClassifier, DummyRegressor
    from sklearn.metrics import get_scorer

    X = np.zeros((8, 1))
    if task == "regression":
        y, model = np.linspace(0.0, 1.0, 8), DummyRegressor()
    else:
        y, model = np.array([0, 1] * 4), DummyClassifier()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            get_scorer(scoring)(model.fit(X, y), X, y)
    except (TypeError, ValueError, AttributeError):
        return False
    return True


def _parse_directions(p: _Parser, raw: dict[str, Any]) -> list[str]:
    """``directions = [...]`` of a multi-objective study ([] when absent)."""
    if "directions" not in raw:
        if "objectives" in raw:
            raise p.fail("objectives", "needs directions = [...], one per objective.")
        return []
    if "direction" in raw:
        raise p.fail("directions", "give direction (one objective) or directions, not both.")
    directions = raw["directions"]
    if not 2 <= len(directions) <= 4 or any(d not in DIRECTIONS for d in directions):
        raise p.fail(
            "directions",
            f"must list 2 to 4 of {', '.join(DIRECTIONS)}; got {directions!r}.",
        )
    return list(directions)


def _parse_objectives(
    p: _Parser, raw: dict[str, Any], directions: list[str], scoring: str
) -> tuple[str, ...]:
    """``objectives = [...]``: the validation score first, then extra objectives."""
    if not directions:
        return (scoring,)
    objectives = raw.get("objectives")
    if objectives is None:
        raise p.fail("directions", "needs objectives = [...], one name per direction.")
    allowed = ", ".join(EXTRA_OBJECTIVES)
    if len(objectives) != len(directions) or len(set(map(str, objectives))) != len(objectives):
        raise p.fail(
            "objectives",
            f"must name {len(directions)} different objectives, one per direction; "
            f"got {objectives!r}.",
        )
    if objectives[0] != scoring:
        raise p.fail(
            "objectives",
            f"the first objective is the validation score, search.scoring = {scoring!r}; "
            f"got {objectives[0]!r}.",
        )
    unknown = [o for o in objectives[1:] if o not in EXTRA_OBJECTIVES]
    if unknown:
        raise p.fail(
            "objectives", f"unknown objective {unknown[0]!r}; allowed after the score: {allowed}."
        )
    return tuple(objectives)


def _parse_stop(
    p: _Parser, stop: dict[str, Any] | None, n_trials: int | None, n_params: int
) -> StopRule | None:
    if stop is None:
        return None
    p.check_table(stop, _STOP, "stop.")
    rule = StopRule(**stop)
    if not 1 <= rule.confident_top <= max(n_params, 1):
        raise p.fail(
            "stop.confident_top",
            f"must be between 1 and the {n_params} searched parameter(s); "
            f"got {rule.confident_top}.",
        )
    if not 2 <= rule.min_trials <= 1_000_000:
        raise p.fail("stop.min_trials", f"must be between 2 and 1000000; got {rule.min_trials}.")
    if n_trials is not None and rule.min_trials > n_trials:
        raise p.fail(
            "stop.min_trials",
            f"is {rule.min_trials}, more than n_trials = {n_trials}, the most the study runs.",
        )
    if not 1 <= rule.check_every <= 100_000:
        raise p.fail("stop.check_every", f"must be between 1 and 100000; got {rule.check_every}.")
    return rule


def _parse_data(p: _Parser, data: Any, base: Path) -> DataConfig:
    if data is None:
        raise p.fail("data", f"missing table [data] with source = one of {', '.join(SOURCES)}.")
    p.check_table(data, _DATA, "data.")
    source = data.get("source")
    if source not in SOURCES:
        raise p.fail("data.source", f"must be one of {', '.join(SOURCES)}; got {source!r}.")
    test_fraction = float(data.get("test_fraction", 0.2))
    if not 0 < test_fraction < 1:
        raise p.fail("data.test_fraction", f"must be in (0, 1); got {test_fraction}.")
    if source in BUNDLED:
        for key in ("path", "target"):
            if key in data:
                raise p.fail(f"data.{key}", f"is not used with the bundled source {source!r}.")
        return DataConfig(source, test_fraction=test_fraction)
    if "path" not in data:
        raise p.fail("data.path", f"a {source} source needs a path (relative to the study file).")
    file = (base / data["path"]).resolve()
    if not file.is_file():
        raise p.fail("data.path", f"file {str(file)!r} does not exist.")
    if source == "csv" and "target" not in data:
        raise p.fail("data.target", "a csv source needs the name of its target column.")
    if source == "npz" and "target" in data:
        raise p.fail("data.target", "an npz source holds arrays 'X' and 'y'; drop target.")
    return DataConfig(source, file, data.get("target"), test_fraction)


def _parse_estimator(p: _Parser, estimator: dict[str, Any]) -> dict[str, Any]:
    constraints = DeepNetClassifier._parameter_constraints
    allowed = sorted(set(constraints) - {"random_state", "warm_start"})
    for key, value in estimator.items():
        if key not in allowed:
            raise p.fail(f"estimator.{key}", f"unknown parameter; allowed: {', '.join(allowed)}.")
        rule = constraints[key]
        if not rule.accepts(value):
            raise p.fail(f"estimator.{key}", f"must be {rule.describe()}; got {value!r}.")
        limit = SIZE_LIMITS.get(key)
        if limit is not None and value > limit:
            raise p.fail(f"estimator.{key}", f"must be at most {limit}; got {_show(value)}.")
    return dict(estimator)


def _show(value: Any) -> str:
    """``repr(value)``, with integers of more than 15 digits shortened (``1e+308``)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**15:
        try:
            return f"{float(value):.3g}"
        except OverflowError:
            return f"an integer of {len(str(abs(value)))} digits"
    return repr(value)


def _reject_dates(p: _Parser, value: Any, key: str) -> None:
    """TOML dates and times fit no key of a study file (and cannot be stored as JSON)."""
    if isinstance(value, dict):
        for name, item in value.items():
            _reject_dates(p, item, f"{key}.{name}" if key else name)
    elif isinstance(value, list):
        for item in value:
            _reject_dates(p, item, key)
    elif isinstance(value, (datetime.date, datetime.time)):  # datetime is a date
        raise p.fail(key, f"a study file holds no dates or times; got {value.isoformat()}.")


def _check_space_values(p: _Parser, space: SearchSpace) -> None:
    """Every value an enabled entry can sample must be one the estimator accepts: its
    bounds (the ends of an interval rule) or each of its choices."""
    for d in space.active:
        rule = DeepNetClassifier._parameter_constraints.get(d.name)
        if rule is None:
            continue
        if d.kind == "categorical":
            values = list(d.choices)
        else:
            try:
                distribution = d.distribution()
            except (ValueError, TypeError, OverflowError) as error:
                raise p.fail(f"space.{d.name}", _first_line(error)) from None
            values = [d.to_estimator(distribution.low), d.to_estimator(distribution.high)]
        for value in values:
            if not rule.accepts(value):
                hint = (
                    ' (a float entry samples floats; use kind = "int")'
                    if d.kind == "float" and isinstance(rule, Interval) and rule.kind == "int"
                    else ""
                )
                raise p.fail(
                    f"space.{d.name}",
                    f"can sample {_show(value)}, but {d.name} must be {rule.describe()}{hint}.",
                )
            limit = SIZE_LIMITS.get(d.name)
            if limit is not None and value > limit:
                raise p.fail(
                    f"space.{d.name}",
                    f"can sample {_show(value)}; {d.name} must be at most {limit}.",
                )


def _parse_space(p: _Parser, entries: dict[str, Any], space: SearchSpace) -> SearchSpace:
    for name, table in entries.items():
        key = f"space.{name}"
        if not isinstance(table, dict):
            raise p.fail(key, f"must be a table of {', '.join(_DIMENSION)}; got {table!r}.")
        p.check_table(table, _DIMENSION, key + ".")
        changes = dict(table)
        if "choices" in changes:
            changes["choices"] = tuple(changes["choices"])
        if "kind" in changes and changes["kind"] not in KINDS:
            raise p.fail(
                key + ".kind", f"must be one of {', '.join(KINDS)}; got {changes['kind']!r}."
            )
        if "scale" in changes and changes["scale"] not in SCALES:
            raise p.fail(
                key + ".scale", f"must be one of {', '.join(SCALES)}; got {changes['scale']!r}."
            )
        try:
            if name in {d.name for d in space.dimensions}:
                space = space.override(name, **changes)
            else:
                if "kind" not in changes:
                    raise ValueError(f"new entry {name!r} needs a kind ({', '.join(KINDS)}).")
                space = SearchSpace((*space.dimensions, Dimension(name, **changes)))
        except (ValueError, TypeError) as error:
            raise p.fail(key, str(error)) from None
    return space


def _parse_choice(
    p: _Parser, table: Any, section: str, allowed: tuple[str, ...]
) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise p.fail(section, f"must be a table with a name; got {table!r}.")
    name = table.get("name")
    if name not in allowed:
        raise p.fail(f"{section}.name", f"must be one of {', '.join(allowed)}; got {name!r}.")
    if name == "CmaEsSampler":
        try:
            import cmaes  # noqa: F401
        except ImportError:
            raise p.fail(
                f"{section}.name", "CmaEsSampler needs the cmaes package (pip install cmaes)."
            ) from None
    return dict(table)


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _try_build(p: _Parser, config: StudyConfig) -> None:
    """Construct the sampler and pruner and run them on a few dummy trials in memory,
    so that bad arguments fail here, before any storage is touched.

    Optuna checks few arguments when a sampler or pruner is built; most (e.g.
    ``n_startup_trials = "x"``, a grid that misses a parameter) only fail at the first
    trial, which is too late: the study would already exist in storage.
    """
    import warnings

    for section, make in (("sampler", config.make_sampler), ("pruner", config.make_pruner)):
        name = getattr(config, section)["name"]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                make()
        except (TypeError, ValueError) as error:
            raise p.fail(section, f"{name} rejected its arguments: {_first_line(error)}") from None
        startup = config.sampler.get("n_startup_trials") if section == "sampler" else None
        dry = config
        n_trials = 12
        if isinstance(startup, int) and not isinstance(startup, bool) and startup >= 0:
            # Two trials past the random start-up ones, which are cut to 10 at most, so
            # that the arguments of the model-based phase are tried as well.
            dry = replace(config, sampler={**config.sampler, "n_startup_trials": min(startup, 10)})
            n_trials = min(startup, 10) + 2
        try:
            _dry_run(dry, section, n_trials)
        except Exception as error:  # whatever the sampler or pruner raised
            problem = f"{type(error).__name__}: {_first_line(error)}"
            raise p.fail(section, f"{name} failed on a dry run: {problem}") from None


def _dry_run(config: StudyConfig, section: str, n_trials: int) -> None:
    """Optimize a dummy objective over the study's space in memory with the configured
    sampler (and no pruning) or the configured pruner (and random sampling)."""
    import warnings

    steps = config.cv or 3  # WilcoxonPruner: one step per fold
    wilcoxon = config.pruner["name"] == "WilcoxonPruner" and section == "pruner"

    def objective_values(trial: optuna.Trial) -> float:
        config.space.suggest(trial)
        return 0.5 + 0.01 * (trial.number % 7)

    def objective(trial: optuna.Trial) -> float:
        config.space.suggest(trial)
        value = 0.5 + 0.01 * (trial.number % 7)
        for step in range(steps):
            trial.report(value if wilcoxon else value * (step + 1) / steps, step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return value

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if section == "sampler":
                sampler, pruner = config.make_sampler(), optuna.pruners.NopPruner()
            else:
                sampler, pruner = optuna.samplers.RandomSampler(seed=0), config.make_pruner()
            study = optuna.create_study(
                directions=list(config.directions), sampler=sampler, pruner=pruner
            )
            if config.multi_objective:  # no reports: Optuna prunes single objectives only
                study.optimize(
                    lambda trial: (objective_values(trial),) * len(config.directions),
                    n_trials=n_trials,
                )
            else:
                study.optimize(objective, n_trials=n_trials)
    finally:
        optuna.logging.set_verbosity(verbosity)


def config_to_dict(config: StudyConfig) -> dict[str, Any]:
    """A JSON-able description of the study, stored with it so workers need no TOML.

    Data paths are absolute; the storage URL is left out (it may hold a password).
    ``n_trials``, ``timeout`` and ``seed`` are the values in effect, so command-line
    overrides (``dataclasses.replace``) are recorded too.
    """
    raw = {k: v for k, v in config.raw.items() if k not in ("storage", "n_trials", "timeout")}
    data = dict(raw.get("data", {}))
    if config.data.path is not None:
        data["path"] = str(config.data.path)
    raw["data"] = data
    raw["name"] = config.name
    raw["seed"] = config.seed
    for key in ("n_trials", "timeout"):
        if getattr(config, key) is not None:
            raw[key] = getattr(config, key)
    return raw


def config_from_dict(
    raw: dict[str, Any], *, storage: str, origin: str = "stored study definition"
) -> StudyConfig:
    """Rebuild a :class:`StudyConfig` from :func:`config_to_dict`'s output.

    This is how ``optuna-dl worker`` joins a study with no local TOML file: the
    definition stored with the study is validated again here, exactly as a study file
    would be (a data file missing on this machine is reported as usual). ``storage``
    is the URL the worker was given; ``origin`` names the definition in error messages.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"{origin}: not a study definition (got {type(raw).__name__}).")
    return parse_config({**raw, "storage": storage}, Path(origin))
