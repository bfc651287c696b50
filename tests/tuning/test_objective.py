"""Objective: fixed splits, lockstep folds, user attributes, divergence, determinism."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState
from sklearn.datasets import load_digits, make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from optuna_dl import DeepNetClassifier
from optuna_dl.tuning.objective import Objective
from optuna_dl.tuning.space import Dimension, SearchSpace


@pytest.fixture(scope="module")
def data():
    return make_classification(
        n_samples=240,
        n_features=8,
        n_informative=5,
        n_redundant=0,
        n_classes=3,
        random_state=0,
    )


def small_space() -> SearchSpace:
    return SearchSpace(
        (
            Dimension("learning_rate", "float", 1e-3, 1e-1, "log", tier=1),
            Dimension("n_layers", "int", 1, 2, tier=2),
            Dimension("n_units", "int", 8, 32, "log", tier=3),
        )
    )


def small_net(**params) -> DeepNetClassifier:
    return DeepNetClassifier(**{"batch_size": 64, **params})


class PartialFitSpy:
    """Records what every ``partial_fit`` call received."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[DeepNetClassifier, np.ndarray, np.ndarray]] = []
        original = DeepNetClassifier.partial_fit

        def spy(model, X, y, classes=None):
            self.calls.append((model, np.array(X, copy=True), np.array(y, copy=True)))
            return original(model, X, y, classes=classes)

        monkeypatch.setattr(DeepNetClassifier, "partial_fit", spy)


def row_ids(X_rows: np.ndarray, X: np.ndarray) -> set[int]:
    """Indices into ``X`` of the given rows (rows of make_classification are unique)."""
    where = {row.tobytes(): i for i, row in enumerate(np.asarray(X, dtype=np.float64))}
    return {where[row.tobytes()] for row in np.asarray(X_rows, dtype=np.float64)}


# ------------------------------------------------------------------ splits
@pytest.mark.parametrize("cv", [None, 3])
def test_splits_are_computed_once_and_used_by_every_trial_and_epoch(data, monkeypatch, cv):
    X, y = data
    objective = Objective(
        X, y, space=small_space(), estimator=small_net(), cv=cv, max_epochs=3, patience=None
    )
    before = [(train.copy(), val.copy()) for train, val in objective.splits]
    n_folds = 1 if cv is None else cv
    assert len(before) == n_folds
    for train, val in before:
        assert np.intersect1d(train, val).size == 0
        assert train.size + val.size == len(y)
    if cv is not None:  # the validation folds partition the data
        np.testing.assert_array_equal(
            np.sort(np.concatenate([val for _, val in before])), np.arange(len(y))
        )

    scored: list[np.ndarray] = []
    scorer = objective.scorer

    def spy_scorer(model, X_val, y_val):
        scored.append(np.array(X_val, copy=True))
        return scorer(model, X_val, y_val)

    objective.scorer = spy_scorer
    spy = PartialFitSpy(monkeypatch)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(0))
    study.optimize(objective, n_trials=3)

    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    for (train0, val0), (train1, val1) in zip(before, objective.splits):
        np.testing.assert_array_equal(train0, train1)
        np.testing.assert_array_equal(val0, val1)
    # 3 trials x 3 epochs x n_folds fits; each on exactly one fold's training rows.
    assert len(spy.calls) == 3 * 3 * n_folds
    expected_train = [set(train.tolist()) for train, _ in before]
    expected_val = [set(val.tolist()) for _, val in before]
    for i, (_, X_fit, y_fit) in enumerate(spy.calls):
        fold = i % n_folds  # lockstep: fold 0, 1, 2, fold 0, 1, 2, ...
        ids = row_ids(X_fit, X)
        assert ids == expected_train[fold]
        assert not ids & expected_val[fold]
        np.testing.assert_array_equal(y_fit, y[np.sort(before[fold][0])])
    assert len(scored) == 3 * 3 * n_folds
    for i, X_val in enumerate(scored):
        assert row_ids(X_val, X) == expected_val[i % n_folds]


# ---------------------------------------------------------------- lockstep
def test_reported_values_are_the_mean_of_the_folds(data):
    X, y = data
    objective = Objective(
        X, y, space=small_space(), estimator=small_net(), cv=3, max_epochs=4, patience=None
    )
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(1))
    study.optimize(objective, n_trials=2)
    for trial in study.trials:
        params = trial.user_attrs["estimator_params"]
        per_fold, losses = [], []
        for train, val in objective.splits:
            model = small_net(**params, max_epochs=4, random_state=0)
            curve, loss = [], []
            for _ in range(4):
                model.partial_fit(X[train], y[train], classes=np.unique(y))
                curve.append(model.score(X[val], y[val]))
                loss.append(model.loss_curve_[-1])
            per_fold.append(curve)
            losses.append(loss)
        expected = np.mean(per_fold, axis=0)
        reported = [trial.intermediate_values[epoch] for epoch in range(1, 5)]
        np.testing.assert_allclose(reported, expected, rtol=0, atol=1e-12)
        np.testing.assert_allclose(trial.user_attrs["learning_curve"], expected, atol=1e-12)
        np.testing.assert_allclose(trial.user_attrs["loss_curve"], np.mean(losses, axis=0))
        # the folds differ, so the mean is not just one fold's curve
        assert not all(np.allclose(curve, expected) for curve in per_fold)


def test_user_attributes_are_consistent_with_the_value(data):
    X, y = data
    patience = 2
    objective = Objective(
        X, y, space=small_space(), estimator=small_net(), cv=2, max_epochs=25, patience=patience
    )
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(2))
    study.optimize(objective, n_trials=4)
    stopped_early = 0
    for trial in study.trials:
        attrs = trial.user_attrs
        assert {
            "estimator_params",
            "learning_curve",
            "loss_curve",
            "epochs",
            "fit_seconds",
            "best_epoch",
        } <= set(attrs)
        curve = attrs["learning_curve"]
        assert attrs["epochs"] == len(curve) == len(attrs["loss_curve"]) >= 1
        assert trial.value == max(curve)
        assert attrs["best_epoch"] == int(np.argmax(curve)) + 1
        assert attrs["fit_seconds"] > 0
        assert trial.intermediate_values == {i + 1: v for i, v in enumerate(curve)}
        assert all(np.isfinite(attrs["loss_curve"]))
        if attrs["epochs"] < 25:  # patience stopped it right after `patience` stalls
            stopped_early += 1
            assert attrs["epochs"] == attrs["best_epoch"] + patience
    assert stopped_early >= 1


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_per_fold_mode_records_fold_scores(data):
    X, y = data
    objective = Objective(
        X, y, space=small_space(), estimator=small_net(), cv=3, max_epochs=3, patience=None
    )
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.WilcoxonPruner())
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.state == TrialState.COMPLETE
    assert list(trial.intermediate_values) == [0, 1, 2]
    assert list(trial.intermediate_values.values()) == trial.user_attrs["fold_scores"]
    assert trial.user_attrs["epochs"] == 9
    assert trial.value == max(trial.user_attrs["learning_curve"])


# -------------------------------------------------------------- divergence
@pytest.mark.filterwarnings(
    "ignore:overflow:RuntimeWarning", "ignore:invalid value:RuntimeWarning"
)
def test_divergence_prunes_the_trial_and_the_study_goes_on(data):
    X, y = data
    space = SearchSpace((Dimension("learning_rate", "float", 1e-3, 1e6, "log"),))
    objective = Objective(
        X,
        y,
        space=space,
        estimator=DeepNetClassifier(optimizer="sgd", batch_norm=False, n_units=16),
        cv=2,
        max_epochs=5,
    )
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial({"learning_rate": 5e5})
    study.enqueue_trial({"learning_rate": 0.3})
    study.optimize(objective, n_trials=2)
    diverged, fine = study.trials
    assert diverged.state == TrialState.PRUNED
    reason = diverged.user_attrs["diverged"]
    assert "diverged" in reason and "learning_rate" in reason
    assert diverged.user_attrs["epochs"] == len(diverged.user_attrs["learning_curve"])
    assert fine.state == TrialState.COMPLETE
    assert "diverged" not in fine.user_attrs
    assert fine.value > 0.5


@pytest.mark.filterwarnings(
    "ignore:overflow:RuntimeWarning", "ignore:invalid value:RuntimeWarning"
)
def test_divergence_with_a_huge_learning_rate_space(data):
    X, y = data
    space = SearchSpace((Dimension("learning_rate", "float", 1e5, 1e6, "log"),))
    objective = Objective(
        X,
        y,
        space=space,
        estimator=DeepNetClassifier(optimizer="sgd", batch_norm=False, n_units=16),
        max_epochs=5,
    )
    study = optuna.create_study(direction="maximize")
    study.optimize(objective, n_trials=3)
    assert [t.state for t in study.trials] == [TrialState.PRUNED] * 3
    for trial in study.trials:
        assert "learning_rate=" in trial.user_attrs["diverged"]


# --------------------------------------------------------------- pipelines
def test_pipeline_estimator(data, monkeypatch):
    X, y = data
    X = X * 100 + 50  # far from standardized: the scaler matters
    template = make_pipeline(StandardScaler(), small_net())
    objective = Objective(X, y, space=small_space(), estimator=template, cv=2, max_epochs=3)
    spy = PartialFitSpy(monkeypatch)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(3))
    study.optimize(objective, n_trials=2)
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    assert study.best_value > 0.5
    assert template.steps[-1][1].learning_rate == 1e-3  # the template is not modified
    for _, X_fit, _ in spy.calls:
        # the scaler was fitted on exactly these (training) rows
        np.testing.assert_allclose(X_fit.mean(axis=0), 0, atol=1e-5)
        np.testing.assert_allclose(X_fit.std(axis=0), 1, atol=1e-4)
    params = [t.user_attrs["estimator_params"] for t in study.trials]
    seen = {(m.learning_rate, m.n_layers, m.n_units) for m, _, _ in spy.calls}
    assert seen == {(p["learning_rate"], p["n_layers"], p["n_units"]) for p in params}


def test_objective_with_a_custom_splitter_and_dataframe(data):
    pd = pytest.importorskip("pandas")
    X, y = data
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    objective = Objective(
        frame, y, space=small_space(), cv=KFold(3, shuffle=True, random_state=0), max_epochs=2
    )
    assert len(objective.splits) == 3
    study = optuna.create_study(direction="maximize")
    study.optimize(objective, n_trials=1)
    assert study.trials[0].state == TrialState.COMPLETE


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"estimator": LogisticRegression()}, TypeError, "DeepNetClassifier"),
        (
            {"estimator": make_pipeline(StandardScaler(), LogisticRegression())},
            TypeError,
            "Pipeline ending",
        ),
        ({"max_epochs": 0}, ValueError, "max_epochs"),
        ({"patience": 0}, ValueError, "patience"),
        ({"validation_fraction": 1.5}, ValueError, "validation_fraction"),
    ],
)
def test_bad_objective_settings(data, kwargs, error, match):
    X, y = data
    with pytest.raises(error, match=match):
        Objective(X, y, **kwargs)


# ------------------------------------------------------------- determinism
def run_study(X, y, n_trials=5):
    objective = Objective(
        X, y, space=small_space(), estimator=small_net(), cv=2, max_epochs=4, random_state=0
    )
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=3),
    )
    study.optimize(objective, n_trials=n_trials)
    return study


def test_same_seeds_give_the_same_study(data):
    X, y = data
    first, second = run_study(X, y), run_study(X, y)
    assert [t.params for t in first.trials] == [t.params for t in second.trials]
    assert [t.intermediate_values for t in first.trials] == [
        t.intermediate_values for t in second.trials
    ]
    assert first.best_value == second.best_value
    assert len({tuple(sorted(t.params.items())) for t in first.trials}) == 5
    # the objective's random_state does matter: another one gives other splits
    splits = [Objective(X, y, cv=2, random_state=seed).splits for seed in (0, 1)]
    assert not np.array_equal(splits[0][0][0], splits[1][0][0])


# ------------------------------------------------------------------ digits
@pytest.mark.slow
def test_digits_hyperband_study_prunes_and_reaches_97_percent():
    X, y = load_digits(return_X_y=True)
    objective = Objective(
        X,
        y,
        estimator=make_pipeline(StandardScaler(), DeepNetClassifier()),
        cv=3,
        max_epochs=30,
    )
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=0),
        pruner=optuna.pruners.HyperbandPruner(),
    )
    study.optimize(objective, n_trials=30)
    states = [t.state for t in study.trials]
    assert states.count(TrialState.PRUNED) >= 5
    assert states.count(TrialState.COMPLETE) >= 5
    assert study.best_value >= 0.97
    for trial in study.trials:
        if trial.state == TrialState.PRUNED and "diverged" not in trial.user_attrs:
            epochs = trial.user_attrs["epochs"]
            assert list(trial.intermediate_values) == list(range(1, epochs + 1))
