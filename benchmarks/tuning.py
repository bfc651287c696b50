"""Tuning on digits: DeepNetSearchCV with and without pruning beside two MLP searches.

One run, one process, equal budgets. Every searcher sees the same data: scikit-learn's
digits with a fixed stratified 20 % held out (``random_state=0``), the same three
cross-validation folds of the remaining 1437 images
(``StratifiedKFold(3, shuffle=True, random_state=0)``), the same number of trials
(``--trials``), the same maximum number of epochs per fold (``--epochs``), a
``StandardScaler`` in front of the network, one process (``n_jobs=1``) and
``--threads`` BLAS threads (default 1: on a machine shared with other jobs a
two-thread GEMM waits for its slower thread, which slows scikit-learn's MLP, whose
GEMMs always use every thread allowed, far more than DeepNetClassifier, which keeps
small layers on one thread anyway). The settings follow the README's default study
(``studies/digits.toml``). Rows:

- ``DeepNetSearchCV pruned``: ``SearchSpace.default()`` (learning rate, optimizer,
  layers, learning-rate decay, momentum's beta, units, batch size),
  ``TPESampler(seed=0, n_startup_trials=10)``,
  ``SuccessiveHalvingPruner(min_resource=2, reduction_factor=3)`` (rungs at epochs 2,
  6 and 18),
  ``patience`` epochs without improvement end a trial. The study lives in a new
  SQLite file opened the way the command line opens its default storage
  (``sqlite:///<study>.db`` through ``optuna_dl.runs.storage.open_storage`` and
  ``use_write_ahead_log``: heartbeats on, write-ahead log), and is named, as the
  command line names it. ``--pruner`` swaps successive halving for
  ``HyperbandPruner(min_resource=2, max_resource=epochs)`` (which assigns trials to
  brackets by hashing the study name with the trial number, so an unnamed study
  would prune differently in every run) or ``MedianPruner(n_startup_trials=5,
  n_warmup_steps=5)`` (DeepNetSearchCV's default), in this row and the OptunaSearchCV
  one.
- ``DeepNetSearchCV unpruned``: the same with ``NopPruner`` (patience still applies).
- ``RandomizedSearchCV(MLP)``: scikit-learn's ``MLPClassifier`` over the closest space
  it has: 1-4 layers of 16-512 units (log-uniform), ``learning_rate_init`` log-uniform
  in [1e-4, 1], batch size 32-512 (powers of two), solver adam or sgd with Nesterov
  momentum (1 - momentum log-uniform in [1e-3, 1e-1]; no learning-rate decay, no L2
  search: ``alpha`` stays 1e-4). ``max_iter = epochs``, ``early_stopping=False`` (it
  would hold out part of each fold), and ``n_iter_no_change = patience`` on the
  training loss, its own stopping rule. ``random_state=0``.
- ``OptunaSearchCV(MLP)``: ``optuna_integration.OptunaSearchCV`` over the same MLP
  space, with the same sampler, pruner and kind of storage as the pruned row, and
  ``enable_pruning=True``: the MLP is then trained with ``partial_fit`` one epoch at a
  time on every fold and the fold mean is reported each epoch, exactly like
  DeepNetSearchCV; this is the peer that tests the pruned row's design rather than its
  network. (A Pipeline has no ``partial_fit``; a small subclass gives it one that
  fits the scaler on the first call, i.e. on the fold's training part.) Trials that
  are not pruned train all ``epochs`` epochs, since ``partial_fit`` has no stopping
  rule.

Columns:

- *wall s*: the searcher's ``fit`` (study and refit of the best parameters on the
  1437 images), plus opening the storage for the rows that use SQLite;
- *study s*: opening storage, creating the study and running all trials;
- *epochs*: epochs trained, summed over trials and folds (the refit excluded): for
  DeepNetSearchCV the trials' ``epochs`` user attribute times the folds, for the MLPs
  every fold's ``n_iter_`` after ``fit``, one per ``partial_fit`` call;
- *pruned*: trials the pruner stopped (or whose training diverged);
- *best CV*: the searcher's ``best_score_``. DeepNetSearchCV scores a trial by its best
  epoch's mean validation accuracy, the MLP searches by the last epoch's;
- *held-out*: accuracy of ``best_estimator_`` on the 360 held-out images;
- *>= 0.98 at s*: the wall time if the held-out accuracy reaches 0.98, else ``-``;
- *seeds*: the mean held-out accuracy of ``best_estimator_`` cloned and refit with
  ``random_state`` 1-5 (same parameters and epochs; not timed): on 360 images one
  refit's seed moves the score by about a point, which this separates from the
  configuration the search chose.

Optuna and storage overhead, two independent estimates:

- *instrumented*: the benchmark (and only the benchmark) wraps ``optuna.create_study``,
  ``Study.optimize``, the objective the study runs, and the ``Trial`` methods the
  objective calls (``suggest_*``, ``set_user_attr``, ``report``, ``should_prune``) in
  ``time.perf_counter`` accumulators. Overhead = opening storage + creating the study +
  the time ``optimize`` spends outside the objective (ask, tell, sampler, stale-trial
  check, heartbeat thread start and stop, logging) + the time inside those ``Trial``
  calls, which include the per-epoch report and pruning decision. A breakdown per call
  is printed for the pruned study.
- *replay*: the pruned study's trials run again without Optuna: the same objective
  with a stand-in trial that returns the recorded parameters, ignores reports and
  stops each pruned trial at the epoch where it was pruned. Overhead = (study
  seconds minus replay seconds) / study seconds. Both runs train the same networks (checked: the
  learning curves must match), but they run minutes apart, so this estimate carries
  the noise of the machine; the instrumented one does not.

The overhead target is judged on the instrumented estimate of the pruned study. The
targets table compares the pruned row with the unpruned one (best CV score within 0.5
points using <= 40 % of the epochs) and with ``RandomizedSearchCV(MLP)`` (>= 0.98
held-out accuracy in <= 0.5x its wall time). The script always exits 0: it measures.

    python benchmarks/tuning.py [--trials 30] [--epochs 40] [--patience 8] [--threads 1]
                                [--pruner successive-halving] [--quick]

``--quick`` is a smoke run (4 trials of at most 3 epochs, networks of at most 64 units
in every searcher); its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
import warnings
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ROWS = (
    "DeepNetSearchCV pruned",
    "DeepNetSearchCV unpruned",
    "RandomizedSearchCV(MLP)",
    "OptunaSearchCV(MLP)",
)
TRIAL_CALLS = (
    "suggest_float",
    "suggest_int",
    "suggest_categorical",
    "_suggest",  # what OptunaSearchCV calls
    "set_user_attr",
    "report",
    "should_prune",
)
TARGET_ACCURACY = 0.98
REFIT_SEEDS = 5
PRUNERS = ("successive-halving", "hyperband", "median")
STUDY_NAME = "digits"


# ------------------------------------------------------------------ instrumentation
class OptunaClock:
    """Seconds spent in Optuna and storage calls during one search."""

    def __init__(self) -> None:
        self.storage = 0.0  # opening the storage (timed by the caller)
        self.create = 0.0
        self.optimize = 0.0
        self.objective = 0.0
        self.calls: Counter[str] = Counter()
        self.seconds: Counter[str] = Counter()
        self._depth = 0

    @property
    def study(self) -> float:
        return self.storage + self.create + self.optimize

    @property
    def outside(self) -> float:
        return self.optimize - self.objective

    @property
    def overhead(self) -> float:
        return self.storage + self.create + self.outside + sum(self.seconds.values())

    def timed(self, name: str, function):
        clock = self

        def wrapper(*args, **kwargs):
            if clock._depth:  # a wrapped call made by another one: counted there
                return function(*args, **kwargs)
            clock._depth += 1
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                clock.seconds[name] += time.perf_counter() - started
                clock.calls[name] += 1
                clock._depth -= 1

        return wrapper


@contextmanager
def instrumented(clock: OptunaClock):
    """Wrap Optuna's entry points in ``clock``'s accumulators, in this process only."""
    import optuna

    originals = {name: getattr(optuna.trial.Trial, name) for name in TRIAL_CALLS}
    create_study = optuna.create_study
    optimize = optuna.study.Study.optimize

    def timed_create_study(*args, **kwargs):
        started = time.perf_counter()
        try:
            return create_study(*args, **kwargs)
        finally:
            clock.create += time.perf_counter() - started

    def timed_optimize(self, func, *args, **kwargs):
        def objective(trial):
            started = time.perf_counter()
            try:
                return func(trial)
            finally:
                clock.objective += time.perf_counter() - started

        started = time.perf_counter()
        try:
            return optimize(self, objective, *args, **kwargs)
        finally:
            clock.optimize += time.perf_counter() - started

    try:
        for name, method in originals.items():
            setattr(optuna.trial.Trial, name, clock.timed(name, method))
        optuna.create_study = timed_create_study
        optuna.study.Study.optimize = timed_optimize
        yield clock
    finally:
        for name, method in originals.items():
            setattr(optuna.trial.Trial, name, method)
        optuna.create_study = create_study
        optuna.study.Study.optimize = optimize


# ----------------------------------------------------------------------- the MLPs
def mlp_classes():
    """The MLP peer: MLPClassifier with ``n_layers x n_units`` hidden layers and
    ``one_minus_momentum`` (what the searchers sample), counting the epochs it trains;
    and a Pipeline with ``partial_fit`` for OptunaSearchCV's pruning."""
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline

    class LayeredMLP(MLPClassifier):
        epochs_trained = 0  # over every instance, reset per row

        def __init__(
            self,
            n_layers=1,
            n_units=100,
            *,
            solver="adam",
            learning_rate_init=1e-3,
            batch_size=200,
            one_minus_momentum=0.1,
            max_iter=200,
            n_iter_no_change=10,
            random_state=None,
        ):
            super().__init__(
                solver=solver,
                learning_rate_init=learning_rate_init,
                batch_size=batch_size,
                max_iter=max_iter,
                n_iter_no_change=n_iter_no_change,
                early_stopping=False,
                random_state=random_state,
            )
            self.n_layers = n_layers
            self.n_units = n_units
            self.one_minus_momentum = one_minus_momentum

        def _sync(self):
            self.hidden_layer_sizes = (int(self.n_units),) * int(self.n_layers)
            self.momentum = 1.0 - self.one_minus_momentum

        def fit(self, X, y):
            self._sync()
            try:
                return super().fit(X, y)
            finally:  # a fit that blows up has trained epochs too
                LayeredMLP.epochs_trained += getattr(self, "n_iter_", 0)

        def partial_fit(self, X, y, classes=None):
            self._sync()
            try:
                return super().partial_fit(X, y, classes=classes)
            finally:  # one epoch (n_iter_ restarts at 0 in every call)
                LayeredMLP.epochs_trained += 1

    class PartialFitPipeline(Pipeline):
        def partial_fit(self, X, y, classes=None):
            scaler, model = self.steps[0][1], self.steps[-1][1]
            if not hasattr(scaler, "n_features_in_"):
                scaler.fit(X)
            model.partial_fit(scaler.transform(X), y, classes=classes)
            return self

    return LayeredMLP, PartialFitPipeline


def mlp_distributions(max_units: int):
    """The MLP space in Optuna's terms and in RandomizedSearchCV's."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )
    from sklearn.utils import check_random_state

    optuna_space = {
        "n_layers": IntDistribution(1, 4),
        "n_units": IntDistribution(16, max_units, log=True),
        "learning_rate_init": FloatDistribution(1e-4, 1.0, log=True),
        "batch_size": CategoricalDistribution([32, 64, 128, 256, 512]),
        "solver": CategoricalDistribution(["adam", "sgd"]),
        "one_minus_momentum": FloatDistribution(1e-3, 1e-1, log=True),
    }

    class Draw:
        """A scipy-like distribution RandomizedSearchCV can call ``rvs`` on."""

        def __init__(self, distribution):
            self.distribution = distribution

        def rvs(self, random_state=None):
            rng = check_random_state(random_state)
            d = self.distribution
            if isinstance(d, CategoricalDistribution):
                return d.choices[rng.randint(len(d.choices))]
            if d.log:
                value = math.exp(rng.uniform(math.log(d.low), math.log(d.high + (d.step or 0))))
            else:
                value = rng.uniform(d.low, d.high + (d.step or 0))
            if isinstance(d, IntDistribution):
                return min(int(math.floor(value)), d.high)
            return float(value)

    sklearn_space = {name: Draw(d) for name, d in optuna_space.items()}
    return optuna_space, sklearn_space


# --------------------------------------------------------------------------- rows
def make_sampler(trials: int):
    import optuna

    return optuna.samplers.TPESampler(seed=0, n_startup_trials=min(10, trials))


def make_pruner(name: str, epochs: int):
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=5)
    if name == "successive-halving":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=min(2, epochs), reduction_factor=3
        )
    return optuna.pruners.HyperbandPruner(min_resource=min(2, epochs), max_resource=epochs)


def seed_spread(search, data) -> list[float]:
    """Held-out accuracy of the search's best configuration refit with other seeds.

    ``best_estimator_`` cloned (same parameters, same epochs or iterations) and fitted
    on the same 1437 images with ``random_state`` 1 to ``REFIT_SEEDS``: how much of a
    held-out score is the configuration and how much the seed of one refit.
    """
    from sklearn.base import clone

    X_train, X_test, y_train, y_test = data
    best = search.best_estimator_
    key = f"{best.steps[-1][0]}__random_state"
    return [
        clone(best).set_params(**{key: seed}).fit(X_train, y_train).score(X_test, y_test)
        for seed in range(1, REFIT_SEEDS + 1)
    ]


def open_default_storage(directory: str, name: str, clock: OptunaClock):
    """A new SQLite study file, opened as the command line opens its default storage."""
    from optuna_dl.runs.storage import open_storage, use_write_ahead_log

    started = time.perf_counter()
    storage = open_storage(f"sqlite:///{Path(directory) / (name + '.db')}")
    use_write_ahead_log(storage)
    clock.storage += time.perf_counter() - started
    return storage


def run_deepnet(data, folds, args, pruned: bool, directory: str) -> dict:
    import optuna
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from optuna_dl import DeepNetClassifier
    from optuna_dl.tuning import DeepNetSearchCV, SearchSpace

    X_train, X_test, y_train, y_test = data
    clock = OptunaClock()
    started = time.perf_counter()
    with instrumented(clock):
        storage = open_default_storage(directory, "pruned" if pruned else "unpruned", clock)
        search = DeepNetSearchCV(
            Pipeline([("scale", StandardScaler()), ("classifier", DeepNetClassifier())]),
            SearchSpace.default(max_tier=3).override("n_units", high=args.max_units),
            n_trials=args.trials,
            sampler=make_sampler(args.trials),
            pruner=make_pruner(args.pruner, args.epochs) if pruned else optuna.pruners.NopPruner(),
            storage=storage,
            study_name=STUDY_NAME,
            cv=folds,
            max_epochs=args.epochs,
            patience=args.patience,
            random_state=0,
        ).fit(X_train, y_train)
    wall = time.perf_counter() - started
    trials = search.study_.get_trials(deepcopy=False)
    states = Counter(t.state.name for t in trials)
    return {
        "wall": wall,
        "clock": clock,
        "epochs": int(search.cv_results_["n_epochs"].sum()) * search.n_splits_,
        "pruned": states["PRUNED"],
        "best_cv": search.best_score_,
        "held_out": search.score(X_test, y_test),
        "held_out_seeds": seed_spread(search, data),
        "search": search,
        "storage": storage,
    }


def mlp_pipeline(pipeline_class, mlp_class, args):
    """``StandardScaler -> MLP`` with the run's epochs, patience and seed."""
    from sklearn.preprocessing import StandardScaler

    mlp = mlp_class(max_iter=args.epochs, n_iter_no_change=args.patience, random_state=0)
    return pipeline_class([("scale", StandardScaler()), ("mlp", mlp)])


def run_randomized(data, folds, args) -> dict:
    from sklearn.model_selection import RandomizedSearchCV
    from sklearn.pipeline import Pipeline

    X_train, X_test, y_train, y_test = data
    LayeredMLP, _ = mlp_classes()
    _, space = mlp_distributions(args.max_units)
    LayeredMLP.epochs_trained = 0
    search = RandomizedSearchCV(
        mlp_pipeline(Pipeline, LayeredMLP, args),
        {f"mlp__{name}": d for name, d in space.items()},
        n_iter=args.trials,
        cv=folds,
        n_jobs=1,
        random_state=0,
    )
    started = time.perf_counter()
    search.fit(X_train, y_train)
    wall = time.perf_counter() - started
    scores = search.cv_results_["mean_test_score"]
    return {
        "wall": wall,
        "clock": None,
        "epochs": LayeredMLP.epochs_trained - search.best_estimator_[-1].n_iter_,
        "pruned": 0,
        "failed": int(np.isnan(scores).sum()),
        "best_cv": search.best_score_,
        "held_out": search.score(X_test, y_test),
        "held_out_seeds": seed_spread(search, data),
    }


def run_optuna_search(data, folds, args, directory: str) -> dict:
    import optuna
    import optuna_integration

    X_train, X_test, y_train, y_test = data
    LayeredMLP, PartialFitPipeline = mlp_classes()
    space, _ = mlp_distributions(args.max_units)
    LayeredMLP.epochs_trained = 0
    clock = OptunaClock()
    started = time.perf_counter()
    with instrumented(clock):
        storage = open_default_storage(directory, "optuna_search_cv", clock)
        study = optuna.create_study(
            storage=storage,
            study_name=STUDY_NAME,
            direction="maximize",
            sampler=make_sampler(args.trials),
            pruner=make_pruner(args.pruner, args.epochs),
        )
        search = optuna_integration.OptunaSearchCV(
            mlp_pipeline(PartialFitPipeline, LayeredMLP, args),
            {f"mlp__{name}": d for name, d in space.items()},
            cv=folds,
            enable_pruning=True,
            max_iter=args.epochs,
            n_trials=args.trials,
            n_jobs=1,
            random_state=0,
            study=study,
        ).fit(X_train, y_train)
    wall = time.perf_counter() - started
    states = Counter(t.state.name for t in search.trials_)
    return {
        "wall": wall,
        "clock": clock,
        "epochs": LayeredMLP.epochs_trained - search.best_estimator_[-1].n_iter_,
        "pruned": states["PRUNED"],
        "best_cv": search.best_score_,
        "held_out": search.score(X_test, y_test),
        "held_out_seeds": seed_spread(search, data),
    }


class ReplayTrial:
    """Stands in for an ``optuna.Trial``: the recorded parameters, no storage, and a
    pruning decision at the recorded epoch."""

    def __init__(self, frozen, pruner) -> None:
        import optuna

        self.params = frozen.params
        # A trial whose training diverged stops itself in the replay too.
        pruned = frozen.state == optuna.trial.TrialState.PRUNED
        pruner_stopped = pruned and "diverged" not in frozen.user_attrs
        self.stop = frozen.user_attrs.get("epochs") if pruner_stopped else None
        maximize = [optuna.study.StudyDirection.MAXIMIZE]
        self.study = SimpleNamespace(pruner=pruner, directions=maximize)
        self.user_attrs: dict = {}
        self.step = None

    def suggest_float(self, name, *args, **kwargs):
        return self.params[name]

    suggest_int = suggest_categorical = suggest_float

    def set_user_attr(self, key, value) -> None:
        self.user_attrs[key] = value

    def report(self, value, step) -> None:
        self.step = step

    def should_prune(self) -> bool:
        return self.step == self.stop


def replay(result: dict, data, folds, args) -> tuple[float, int, int]:
    """Seconds to train the study's trials again without Optuna, and how many of them
    reproduced their recorded learning curve (of how many)."""
    import optuna

    from optuna_dl.tuning.objective import Objective

    search = result["search"]
    X_train, _, y_train, _ = data
    objective = Objective(
        X_train,
        y_train,
        space=search.space,
        estimator=search.estimator,
        cv=folds,
        scoring="accuracy",
        max_epochs=args.epochs,
        patience=args.patience,
        random_state=0,
    )
    trials = search.study_.get_trials(deepcopy=False)
    stand_ins = [ReplayTrial(t, search.study_.pruner) for t in trials]
    started = time.perf_counter()
    for stand_in in stand_ins:
        try:
            objective(stand_in)
        except optuna.TrialPruned:
            pass
    seconds = time.perf_counter() - started
    same = sum(
        np.allclose(s.user_attrs.get("learning_curve", []), t.user_attrs.get("learning_curve"))
        for s, t in zip(stand_ins, trials)
    )
    return seconds, same, len(trials)


# ------------------------------------------------------------------------ report
def print_results(results: dict[str, dict]) -> None:
    header = (
        f"{'searcher':<25} {'wall s':>7} {'study s':>7} {'epochs':>7} {'pruned':>6} "
        f"{'best CV':>7} {'held-out':>8} {'>= 0.98 at s':>12} {'seeds':>6}"
    )
    print(header)
    print("-" * len(header))
    for name, r in results.items():
        study = f"{r['clock'].study:.1f}" if r["clock"] else "-"
        reached = f"{r['wall']:.1f}" if r["held_out"] >= TARGET_ACCURACY else "-"
        print(
            f"{name:<25} {r['wall']:>7.1f} {study:>7} {r['epochs']:>7d} {r['pruned']:>6d} "
            f"{r['best_cv']:>7.4f} {r['held_out']:>8.4f} {reached:>12} "
            f"{np.mean(r['held_out_seeds']):>6.4f}"
        )
    print(
        f"(seeds: mean held-out accuracy of the best configuration refit with random_state "
        f"1-{REFIT_SEEDS}; ranges: "
        + ", ".join(
            f"{min(r['held_out_seeds']):.4f}-{max(r['held_out_seeds']):.4f}"
            for r in results.values()
        )
        + ")"
    )
    failed = results[ROWS[2]].get("failed", 0)
    if failed:
        print(f"({ROWS[2]}: {failed} configurations failed to train and scored NaN)")
    print()


def print_breakdown(clock: OptunaClock, epochs_reported: int) -> None:
    print(
        f"Optuna and storage time of the pruned study ({clock.study:.1f} s study, "
        f"{epochs_reported} epoch reports)"
    )
    header = f"{'where':<34} {'calls':>6} {'s':>7} {'ms/call':>8} {'% study':>8}"
    print(header)
    print("-" * len(header))
    rows = [
        ("opening the SQLite storage", 1, clock.storage),
        ("create_study", 1, clock.create),
        ("optimize, outside the objective", None, clock.outside),
    ]
    rows += [(f"trial.{name}", clock.calls[name], clock.seconds[name]) for name in TRIAL_CALLS]
    for where, calls, seconds in rows:
        if calls == 0:
            continue
        per_call = f"{1000 * seconds / calls:.2f}" if calls else "-"
        shown = "-" if calls is None else str(calls)
        print(
            f"{where:<34} {shown:>6} {seconds:>7.2f} {per_call:>8} "
            f"{100 * seconds / clock.study:>7.1f} %"
        )
    print(
        f"{'total':<34} {'':>6} {clock.overhead:>7.2f} {'':>8} "
        f"{100 * clock.overhead / clock.study:>7.1f} %"
    )
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=40, help="most epochs per trial and fold")
    parser.add_argument("--patience", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads")
    parser.add_argument("--pruner", choices=PRUNERS, default="successive-halving")
    parser.add_argument("--quick", action="store_true", help="smoke run: 4 trials x 3 epochs")
    args = parser.parse_args()
    args.max_units = 512
    if args.quick:
        args.trials, args.epochs, args.max_units = 4, 3, 64
    args.patience = min(args.patience, args.epochs)
    sys.path.insert(0, str(ROOT))

    import optuna
    import sklearn
    from optuna.exceptions import ExperimentalWarning
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning, FitFailedWarning
    from sklearn.model_selection import StratifiedKFold, train_test_split
    from threadpoolctl import threadpool_limits

    from optuna_dl._pool import cpu_count

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore", ConvergenceWarning)
    warnings.simplefilter("ignore", FitFailedWarning)
    warnings.simplefilter("ignore", ExperimentalWarning)
    warnings.filterwarnings("ignore", "`optuna.terminator` module", FutureWarning)
    warnings.filterwarnings("ignore", "One or more of the test scores are non-finite")
    warnings.filterwarnings("ignore", category=RuntimeWarning, module="sklearn")

    X, y = load_digits(return_X_y=True)
    data = train_test_split(X, y, test_size=0.2, stratify=y, random_state=0)
    X_train, y_train = data[0], data[2]
    folds = list(StratifiedKFold(3, shuffle=True, random_state=0).split(X_train, y_train))

    print(
        f"digits ({len(y_train)} training, {len(data[3])} held-out images), "
        f"{args.trials} trials x <= {args.epochs} epochs x {len(folds)} folds, "
        f"patience {args.patience}, {args.pruner} pruner;\n{args.threads} BLAS thread(s) of "
        f"{cpu_count()} cores, Python {sys.version.split()[0]}, optuna {optuna.__version__}, "
        f"scikit-learn {sklearn.__version__}\n"
    )
    results: dict[str, dict] = {}
    with (
        tempfile.TemporaryDirectory(prefix="tuning-benchmark-") as directory,
        threadpool_limits(args.threads, user_api="blas"),
    ):
        # Opening a first SQLite storage imports SQLAlchemy; no row should pay for that.
        open_default_storage(directory, "warm_up", OptunaClock())
        plan = [
            (ROWS[0], lambda: run_deepnet(data, folds, args, True, directory)),
            (ROWS[1], lambda: run_deepnet(data, folds, args, False, directory)),
            (ROWS[2], lambda: run_randomized(data, folds, args)),
            (ROWS[3], lambda: run_optuna_search(data, folds, args, directory)),
        ]
        for name, run in plan:
            results[name] = run()
            print(f"  {name}: {results[name]['wall']:.1f} s", file=sys.stderr, flush=True)
        replay_seconds, same, total = replay(results[ROWS[0]], data, folds, args)
        print(f"  replay without Optuna: {replay_seconds:.1f} s", file=sys.stderr, flush=True)

    pruned, unpruned = results[ROWS[0]], results[ROWS[1]]
    randomized = results[ROWS[2]]
    print_results(results)
    reports = pruned["clock"].calls["report"]
    print_breakdown(pruned["clock"], reports)

    epoch_share = 100 * pruned["epochs"] / unpruned["epochs"]
    score_gap = 100 * (unpruned["best_cv"] - pruned["best_cv"])
    wall_ratio = pruned["wall"] / randomized["wall"]
    overhead = 100 * pruned["clock"].overhead / pruned["clock"].study
    replay_overhead = 100 * (pruned["clock"].study - replay_seconds) / pruned["clock"].study
    print("Ratios")
    print(f"  pruned / unpruned epochs: {epoch_share:.1f} %")
    print(f"  best CV, unpruned - pruned: {score_gap:+.2f} points")
    for name in (ROWS[0], ROWS[1], ROWS[3]):
        ratio = results[name]["wall"] / randomized["wall"]
        print(f"  wall, {name} / {ROWS[2]}: {ratio:.2f}")
    for name in (ROWS[0], ROWS[1], ROWS[3]):
        clock = results[name]["clock"]
        print(
            f"  Optuna + storage overhead, {name}, instrumented: "
            f"{100 * clock.overhead / clock.study:.1f} % of {clock.study:.1f} s"
        )
    print(
        f"  Optuna + storage overhead, {ROWS[0]}, replay: {replay_overhead:.1f} % "
        f"({pruned['clock'].study:.1f} s study, {replay_seconds:.1f} s replay; "
        f"{same} of {total} learning curves reproduced)"
    )
    print()

    reached = pruned["held_out"] >= TARGET_ACCURACY
    targets = [
        (
            "pruned best CV within 0.5 points of unpruned",
            f"{score_gap:+.2f} points",
            score_gap <= 0.5,
        ),
        ("pruned epochs <= 40 % of unpruned", f"{epoch_share:.1f} %", epoch_share <= 40),
        (
            f"pruned held-out >= {TARGET_ACCURACY}",
            f"{pruned['held_out']:.4f}",
            reached,
        ),
        (
            "  ... in <= 0.5x RandomizedSearchCV(MLP) wall",
            f"{wall_ratio:.2f}x",
            wall_ratio <= 0.5,
        ),
        (
            "Optuna + storage overhead <= 5 % (SQLite)",
            f"{overhead:.1f} %",
            overhead <= 5,
        ),
    ]
    print("Targets")
    header = f"{'target':<46} {'measured':>13} {'met':>4}"
    print(header)
    print("-" * len(header))
    for target, measured, met in targets:
        print(f"{target:<46} {measured:>13} {'yes' if met else 'no':>4}")


if __name__ == "__main__":
    main()
