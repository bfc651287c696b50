"""DeepNetSearchCV: an Optuna study behind scikit-learn's search-estimator API."""

from __future__ import annotations

import copy
import functools
import numbers
import os
import tempfile
import time
import types
import warnings
from contextlib import ExitStack
from typing import Any

import numpy as np
import optuna
from scipy.stats import rankdata
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, clone
from sklearn.metrics import get_scorer_names
from sklearn.model_selection import KFold, StratifiedKFold, check_cv
from sklearn.pipeline import Pipeline
from sklearn.utils import get_tags, indexable
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from optuna_dl import _validation as rules
from optuna_dl._pool import cpu_count, run_processes, threads_per_process
from optuna_dl.estimator import DeepNetClassifier, DeepNetRegressor
from optuna_dl.records import TrialRecord, best_trials, estimator_params
from optuna_dl.tuning.objective import Objective, final_network, param_prefix
from optuna_dl.tuning.space import SearchSpace


class _needs_refit:  # noqa: N801 - used as a method decorator
    """Method decorator: the method exists only with ``refit=True``.

    Like ``sklearn.utils.metaestimators.available_if`` (``hasattr`` is False without
    refit), but the AttributeError itself says why, rather than in its cause.
    """

    def __init__(self, method: Any) -> None:
        self.method = method
        functools.update_wrapper(self, method)

    def __get__(self, instance: Any, owner: Any = None) -> Any:
        if instance is None:
            return self.method
        if not instance.refit:
            raise AttributeError(
                f"This {type(instance).__name__} was initialized with refit=False, so it "
                f"has no best_estimator_ and no {self.method.__name__}; set refit=True, "
                "or fit the estimator yourself with best_params_."
            )
        return types.MethodType(self.method, instance)


class _TrackedObjective:
    """The objective, recording in user attribute ``pid`` which process ran the trial."""

    def __init__(self, objective: Objective) -> None:
        self.objective = objective

    def __call__(self, trial: optuna.Trial) -> float:
        TrialRecord(pid=os.getpid()).write(trial)
        return self.objective(trial)


def _seed(random_state: Any) -> int:
    """An int seed from ``random_state`` (drawn from it when it is a generator)."""
    if isinstance(random_state, numbers.Integral):
        return int(random_state) % 2**32  # what NumPy's RandomState seeding accepts
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(2**31 - 1))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(2**31 - 1))
    return int(np.random.default_rng().integers(2**31 - 1))


def _open_storage(spec: Any) -> Any:
    """A worker's storage: a journal file given as ``("journal", path)``, else as given."""
    if isinstance(spec, tuple) and spec[0] == "journal":
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(spec[1]))
    return spec


def _worker(
    *,
    storage: Any,
    study_name: str,
    sampler: optuna.samplers.BaseSampler,
    pruner: optuna.pruners.BasePruner,
    objective: Any,
    n_trials: int | None,
    timeout: float | None,
    n_threads: int,
    verbosity: int,
    stop: Any,
) -> int:
    """Body of one worker process: load the study and run its share of the trials."""
    from threadpoolctl import threadpool_limits

    optuna.logging.set_verbosity(verbosity)
    with threadpool_limits(limits=n_threads):
        study = optuna.load_study(
            study_name=study_name,
            storage=_open_storage(storage),
            sampler=sampler,
            pruner=pruner,
        )
        study.optimize(objective, n_trials=n_trials, timeout=timeout)
    return os.getpid()


def _run_workers(
    *,
    storage: Any,
    study_name: str,
    samplers: list[optuna.samplers.BaseSampler],
    pruner: optuna.pruners.BasePruner,
    objective: Any,
    counts: list[int | None],
    timeout: float | None,
    n_threads: int,
) -> None:
    """Run one process per entry of ``counts``; raise the first worker error."""
    verbosity = optuna.logging.get_verbosity()
    jobs = [
        {
            "storage": storage,
            "study_name": study_name,
            "sampler": samplers[index],
            "pruner": copy.deepcopy(pruner),
            "objective": objective,
            "n_trials": count,
            "timeout": timeout,
            "n_threads": n_threads,
            "verbosity": verbosity,
        }
        for index, count in enumerate(counts)
    ]
    outcomes, _ = run_processes(_worker, jobs, name="DeepNetSearchCV worker process")
    for outcome in outcomes:
        if outcome.error is not None:
            if outcome.trace and hasattr(outcome.error, "add_note"):
                outcome.error.add_note(f"Raised in {outcome.name}:\n{outcome.trace}")
            raise outcome.error


class _DeepNetSearch(BaseEstimator):
    """The search shared by :class:`DeepNetSearchCV` and :class:`DeepNetRegressorSearchCV`;
    see :class:`DeepNetSearchCV` for the parameters and attributes."""

    #: The network a subclass tunes, and the scorer it uses by default.
    _network: type = DeepNetClassifier
    _default_scoring = "accuracy"

    def __init__(
        self,
        estimator: Any = None,
        space: SearchSpace | None = None,
        *,
        n_trials: int | None = 20,
        timeout: float | None = None,
        sampler: optuna.samplers.BaseSampler | None = None,
        pruner: optuna.pruners.BasePruner | None = None,
        storage: Any = None,
        study_name: str | None = None,
        cv: Any = 3,
        scoring: Any = None,
        refit: bool | str = True,
        max_epochs: int = 50,
        patience: int | None = 10,
        n_jobs: int | None = 1,
        random_state: Any = None,
        show_progress_bar: bool = False,
    ) -> None:
        self.estimator = estimator
        self.space = space
        self.n_trials = n_trials
        self.timeout = timeout
        self.sampler = sampler
        self.pruner = pruner
        self.storage = storage
        self.study_name = study_name
        self.cv = cv
        self.scoring = scoring
        self.refit = refit
        self.max_epochs = max_epochs
        self.patience = patience
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.show_progress_bar = show_progress_bar

    # --------------------------------------------------------------- validation
    def _invalid(self, name: str, rule: str, value: Any) -> ValueError:
        """The error for a parameter that breaks its rule (the estimator's wording)."""
        return ValueError(
            f"{type(self).__name__}: parameter {name!r} must be {rule}; got {value!r} "
            f"({type(value).__name__})."
        )

    def _estimator(self) -> Any:
        estimator = self.estimator if self.estimator is not None else self._network()
        kind = self._network.__name__
        try:
            network = final_network(estimator)
        except TypeError:
            network = None
        if not isinstance(network, self._network):
            raise self._invalid("estimator", f"a {kind} or a Pipeline ending in one", estimator)
        return estimator

    def _check_params(self) -> None:
        """Raise ValueError naming the first parameter that breaks its rule."""
        rules.check_parameters(
            type(self).__name__,
            self.get_params(deep=False),
            {
                "max_epochs": rules.Interval("int", 1, None),
                "show_progress_bar": rules.Boolean(),
                "random_state": rules.RandomState(),
            },
        )
        if self.space is not None and not isinstance(self.space, SearchSpace):
            raise self._invalid("space", "None or a SearchSpace", self.space)
        if self.n_trials is None:
            if self.timeout is None:
                raise self._invalid("n_trials", "a positive integer (None needs a timeout)", None)
        elif not rules.Interval("int", 1, None).accepts(self.n_trials):
            raise self._invalid("n_trials", "an integer in [1, inf) or None", self.n_trials)
        if self.timeout is not None and not rules.Interval("float", 0, None, "neither").accepts(
            self.timeout
        ):
            raise self._invalid("timeout", "None or a number in (0, inf)", self.timeout)
        if self.patience is not None and not rules.Interval("int", 1, None).accepts(self.patience):
            raise self._invalid("patience", "None or an integer in [1, inf)", self.patience)
        if self.sampler is not None and not isinstance(self.sampler, optuna.samplers.BaseSampler):
            raise self._invalid("sampler", "None or an optuna sampler", self.sampler)
        if self.pruner is not None and not isinstance(self.pruner, optuna.pruners.BasePruner):
            raise self._invalid("pruner", "None or an optuna pruner", self.pruner)
        if self.storage is not None and not isinstance(
            self.storage, (str, optuna.storages.BaseStorage)
        ):
            rule = "None, a database URL or an optuna storage"
            raise self._invalid("storage", rule, self.storage)
        if self.study_name is not None and not isinstance(self.study_name, str):
            raise self._invalid("study_name", "None or a string", self.study_name)
        cv = self.cv
        cv_rule = "None, an integer in [2, inf), a CV splitter or an iterable of splits"
        if isinstance(cv, (str, bytes, bool)) or (isinstance(cv, numbers.Integral) and cv < 2):
            raise self._invalid("cv", cv_rule, cv)
        if not (
            cv is None
            or isinstance(cv, numbers.Integral)
            or hasattr(cv, "split")
            or hasattr(cv, "__iter__")
        ):
            raise self._invalid("cv", cv_rule, cv)
        self._check_scoring()
        n_jobs = self.n_jobs
        if n_jobs is not None and (
            not isinstance(n_jobs, numbers.Integral) or isinstance(n_jobs, bool) or n_jobs == 0
        ):
            raise self._invalid("n_jobs", "None or a non-zero integer (-1: all CPUs)", n_jobs)
        if self._n_jobs() > 1 and isinstance(self.storage, optuna.storages.InMemoryStorage):
            raise self._invalid(
                "storage",
                "a storage other processes can open (a database URL or a JournalStorage) "
                "when n_jobs > 1",
                self.storage,
            )

    def _check_scoring(self) -> None:
        scoring, refit = self._scoring(), self.refit
        metrics = scoring if isinstance(scoring, dict) else {"score": scoring}
        if not metrics:
            raise self._invalid("scoring", "a scorer, or a non-empty dict of scorers", scoring)
        for name, scorer in metrics.items():
            if not isinstance(name, str) or not name:
                raise self._invalid("scoring", "a dict keyed by metric names (strings)", scoring)
            if isinstance(scorer, str):
                if scorer not in get_scorer_names():
                    raise self._invalid(
                        "scoring",
                        "a callable or a scorer name from sklearn.metrics.get_scorer_names()",
                        scorer,
                    )
            elif not callable(scorer):
                raise self._invalid("scoring", "a scorer name or a callable", scorer)
        if isinstance(scoring, dict):
            if refit is not False and refit not in metrics:
                raise self._invalid(
                    "refit",
                    f"False or the name of a metric of scoring ({', '.join(metrics)}) when "
                    "scoring names several metrics",
                    refit,
                )
        elif not isinstance(refit, (bool, np.bool_)):
            rule = "True or False (a metric name needs a dict scoring)"
            raise self._invalid("refit", rule, refit)

    def _n_jobs(self) -> int:
        if self.n_jobs is None:
            return 1
        if self.n_jobs < 0:
            return max(1, cpu_count() + 1 + int(self.n_jobs))
        return int(self.n_jobs)

    # ------------------------------------------------------------------ fitting
    def fit(
        self, X: Any, y: Any, *, groups: Any = None, sample_weight: Any = None
    ) -> DeepNetSearchCV:
        """Run the study, then refit the best parameters on all the data.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data (anything the estimator, or the Pipeline's first step,
            accepts).
        y : array-like of shape (n_samples,)
            Class labels.
        groups : array-like of shape (n_samples,), default=None
            Group labels for a group-aware ``cv`` splitter.
        sample_weight : array-like of shape (n_samples,), default=None
            Row weights. Each fold's network trains with the weights of its training
            rows and is scored with those of its validation rows; the refit uses all
            of them. (With metadata routing on, request them with
            ``set_fit_request(sample_weight=True)``.)

        Returns
        -------
        self : DeepNetSearchCV
        """
        self._check_params()
        estimator = self._estimator()
        for name in [n for n in vars(self) if n.endswith("_") and not n.startswith("_")]:
            delattr(self, name)  # nothing from an earlier fit survives a failed one
        space = self.space if self.space is not None else SearchSpace.default()
        if isinstance(estimator, Pipeline):
            X, y = validate_data(self, X, y, skip_check_array=True)
            y = column_or_1d(y, warn=True)
        else:
            _, y = validate_data(self, X, y)  # checks only: the estimator gets X as given
        X, y, groups = indexable(X, y, groups)
        sample_weight = rules.check_sample_weight(sample_weight, len(y))
        y, fitted = self._check_targets(y)
        seed = _seed(self.random_state)
        splits = self._splits(X, y, groups, seed)
        objective = Objective(
            X,
            y,
            space=space,
            estimator=estimator,
            cv=splits,
            scoring=self._scoring(),
            refit=self._refit_metric(),
            max_epochs=self.max_epochs,
            patience=self.patience,
            random_state=seed,
            sample_weight=sample_weight,
        )
        self.multimetric_ = isinstance(self._scoring(), dict)
        self.scorer_ = dict(objective.scorers) if self.multimetric_ else objective.scorer
        self.n_splits_ = len(splits)
        self.study_ = self._optimize(_TrackedObjective(objective), seed)
        trials = self.study_.get_trials(deepcopy=False)
        self.n_trials_ = len(trials)
        self.cv_results_ = _cv_results(
            trials,
            space,
            param_prefix(estimator),
            self.n_splits_,
            list(self.scorer_) if self.multimetric_ else None,
            self._refit_metric(),
        )
        best = best_trials(self.study_, 1)
        if not best:
            states = sorted({t.state.name for t in trials})
            raise ValueError(
                f"{type(self).__name__}: no trial completed ({len(trials)} trials, states "
                f"{', '.join(states) or 'none'}), so there are no best parameters; see "
                "study_ for the reasons (user attribute 'diverged', failed trials' logs)."
            )
        self.best_trial_ = best[0]
        self.best_index_ = next(
            i for i, t in enumerate(trials) if t.number == self.best_trial_.number
        )
        self.best_params_ = dict(self.cv_results_["params"][self.best_index_])
        self.best_score_ = float(self.best_trial_.value)
        for name, value in fitted.items():
            setattr(self, name, value)
        if self.refit:
            self._refit(estimator, X, y, seed, sample_weight)
        return self

    def _refit_metric(self) -> str | None:
        """The metric the study optimizes: ``refit``'s, else the first (None: one)."""
        scoring = self._scoring()
        if not isinstance(scoring, dict):
            return None
        return self.refit if isinstance(self.refit, str) else next(iter(scoring))

    def _scoring(self) -> Any:
        """``scoring``, or the subclass's default scorer name for None."""
        return self._default_scoring if self.scoring is None else self.scoring

    def _splits(self, X: Any, y: np.ndarray, groups: Any, seed: int) -> list[tuple]:
        cv = 3 if self.cv is None else self.cv
        if isinstance(cv, numbers.Integral):
            splitter = self._int_splitter(int(cv), y, seed)
        else:
            splitter = check_cv(cv, y, classifier=self._network is DeepNetClassifier)
        return [(np.asarray(tr), np.asarray(te)) for tr, te in splitter.split(X, y, groups)]

    def _optimize(self, objective: _TrackedObjective, seed: int) -> optuna.Study:
        sampler = (
            copy.deepcopy(self.sampler)
            if self.sampler is not None
            else optuna.samplers.TPESampler(seed=seed)
        )
        pruner = (
            copy.deepcopy(self.pruner)
            if self.pruner is not None
            else optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=5)
        )
        resume = self.storage is not None and self.study_name is not None
        n_jobs = self._n_jobs()
        n_workers = n_jobs if self.n_trials is None else min(n_jobs, self.n_trials)
        with ExitStack() as stack:
            storage, worker_storage = self.storage, self.storage
            if n_workers > 1 and storage is None:
                from optuna.storages.journal import JournalFileBackend

                folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="optuna_dl-"))
                path = os.path.join(folder, "journal.log")
                storage = optuna.storages.JournalStorage(JournalFileBackend(path))
                worker_storage = ("journal", path)
            study = optuna.create_study(
                storage=storage,
                sampler=sampler,
                pruner=pruner,
                study_name=self.study_name,
                direction="maximize",
                load_if_exists=resume,
            )
            if study.direction != optuna.study.StudyDirection.MAXIMIZE:
                raise ValueError(
                    f"{type(self).__name__}: study {study.study_name!r} in storage "
                    "minimizes; scores are maximized, so resume only studies created to "
                    "maximize."
                )
            if n_workers == 1:
                study.optimize(
                    objective,
                    n_trials=self.n_trials,
                    timeout=self.timeout,
                    show_progress_bar=self.show_progress_bar,
                )
                return study
            samplers = [copy.deepcopy(sampler) for _ in range(n_workers)]
            for index in range(1, n_workers):
                if self.sampler is None:
                    samplers[index] = optuna.samplers.TPESampler(seed=(seed + index) % 2**32)
                else:
                    samplers[index].reseed_rng()
            if self.n_trials is None:
                counts: list[int | None] = [None] * n_workers
            else:
                share, extra = divmod(self.n_trials, n_workers)
                counts = [share + (index < extra) for index in range(n_workers)]
            _run_workers(
                storage=worker_storage,
                study_name=study.study_name,
                samplers=samplers,
                pruner=pruner,
                objective=objective,
                counts=counts,
                timeout=self.timeout,
                n_threads=threads_per_process(n_jobs),
            )
            if self.storage is not None:
                return optuna.load_study(
                    study_name=study.study_name, storage=storage, sampler=sampler, pruner=pruner
                )
            memory = optuna.storages.InMemoryStorage()
            optuna.copy_study(
                from_study_name=study.study_name, from_storage=storage, to_storage=memory
            )
            return optuna.load_study(
                study_name=study.study_name, storage=memory, sampler=sampler, pruner=pruner
            )

    def _refit(
        self, estimator: Any, X: Any, y: np.ndarray, seed: int, sample_weight: Any = None
    ) -> None:
        prefix = param_prefix(estimator)
        best_epoch = TrialRecord.from_trial(self.best_trial_).best_epoch
        epochs = int(best_epoch if best_epoch is not None else self.max_epochs)
        best = clone(estimator).set_params(
            **self.best_params_, **{prefix + "max_epochs": max(1, epochs)}
        )
        if final_network(best).random_state is None:
            best.set_params(**{prefix + "random_state": seed})
        weights = {} if sample_weight is None else {prefix + "sample_weight": sample_weight}
        started = time.perf_counter()
        best.fit(X, y, **weights)
        self.refit_time_ = time.perf_counter() - started
        self.best_estimator_ = best

    # ---------------------------------------------------------------- inference
    @_needs_refit
    def predict(self, X: Any) -> np.ndarray:
        """Predict with ``best_estimator_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        check_is_fitted(self, "best_estimator_")
        return self.best_estimator_.predict(X)

    @_needs_refit
    def score(self, X: Any, y: Any) -> float:
        """Score ``best_estimator_`` on ``(X, y)`` with ``scoring`` (as in the search;
        with several metrics, the ``refit`` one).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)

        Returns
        -------
        float
        """
        check_is_fitted(self, "best_estimator_")
        scorer = self.scorer_[self.refit] if self.multimetric_ else self.scorer_
        return float(scorer(self.best_estimator_, X, y))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        estimator = self.estimator if self.estimator is not None else self._network()
        try:
            inner = get_tags(estimator)
        except Exception:  # an invalid estimator is reported by fit
            return tags
        tags.input_tags.sparse = inner.input_tags.sparse
        tags.input_tags.allow_nan = inner.input_tags.allow_nan
        tags.input_tags.pairwise = inner.input_tags.pairwise
        if inner.classifier_tags is not None and tags.classifier_tags is not None:
            tags.classifier_tags = copy.deepcopy(inner.classifier_tags)
        if inner.regressor_tags is not None and tags.regressor_tags is not None:
            tags.regressor_tags = copy.deepcopy(inner.regressor_tags)
        return tags


class DeepNetSearchCV(ClassifierMixin, _DeepNetSearch):
    """Tune a :class:`~optuna_dl.DeepNetClassifier` with an Optuna study, like GridSearchCV.

    Each trial samples parameters from ``space``, trains the estimator on every
    cross-validation fold in lockstep, one epoch at a time, reports the mean validation
    score after each epoch (so the pruner can stop it early) and scores the trial with
    its best epoch. The best parameters are then refit on all the data for the number
    of epochs the best trial needed.

    Parameters
    ----------
    estimator : DeepNetClassifier or Pipeline ending in one, default=None
        Template whose parameters are kept except those ``space`` samples and
        ``max_epochs``; None means ``DeepNetClassifier()``. For a Pipeline the space's
        names get the last step's prefix (``"deepnetclassifier__learning_rate"``) in
        ``best_params_`` and ``cv_results_``, and the preceding steps are fitted once
        per fold.
    space : SearchSpace, default=None
        What to sample; None means ``SearchSpace.default()``.
    n_trials : int or None, default=20
        Trials to run in each ``fit`` (in total over all processes). None runs until
        ``timeout``.
    timeout : float or None, default=None
        Stop starting trials after this many seconds (per process when ``n_jobs > 1``).
    sampler : optuna.samplers.BaseSampler, default=None
        None means ``TPESampler(seed=random_state)``. A copy is used in each ``fit``,
        so the object given is never changed.
    pruner : optuna.pruners.BasePruner, default=None
        None means ``MedianPruner(n_startup_trials=5, n_warmup_steps=5)``. Copied per
        ``fit`` like ``sampler``.
    storage : str or optuna.storages.BaseStorage, default=None
        Where the study lives (e.g. ``"sqlite:///study.db"``). None keeps it in memory.
    study_name : str, default=None
        With ``storage`` as well, ``fit`` resumes (or creates) the study of that name and
        adds ``n_trials`` trials to it. Otherwise every ``fit`` starts a new study (with
        a new unique name in ``storage``), so refits and the clones fitted by
        ``cross_validate`` never share trials.
    cv : int, cross-validation splitter or iterable, default=3
        Folds every trial trains on; the splits are drawn once per ``fit``. An int
        ``k`` gives ``StratifiedKFold(k, shuffle=True)`` seeded by ``random_state``
        (see Notes for classes smaller than ``k``). None means 3.
    scoring : str, callable, dict or None, default=None
        None means ``"accuracy"`` (``"r2"`` for :class:`DeepNetRegressorSearchCV`).
        A scikit-learn scorer name or a scorer ``(estimator, X, y) -> float``; greater
        is better. Several metrics: ``{name: scorer name or scorer}``, each recorded for
        every trial, with its own ``cv_results_`` columns.
    refit : bool or str, default=True
        Fit ``best_estimator_`` on all the data with the best parameters. With several
        metrics, the name of the one to optimize, prune on and refit for (or False:
        the first metric is optimized, nothing is refit). Also what :meth:`score`
        returns.
    max_epochs : int, default=50
        Epochs a trial may train.
    patience : int or None, default=10
        Stop a trial when its mean validation score has not improved for this many
        epochs; None trains every trial for ``max_epochs``.
    n_jobs : int, default=1
        Number of worker processes running trials; -1 means one per core this process
        may run on. Each worker limits its BLAS threads to ``max(1, cores // n_jobs)``.
    random_state : int, RandomState, Generator or None, default=None
        Seeds the folds, the default sampler and every network whose own
        ``random_state`` is None (the refit included). An int makes sequential
        (``n_jobs=1``) fits reproducible.
    show_progress_bar : bool, default=False
        Show Optuna's progress bar (``n_jobs=1`` only).

    Attributes
    ----------
    study_ : optuna.Study
        The study (in memory unless ``storage`` was given). Besides the objective's
        user attributes, each trial records in ``pid`` the process that ran it.
    best_trial_ : optuna.trial.FrozenTrial
    best_index_ : int
        Row of the best trial in ``cv_results_``.
    best_params_ : dict
        Estimator parameters of the best trial, in the estimator's terms (``beta``,
        not the sampled ``one_minus_beta``), prefixed for a Pipeline.
    best_score_ : float
        Mean validation score of the best trial at its best epoch.
    best_estimator_ : DeepNetClassifier or Pipeline
        Refit on all the data with ``best_params_`` and ``max_epochs`` set to the best
        trial's best epoch. Only with ``refit=True``.
    cv_results_ : dict of ndarray
        One row per trial of ``study_`` in trial order (for a resumed study, the earlier
        trials too): ``params``, ``param_<name>`` (masked where a conditional
        parameter was not sampled), ``split<k>_test_score``, ``mean_test_score``,
        ``std_test_score``, ``rank_test_score``, ``mean_fit_time`` (trial wall time
        divided by the folds), ``state`` (the trial state's name) and ``n_epochs``.
        Scores of trials that did not complete are NaN and rank last.
    n_trials_ : int
        Number of trials in ``study_``.
    n_splits_ : int
        Number of cross-validation splits used.
    refit_time_ : float
        Seconds spent refitting ``best_estimator_``.
    scorer_ : callable or dict of callable
        The scorer built from ``scoring`` (a dict with several metrics).
    multimetric_ : bool
        Whether ``scoring`` named several metrics.
    classes_ : ndarray of shape (n_classes,)
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Only when ``X`` had string column names.

    See Also
    --------
    optuna_dl.tuning.Objective : The per-trial training this runs.
    sklearn.model_selection.GridSearchCV : The API this follows.

    Notes
    -----
    **Small classes.** With an int ``cv`` larger than the smallest class, the number
    of folds is reduced to that class's size (at least 2) and a ``UserWarning`` says
    so; when a class has a single sample no stratified split exists, and a shuffled
    ``KFold`` with ``min(cv, n_samples)`` folds is used instead (the networks still
    know every class, because the objective passes ``classes`` to ``partial_fit``).
    ``n_splits_`` records the folds used.

    **Processes.** ``n_jobs > 1`` runs the trials in separate processes started with
    the ``"forkserver"`` method (``"spawn"`` where it does not exist), never by forking
    the caller, so scripts must guard their entry point with
    ``if __name__ == "__main__":`` and the estimator must be picklable. Without
    ``storage`` the study lives in a temporary ``JournalStorage`` file while the workers
    run and is then copied into memory; a given ``storage`` must be one every process
    can open (a database URL or a journal storage, not an ``InMemoryStorage``). The
    trial budget is split between the workers so exactly ``n_trials`` trials run. Each
    worker uses its own sampler: the default sampler is seeded
    ``random_state + worker``, a given sampler is reseeded in every worker but the
    first. The order in which parallel trials finish varies, so parallel searches are
    not reproducible even with ``random_state`` set.

    **Validation.** ``X`` is validated up front for a bare classifier; a Pipeline's
    steps validate it themselves (so a first step that accepts NaN or sparse input
    can), and the estimator tags ``allow_nan`` and ``sparse`` are the estimator's.

    **scikit-learn's estimator checks** pass with no expected failures.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from optuna_dl import DeepNetClassifier
    >>> from optuna_dl.tuning import DeepNetSearchCV, SearchSpace
    >>> X, y = load_iris(return_X_y=True)
    >>> search = DeepNetSearchCV(
    ...     DeepNetClassifier(n_units=16),
    ...     SearchSpace.default(max_tier=1),  # the learning rate only
    ...     n_trials=3,
    ...     max_epochs=5,
    ...     random_state=0,
    ... ).fit(X, y)
    >>> sorted(search.best_params_)
    ['learning_rate']
    >>> search.cv_results_["mean_test_score"].shape
    (3,)
    >>> search.best_estimator_.max_epochs <= 5
    True
    >>> search.predict(X[:2]).shape
    (2,)
    """

    _network = DeepNetClassifier
    _default_scoring = "accuracy"
    # The search's own score (its scorer), not ClassifierMixin's accuracy.
    score = _DeepNetSearch.__dict__["score"]

    def _check_targets(self, y: Any) -> tuple[np.ndarray, dict[str, Any]]:
        """Class labels, at least two classes; ``classes_`` to set after the search."""
        check_classification_targets(y)
        classes = np.unique(y)
        if classes.size < 2:
            raise ValueError(
                f"{type(self).__name__} needs samples of at least 2 classes; got "
                f"{classes.size} class{'' if classes.size == 1 else 'es'} "
                f"{classes.tolist()!r}."
            )
        return y, {"classes_": classes}

    def _int_splitter(self, cv: int, y: np.ndarray, seed: int) -> Any:
        """Stratified folds, fewer when a class is smaller than ``cv``."""
        smallest = int(np.unique(y, return_counts=True)[1].min())
        if smallest >= cv:
            return StratifiedKFold(cv, shuffle=True, random_state=seed)
        if smallest >= 2:
            warnings.warn(
                f"{type(self).__name__}: the smallest class has {smallest} samples, fewer "
                f"than cv={cv}; using {smallest} stratified folds.",
                UserWarning,
                stacklevel=4,
            )
            return StratifiedKFold(smallest, shuffle=True, random_state=seed)
        n_splits = min(cv, len(y))
        warnings.warn(
            f"{type(self).__name__}: a class has a single sample, so no stratified split "
            f"exists; using {n_splits} shuffled, unstratified folds.",
            UserWarning,
            stacklevel=4,
        )
        return KFold(n_splits, shuffle=True, random_state=seed)

    @_needs_refit
    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities of ``best_estimator_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Columns follow ``classes_``.
        """
        check_is_fitted(self, "best_estimator_")
        return self.best_estimator_.predict_proba(X)

    @_needs_refit
    def predict_log_proba(self, X: Any) -> np.ndarray:
        """Log class probabilities of ``best_estimator_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Columns follow ``classes_``.
        """
        check_is_fitted(self, "best_estimator_")
        return self.best_estimator_.predict_log_proba(X)


class DeepNetRegressorSearchCV(RegressorMixin, _DeepNetSearch):
    """Tune a :class:`~optuna_dl.DeepNetRegressor` with an Optuna study.

    The same search as :class:`DeepNetSearchCV`, with the same parameters and
    attributes, for regression: ``estimator`` is a DeepNetRegressor (or a Pipeline
    ending in one; None means ``DeepNetRegressor()``), an int ``cv`` gives shuffled
    ``KFold`` splits, and ``scoring`` defaults to ``"r2"`` (any scikit-learn regression
    scorer, such as ``"neg_root_mean_squared_error"``; greater is better). It has no
    ``classes_``, ``predict_proba`` or ``predict_log_proba``.

    Examples
    --------
    >>> import optuna
    >>> from sklearn.datasets import load_diabetes
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from optuna_dl import DeepNetRegressor, DeepNetRegressorSearchCV, SearchSpace
    >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
    >>> X, y = load_diabetes(return_X_y=True)
    >>> search = DeepNetRegressorSearchCV(
    ...     make_pipeline(StandardScaler(), DeepNetRegressor(n_units=16)),
    ...     space=SearchSpace.default(max_tier=1),
    ...     n_trials=3,
    ...     max_epochs=5,
    ...     random_state=0,
    ... ).fit(X, y)
    >>> sorted(search.best_params_)
    ['deepnetregressor__learning_rate']
    >>> -1 < search.best_score_ <= 1
    True
    """

    _network = DeepNetRegressor
    _default_scoring = "r2"
    # The search's own score (its scorer), not RegressorMixin's R².
    score = _DeepNetSearch.__dict__["score"]

    def _check_targets(self, y: Any) -> tuple[np.ndarray, dict[str, Any]]:
        """Finite numeric targets (nothing to set after the search)."""
        try:
            y = np.asarray(y, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(
                f"{type(self).__name__} needs numeric targets; got {np.asarray(y).dtype}."
            ) from None
        if not np.isfinite(y).all():
            raise ValueError(f"{type(self).__name__}: targets must be finite.")
        return y, {}

    def _int_splitter(self, cv: int, y: np.ndarray, seed: int) -> Any:
        """Shuffled folds (at most one per sample)."""
        if len(y) < 2:
            raise ValueError(
                f"{type(self).__name__} needs at least 2 samples to cross-validate; got "
                f"{len(y)} sample."
            )
        return KFold(min(cv, len(y)), shuffle=True, random_state=seed)


def _score_columns(
    results: dict[str, Any], name: str, folds: np.ndarray, means: np.ndarray, stds: np.ndarray
) -> None:
    """``split<k>_test_<name>``, ``mean_``, ``std_`` and ``rank_test_<name>`` columns."""
    for k in range(folds.shape[1]):
        results[f"split{k}_test_{name}"] = folds[:, k]
    results[f"mean_test_{name}"] = means
    results[f"std_test_{name}"] = stds
    # like GridSearchCV: ties share the best rank, trials without a score rank last
    ranked = np.where(np.isnan(means), -np.inf, means)
    results[f"rank_test_{name}"] = rankdata(-ranked, method="min").astype(np.int32)


def _cv_results(
    trials: list[optuna.trial.FrozenTrial],
    space: SearchSpace,
    prefix: str,
    n_splits: int,
    metrics: list[str] | None = None,
    optimized: str | None = None,
) -> dict[str, Any]:
    """scikit-learn's ``cv_results_`` layout, one row per trial.

    With ``metrics`` (several), each gets ``split<k>_test_<name>``, ``mean_test_<name>``,
    ``std_test_<name>`` and ``rank_test_<name>``; ``optimized`` is the one whose scores
    are the trials' values.
    """
    n = len(trials)
    params = [{prefix + k: v for k, v in estimator_params(t, space).items()} for t in trials]
    complete = np.array([t.state == optuna.trial.TrialState.COMPLETE for t in trials], bool)
    folds = np.full((n, n_splits), np.nan)
    means = np.full(n, np.nan)
    stds = np.full(n, np.nan)
    fit_time = np.full(n, np.nan)
    for i, trial in enumerate(trials):
        record = TrialRecord.from_trial(trial)
        scores, seconds = record.fold_scores, record.fit_seconds
        if seconds is not None:
            fit_time[i] = seconds / (len(scores) if scores else n_splits)
        if not complete[i]:
            continue
        means[i] = trial.value
        if scores is not None and len(scores) == n_splits:
            folds[i] = scores
            stds[i] = np.std(scores)

    results: dict[str, Any] = {"mean_fit_time": fit_time}
    for name in sorted({k for p in params for k in p}):
        values = [p[name] for p in params if name in p]
        numeric = all(
            isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) for v in values
        )
        dtype = np.result_type(*values) if numeric else object
        column = np.ma.MaskedArray(np.zeros(n, dtype=dtype), mask=True)
        for i, p in enumerate(params):
            if name in p:
                column[i] = p[name]
        results[f"param_{name}"] = column
    results["params"] = params
    if metrics is None:
        _score_columns(results, "score", folds, means, stds)
    else:
        for name in metrics:
            if name == optimized:
                _score_columns(results, name, folds, means, stds)
                continue
            other = np.full((n, n_splits), np.nan)
            for i, trial in enumerate(trials):
                scores = (TrialRecord.from_trial(trial).metric_scores or {}).get(name)
                if complete[i] and scores is not None and len(scores) == n_splits:
                    other[i] = scores
            _score_columns(results, name, other, other.mean(axis=1), other.std(axis=1))
    results["state"] = np.array([t.state.name for t in trials], dtype=object)
    results["n_epochs"] = np.array([TrialRecord.from_trial(t).epochs or 0 for t in trials], int)
    return results
