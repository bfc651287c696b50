"""The objective a study optimizes: train with fixed splits, report every epoch."""

from __future__ import annotations

import time
import warnings
from typing import Any, NamedTuple

import numpy as np
import optuna
from scipy.sparse import issparse
from sklearn.base import clone
from sklearn.metrics import get_scorer
from sklearn.model_selection import KFold, StratifiedKFold, check_cv, train_test_split
from sklearn.pipeline import Pipeline

from optuna_dl.estimator import DeepNetClassifier, DeepNetRegressor, DivergenceWarning
from optuna_dl.records import TrialRecord
from optuna_dl.tuning.pruning import may_prune
from optuna_dl.tuning.space import SearchSpace


def final_network(estimator: Any) -> DeepNetClassifier | DeepNetRegressor:
    """The DeepNetClassifier or DeepNetRegressor at the end of ``estimator`` (itself or a
    Pipeline's last step)."""
    model = estimator.steps[-1][1] if isinstance(estimator, Pipeline) else estimator
    if not isinstance(model, (DeepNetClassifier, DeepNetRegressor)):
        raise TypeError(
            "estimator must be a DeepNetClassifier, a DeepNetRegressor or a Pipeline ending "
            f"in one; got {type(model).__name__}."
        )
    return model


def param_prefix(estimator: Any) -> str:
    """``"<last step>__"`` for a Pipeline, ``""`` for a bare classifier."""
    return f"{estimator.steps[-1][0]}__" if isinstance(estimator, Pipeline) else ""


class _Fold(NamedTuple):
    """One cross-validation fold of a trial: its network, rows and row weights."""

    model: Any
    X_train: Any
    y_train: np.ndarray
    X_val: Any
    y_val: np.ndarray
    w_train: np.ndarray | None
    w_val: np.ndarray | None


def _score(scorer: Any, fold: _Fold) -> float:
    """``scorer`` on the fold's validation rows, weighted by their sample weights."""
    if fold.w_val is None:
        return float(scorer(fold.model, fold.X_val, fold.y_val))
    return float(scorer(fold.model, fold.X_val, fold.y_val, sample_weight=fold.w_val))


#: Objectives besides the validation score, by name.
OBJECTIVES = ("fit_seconds", "n_params")


class Objective:
    """Train one configuration per trial and return its validation score.

    The splits are computed once, when the objective is built, so every trial and
    every epoch sees the same training and validation rows (no re-splitting, no
    leakage). With several folds the folds train in lockstep, one epoch each, and
    each epoch's report is their mean; with ``optuna.pruners.WilcoxonPruner`` each
    fold is instead trained to the end and reported as its own step, as that pruner
    expects.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    y : array-like of shape (n_samples,)
    space : SearchSpace, optional
        Defaults to ``SearchSpace.default()``.
    estimator : DeepNetClassifier, DeepNetRegressor or Pipeline ending in one, optional
        Template whose parameters are kept except those the space samples and
        ``max_epochs``; defaults to ``DeepNetClassifier()``. Preceding Pipeline steps
        are fitted once per fold. A regressor makes it a regression objective: plain K
        folds, no stratification, and a regression ``scoring`` such as ``"r2"``.
    cv : None, int or splitter, default=None
        None: one stratified hold-out of ``validation_fraction``.
    validation_fraction : float, default=0.2
    scoring : str, callable or dict, default="accuracy"
        A scikit-learn scorer name or scorer (greater is better), or several as
        ``{name: scorer name or scorer}``.
    objectives : sequence of {"fit_seconds", "n_params"}, default=()
        Further objectives of a multi-objective study, returned after the score: the
        trial's training time over all folds, and the network's parameter count. A
        multi-objective study gets no per-epoch reports (Optuna prunes single
        objectives only); the learning curves are still recorded.
    refit : str, optional
        With several metrics, the one the trial's value, its reports (and so pruning)
        and its best epoch follow; defaults to the first. The others are recorded at
        that epoch (:attr:`~optuna_dl.records.TrialRecord.metric_scores`).
    max_epochs : int, default=50
    patience : int or None, default=10
        Stop a trial when its mean validation score has not improved for this many
        epochs (None trains every epoch).
    random_state : int, default=0
        Seeds the splits and every trial's network.
    sample_weight : array-like of shape (n_samples,), optional
        Row weights, sliced with the rows of each fold: the training part weighs the
        loss, the validation part weighs the score.

    Notes
    -----
    The trial's value is the best epoch's mean validation score. User attributes:
    ``estimator_params``, ``learning_curve`` (mean validation score per epoch),
    ``loss_curve`` (mean training loss), ``best_epoch``, ``epochs``, ``fit_seconds``,
    ``fold_scores`` (each fold's validation score at the best epoch; with
    ``WilcoxonPruner``, each fold's best score), and ``diverged`` with the reason when
    training blew up (the trial is then pruned and the study goes on).
    """

    def __init__(
        self,
        X: Any,
        y: Any,
        *,
        space: SearchSpace | None = None,
        estimator: Any = None,
        cv: Any = None,
        validation_fraction: float = 0.2,
        scoring: Any = "accuracy",
        refit: str | None = None,
        objectives: Any = (),
        max_epochs: int = 50,
        patience: int | None = 10,
        random_state: int = 0,
        sample_weight: Any = None,
    ) -> None:
        self.space = space if space is not None else SearchSpace.default()
        self.estimator = estimator if estimator is not None else DeepNetClassifier()
        final_network(self.estimator)
        if not (isinstance(max_epochs, int) and max_epochs >= 1):
            raise ValueError(f"max_epochs must be a positive integer; got {max_epochs!r}.")
        if patience is not None and not (isinstance(patience, int) and patience >= 1):
            raise ValueError(f"patience must be None or a positive integer; got {patience!r}.")
        self.X = X
        self.y = np.asarray(y)
        self.sample_weight = (
            None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        )
        if self.sample_weight is not None and self.sample_weight.shape != self.y.shape:
            raise ValueError(
                f"sample_weight must have one weight per sample, shape {self.y.shape}; got "
                f"shape {self.sample_weight.shape}."
            )
        self.max_epochs = max_epochs
        self.patience = patience
        self.random_state = random_state
        self.scorers = (
            {name: get_scorer(s) for name, s in scoring.items()}
            if isinstance(scoring, dict)
            else {"score": get_scorer(scoring)}
        )
        if not self.scorers:
            raise ValueError("scoring must name at least one metric.")
        self.refit = next(iter(self.scorers)) if refit is None else refit
        if self.refit not in self.scorers:
            raise ValueError(
                f"refit must be one of the metrics {sorted(self.scorers)}; got {refit!r}."
            )
        self.scorer = self.scorers[self.refit]
        self.scoring = scoring
        self.objectives = tuple(objectives)
        unknown = sorted(set(self.objectives) - set(OBJECTIVES))
        if unknown:
            raise ValueError(f"objectives may be {', '.join(OBJECTIVES)}; got {unknown[0]!r}.")
        self.regression = isinstance(final_network(self.estimator), DeepNetRegressor)
        self.classes = None if self.regression else np.unique(self.y)
        self.splits = self._make_splits(cv, validation_fraction)

    def _make_splits(
        self, cv: Any, validation_fraction: float
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        indices = np.arange(len(self.y))
        if cv is None:
            if not 0 < validation_fraction < 1:
                raise ValueError(
                    f"validation_fraction must be in (0, 1); got {validation_fraction!r}."
                )
            train, val = train_test_split(
                indices,
                test_size=validation_fraction,
                stratify=None if self.regression else self.y,
                random_state=self.random_state,
            )
            return [(np.sort(train), np.sort(val))]
        if isinstance(cv, int):
            folds = KFold if self.regression else StratifiedKFold
            cv = folds(cv, shuffle=True, random_state=self.random_state)
        splitter = check_cv(cv, self.y, classifier=not self.regression)
        return [(np.asarray(tr), np.asarray(va)) for tr, va in splitter.split(self.X, self.y)]

    def _subset(self, rows: np.ndarray) -> Any:
        X = self.X
        if hasattr(X, "iloc"):
            return X.iloc[rows]
        if issparse(X):  # a Pipeline whose first step accepts sparse input
            return X[rows]
        return np.asarray(X)[rows]

    def _fold_models(self, params: dict[str, Any]) -> list[_Fold]:
        prefix = param_prefix(self.estimator)
        weights = self.sample_weight
        folds = []
        for train, val in self.splits:
            estimator = clone(self.estimator).set_params(
                **{prefix + k: v for k, v in params.items()},
                **{prefix + "max_epochs": self.max_epochs},
            )
            if final_network(estimator).random_state is None:
                estimator.set_params(**{prefix + "random_state": self.random_state})
            X_train, X_val = self._subset(train), self._subset(val)
            if isinstance(estimator, Pipeline) and len(estimator.steps) > 1:
                head = estimator[:-1]
                X_train = head.fit_transform(X_train, self.y[train])
                X_val = head.transform(X_val)
            folds.append(
                _Fold(
                    final_network(estimator),
                    X_train,
                    self.y[train],
                    X_val,
                    self.y[val],
                    None if weights is None else weights[train],
                    None if weights is None else weights[val],
                )
            )
        return folds

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, ...]:
        params = self.space.suggest(trial)
        started = time.perf_counter()
        folds = self._fold_models(params)
        wilcoxon = isinstance(trial.study.pruner, optuna.pruners.WilcoxonPruner)
        fit_seconds = 0.0
        try:
            if wilcoxon:
                curve, losses = self._train_per_fold(trial, folds)
            else:
                curve, losses = self._train_lockstep(trial, folds)
        finally:
            fit_seconds = time.perf_counter() - started
            TrialRecord(fit_seconds=fit_seconds).write(trial)
        best = int(np.argmax(curve))
        TrialRecord(best_epoch=best + 1).write(trial)
        if not self.objectives:
            return float(curve[best])
        extras = {
            "fit_seconds": fit_seconds,
            "n_params": float(folds[0].model.network_.flat_params.size),
        }
        return (float(curve[best]), *(extras[name] for name in self.objectives))

    @staticmethod
    def _reports(trial: optuna.Trial) -> bool:
        """Whether the trial reports per-epoch values (not in multi-objective studies)."""
        return len(trial.study.directions) == 1

    def _epoch(self, trial: optuna.Trial, fold: _Fold) -> float:
        model = fold.model
        extra: dict[str, Any] = {} if self.regression else {"classes": self.classes}
        if fold.w_train is not None:
            extra["sample_weight"] = fold.w_train
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", DivergenceWarning)
            model.partial_fit(fold.X_train, fold.y_train, **extra)
        diverged = [w for w in caught if issubclass(w.category, DivergenceWarning)]
        for w in caught:
            if not issubclass(w.category, DivergenceWarning):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        if diverged:
            reason = str(diverged[0].message)
            TrialRecord(diverged=reason).write(trial)
            raise optuna.TrialPruned(reason)
        return model.loss_curve_[-1]

    def _train_lockstep(self, trial: optuna.Trial, folds: list) -> tuple[list[float], list[float]]:
        curve: list[float] = []
        losses: list[float] = []
        fold_curve: list[list[float]] = []
        other_curve: list[dict[str, list[float]] | None] = []
        stalled = 0
        pruner = trial.study.pruner
        reports = self._reports(trial)
        try:
            for epoch in range(1, self.max_epochs + 1):
                epoch_losses = [self._epoch(trial, fold) for fold in folds]
                fold_scores = [_score(self.scorer, fold) for fold in folds]
                other_curve.append(self._other_metrics(folds))
                score = float(np.mean(fold_scores))
                stalled = 0 if not curve or score > max(curve) else stalled + 1
                curve.append(score)
                fold_curve.append(fold_scores)
                losses.append(float(np.mean(epoch_losses)))
                if reports:
                    trial.report(score, epoch)
                    if may_prune(pruner, epoch) and trial.should_prune():
                        raise optuna.TrialPruned(f"pruned at epoch {epoch}")
                if self.patience is not None and stalled >= self.patience:
                    break
        finally:
            best = int(np.argmax(curve)) if curve else None
            TrialRecord(
                learning_curve=curve,
                loss_curve=losses,
                epochs=len(curve),
                fold_scores=None if best is None else fold_curve[best],
                metric_scores=None if best is None else other_curve[best],
            ).write(trial)
        return curve, losses

    def _other_metrics(self, folds: list) -> dict[str, list[float]] | None:
        """Every metric's validation score on each fold (None with one metric)."""
        if len(self.scorers) == 1:
            return None
        return {
            name: [_score(scorer, fold) for fold in folds] for name, scorer in self.scorers.items()
        }

    def _train_per_fold(self, trial: optuna.Trial, folds: list) -> tuple[list[float], list[float]]:
        fold_curves: list[list[float]] = []
        fold_others: list[dict[str, float] | None] = []
        try:
            for step, fold in enumerate(folds):
                fold_curve: list[float] = []
                others: list[dict[str, float] | None] = []
                for _ in range(self.max_epochs):
                    self._epoch(trial, fold)
                    fold_curve.append(_score(self.scorer, fold))
                    other = self._other_metrics([fold])
                    others.append(None if other is None else {k: v[0] for k, v in other.items()})
                    stalled = len(fold_curve) - 1 - int(np.argmax(fold_curve))
                    if self.patience is not None and stalled >= self.patience:
                        break
                fold_curves.append(fold_curve)
                fold_others.append(others[int(np.argmax(fold_curve))])
                if self._reports(trial):
                    trial.report(max(fold_curve), step)
                if self._reports(trial) and trial.should_prune():
                    raise optuna.TrialPruned(f"pruned after fold {step + 1} of {len(folds)}")
        finally:
            metric_scores = (
                {name: [o[name] for o in fold_others] for name in self.scorers}
                if fold_others and all(o is not None for o in fold_others)
                else None
            )
            TrialRecord(
                fold_scores=[max(c) for c in fold_curves],
                epochs=sum(len(c) for c in fold_curves),
                metric_scores=metric_scores,
            ).write(trial)
        length = min(len(c) for c in fold_curves)
        curve = [float(np.mean([c[i] for c in fold_curves])) for i in range(length)]
        TrialRecord(learning_curve=curve).write(trial)
        return curve, []
