"""The printed ranking: its intervals carry what the rungs and the final values
disagree on, so it does not call an order settled that only one level supports."""

from __future__ import annotations

import pytest
from optuna.importance import MeanDecreaseImpurityImportanceEvaluator

from optuna_dl.analysis.confidence import rank_confidence
from optuna_dl.analysis.pruning_aware import rung_weighted_importances
from optuna_dl.analysis.ranking import FOREST_TREES, RANKINGS, study_ranking

from .test_pruning_aware import _misleading_rung_study


def test_a_misleading_rung_leaves_first_place_open() -> None:
    """The first rung (30 trials) is scored by ``y``, the final values (10 trials) by
    ``x``: the printed ranking follows the trial counts but says first place is open,
    where the average of the levels' resamples would call ``y`` settled first."""
    study = _misleading_rung_study(final_follows_rung=False)
    result = study_ranking(study, n_bootstrap=40)
    assert result.names[0] == "y"
    for name in ("x", "y"):
        assert (result.get(name).rank_low, result.get(name).rank_high) == (1, 2)
    confidence = rank_confidence(result)
    assert confidence.settled_top == 0
    assert 0 < confidence.first_share["x"] < 0.95
    assert confidence.statements[1].startswith("first place is not yet clear: x ranks first")
    assert "weight" in result.notes[-1]  # the levels behind it are listed
    averaged = rung_weighted_importances(
        study,
        evaluator=MeanDecreaseImpurityImportanceEvaluator(n_trees=FOREST_TREES, seed=0),
        intervals="average",
        n_bootstrap=40,
    )
    assert averaged.names[0] == "y"
    assert rank_confidence(averaged).settled_top >= 1


def test_a_faithful_rung_still_settles() -> None:
    """When the final values agree with the first rung, the mixture is as sure as
    each level: ``y`` first in every resample."""
    study = _misleading_rung_study(final_follows_rung=True)
    result = study_ranking(study, n_bootstrap=40)
    assert result.names[0] == "y"
    assert rank_confidence(result).settled_top >= 1


def test_completed_ranking_stays_available() -> None:
    study = _misleading_rung_study(final_follows_rung=False)
    result = study_ranking(study, method="completed", n_bootstrap=10)
    assert result.n_trials == 10
    assert result.names[0] == "x"
    assert set(RANKINGS) == {"rungs", "completed"}
    with pytest.raises(ValueError, match="method must be one of rungs, completed; got 'x'"):
        study_ranking(study, method="x")
