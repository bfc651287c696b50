"""One self-contained HTML page per study: what was tried, what mattered, what it cost.

Sections: summary; importance (the study's ranking, :func:`~optuna_dl.analysis.study_ranking`,
which counts every trial, beside MDI, PED-ANOVA and fANOVA on the completed trials);
prior tiers vs measured ranking (Spearman's rho with interval); the ranking by epoch
(pruned trials included); what drives trial duration; Optuna's plots (history,
parallel coordinates, slice, contour of the two most important parameters, EDF,
timeline) and the package's (learning curves, distinct values per parameter, tried
points); the best trials with their estimator parameters. A section that cannot be
computed (no completed trial, only pruned ones, ...) says why instead.

Cost: the bootstrap sizes below keep a report of a few hundred trials to seconds.
PED-ANOVA (about 0.01 s per run) gets :data:`PED_ANOVA_BOOTSTRAP` resamples; the
ranking and the completed-trials MDI get
:data:`~optuna_dl.analysis.ranking.DEFAULT_BOOTSTRAP` (16-tree forests). fANOVA is the
slow one (about
0.6 s for 40 trials, 8 s for 300 here): the report shows its point estimate up to
:data:`FANOVA_MAX_TRIALS` completed trials and skips it above; for its intervals call
:func:`~optuna_dl.analysis.importance.param_importances` with ``evaluator="fanova"``.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import optuna.visualization as ov
import plotly.graph_objects as go

from optuna_dl._compat import study_storage
from optuna_dl.analysis import plots
from optuna_dl.analysis._html import esc, figure, fmt, page, table
from optuna_dl.analysis._summary import summarize
from optuna_dl.analysis.confidence import rank_confidence
from optuna_dl.analysis.importance import (
    ImportanceResult,
    compare_with_prior,
    duration_importances,
    param_importances,
    ranking_by_epoch,
)
from optuna_dl.analysis.ranking import RANKINGS, study_ranking
from optuna_dl.records import TrialRecord, best_trials, estimator_params

__all__ = ["write_report"]

PED_ANOVA_BOOTSTRAP = 100
FANOVA_MAX_TRIALS = 300
EPOCH_BOOTSTRAP = 30
BEST_TRIALS = 5
_LABELS = {"ped_anova": "PED-ANOVA", "mdi": "MDI", "fanova": "fANOVA"}


class _Unavailable(Exception):
    """A section cannot be computed; the message says why."""


def _interval(low: float, high: float) -> str:
    if math.isnan(low) or math.isnan(high):
        return "-"
    return f"[{fmt(low)}, {fmt(high)}]"


def _ranking_rows(result: ImportanceResult) -> list[tuple[Any, ...]]:
    """Parameter, importance, interval, rank and rank interval of each entry."""
    return [
        (
            p.name,
            p.importance,
            _interval(p.low, p.high),
            p.rank,
            _interval(p.rank_low, p.rank_high),
        )
        for p in result.params
    ]


def _statements(result: ImportanceResult) -> str:
    """The ranking's confidence statements as list items."""
    return "".join(f"<li>{esc(line)}</li>" for line in rank_confidence(result).statements)


def _why(message: Any) -> str:
    return f'<p class="why">{esc(message)}</p>'


class _Report:
    def __init__(self, study: optuna.Study, space: Any, title: str | None) -> None:
        self.study = study
        self.space = space
        self.title = title or study.study_name
        self.n_figures = 0
        self.ped: ImportanceResult | None = None

    # ------------------------------------------------------------ helpers

    def guard(self, build: Callable[[], str]) -> str:
        try:
            return build()
        except (plots.PlotUnavailable, _Unavailable) as reason:
            return _why(reason)
        except Exception as error:  # noqa: BLE001 - one broken section must not sink the page
            return (
                f'<p class="failed">This part failed: {esc(type(error).__name__)}: '
                f"{esc(error)}</p>"
            )

    def fig(self, fig: go.Figure) -> str:
        self.n_figures += 1
        return figure(fig, f"plot-{self.n_figures}")

    def plot(self, draw: Callable[[], go.Figure]) -> str:
        return self.guard(lambda: self.fig(draw()))

    def importance(self) -> ImportanceResult:
        if self.ped is None:
            self.ped = study_ranking(self.study)
        return self.ped

    def ranked(self) -> ImportanceResult:
        result = self.importance()
        if result.n_trials < 2:
            raise _Unavailable(
                f"Importances need at least 2 finished trials; the study has {result.n_trials}."
            )
        if not result.params:
            raise _Unavailable("The completed trials have no parameters.")
        return result

    # ------------------------------------------------------------ sections

    def summary(self) -> str:
        s = summarize(self.study)
        counts = ", ".join(f"{n} {state}" for state, n in s.counts.items() if n)
        best = (
            f"{fmt(s.best_value, 6)} (trial {s.best_number})" if s.best_value is not None else "-"
        )
        rows = [
            ("study", s.name),
            ("direction", ", ".join(s.directions)),
            ("trials", f"{s.n_trials}" + (f": {counts}" if counts else "")),
            ("best value", best),
            ("wall time", f"{s.wall_seconds:.1f} s" if s.wall_seconds is not None else "-"),
            ("time in trials", f"{s.trial_seconds:.1f} s"),
            ("most trials running at once", s.peak_parallel),
            ("parameters", ", ".join(s.params) or "-"),
        ]
        return table(["", "value"], rows)

    def importances(self) -> str:
        ped = self.ranked()._replace(evaluator="MDI, every trial")
        parts = [_why(ped.warning)] if ped.warning else []
        completed = study_ranking(self.study, method="completed")._replace(
            evaluator="MDI, completed trials"
        )
        others: list[ImportanceResult | str] = [
            completed if completed.params else "MDI: no completed trial to rank.",
            self._other("ped_anova", PED_ANOVA_BOOTSTRAP),
        ]
        if ped.n_trials <= FANOVA_MAX_TRIALS:
            others.append(self._other("fanova", 0))
        else:
            parts.append(
                _why(
                    f"fANOVA skipped: on {ped.n_trials} completed trials (> {FANOVA_MAX_TRIALS}) "
                    "one run takes tens of seconds; use "
                    "param_importances(study, evaluator='fanova')."
                )
            )
        results = [ped, *(r for r in others if isinstance(r, ImportanceResult))]
        headers = ["parameter", "MDI, every trial", "interval", "rank", "rank interval"]
        numeric = [1, 3]
        for r in results[1:]:
            numeric.append(len(headers))
            headers.append(_LABELS.get(r.evaluator, r.evaluator))
            if r.n_bootstrap:
                headers.append("interval")
        rows = []
        for p in ped.params:
            row = [
                p.name,
                p.importance,
                _interval(p.low, p.high),
                p.rank,
                _interval(p.rank_low, p.rank_high),
            ]
            for r in results[1:]:
                try:
                    q = r.get(p.name)
                except KeyError:
                    row += ["not assessed"] + (["-"] if r.n_bootstrap else [])
                else:
                    row += [q.importance] + ([_interval(q.low, q.high)] if r.n_bootstrap else [])
            rows.append(row)
        parts.append(
            f"<p>The ranking (first columns) counts every trial: {esc(RANKINGS['rungs'])} "
            f"({ped.n_trials} trials at the first rung). It was chosen by measuring the "
            "candidates against unpruned reference studies (docs/IMPORTANCE.md). The other "
            "columns use the completed trials only, for comparison. Importances are "
            f"normalized to sum to 1; intervals are {ped.confidence:.0%} percentile "
            f"intervals over {ped.n_bootstrap} bootstrap resamples of the trials. Rank 1 is "
            "the most important.</p>"
        )
        parts.append(table(headers, rows, numeric=numeric))
        parts.append(f"<p>How sure the ranking is:</p><ul>{_statements(ped)}</ul>")
        parts.append(
            "<p>The evaluators answer different questions. PED-ANOVA: which parameters "
            "set the best trials (the top quantile) apart from the rest, a local "
            "question. fANOVA: how much of the objective's variance over the whole space "
            "each parameter explains, a global one. Mean decrease in impurity: how much a "
            "random forest fitted to all trials relies on each parameter (it favours "
            "parameters with many distinct values). Their orders may differ without "
            "either being wrong.</p>"
        )
        parts += [_why(r) for r in others if isinstance(r, str)]
        parts.append(self.plot(lambda: plots.plot_importances(results)))
        notes = [n for r in results for n in r.notes]
        if notes:
            items = "".join(f"<li>{esc(n)}</li>" for n in dict.fromkeys(notes))
            parts.append(f'<div class="note">Notes from the evaluators:<ul>{items}</ul></div>')
        return "".join(parts)

    def _other(self, evaluator: str, n_bootstrap: int) -> ImportanceResult | str:
        result = param_importances(self.study, evaluator=evaluator, n_bootstrap=n_bootstrap)
        if not result.params:
            label = _LABELS.get(evaluator, evaluator)
            return f"{label}: no parameter is present in every completed trial."
        return result

    def prior(self) -> str:
        if self.space is None:
            raise _Unavailable("No prior tiers given (write_report(..., space=SearchSpace)).")
        comparison = compare_with_prior(self.ranked(), self.space)
        rows = [
            (
                r.name,
                r.tier if r.tier is not None else "-",
                r.rank if math.isfinite(r.rank) else "not measured",
                _interval(r.rank_low, r.rank_high),
                r.importance,
            )
            for r in comparison.rows
        ]
        if math.isfinite(comparison.rho):
            agreement = (
                f"<p>Agreement of the prior with the measured ranking: Spearman's rho = "
                f"<b>{comparison.rho:.2f}</b>, {comparison.confidence:.0%} bootstrap interval "
                f"{esc(_interval(comparison.rho_low, comparison.rho_high))} over "
                f"{comparison.n_common} parameters (1: the prior's order exactly).</p>"
            )
        else:
            agreement = _why(f"Spearman's rho is undefined: {comparison.reason}")
        return (
            "<p>Tier 1 is what the course notes rank most important.</p>"
            + table(
                ["parameter", "tier", "measured rank", "rank interval", "importance"],
                rows,
                (1, 2, 4),
            )
            + agreement
            + self.plot(lambda: plots.plot_prior_vs_measured(comparison))
        )

    def epochs(self) -> str:
        ranking = ranking_by_epoch(self.study, n_bootstrap=EPOCH_BOOTSTRAP)
        if not ranking.epochs:
            raise _Unavailable("No trial reported intermediate values (per-epoch scores).")
        rows = []
        for i, epoch in enumerate(ranking.epochs):
            result = ranking.results[i]
            order = (
                ", ".join(f"{p.name} ({fmt(p.rank)})" for p in result.params)
                if result.n_trials >= 2
                else "-"
            )
            rows.append(
                (epoch, ranking.n_trials[i], ranking.n_pruned[i], order, result.warning or "")
            )
        return (
            "<p>Importance for the intermediate value at each epoch, from every trial that "
            "reached it, pruned ones included (Optuna's evaluators alone see completed trials "
            f"only); {EPOCH_BOOTSTRAP} resamples per epoch.</p>"
            + table(
                ["epoch", "trials", "of which pruned", "ranking (rank)", "warning"],
                rows,
                (0, 1, 2),
            )
            + self.plot(lambda: plots.plot_ranking_by_epoch(ranking))
        )

    def duration(self) -> str:
        result = duration_importances(self.study, n_bootstrap=PED_ANOVA_BOOTSTRAP)
        if result.n_trials < 2:
            raise _Unavailable(
                f"Duration importances need at least 2 completed trials with start and end "
                f"times; the study has {result.n_trials}."
            )
        rows = _ranking_rows(result)
        return (
            (_why(result.warning) if result.warning else "")
            + "<p>Which parameters decide how long a completed trial takes (PED-ANOVA on the "
            "trials' wall time, shorter is better).</p>"
            + table(["parameter", "importance", "interval", "rank", "rank interval"], rows, (1, 3))
            + self.plot(lambda: plots.plot_importances(result))
        )

    def optuna_plots(self) -> str:
        top = self.top_two()
        return "".join(
            [
                self.plot(lambda: plots.plot_optimization_history(self.study)),
                self.plot(lambda: plots.plot_learning_curves(plots.learning_curves(self.study))),
                self.plot(lambda: plots.plot_parallel_coordinate(self.study)),
                self.plot(lambda: plots.plot_slice(self.study)),
                self.plot(lambda: plots.plot_contour(self.study, top)),
                self.plot(lambda: plots.plot_edf(self.study)),
                self.plot(lambda: plots.plot_timeline(self.study)),
            ]
        )

    def top_two(self) -> list[str]:
        try:
            ranked = self.ranked()
        except _Unavailable:
            ranked = None
        return plots.most_important(self.study, 2, ranked)

    def grid(self) -> str:
        data = plots.distinct_values(self.study)
        if not data.params:
            raise _Unavailable("No trial with parameters yet.")
        parts = [
            f"<p>{data.total_trials} trials tried these many distinct values of each parameter; "
            f"a full grid of as many trials would have tried only {data.grid_values} of each "
            "(the course's argument for random search).</p>",
            self.plot(lambda: plots.plot_distinct_values(data)),
        ]
        top = self.top_two()
        if len(top) < 2:
            parts.append(_why("The tried-points plot needs two parameters."))
        else:
            parts.append(
                self.plot(lambda: plots.plot_tried_points(plots.tried_points(self.study, top)))
            )
        return "".join(parts)

    def best(self) -> str:
        trials = best_trials(self.study, BEST_TRIALS)
        if not trials:
            raise _Unavailable("No completed trial.")
        rows = []
        for t in trials:
            params = estimator_params(t)
            record = TrialRecord.from_trial(t)
            described = ", ".join(f"{k}={_short(v)}" for k, v in dict(params).items())
            rows.append(
                (
                    t.number,
                    fmt(float(t.values[0]), 6),
                    "-" if record.best_epoch is None else record.best_epoch,
                    "-" if record.epochs is None else record.epochs,
                    _seconds(t),
                    described,
                )
            )
        return table(
            ["trial", "value", "best epoch", "epochs", "seconds", "estimator parameters"],
            rows,
            (0, 1, 2, 3, 4),
        )

    # ------------------------------------------------------------ page

    # ------------------------------------------------- several objectives

    def objective_names(self) -> list[str]:
        names = self.study.metric_names
        return (
            list(names) if names else [f"objective {i}" for i in range(len(self.study.directions))]
        )

    def pareto(self) -> str:
        names = self.objective_names()
        front = sorted(self.study.best_trials, key=lambda t: t.number)
        if not front:
            raise _Unavailable("No completed trial.")
        rows = [
            (
                t.number,
                *(fmt(float(v), 6) for v in t.values),
                ", ".join(f"{k}={_short(v)}" for k, v in estimator_params(t).items()),
            )
            for t in front
        ]
        goals = ", ".join(
            f"{esc(n)} ({d.name.lower()})" for n, d in zip(names, self.study.directions)
        )
        parts = [
            f"<p>The {len(front)} trial(s) no other trial beats on every objective: "
            f"{goals}. Pick one with <code>optuna-dl export CONFIG --trial N</code>.</p>",
            table(["trial", *names, "parameters"], rows, numeric=list(range(len(names) + 1))),
        ]
        if len(names) in (2, 3):
            parts.append(self.plot(lambda: ov.plot_pareto_front(self.study, target_names=names)))
        return "".join(parts)

    def importances_per_objective(self) -> str:
        parts = []
        for index, (name, direction) in enumerate(
            zip(self.objective_names(), self.study.directions)
        ):
            result = param_importances(
                self.study,
                target=lambda t, i=index: t.values[i],
                direction=direction,
                n_bootstrap=PED_ANOVA_BOOTSTRAP,
            )
            if result.n_trials < 2 or not result.params:
                parts.append(_why(f"{name}: fewer than 2 completed trials."))
                continue
            rows = _ranking_rows(result)
            statements = _statements(result)
            parts.append(
                f"<h3>{esc(name)} ({direction.name.lower()})</h3>"
                + table(
                    ["parameter", "PED-ANOVA", "interval", "rank", "rank interval"],
                    rows,
                    numeric=[1, 3],
                )
                + f"<ul>{statements}</ul>"
            )
        return "".join(parts)

    def render(self) -> str:
        started = time.perf_counter()
        multi = len(self.study.directions) > 1
        sections = [
            ("summary", "Summary", self.summary),
            *(
                [
                    ("pareto", "Pareto front", self.pareto),
                    ("importance", "Importance per objective", self.importances_per_objective),
                ]
                if multi
                else [("importance", "Hyperparameter importance", self.importances)]
            ),
            ("prior", "Prior (course notes) vs measured", self.prior),
            ("epochs", "Ranking by epoch (pruning-aware)", self.epochs),
            ("duration", "What costs time", self.duration),
            ("plots", "Plots", self.optuna_plots),
            ("grid", "Random search vs a grid", self.grid),
            ("best", "Best trials", self.best),
        ]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bodies = [(key, heading, self.guard(build)) for key, heading, build in sections]
        nav = "".join(f'<a href="#{key}">{esc(heading)}</a>' for key, heading, _ in bodies)
        content = "".join(
            f'<section id="{key}"><h2>{esc(heading)}</h2>{body}</section>'
            for key, heading, body in bodies
        )
        footer = (
            f'<p class="note">Generated by optuna-dl with Optuna {esc(optuna.__version__)} '
            f"in {time.perf_counter() - started:.1f} s.</p>"
        )
        return page(
            f"{self.title} - optuna-dl report",
            f"<h1>{esc(self.title)}</h1><nav>{nav}</nav>{content}{footer}",
        )


def _snapshot(study: optuna.Study) -> optuna.Study:
    """An in-memory copy of a stored study: the report reads the trials dozens of
    times, and each read of an RDB storage costs (0.07 s for 1000 trials here)."""
    if isinstance(study_storage(study), optuna.storages.InMemoryStorage):
        return study
    copy = optuna.create_study(study_name=study.study_name, directions=study.directions)
    copy.add_trials(study.get_trials(deepcopy=False))
    if study.metric_names:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            copy.set_metric_names(list(study.metric_names))
    return copy


def _short(value: Any) -> str:
    return fmt(value, 4) if isinstance(value, float) else str(value)


def _seconds(trial: optuna.trial.FrozenTrial) -> float | str:
    if trial.datetime_start and trial.datetime_complete:
        return (trial.datetime_complete - trial.datetime_start).total_seconds()
    return "-"


def write_report(
    study: optuna.Study,
    path: str | Path,
    *,
    space: Any = None,
    title: str | None = None,
) -> Path:
    """Write a self-contained HTML report of ``study`` to ``path``.

    Parameters
    ----------
    study : optuna.Study
    path : str or Path
        The HTML file to write (parent directories are created).
    space : SearchSpace or mapping of str to int, optional
        Prior tiers to compare with the measured ranking (``SearchSpace.tiers``).
    title : str, optional
        Defaults to the study name.

    Returns
    -------
    Path
        ``path``.

    Notes
    -----
    The file is replaced in one step, so it is never seen half written. The page
    inlines plotly.js once (about 4.8 MB) and works offline. It copes with
    studies that have no trials, only pruned or failed ones, or conditional
    parameters: sections that cannot be computed say why.
    """
    path = Path(path)
    document = _Report(_snapshot(study), space, title).render()
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written beside and renamed over: a process killed while writing leaves the
    # previous report whole, never a truncated one.
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        partial.write_text(document, encoding="utf-8")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path
