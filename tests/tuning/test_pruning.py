"""PruningCallback with a real DeepNetClassifier under every Optuna pruner, and the
Objective's per-fold reports under WilcoxonPruner."""

from __future__ import annotations

import re

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState, create_trial
from sklearn.datasets import make_classification

from optuna_dl import DeepNetClassifier
from optuna_dl.tuning.objective import Objective
from optuna_dl.tuning.pruning import PruningCallback, may_prune
from optuna_dl.tuning.space import Dimension, SearchSpace

MAX_EPOCHS = 10
PRUNED = re.compile(r"pruned at epoch (\d+)")


@pytest.fixture(scope="module")
def data():
    # Noisy labels: the validation accuracy stays far below 1 and wobbles.
    return make_classification(
        n_samples=240,
        n_features=8,
        n_informative=4,
        n_redundant=0,
        n_classes=3,
        flip_y=0.3,
        random_state=0,
    )


def model(**params) -> DeepNetClassifier:
    defaults = dict(
        n_layers=1,
        n_units=32,
        batch_size=32,
        learning_rate=0.05,
        max_epochs=MAX_EPOCHS,
        early_stopping=True,
        validation_fraction=0.25,
        n_iter_no_change=100,  # only the pruner stops training
        random_state=0,
    )
    return DeepNetClassifier(**{**defaults, **params})


def prior(
    value: float, steps=range(1, MAX_EPOCHS + 1), **system_attrs
) -> optuna.trial.FrozenTrial:
    """A finished trial that reported ``value`` at every step."""
    return create_trial(
        value=value,
        intermediate_values={step: value for step in steps},
        system_attrs=system_attrs,
    )


def study_with(pruner, priors, *, direction="maximize", name=None) -> optuna.Study:
    study = optuna.create_study(direction=direction, pruner=pruner, study_name=name)
    for trial in priors:
        study.add_trial(trial)
    return study


def fit_pruned(study: optuna.Study, X, y, estimator: DeepNetClassifier, monitor: str):
    """Fit under a PruningCallback; return (pruned epoch, frozen trial)."""
    trial = study.ask()
    estimator.set_callbacks(PruningCallback(trial, monitor=monitor))
    with pytest.raises(optuna.TrialPruned) as info:
        estimator.fit(X, y)
    match = PRUNED.fullmatch(str(info.value))
    assert match, str(info.value)
    study.tell(trial, state=TrialState.PRUNED)
    frozen = study.trials[-1]
    assert frozen.state == TrialState.PRUNED
    return int(match.group(1)), frozen


EXCELLENT = [prior(1.0) for _ in range(3)]
EXCELLENT_RUNGS = [prior(1.0, **{f"completed_rung_{r}": 1.0 for r in range(3)}) for _ in range(20)]


@pytest.mark.parametrize(
    "make_pruner, priors, expected_epochs",
    [
        (
            lambda: optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=3),
            EXCELLENT,
            {3},
        ),
        (
            lambda: optuna.pruners.PercentilePruner(25.0, n_startup_trials=1, n_warmup_steps=2),
            EXCELLENT,
            {2},
        ),
        (
            # rung 0 is reached at min_resource * reduction_factor ** rate = 3 epochs
            lambda: optuna.pruners.SuccessiveHalvingPruner(
                min_resource=1, reduction_factor=3, min_early_stopping_rate=1
            ),
            EXCELLENT_RUNGS,
            {3},
        ),
        (
            # three brackets, whose first rungs are at epochs 1, 3 and 9
            lambda: optuna.pruners.HyperbandPruner(
                min_resource=1, max_resource=9, reduction_factor=3
            ),
            EXCELLENT_RUNGS,
            {1, 3, 9},
        ),
        (lambda: optuna.pruners.ThresholdPruner(lower=0.99, n_warmup_steps=2), [], {2}),
        (lambda: optuna.pruners.ThresholdPruner(lower=0.99), [], {1}),
    ],
    ids=["median", "percentile", "successive_halving", "hyperband", "threshold", "threshold0"],
)
def test_pruner_must_prune(data, make_pruner, priors, expected_epochs):
    X, y = data
    study = study_with(make_pruner(), priors, name="must-prune")
    estimator = model()
    epoch, trial = fit_pruned(study, X, y, estimator, "validation_score")
    assert epoch in expected_epochs
    assert list(trial.intermediate_values) == list(range(1, epoch + 1))
    assert list(trial.intermediate_values.values()) == estimator.validation_scores_
    assert estimator.n_iter_ == epoch < MAX_EPOCHS


@pytest.mark.parametrize(
    "study_name, bracket",
    # Hyperband assigns trial 20 (after the 20 priors) to a bracket by a CRC32 of
    # "<study name>_20"; these names land it in each of the three brackets.
    [("bracket-1", 0), ("bracket-0", 1), ("bracket-6", 2)],
)
def test_hyperband_prunes_at_the_first_rung_of_each_bracket(data, study_name, bracket):
    X, y = data
    pruner = optuna.pruners.HyperbandPruner(min_resource=1, max_resource=9, reduction_factor=3)
    study = study_with(pruner, EXCELLENT_RUNGS, name=study_name)
    epoch, trial = fit_pruned(study, X, y, model(), "validation_score")
    assert epoch == 3**bracket  # min_resource * reduction_factor ** bracket
    assert list(trial.intermediate_values) == list(range(1, epoch + 1))


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_patient_pruner_waits_for_a_decline_then_asks_the_wrapped_pruner(data):
    X, y = data
    patience = 1
    wrapped = optuna.pruners.MedianPruner(n_startup_trials=1)  # would prune at once
    study = study_with(optuna.pruners.PatientPruner(wrapped, patience=patience), EXCELLENT)
    estimator = model()
    epoch, trial = fit_pruned(study, X, y, estimator, "validation_score")
    scores = list(trial.intermediate_values.values())
    assert list(trial.intermediate_values) == list(range(1, epoch + 1))

    def declined(k: int) -> bool:  # PatientPruner's rule after k reports, maximizing
        split = k - patience - 1
        return split >= 1 and max(scores[:split]) > max(scores[split:k])

    assert declined(epoch)
    assert not any(declined(k) for k in range(1, epoch))
    assert epoch > patience + 1


@pytest.mark.parametrize(
    "make_pruner, priors",
    [
        (lambda: optuna.pruners.MedianPruner(n_startup_trials=1), [prior(0.0) for _ in range(3)]),
        (lambda: optuna.pruners.ThresholdPruner(lower=0.0), []),
        (lambda: optuna.pruners.NopPruner(), EXCELLENT),
    ],
    ids=["median-worse-priors", "threshold-low", "nop"],
)
def test_pruner_must_not_prune(data, make_pruner, priors):
    X, y = data
    study = study_with(make_pruner(), priors)
    trial = study.ask()
    estimator = model()
    estimator.set_callbacks(PruningCallback(trial))
    estimator.fit(X, y)
    study.tell(trial, estimator.best_validation_score_)
    frozen = study.trials[-1]
    assert frozen.state == TrialState.COMPLETE
    assert estimator.n_iter_ == MAX_EPOCHS
    assert list(frozen.intermediate_values) == list(range(1, MAX_EPOCHS + 1))
    assert list(frozen.intermediate_values.values()) == estimator.validation_scores_


def test_monitor_loss_reports_the_training_loss(data):
    X, y = data
    zero_loss = [prior(0.0) for _ in range(3)]
    study = study_with(
        optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=2),
        zero_loss,
        direction="minimize",
    )
    estimator = model(early_stopping=False)
    epoch, trial = fit_pruned(study, X, y, estimator, "loss")
    assert epoch == 2
    assert list(trial.intermediate_values.values()) == pytest.approx(estimator.loss_curve_)


def test_monitor_loss_without_a_reason_to_prune(data):
    X, y = data
    study = study_with(optuna.pruners.ThresholdPruner(upper=1e9), [], direction="minimize")
    trial = study.ask()
    estimator = model(early_stopping=False, n_iter_no_change=100)
    estimator.set_callbacks(PruningCallback(trial, monitor="loss"))
    estimator.fit(X, y)
    assert list(trial.study.trials[-1].intermediate_values.values()) == pytest.approx(
        estimator.loss_curve_
    )


def test_validation_score_needs_early_stopping(data):
    X, y = data
    trial = optuna.create_study().ask()
    estimator = model(early_stopping=False)
    estimator.set_callbacks(PruningCallback(trial))
    with pytest.raises(ValueError, match="early_stopping=True.*monitor='loss'"):
        estimator.fit(X, y)


@pytest.mark.parametrize("monitor", ["accuracy", "val_loss", "", None])
def test_bad_monitor(monitor):
    trial = optuna.create_study().ask()
    with pytest.raises(ValueError, match="monitor must be one of"):
        PruningCallback(trial, monitor=monitor)


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_wilcoxon_prunes_on_the_objectives_per_fold_reports(data):
    X, y = data
    n_folds = 5
    space = SearchSpace((Dimension("learning_rate", "float", 1e-2, 1e-1, "log"),))
    objective = Objective(
        X, y, space=space, estimator=model(early_stopping=False), cv=n_folds, max_epochs=3
    )
    # A prior trial that scored 1.0 on every fold (steps are fold indices 0..4).
    perfect = prior(1.0, steps=range(n_folds))
    study = study_with(optuna.pruners.WilcoxonPruner(p_threshold=0.1), [perfect])
    trial = study.ask()
    with pytest.raises(optuna.TrialPruned, match=rf"pruned after fold (\d) of {n_folds}") as info:
        objective(trial)
    study.tell(trial, state=TrialState.PRUNED)
    frozen = study.trials[-1]
    folds_done = int(re.search(r"fold (\d)", str(info.value)).group(1))
    # Wilcoxon's one-sided exact p-value with every difference negative is 2**-n:
    # 1/8 after three folds, 1/16 < 0.1 after four.
    assert folds_done == 4
    assert list(frozen.intermediate_values) == list(range(folds_done))
    assert list(frozen.intermediate_values.values()) == frozen.user_attrs["fold_scores"]
    assert all(v < 1.0 for v in frozen.intermediate_values.values())


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_wilcoxon_keeps_a_trial_as_good_as_the_best(data):
    X, y = data
    space = SearchSpace((Dimension("learning_rate", "float", 1e-2, 1e-1, "log"),))
    objective = Objective(
        X, y, space=space, estimator=model(early_stopping=False), cv=5, max_epochs=3
    )
    terrible = prior(0.0, steps=range(5))
    study = study_with(optuna.pruners.WilcoxonPruner(p_threshold=0.1), [terrible])
    study.optimize(objective, n_trials=1)
    frozen = study.trials[-1]
    assert frozen.state == TrialState.COMPLETE
    assert list(frozen.intermediate_values) == [0, 1, 2, 3, 4]
    assert frozen.value == pytest.approx(max(frozen.user_attrs["learning_curve"]))
    assert np.mean(frozen.user_attrs["fold_scores"]) >= frozen.value - 1e-12


# ------------------------------------------------------------------ may_prune
def _decisions(make_pruner, ask_all: bool, *, first_step: int) -> list[tuple[str, int]]:
    """Run 40 trials of noisy rising curves (up to 30 steps) with the pruner asked at
    every step (``ask_all``) or only where ``may_prune`` says it could decide; the
    trials' states and last steps."""
    rng = np.random.default_rng(0)
    pruner = make_pruner()
    study = optuna.create_study(direction="maximize", pruner=pruner, study_name="same-brackets")
    for _ in range(40):
        trial = study.ask()
        level, slope = rng.uniform(0.2, 0.6), rng.uniform(0.0, 0.02)
        state = TrialState.COMPLETE
        for step in range(first_step, first_step + 30):
            value = level + slope * step + rng.normal(0, 0.03)
            trial.report(value, step)
            asked = trial.should_prune() if ask_all or may_prune(pruner, step) else None
            if asked is None:
                # Where may_prune says no decision is possible, the pruner agrees.
                assert not pruner.prune(study, study._storage.get_trial(trial._trial_id))
            elif asked:
                state = TrialState.PRUNED
                break
        study.tell(trial, value if state == TrialState.COMPLETE else None, state=state)
    return [(t.state.name, t.last_step) for t in study.trials]


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
@pytest.mark.parametrize("first_step", [0, 1])
@pytest.mark.parametrize(
    "make_pruner",
    [
        optuna.pruners.NopPruner,
        optuna.pruners.MedianPruner,
        lambda: optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=4),
        lambda: optuna.pruners.PercentilePruner(40.0, n_warmup_steps=3, interval_steps=4),
        lambda: optuna.pruners.ThresholdPruner(lower=0.45, n_warmup_steps=2, interval_steps=3),
        optuna.pruners.SuccessiveHalvingPruner,  # min_resource="auto"
        lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=2, reduction_factor=3),
        lambda: optuna.pruners.SuccessiveHalvingPruner(
            min_resource=1, reduction_factor=2, min_early_stopping_rate=1
        ),
        lambda: optuna.pruners.HyperbandPruner(min_resource=2, max_resource=30),
        lambda: optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=30, reduction_factor=2
        ),
        optuna.pruners.HyperbandPruner,  # max_resource="auto"
        lambda: optuna.pruners.PatientPruner(optuna.pruners.MedianPruner(), patience=2),
    ],
)
def test_asking_only_where_may_prune_changes_no_decision(make_pruner, first_step):
    every_step = _decisions(make_pruner, True, first_step=first_step)
    where_possible = _decisions(make_pruner, False, first_step=first_step)
    assert where_possible == every_step
    if not isinstance(make_pruner(), optuna.pruners.NopPruner):
        assert any(state == "PRUNED" for state, _ in every_step), "the case prunes nothing"


def test_may_prune_names_the_rung_steps():
    hyperband = optuna.pruners.HyperbandPruner(min_resource=2, max_resource=40)
    halving = optuna.pruners.SuccessiveHalvingPruner(min_resource=3, min_early_stopping_rate=1)
    median = optuna.pruners.MedianPruner(n_warmup_steps=5, interval_steps=3)
    steps = range(0, 41)
    assert [s for s in steps if may_prune(hyperband, s)] == [2, 6, 18]
    assert [s for s in steps if may_prune(halving, s)] == [12]  # 3 * 4**1; 3 * 4**2 = 48
    assert [s for s in steps if may_prune(median, s)] == [
        5,
        8,
        11,
        14,
        17,
        20,
        23,
        26,
        29,
        32,
        35,
        38,
    ]
    assert not any(may_prune(optuna.pruners.NopPruner(), s) for s in steps)
    # Unknown rules, or ones that depend on the study, are always asked.
    assert all(may_prune(optuna.pruners.HyperbandPruner(), s) for s in steps)
    assert all(may_prune(optuna.pruners.SuccessiveHalvingPruner(), s) for s in steps)
