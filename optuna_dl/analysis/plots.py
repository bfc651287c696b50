"""Plotly figures of a study: Optuna's plots where it has them, the package's own otherwise.

The package's own plots are drawn from small NamedTuples computed apart (see
:func:`learning_curves`, :func:`distinct_values`, :func:`tried_points` and the results
of :mod:`optuna_dl.analysis.importance`), so tests check the data without rendering.
The wrappers of Optuna's plots check first that the study has what the plot needs and
raise :class:`PlotUnavailable` with the reason otherwise (Optuna would log a warning
and draw an empty figure).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import optuna
import optuna.visualization as ov
import plotly.graph_objects as go
from optuna.trial import TrialState

from optuna_dl.analysis._plot_data import (
    CurveTrial,
    DistinctValues,
    LearningCurves,
    TriedPoints,
    distinct_values,
    learning_curves,
    param_names,
    tried_points,
)
from optuna_dl.analysis.importance import (
    EpochRanking,
    ImportanceResult,
    PriorComparison,
    param_importances,
)

__all__ = [
    "CurveTrial",
    "DistinctValues",
    "LearningCurves",
    "PlotUnavailable",
    "TriedPoints",
    "distinct_values",
    "learning_curves",
    "most_important",
    "plot_contour",
    "plot_distinct_values",
    "plot_edf",
    "plot_importances",
    "plot_learning_curves",
    "plot_optimization_history",
    "plot_parallel_coordinate",
    "plot_prior_vs_measured",
    "plot_ranking_by_epoch",
    "plot_slice",
    "plot_timeline",
    "plot_tried_points",
    "tried_points",
]

#: Colours by outcome, as in Optuna's timeline (complete blue, pruned orange, ...).
COLORS = {
    "complete": "#1f77b4",
    "pruned": "#ff7f0e",
    "diverged": "#d62728",
    "failed": "#7f7f7f",
    "running": "#2ca02c",
}
_PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"]
_EVALUATOR_LABELS = {"ped_anova": "PED-ANOVA", "fanova": "fANOVA", "mdi": "MDI"}


class PlotUnavailable(ValueError):
    """The study lacks what a plot needs; the message says what."""


def _layout(fig: go.Figure, title: str, height: int = 420) -> go.Figure:
    fig.update_layout(
        title={"text": title},
        height=height,
        template="plotly_white",
        margin={"l": 60, "r": 30, "t": 60, "b": 50},
    )
    return fig


def _nan_to_none(values: Sequence[float]) -> list[float | None]:
    return [None if v is None or not math.isfinite(v) else float(v) for v in values]


# ---------------------------------------------------------------- importances


def plot_importances(results: ImportanceResult | Sequence[ImportanceResult]) -> go.Figure:
    """Horizontal bars of importance with their bootstrap intervals as error bars.

    Parameters
    ----------
    results : ImportanceResult or sequence of them
        Several results (e.g. PED-ANOVA, fANOVA, MDI) are drawn side by side; the
        parameters are ordered by the first one.
    """
    if isinstance(results, ImportanceResult):
        results = [results]
    if not results or not results[0].params:
        raise PlotUnavailable("no importances to draw.")
    order = results[0].names
    fig = go.Figure()
    for i, result in enumerate(results):
        entries = {p.name: p for p in result.params}
        names = [n for n in order if n in entries]
        values = [entries[n].importance for n in names]
        low = [entries[n].low for n in names]
        high = [entries[n].high for n in names]
        interval = result.n_bootstrap > 0
        label = _EVALUATOR_LABELS.get(result.evaluator, result.evaluator)
        fig.add_trace(
            go.Bar(
                x=_nan_to_none(values),
                y=names,
                orientation="h",
                name=(
                    f"{label} ({result.confidence:.0%} interval, {result.n_bootstrap} resamples)"
                    if interval
                    else label
                ),
                marker={"color": _PALETTE[i % len(_PALETTE)]},
                error_x=(
                    {
                        "type": "data",
                        "symmetric": False,
                        "array": _nan_to_none([max(h - v, 0.0) for h, v in zip(high, values)]),
                        "arrayminus": _nan_to_none(
                            [max(v - lo, 0.0) for lo, v in zip(low, values)]
                        ),
                        "thickness": 1.5,
                    }
                    if interval
                    else None
                ),
                customdata=[
                    [entries[n].rank, entries[n].rank_low, entries[n].rank_high] for n in names
                ],
                hovertemplate=(
                    "%{y}: %{x:.3f}<br>rank %{customdata[0]} "
                    "(%{customdata[1]}-%{customdata[2]})<extra></extra>"
                ),
            )
        )
    fig.update_layout(barmode="group", legend={"orientation": "h", "y": -0.15})
    fig.update_yaxes(categoryorder="array", categoryarray=order, autorange="reversed")
    fig.update_xaxes(title={"text": "importance (normalized)"}, rangemode="tozero")
    target = results[0].target
    return _layout(fig, f"Hyperparameter importance for the {target}", 120 + 60 * len(order))


def plot_ranking_by_epoch(ranking: EpochRanking) -> go.Figure:
    """Rank of each parameter at each epoch, with its bootstrap interval."""
    if not ranking.epochs or not ranking.params or np.all(np.isnan(ranking.rank)):
        raise PlotUnavailable("no epoch with a ranking (no trial reported intermediate values).")
    fig = go.Figure()
    x = list(range(len(ranking.epochs)))
    for j, name in enumerate(ranking.params):
        rank = ranking.rank[:, j]
        fig.add_trace(
            go.Scatter(
                x=x,
                y=_nan_to_none(rank),
                mode="lines+markers",
                name=name,
                line={"color": _PALETTE[j % len(_PALETTE)]},
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": _nan_to_none(ranking.rank_high[:, j] - rank),
                    "arrayminus": _nan_to_none(rank - ranking.rank_low[:, j]),
                    "thickness": 1,
                    "width": 3,
                },
                customdata=_nan_to_none(ranking.importance[:, j]),
                hovertemplate="rank %{y}<br>importance %{customdata:.3f}",
            )
        )
    ticks = [
        f"{e}<br>n={n} ({p} pruned)"
        for e, n, p in zip(ranking.epochs, ranking.n_trials, ranking.n_pruned)
    ]
    fig.update_xaxes(tickmode="array", tickvals=x, ticktext=ticks, title={"text": "epoch"})
    fig.update_yaxes(autorange="reversed", title={"text": "rank (1 = most important)"}, dtick=1)
    return _layout(fig, "Importance ranking by epoch (every trial that reached it)")


def plot_prior_vs_measured(comparison: PriorComparison) -> go.Figure:
    """Measured rank (with interval) against the prior tier of each parameter."""
    rows = [r for r in comparison.rows if r.tier is not None and math.isfinite(r.rank)]
    if not rows:
        raise PlotUnavailable("no parameter has both a prior tier and a measured rank.")
    tiers = sorted({r.tier for r in rows})
    fig = go.Figure()
    offsets: dict[int, int] = {}
    xs = []
    for r in rows:
        k = offsets.get(r.tier, 0)
        offsets[r.tier] = k + 1
        xs.append(r.tier + 0.08 * k)
    fig.add_trace(
        go.Scatter(
            x=xs,
            y=[r.rank for r in rows],
            mode="markers+text",
            text=[r.name for r in rows],
            textposition="middle right",
            marker={"size": 10, "color": COLORS["complete"]},
            error_y={
                "type": "data",
                "symmetric": False,
                "array": _nan_to_none([r.rank_high - r.rank for r in rows]),
                "arrayminus": _nan_to_none([r.rank - r.rank_low for r in rows]),
            },
            hovertemplate="%{text}: rank %{y}<extra></extra>",
            showlegend=False,
        )
    )
    fig.update_xaxes(tickvals=tiers, title={"text": "prior tier (course notes)"})
    fig.update_yaxes(autorange="reversed", title={"text": "measured rank"}, dtick=1)
    rho = (
        f"Spearman rho = {comparison.rho:.2f}"
        + (
            f" [{comparison.rho_low:.2f}, {comparison.rho_high:.2f}]"
            if math.isfinite(comparison.rho_low)
            else ""
        )
        if math.isfinite(comparison.rho)
        else "rho undefined"
    )
    return _layout(fig, f"Prior tier vs measured rank ({rho})")


# ---------------------------------------------------------------- learning curves


def plot_learning_curves(curves: LearningCurves) -> go.Figure:
    """Intermediate values per epoch: completed trials in blue, pruned ones in orange
    (ending in a cross where they were stopped), diverged ones in red, the best trial
    in black.

    One trace per outcome (curves joined with gaps) keeps the page small.
    """
    if not curves.trials:
        raise PlotUnavailable("no trial reported intermediate values.")
    fig = go.Figure()
    for outcome, color in COLORS.items():
        group = [t for t in curves.trials if t.outcome == outcome]
        if not group:
            continue
        xs: list[int | None] = []
        ys: list[float | None] = []
        numbers: list[int | None] = []
        for t in group:
            xs.extend([*t.steps, None])
            ys.extend([*_nan_to_none(t.values), None])
            numbers.extend([t.number] * len(t.steps) + [None])
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                customdata=numbers,
                mode="lines",
                name=f"{outcome} ({len(group)})",
                line={"color": color, "width": 1},
                opacity=0.6 if outcome != "complete" else 0.8,
                hovertemplate="trial %{customdata}<br>epoch %{x}: %{y:.4f}<extra></extra>",
                connectgaps=False,
            )
        )
        if outcome in ("pruned", "diverged", "failed"):
            fig.add_trace(
                go.Scatter(
                    x=[t.steps[-1] for t in group],
                    y=_nan_to_none([t.values[-1] for t in group]),
                    customdata=[t.number for t in group],
                    mode="markers",
                    marker={"symbol": "x", "color": color, "size": 6},
                    name=f"{outcome}: stopped here",
                    hovertemplate="trial %{customdata} stopped at epoch %{x}<extra></extra>",
                )
            )
    best = [t for t in curves.trials if t.number == curves.best]
    if best:
        fig.add_trace(
            go.Scatter(
                x=list(best[0].steps),
                y=_nan_to_none(best[0].values),
                mode="lines",
                name=f"best (trial {best[0].number})",
                line={"color": "black", "width": 2.5},
            )
        )
    fig.update_xaxes(title={"text": "epoch (intermediate step)"})
    fig.update_yaxes(title={"text": "intermediate value"})
    return _layout(fig, "Learning curves (pruned trials included)", 460)


# ---------------------------------------------------------------- random vs grid


def plot_distinct_values(data: DistinctValues) -> go.Figure:
    """Distinct values tried per parameter, beside what a grid of as many trials gives."""
    if not data.params:
        raise PlotUnavailable("no trial with parameters.")
    fig = go.Figure(
        go.Bar(
            x=list(data.params),
            y=list(data.n_distinct),
            marker={"color": COLORS["complete"]},
            name="this study",
            customdata=list(data.n_trials),
            hovertemplate="%{x}: %{y} distinct values in %{customdata} trials<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=list(data.params),
            y=[data.grid_values] * len(data.params),
            mode="lines",
            line={"color": COLORS["diverged"], "dash": "dash"},
            name=(
                f"a full grid of {data.total_trials} trials: "
                f"{data.grid_values} value(s) per parameter"
            ),
        )
    )
    fig.update_yaxes(title={"text": "distinct values tried"}, rangemode="tozero")
    fig.update_layout(legend={"orientation": "h", "y": -0.25})
    return _layout(fig, "Distinct values per parameter (random search vs a grid)")


def plot_tried_points(data: TriedPoints) -> go.Figure:
    """The tried points on two parameters, coloured by outcome."""
    if not data.x:
        raise PlotUnavailable(
            f"no trial has both {data.x_param!r} and {data.y_param!r} (conditional parameters?)."
        )
    fig = go.Figure()
    for outcome, color in COLORS.items():
        idx = [i for i, s in enumerate(data.states) if s == outcome]
        if not idx:
            continue
        fig.add_trace(
            go.Scatter(
                x=[data.x[i] for i in idx],
                y=[data.y[i] for i in idx],
                mode="markers",
                name=f"{outcome} ({len(idx)})",
                marker={"color": color, "size": 7, "opacity": 0.75},
                customdata=[[data.numbers[i], _nan_to_none([data.values[i]])[0]] for i in idx],
                hovertemplate="trial %{customdata[0]}<br>value %{customdata[1]}<extra></extra>",
            )
        )
    fig.update_xaxes(title={"text": data.x_param}, type="log" if data.x_log else None)
    fig.update_yaxes(title={"text": data.y_param}, type="log" if data.y_log else None)
    return _layout(fig, f"Points tried on {data.x_param} and {data.y_param}", 460)


# ---------------------------------------------------------------- Optuna's plots


def _completed(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def _single_objective(study: optuna.Study) -> None:
    if len(study.directions) > 1:
        raise PlotUnavailable("multi-objective study: this report draws single-objective plots.")


def _need_completed(study: optuna.Study, n: int, what: str) -> None:
    _single_objective(study)
    have = len(_completed(study))
    if have < n:
        raise PlotUnavailable(
            f"{what} needs at least {n} completed trial(s); the study has {have}."
        )


def most_important(
    study: optuna.Study, k: int = 2, result: ImportanceResult | None = None
) -> list[str]:
    """The ``k`` most important parameters (PED-ANOVA point estimate unless ``result``
    is given); parameters of the completed trials in order of appearance when there
    are too few trials to measure."""
    if result is not None and result.params and not math.isnan(result.params[0].importance):
        return result.names[:k]
    completed = _completed(study)
    names = list(dict.fromkeys(p for t in completed for p in t.params)) or param_names(study)
    if len(completed) >= 2 and len(names) > k:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            measured = param_importances(study, n_bootstrap=0)
        if not math.isnan(measured.params[0].importance):
            return measured.names[:k]
    return names[:k]


def plot_optimization_history(study: optuna.Study) -> go.Figure:
    """Optuna's optimization history (objective value and best so far per trial)."""
    _need_completed(study, 1, "the optimization history")
    return _layout(ov.plot_optimization_history(study), "Optimization history")


def plot_parallel_coordinate(
    study: optuna.Study, params: Sequence[str] | None = None
) -> go.Figure:
    """Optuna's parallel-coordinate plot of the completed trials."""
    _need_completed(study, 1, "the parallel-coordinate plot")
    if not any(t.params for t in _completed(study)):
        raise PlotUnavailable("the completed trials have no parameters.")
    fig = ov.plot_parallel_coordinate(study, params=list(params) if params else None)
    return _layout(fig, "Parallel coordinates (completed trials)", 460)


def plot_slice(study: optuna.Study, params: Sequence[str] | None = None) -> go.Figure:
    """Optuna's slice plot: the objective against each parameter."""
    _need_completed(study, 1, "the slice plot")
    if not any(t.params for t in _completed(study)):
        raise PlotUnavailable("the completed trials have no parameters.")
    return _layout(ov.plot_slice(study, params=list(params) if params else None), "Slice plot")


def plot_contour(study: optuna.Study, params: Sequence[str] | None = None) -> go.Figure:
    """Optuna's contour plot on two parameters (by default the two most important)."""
    _need_completed(study, 2, "the contour plot")
    params = list(params) if params is not None else most_important(study, 2)
    if len(params) < 2:
        raise PlotUnavailable(
            f"the contour plot needs two parameters; the completed trials have {len(params)}."
        )
    both = [t for t in _completed(study) if all(p in t.params for p in params)]
    if len(both) < 2:
        raise PlotUnavailable(
            f"the contour plot needs 2 completed trials with both {params[0]!r} and "
            f"{params[1]!r}; the study has {len(both)}."
        )
    for name in params:
        values = {repr(t.params[name]) for t in both}
        if len(values) < 2:
            raise PlotUnavailable(
                f"the contour plot needs 2 values of {name!r}; the completed trials all "
                f"have {name} = {values.pop()}."
            )
    fig = ov.plot_contour(study, params=params)
    return _layout(fig, f"Contour of {params[0]} and {params[1]}", 500)


def plot_edf(study: optuna.Study) -> go.Figure:
    """Optuna's empirical distribution function of the objective values."""
    _need_completed(study, 1, "the EDF")
    return _layout(ov.plot_edf(study), "Empirical distribution of the objective")


def plot_timeline(study: optuna.Study) -> go.Figure:
    """Optuna's timeline: one bar per trial; overlapping bars are parallel workers."""
    trials = study.get_trials(deepcopy=False)
    if not trials:
        raise PlotUnavailable("the study has no trials.")
    if not any(t.datetime_start is not None for t in trials):
        raise PlotUnavailable("no trial has a start time.")
    return _layout(ov.plot_timeline(study), "Timeline (overlapping bars ran in parallel)", 460)
