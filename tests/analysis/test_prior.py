"""Prior tiers vs measured ranking: Spearman's rho and its bootstrap interval."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import spearmanr

from optuna_dl.analysis import (
    ImportanceResult,
    ParamImportance,
    compare_with_prior,
    param_importances,
    prior_tiers,
)
from optuna_dl.analysis._bootstrap import ranks


def _result(
    importances: dict[str, float], bootstrap: np.ndarray | None = None
) -> ImportanceResult:
    names = sorted(importances, key=lambda n: -importances[n])
    point = np.array([importances[n] for n in names])
    point_ranks = ranks(point)
    samples = bootstrap if bootstrap is not None else np.empty((0, len(names)))
    rank_samples = ranks(samples)
    params = tuple(
        ParamImportance(
            n,
            float(point[i]),
            float(samples[:, i].min()) if len(samples) else math.nan,
            float(samples[:, i].max()) if len(samples) else math.nan,
            float(point_ranks[i]),
            float(rank_samples[:, i].min()) if len(samples) else math.nan,
            float(rank_samples[:, i].max()) if len(samples) else math.nan,
        )
        for i, n in enumerate(names)
    )
    return ImportanceResult(
        "ped_anova", "objective", 50, len(samples), 0.95, params, samples, None, (), 0.0
    )


def test_perfect_agreement_is_rho_one():
    measured = _result({"lr": 0.5, "layers": 0.3, "units": 0.15, "beta1": 0.05})
    comparison = compare_with_prior(measured, {"lr": 1, "layers": 2, "units": 3, "beta1": 4})
    assert comparison.rho == pytest.approx(1.0)
    assert comparison.n_common == 4 and comparison.reason is None
    assert [r.name for r in comparison.rows] == ["lr", "layers", "units", "beta1"]
    assert math.isnan(comparison.rho_low)  # no resamples, no interval


def test_reversed_prior_is_rho_minus_one():
    measured = _result({"lr": 0.05, "layers": 0.15, "units": 0.3, "beta1": 0.5})
    comparison = compare_with_prior(measured, {"lr": 1, "layers": 2, "units": 3, "beta1": 4})
    assert comparison.rho == pytest.approx(-1.0)


def test_rho_matches_scipy_with_tied_tiers_and_interval_from_resamples():
    rng = np.random.default_rng(0)
    names = ["a", "b", "c", "d", "e"]
    weights = {"a": 0.4, "b": 0.25, "c": 0.2, "d": 0.1, "e": 0.05}
    tiers = {"a": 1, "b": 2, "c": 2, "d": 3, "e": 3}
    order = sorted(names, key=lambda n: -weights[n])
    samples = np.array([weights[n] for n in order]) + rng.normal(0, 0.08, size=(200, 5))
    comparison = compare_with_prior(_result(weights, samples), tiers)
    expected = spearmanr([tiers[n] for n in order], [1, 2, 3, 4, 5]).statistic
    assert comparison.rho == pytest.approx(expected)
    per_sample = [spearmanr([tiers[n] for n in order], row).statistic for row in ranks(samples)]
    per_sample = np.array([r for r in per_sample if np.isfinite(r)])
    assert comparison.rho_low == pytest.approx(np.quantile(per_sample, 0.025, method="lower"))
    assert comparison.rho_high == pytest.approx(np.quantile(per_sample, 0.975, method="higher"))
    assert -1 <= comparison.rho_low <= comparison.rho <= comparison.rho_high <= 1


def test_unmatched_parameters_are_listed_and_rho_needs_three():
    measured = _result({"lr": 0.7, "custom": 0.3})
    comparison = compare_with_prior(measured, {"lr": 1, "n_layers": 2})
    rows = {r.name: r for r in comparison.rows}
    assert rows["n_layers"].tier == 2 and math.isnan(rows["n_layers"].rank)
    assert rows["custom"].tier is None and rows["custom"].rank == 2
    assert math.isnan(comparison.rho)
    assert "at least 3" in comparison.reason


def test_equal_tiers_make_rho_undefined():
    measured = _result({"a": 0.5, "b": 0.3, "c": 0.2})
    comparison = compare_with_prior(measured, {"a": 2, "b": 2, "c": 2})
    assert math.isnan(comparison.rho) and "same tier" in comparison.reason


def test_prior_from_the_search_space(tuned_study):
    from optuna_dl.tuning.space import SearchSpace

    space = SearchSpace.default()
    assert prior_tiers(space) == space.tiers
    result = param_importances(tuned_study, n_bootstrap=20)
    comparison = compare_with_prior(result, space)
    assert comparison.n_common == len(space.tiers)
    assert math.isfinite(comparison.rho) and comparison.rho_low <= comparison.rho_high
    assert comparison.rows[0].name == "learning_rate" and comparison.rows[0].tier == 1
    with pytest.raises(TypeError, match="prior must be"):
        prior_tiers([1, 2])
