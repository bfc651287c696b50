"""Random search beats a grid when one of two hyperparameters matters and the other does not.

The course notes: a 6x6 grid over two hyperparameters runs 36 trials but tries the
important one (here the learning rate) only 6 times; 36 random points try it 36 times,
so random search should find a better learning rate for the same budget. Adam's
``beta2`` plays the parameter that barely matters.

Measured on digits, for a 6x6 grid, 36 random points and 36 TPE points (same space:
``learning_rate`` log-uniform on [1e-4, 1], ``beta2`` reverse-log on [0.99, 0.9999]),
repeated over several seeds (each seed: its own train/validation split, network
initialization and sampler): distinct values tried per parameter, and the best
validation accuracy found. Every configuration trains for at most ``--epochs`` epochs
with no pruning, so every method gets the same budget.
"""

from __future__ import annotations

import statistics
from typing import Any

import numpy as np
import optuna
import plotly.graph_objects as go
from _common import (
    Stopwatch,
    Tables,
    digits,
    make_parser,
    mean_std,
    paragraph,
    quiet_optuna,
    write_page,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from optuna_dl import DeepNetClassifier, Dimension, Objective, SearchSpace
from optuna_dl.analysis import param_importances

METHODS = ("grid", "random", "tpe")
LR = "learning_rate"
BETA2 = "one_minus_beta2"  # what the reverse-log scale samples: 1 - beta2


def make_space() -> SearchSpace:
    """Two entries: the important learning rate and Adam's unimportant beta2."""
    return SearchSpace(
        (
            Dimension(LR, "float", 1e-4, 1.0, "log", tier=1),
            Dimension("beta2", "float", 0.99, 0.9999, "reverse_log", tier=4),
        )
    )


def make_sampler(method: str, side: int, seed: int) -> optuna.samplers.BaseSampler:
    """The grid holds ``side`` values per parameter, evenly spaced in each one's scale."""
    if method == "grid":
        grid = {
            LR: [float(v) for v in np.logspace(-4, 0, side)],
            BETA2: [float(v) for v in np.logspace(-4, -2, side)],
        }
        return optuna.samplers.GridSampler(grid, seed=seed)
    if method == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    # Not the random sampler's seed: TPE's 10 random start-up trials would repeat its first 10.
    return optuna.samplers.TPESampler(seed=seed + 10_000, n_startup_trials=10)


def run_study(method: str, side: int, seed: int, epochs: int, X, y) -> optuna.Study:
    """``side**2`` trials of one method; no pruning (same budget for every method)."""
    estimator = make_pipeline(
        StandardScaler(),
        DeepNetClassifier(n_layers=2, n_units=64, batch_size=64, optimizer="adam"),
    )
    objective = Objective(
        X,
        y,
        space=make_space(),
        estimator=estimator,
        validation_fraction=0.2,
        max_epochs=epochs,
        patience=5,
        random_state=seed,
    )
    study = optuna.create_study(
        direction="maximize",
        sampler=make_sampler(method, side, seed),
        pruner=optuna.pruners.NopPruner(),
        study_name=f"{method}-seed{seed}",
    )
    study.optimize(objective, n_trials=side * side)
    return study


def summarize(study: optuna.Study) -> dict[str, Any]:
    """Distinct values per parameter, the best value and where it was found."""
    done = [t for t in study.trials if t.value is not None]
    best = study.best_trial
    return {
        "distinct_lr": len({t.params[LR] for t in done}),
        "distinct_beta2": len({t.params[BETA2] for t in done}),
        "best": float(best.value),
        "best_lr": float(best.params[LR]),
        "best_so_far": list(np.maximum.accumulate([t.value for t in done])),
        "points": [(float(t.params[LR]), float(t.value)) for t in done],
    }


def tables_for(results: dict[str, list[dict[str, Any]]], seeds: list[int], tables: Tables) -> None:
    rows = []
    for method in METHODS:
        runs = results[method]
        rows.append(
            [
                method,
                mean_std([r["distinct_lr"] for r in runs], 1),
                mean_std([r["distinct_beta2"] for r in runs], 1),
                mean_std([r["best"] for r in runs]),
                f"{statistics.median(r['best_lr'] for r in runs):.3g}",
            ]
        )
    tables.add(
        f"Same budget, {len(seeds)} seed(s): distinct values tried and best validation accuracy",
        ["method", "distinct learning_rate", "distinct beta2", "best accuracy", "median best lr"],
        rows,
    )
    paired = []
    for method in ("random", "tpe"):
        diffs = [r["best"] - g["best"] for r, g in zip(results[method], results["grid"])]
        wins = sum(d > 0 for d in diffs)
        ties = sum(d == 0 for d in diffs)
        paired.append(
            [f"{method} - grid", mean_std(diffs), f"{wins}/{ties}/{len(diffs) - wins - ties}"]
        )
    tables.add(
        "Paired by seed (same split and initialization): best accuracy minus the grid's",
        ["comparison", "difference", "better/tied/worse"],
        paired,
    )
    per_seed = [
        [
            seed,
            *(f"{results[m][i]['best']:.4f} (lr {results[m][i]['best_lr']:.3g})" for m in METHODS),
        ]
        for i, seed in enumerate(seeds)
    ]
    tables.add(
        "Best accuracy per seed (learning rate of the best trial)", ["seed", *METHODS], per_seed
    )


def profile_table(results: dict[str, list[dict[str, Any]]], side: int, tables: Tables) -> None:
    """Accuracy by half-decade of the learning rate, all random trials pooled: how wide
    the good region is compared with the grid's spacing."""
    points = np.array([p for run in results["random"] for p in run["points"]])
    grid = np.logspace(-4, 0, side)
    edges = 10.0 ** np.arange(-4.0, 0.01, 0.5)
    rows = []
    for low, high in zip(edges[:-1], edges[1:]):
        inside = (points[:, 0] >= low) & (
            points[:, 0] < high if high < 1 else points[:, 0] <= high
        )
        scores = points[inside, 1]
        on_grid = [f"{g:.2g}" for g in grid if low <= g < high or (high == 1 and g == 1)]
        rows.append(
            [
                f"[{low:.2g}, {high:.2g})",
                str(int(inside.sum())),
                f"{scores.mean():.4f}" if scores.size else "-",
                f"{scores.max():.4f}" if scores.size else "-",
                ", ".join(on_grid) or "-",
            ]
        )
    tables.add(
        "Validation accuracy by learning-rate band (random trials of every seed pooled)",
        ["learning_rate band", "trials", "mean accuracy", "best accuracy", "grid values in it"],
        rows,
    )


def importance_table(study: optuna.Study, tables: Tables) -> None:
    """Whether the premise holds: how much each parameter explains in random trials."""
    result = param_importances(study, n_bootstrap=50, random_state=0)
    rows = [[p.name, f"{p.importance:.3f}", f"[{p.low:.3f}, {p.high:.3f}]"] for p in result.params]
    tables.add(
        f"PED-ANOVA importance in the random study of the first seed ({result.n_trials} trials)",
        ["parameter", "importance", "95% bootstrap interval"],
        rows,
    )


def figures(results: dict[str, list[dict[str, Any]]], studies: dict[str, optuna.Study]):
    colors = {"grid": "#d62728", "random": "#1f77b4", "tpe": "#2ca02c"}
    history = go.Figure()
    for method in METHODS:
        curves = np.array([r["best_so_far"] for r in results[method]])
        history.add_trace(
            go.Scatter(
                x=list(range(1, curves.shape[1] + 1)),
                y=curves.mean(axis=0),
                name=method,
                line={"color": colors[method]},
            )
        )
    history.update_layout(
        title="Best validation accuracy so far (mean over seeds)",
        xaxis_title="trial",
        yaxis_title="best accuracy so far",
    )
    points = go.Figure()
    scatter = go.Figure()
    for method, study in studies.items():
        done = [t for t in study.trials if t.value is not None]
        points.add_trace(
            go.Scatter(
                x=[t.params[LR] for t in done],
                y=[t.params[BETA2] for t in done],
                mode="markers",
                name=method,
                marker={"color": colors[method], "size": 8, "opacity": 0.7},
            )
        )
        scatter.add_trace(
            go.Scatter(
                x=[t.params[LR] for t in done],
                y=[t.value for t in done],
                mode="markers",
                name=method,
                marker={"color": colors[method], "size": 7, "opacity": 0.7},
            )
        )
    points.update_layout(title="Points tried (first seed)", xaxis_title=LR, yaxis_title=BETA2)
    points.update_xaxes(type="log")
    points.update_yaxes(type="log")
    scatter.update_layout(
        title="Validation accuracy against the learning rate (first seed)",
        xaxis_title=LR,
        yaxis_title="validation accuracy",
    )
    scatter.update_xaxes(type="log")
    return [history, points, scatter]


def main() -> None:
    parser = make_parser(__doc__)
    parser.add_argument("--side", type=int, default=6, help="grid values per parameter (6)")
    parser.add_argument("--seeds", type=int, default=3, help="repetitions (3)")
    parser.add_argument("--epochs", type=int, default=15, help="max epochs per trial (15)")
    args = parser.parse_args()
    if args.quick:
        args.side, args.seeds, args.epochs = 3, 1, 3
    quiet_optuna()
    clock = Stopwatch()
    X, y = digits()
    seeds = list(range(args.seed, args.seed + args.seeds))
    results: dict[str, list[dict[str, Any]]] = {m: [] for m in METHODS}
    first: dict[str, optuna.Study] = {}
    for seed in seeds:
        for method in METHODS:
            study = run_study(method, args.side, seed, args.epochs, X, y)
            results[method].append(summarize(study))
            first.setdefault(method, study)
        print(f"seed {seed}: " + ", ".join(f"{m} {results[m][-1]['best']:.4f}" for m in METHODS))
    tables = Tables()
    tables_for(results, seeds, tables)
    profile_table(results, args.side, tables)
    importance_table(first["random"], tables)
    write_page(
        args.out / "random_vs_grid.html",
        "Random search vs a grid",
        paragraph(__doc__),
        figures(results, first),
        tables,
    )
    clock.report()


if __name__ == "__main__":
    main()
