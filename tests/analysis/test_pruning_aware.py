"""Pruning-aware importance candidates: exact bookkeeping on hand-made studies, and
the planted-truth problem under successive halving."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from optuna_dl.analysis.importance import importances_at_epoch, param_importances
from optuna_dl.analysis.pruning_aware import (
    imputed_final_importances,
    imputed_final_values,
    level_links,
    linked_weights,
    ped_anova_with_pruned,
    pruned_order_values,
    rung_weighted_importances,
)
from optuna_dl.tuning.planted import planted_study

from .test_planted import PLANTED, assert_planted_first, evaluator

DISTS = {"x": FloatDistribution(0, 1), "y": FloatDistribution(0, 1)}


def _trial(
    value: float | None, curve: dict[int, float], state: TrialState, x: float = 0.5, **attrs: str
) -> optuna.trial.FrozenTrial:
    return create_trial(
        params={"x": x, "y": 1 - x},
        distributions=DISTS,
        value=value,
        intermediate_values=curve,
        state=state,
        user_attrs=attrs,
    )


def _study(direction: str, trials: list[optuna.trial.FrozenTrial]) -> optuna.Study:
    study = optuna.create_study(direction=direction)
    study.add_trials(trials)
    return study


@pytest.mark.parametrize("direction, sign", [("maximize", 1.0), ("minimize", -1.0)])
def test_pruned_trials_rank_below_those_that_went_further(direction: str, sign: float) -> None:
    P, C = TrialState.PRUNED, TrialState.COMPLETE
    study = _study(
        direction,
        [
            _trial(sign * 0.50, {2: sign * 0.1, 6: sign * 0.2}, C),  # 0: worst complete
            _trial(sign * 0.90, {2: sign * 0.8, 6: sign * 0.9}, C),  # 1: best complete
            _trial(None, {2: sign * 0.95, 6: sign * 0.99}, P),  # 2: pruned at 6, best score
            _trial(None, {2: sign * 0.30, 6: sign * 0.40}, P),  # 3: pruned at 6
            _trial(None, {2: sign * 0.99}, P),  # 4: pruned at 2, best score
            _trial(None, {2: sign * 0.20}, P),  # 5: pruned at 2
            _trial(None, {2: sign * 0.99}, P, diverged="nan loss"),  # 6: diverged
        ],
    )
    values = pruned_order_values(study)
    order = sorted(values, key=values.get, reverse=True)
    assert order == [1, 0, 2, 3, 4, 5, 6]


def test_imputed_values_follow_the_line_through_the_completed_trials() -> None:
    P, C = TrialState.PRUNED, TrialState.COMPLETE
    completed = [_trial(0.5 + 0.5 * v, {2: v, 6: v + 0.01}, C) for v in (0.2, 0.4, 0.6, 0.8)]
    study = _study(
        "maximize",
        [
            *completed,
            _trial(None, {2: 0.3}, P),
            _trial(None, {2: 0.5, 6: 0.7}, P),
            _trial(None, {2: 0.5}, P, diverged="nan"),
        ],
    )
    values = imputed_final_values(study)
    assert values[4] == pytest.approx(0.5 + 0.5 * 0.3)
    # at epoch 6 the completed trials' final value is 0.5 + 0.5 * (v6 - 0.01)
    assert values[5] == pytest.approx(0.5 + 0.5 * (0.7 - 0.01))
    assert values[6] == pytest.approx(min(t.value for t in completed))
    assert values[0] == completed[0].value


@pytest.fixture(scope="module")
def halved() -> optuna.Study:
    """The planted problem under the README study's successive halving."""
    return planted_study(300, seed=4)


def test_rung_weights_are_the_trial_counts(halved: optuna.Study) -> None:
    combined = rung_weighted_importances(halved, evaluator="ped_anova", n_bootstrap=5)
    levels = [importances_at_epoch(halved, e, n_bootstrap=0) for e in (2, 6, 18)]
    levels.append(param_importances(halved, n_bootstrap=0))
    total = sum(r.n_trials for r in levels)
    for p in combined.params:
        expected = sum(r.n_trials * r.get(p.name).importance for r in levels) / total
        assert p.importance == pytest.approx(expected)
    assert combined.n_trials == 300
    assert combined.bootstrap.shape == (5, len(combined.params))


def test_completed_trials_alone_miss_the_planted_order(halved: optuna.Study) -> None:
    """What the candidates are for: PED-ANOVA on the completed trials only cannot
    separate the planted parameters from the rest."""
    result = param_importances(halved, n_bootstrap=20)
    with pytest.raises(AssertionError):
        assert_planted_first(result, PLANTED)


@pytest.mark.parametrize("name", ["ped_anova", "mdi"])
@pytest.mark.parametrize("candidate", [rung_weighted_importances, imputed_final_importances])
def test_candidates_rank_the_planted_parameters_first(
    halved: optuna.Study, candidate: object, name: str
) -> None:
    result = candidate(halved, evaluator=evaluator(name), n_bootstrap=20)
    assert_planted_first(result, PLANTED)


def test_ped_anova_with_pruned_ranks_the_planted_parameters_first(halved: optuna.Study) -> None:
    result = ped_anova_with_pruned(halved, n_bootstrap=20)
    assert result.n_trials == 300
    assert set(result.names[:2]) == set(PLANTED)


def _misleading_rung_study(final_follows_rung: bool) -> optuna.Study:
    """30 trials scored by ``y`` at epoch 2; the best third by that score goes on and
    completes with final value ``x`` (the early rung misleads) or ``y`` (it does not).

    Among the survivors ``x`` is a shuffle of ten values whose rank correlation with
    ``y`` is -0.28: when the final value is ``x`` the epoch-2 order does not carry over.
    """
    shuffled = [7, 2, 9, 5, 0, 8, 3, 6, 1, 4]
    P, C = TrialState.PRUNED, TrialState.COMPLETE
    trials = []
    for i in range(30):
        y = (i + 0.5) / 30
        survivor = i >= 20
        x = (shuffled[i - 20] + 0.5) / 10 if survivor else ((i * 7) % 20 + 0.5) / 20
        params = {"x": x, "y": y}
        if survivor:
            final = y if final_follows_rung else x
            curve, value, state = {2: y, 6: final}, final, C
        else:
            curve, value, state = {2: y}, None, P
        trials.append(
            create_trial(
                params=params,
                distributions=DISTS,
                value=value,
                intermediate_values=curve,
                state=state,
            )
        )
    return _study("maximize", trials)


def test_links_are_rank_correlations_clipped_at_zero() -> None:
    misleading = _misleading_rung_study(final_follows_rung=False)
    faithful = _misleading_rung_study(final_follows_rung=True)
    assert level_links(misleading, [2, None]) == [0.0]  # rho = -0.28, clipped at 0
    assert level_links(faithful, [2, None]) == [pytest.approx(1.0)]
    assert level_links(faithful, [2, 6, None]) == [pytest.approx(1.0), pytest.approx(1.0)]
    assert level_links(faithful, [6, 18]) == [0.0]  # no trial reached 18


def test_linked_weights_multiply_the_links_down_to_the_last_level() -> None:
    assert linked_weights([40, 13, 4], [0.5, 0.8]) == pytest.approx([40 * 0.4, 13 * 0.8, 4])
    assert linked_weights([40, 4], [0.0]) == [0.0, 4.0]
    assert linked_weights([40, 13], [0.0]) == [0.0, 13.0]
    assert linked_weights([40], []) == [40.0]


def test_linked_weights_ignore_a_rung_the_final_values_overturn() -> None:
    """Weighted by trial counts the misleading first rung (30 trials scored by ``y``)
    outweighs the 10 final values (scored by ``x``) and ``y`` ranks first; linked, the
    rung whose order the final values reverse counts for nothing and ``x`` ranks first."""
    study = _misleading_rung_study(final_follows_rung=False)
    options = {"evaluator": "mdi", "n_bootstrap": 10}
    by_trials = rung_weighted_importances(study, weights="trials", **options)
    linked = rung_weighted_importances(study, weights="linked", **options)
    assert by_trials.names[0] == "y"
    assert linked.names[0] == "x"
    final = param_importances(study, n_bootstrap=0, evaluator="mdi")
    for p in linked.params:  # the rung's weight is 0: the final values alone
        assert p.importance == pytest.approx(final.get(p.name).importance)
    assert "epoch 2: 30 trials, weight 0" in linked.notes[-1]


def test_a_faithful_rung_keeps_its_trial_count() -> None:
    study = _misleading_rung_study(final_follows_rung=True)
    options = {"evaluator": "mdi", "n_bootstrap": 0}
    by_trials = rung_weighted_importances(study, weights="trials", **options)
    linked = rung_weighted_importances(study, weights="linked", **options)
    for p in linked.params:
        assert p.importance == pytest.approx(by_trials.get(p.name).importance)
    assert linked.names[0] == "y"


def test_mixture_resamples_are_resamples_of_one_level() -> None:
    """Each mixture resample is the same-numbered resample of one level, so the
    intervals span what the levels disagree on; the point estimate is unchanged."""
    study = _misleading_rung_study(final_follows_rung=False)
    options = {"evaluator": "mdi", "n_bootstrap": 40, "weights": "trials"}
    average = rung_weighted_importances(study, intervals="average", **options)
    mixture = rung_weighted_importances(study, intervals="mixture", **options)
    assert [p.importance for p in mixture.params] == [p.importance for p in average.params]
    levels = [
        importances_at_epoch(study, 2, evaluator="mdi", n_bootstrap=40),
        param_importances(study, evaluator="mdi", n_bootstrap=40),
    ]
    columns = [[r.names.index(n) for n in mixture.names] for r in levels]
    drawn = []
    for b, row in enumerate(mixture.bootstrap):
        matches = [k for k, r in enumerate(levels) if np.allclose(row, r.bootstrap[b, columns[k]])]
        assert matches, b
        drawn.append(matches[0])
    assert set(drawn) == {0, 1}  # both levels are drawn
    # The levels disagree on the first place, and the mixture's intervals say so.
    first = {r.names[0] for r in levels}
    assert first == {"x", "y"}
    for name in ("x", "y"):
        assert mixture.get(name).rank_low == 1
        assert mixture.get(name).rank_high == 2
    assert average.get("y").rank_high == 1


def test_unknown_weights_and_intervals_are_refused(halved: optuna.Study) -> None:
    with pytest.raises(ValueError, match="weights must be one of trials, linked; got 'x'"):
        rung_weighted_importances(halved, weights="x")
    with pytest.raises(ValueError, match="intervals must be one of average, mixture"):
        rung_weighted_importances(halved, intervals="pooled")
