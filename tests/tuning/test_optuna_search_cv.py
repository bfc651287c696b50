"""DeepNetClassifier under optuna_integration.OptunaSearchCV with pruning (partial_fit)."""

from __future__ import annotations

import numpy as np
import optuna
import optuna_integration  # a test dependency (pyproject's "test" extra), like pandas
import pytest
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import TrialState
from sklearn.datasets import make_classification
from sklearn.model_selection import train_test_split

from optuna_dl import DeepNetClassifier

pytestmark = [
    pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning"),
    # OptunaSearchCV reports its folds to the deprecated optuna.terminator
    pytest.mark.filterwarnings("ignore:`optuna.terminator` module:FutureWarning"),
]

MAX_ITER = 5
N_TRIALS = 6


@pytest.fixture(scope="module")
def data():
    X, y = make_classification(
        n_samples=300,
        n_features=8,
        n_informative=5,
        n_redundant=0,
        n_classes=3,
        random_state=0,
    )
    return train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)


def search(study=None, **kwargs):
    return optuna_integration.OptunaSearchCV(
        DeepNetClassifier(n_layers=1, n_units=16, batch_size=32, max_epochs=10, random_state=0),
        {
            "learning_rate": FloatDistribution(1e-3, 1e-1, log=True),
            "n_units": IntDistribution(8, 32, log=True),
        },
        enable_pruning=True,
        max_iter=MAX_ITER,
        n_trials=N_TRIALS,
        cv=3,
        random_state=0,
        study=study,
        **kwargs,
    )


def test_fits_reports_every_epoch_and_predicts(data):
    X_train, X_test, y_train, y_test = data
    model = search().fit(X_train, y_train)
    trials = model.study_.trials
    assert len(trials) == N_TRIALS
    for trial in trials:
        assert trial.state in (TrialState.COMPLETE, TrialState.PRUNED)
        steps = list(trial.intermediate_values)
        assert steps == list(range(len(steps))) and steps  # one report per partial_fit
        if trial.state == TrialState.COMPLETE:
            assert len(steps) == MAX_ITER
            splits = [trial.user_attrs[f"split{i}_test_score"] for i in range(3)]
            assert trial.intermediate_values[MAX_ITER - 1] == pytest.approx(np.mean(splits))
            assert trial.value == pytest.approx(np.mean(splits))
    assert set(model.best_params_) == {"learning_rate", "n_units"}
    best = model.best_estimator_
    assert isinstance(best, DeepNetClassifier)
    assert best.learning_rate == model.best_params_["learning_rate"]
    assert best.n_iter_ >= 1
    predictions = model.predict(X_test)
    assert predictions.shape == y_test.shape
    assert set(np.unique(predictions)) <= set(np.unique(y_train))
    assert model.score(X_test, y_test) > 0.6  # three classes: chance is 1/3


def test_a_pruner_in_the_study_prunes_partial_fit_trials(data):
    X_train, _, y_train, _ = data
    # The median of the first trials' epochs is a bar that some later trials miss;
    # ThresholdPruner makes the outcome certain: nobody reaches 99 % after one epoch.
    study = optuna.create_study(
        direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=0.99)
    )
    search(study=study, refit=False).fit(X_train, y_train)
    assert len(study.trials) == N_TRIALS
    for trial in study.trials:
        assert trial.state == TrialState.PRUNED
        assert list(trial.intermediate_values) == [0]
        assert 0 < trial.intermediate_values[0] < 0.99
        assert trial.user_attrs["mean_test_score"] == pytest.approx(trial.intermediate_values[0])


def test_median_pruner_with_a_bad_learning_rate_range(data):
    X_train, _, y_train, _ = data
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=0),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=1),
    )
    # One good configuration first, then learning rates far too small to catch up.
    study.enqueue_trial({"learning_rate": 0.05, "n_units": 32})
    model = optuna_integration.OptunaSearchCV(
        DeepNetClassifier(n_layers=1, batch_size=32, max_epochs=5, random_state=0),
        {
            "learning_rate": FloatDistribution(1e-7, 1e-1, log=True),
            "n_units": IntDistribution(8, 32, log=True),
        },
        enable_pruning=True,
        max_iter=MAX_ITER,
        n_trials=N_TRIALS,
        cv=3,
        study=study,
        refit=False,
    ).fit(X_train, y_train)
    states = [t.state for t in model.study_.trials]
    assert states[0] == TrialState.COMPLETE
    assert TrialState.PRUNED in states
    completed = [t for t in model.study_.trials if t.state == TrialState.COMPLETE]
    for trial in model.study_.trials:
        if trial.state == TrialState.PRUNED:
            last = max(trial.intermediate_values)
            assert 1 <= last < MAX_ITER  # n_warmup_steps=1: never at the first report
            # below the median (here: at most the best) of the completed trials there
            best_there = max(t.intermediate_values[last] for t in completed)
            assert max(trial.intermediate_values.values()) < best_there
