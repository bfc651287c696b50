"""Plot data (NamedTuples) checked without rendering; figures checked for their traces."""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from optuna_dl.analysis import plots
from optuna_dl.analysis.importance import param_importances, ranking_by_epoch

GRID = {"a": FloatDistribution(0, 1), "b": FloatDistribution(0, 1)}


def test_distinct_values_grid_vs_random(make_study):
    """The course's picture: a 6x6 grid tries each parameter 6 times, 36 random
    points try each 36 times."""
    levels = np.linspace(0, 1, 6)
    grid = [
        create_trial(params={"a": float(a), "b": float(b)}, distributions=GRID, value=float(a))
        for a in levels
        for b in levels
    ]
    rng = np.random.default_rng(0)
    random = [
        create_trial(params={"a": float(a), "b": float(b)}, distributions=GRID, value=float(a))
        for a, b in rng.uniform(size=(36, 2))
    ]
    on_grid = plots.distinct_values(make_study(grid))
    at_random = plots.distinct_values(make_study(random))
    assert on_grid.params == ("a", "b")
    assert on_grid.n_distinct == (6, 6) and on_grid.grid_values == 6
    assert at_random.n_distinct == (36, 36) and at_random.total_trials == 36
    figure = plots.plot_distinct_values(at_random)
    assert list(figure.data[0].y) == [36, 36]
    assert list(figure.data[1].y) == [6, 6]


def test_distinct_values_counts_conditional_and_pruned_trials(tuned_study):
    data = plots.distinct_values(tuned_study)
    counts = dict(zip(data.params, data.n_trials))
    distinct = dict(zip(data.params, data.n_distinct))
    assert data.total_trials == 80  # complete + pruned + failed
    assert counts["learning_rate"] == 80
    assert 0 < counts["one_minus_beta"] < 80
    assert distinct["optimizer"] == 2 and distinct["n_layers"] == 4
    assert data.grid_values == math.floor(80 ** (1 / 7))


def test_tried_points(tuned_study):
    data = plots.tried_points(tuned_study, ["learning_rate", "one_minus_beta"])
    assert data.x_log and data.y_log
    assert len(data.x) == len(data.y) == len(data.states) == len(data.numbers)
    assert set(data.states) <= {"complete", "pruned", "diverged", "failed"}
    for state, value in zip(data.states, data.values):
        assert math.isnan(value) == (state != "complete")
    assert all(tuned_study.trials[n].params["optimizer"] == "momentum" for n in data.numbers)
    figure = plots.plot_tried_points(data)
    assert figure.layout.xaxis.type == "log"
    assert sum(len(trace.x) for trace in figure.data) == len(data.x)
    with pytest.raises(ValueError, match="two parameters"):
        plots.tried_points(tuned_study, ["learning_rate"])


def test_learning_curves_show_pruned_and_diverged_trials(tuned_study):
    curves = plots.learning_curves(tuned_study)
    assert curves.count("diverged") == 2
    assert curves.count("pruned") > 10
    assert curves.count("failed") == 0  # failed trials reported nothing
    assert curves.count("complete") == len(tuned_study.get_trials(states=(TrialState.COMPLETE,)))
    pruned = [t for t in curves.trials if t.outcome == "pruned"]
    assert all(t.steps == (1, 2) for t in pruned)
    assert curves.best == tuned_study.best_trial.number
    figure = plots.plot_learning_curves(curves)
    names = [trace.name for trace in figure.data]
    assert any(n.startswith("pruned (") for n in names)
    assert any(n.startswith("diverged (") for n in names)
    assert names[-1] == f"best (trial {curves.best})"


def test_importance_figure_has_interval_bars(tuned_study):
    ped = param_importances(tuned_study, n_bootstrap=10)
    mdi = param_importances(tuned_study, evaluator="mdi", n_bootstrap=3)
    figure = plots.plot_importances([ped, mdi])
    assert isinstance(figure, go.Figure) and len(figure.data) == 2
    bar = figure.data[0]
    assert list(bar.y) == ped.names
    for p, plus, minus in zip(ped.params, bar.error_x.array, bar.error_x.arrayminus):
        assert plus == pytest.approx(max(p.high - p.importance, 0))
        assert minus == pytest.approx(max(p.importance - p.low, 0))
    assert len(figure.data[1].y) == len(mdi.names)  # conditional parameter left out


def test_ranking_and_prior_figures(tuned_study):
    from optuna_dl.analysis import compare_with_prior

    ranking = ranking_by_epoch(tuned_study, [1, 6], n_bootstrap=3)
    figure = plots.plot_ranking_by_epoch(ranking)
    assert len(figure.data) == len(ranking.params)
    assert figure.layout.yaxis.autorange == "reversed"
    comparison = compare_with_prior(
        param_importances(tuned_study, n_bootstrap=5), {"learning_rate": 1, "n_layers": 2}
    )
    figure = plots.plot_prior_vs_measured(comparison)
    assert set(figure.data[0].text) == {"learning_rate", "n_layers"}


def test_optuna_plots_draw_and_contour_uses_the_two_most_important(tuned_study):
    for draw in (
        plots.plot_optimization_history,
        plots.plot_parallel_coordinate,
        plots.plot_slice,
        plots.plot_edf,
        plots.plot_timeline,
    ):
        assert isinstance(draw(tuned_study), go.Figure)
    top = plots.most_important(tuned_study, 2)
    assert top[0] == "learning_rate"
    contour = plots.plot_contour(tuned_study)
    assert top[0] in contour.layout.title.text and top[1] in contour.layout.title.text


def test_plots_say_why_they_cannot_be_drawn(make_study):
    empty = make_study([])
    for draw in (
        plots.plot_optimization_history,
        plots.plot_parallel_coordinate,
        plots.plot_slice,
        plots.plot_contour,
        plots.plot_edf,
    ):
        with pytest.raises(plots.PlotUnavailable, match="completed trial"):
            draw(empty)
    with pytest.raises(plots.PlotUnavailable, match="no trials"):
        plots.plot_timeline(empty)
    with pytest.raises(plots.PlotUnavailable, match="intermediate values"):
        plots.plot_learning_curves(plots.learning_curves(empty))
    with pytest.raises(plots.PlotUnavailable, match="no trial with parameters"):
        plots.plot_distinct_values(plots.distinct_values(empty))
    one = make_study(
        [create_trial(params={"a": 0.5}, distributions={"a": GRID["a"]}, value=1.0)] * 3
    )
    with pytest.raises(plots.PlotUnavailable, match="two parameters"):
        plots.plot_contour(one)
    # Every completed trial with the same value of "b" (pruned ones varied it): the
    # contour would be a single line, so it says why instead of drawing nothing.
    same_b = make_study(
        [
            create_trial(params={"a": a, "b": 0.25}, distributions=GRID, value=a)
            for a in (0.1, 0.5, 0.9)
        ]
    )
    with pytest.raises(plots.PlotUnavailable, match="completed trials all have b = 0.25"):
        plots.plot_contour(same_b, ["a", "b"])
