"""Sample each hyperparameter on its own scale: log for the learning rate, reverse log for beta.

The course notes: sampling the learning rate uniformly on [1e-4, 1] puts 90 % of the
trials in [0.1, 1] and almost none below 1e-3; sampling ``r`` uniformly and setting
``alpha = 10**r`` spreads them evenly over the decades. Likewise momentum's ``beta``
is sampled as ``1 - 10**r`` because ``1 / (1 - beta)``, the averaging window, is what
matters, and sensitivity grows as ``beta`` nears 1: uniform sampling on [0.9, 0.999]
leaves only 9 % of the trials in (0.99, 0.999].

Measured on digits with random search (several seeds, the same number of trials for
each scale): the share of trials in each decade (of ``learning_rate``, or of
``1 - beta``), the best validation accuracy, and the share of "good" trials (within
one point of accuracy of the best trial of either scale). The learning-rate studies
use Adam; the beta studies use momentum at a fixed learning rate.
"""

from __future__ import annotations

from dataclasses import dataclass
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

#: Accuracy this close to the best trial of either scale counts as "good".
GOOD_MARGIN = 0.01


@dataclass(frozen=True)
class Experiment:
    """One hyperparameter sampled on two scales, everything else fixed."""

    name: str
    low: float
    high: float
    scales: tuple[str, str]
    fixed: dict[str, Any]
    decades: tuple[float, ...]  # edges of the decades, in the quantity counted

    def quantity(self, value: float) -> float:
        """What the decades are counted in: the value, or ``1 - value`` for beta."""
        return 1.0 - value if self.name == "beta" else value

    def label(self) -> str:
        return "1 - beta" if self.name == "beta" else self.name


LEARNING_RATE = Experiment(
    "learning_rate",
    1e-4,
    1.0,
    ("linear", "log"),
    {"optimizer": "adam"},
    (1e-4, 1e-3, 1e-2, 1e-1, 1.0),
)
BETA = Experiment(
    "beta",
    0.9,
    0.999,
    ("linear", "reverse_log"),
    {"optimizer": "momentum", "learning_rate": 0.1},
    (1e-3, 1e-2, 1e-1),
)


def run_study(experiment: Experiment, scale: str, seed: int, n_trials: int, epochs: int, X, y):
    """Random search over one dimension on ``scale``; returns the values and scores."""
    space = SearchSpace(
        (Dimension(experiment.name, "float", experiment.low, experiment.high, scale, tier=1),)
    )
    estimator = make_pipeline(
        StandardScaler(),
        DeepNetClassifier(n_layers=2, n_units=64, batch_size=64, **experiment.fixed),
    )
    objective = Objective(
        X,
        y,
        space=space,
        estimator=estimator,
        validation_fraction=0.2,
        max_epochs=epochs,
        patience=5,
        random_state=seed,
    )
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=seed),
        pruner=optuna.pruners.NopPruner(),
    )
    study.optimize(objective, n_trials=n_trials)
    values = [t.user_attrs["estimator_params"][experiment.name] for t in study.trials]
    scores = [t.value if t.value is not None else 0.0 for t in study.trials]
    return values, scores


def decade_shares(experiment: Experiment, values: list[float]) -> list[float]:
    """Share of ``values`` in each decade ``[edge_k, edge_k+1)`` (the last one closed)."""
    q = np.array([experiment.quantity(v) for v in values])
    edges = experiment.decades
    shares = []
    for k in range(len(edges) - 1):
        last = k == len(edges) - 2
        inside = (q >= edges[k] * (1 - 1e-12)) & (
            (q <= edges[k + 1]) if last else (q < edges[k + 1])
        )
        shares.append(float(inside.mean()))
    return shares


def expected_shares(experiment: Experiment, scale: str) -> list[float]:
    """What each scale puts in each decade, in theory."""
    edges = experiment.decades
    if scale in ("log", "reverse_log"):
        return [1 / (len(edges) - 1)] * (len(edges) - 1)
    width = experiment.high - experiment.low  # uniform in the value; beta: 1 - beta too
    return [(edges[k + 1] - edges[k]) / width for k in range(len(edges) - 1)]


def decade_names(experiment: Experiment) -> list[str]:
    edges = experiment.decades
    return [f"[{edges[k]:g}, {edges[k + 1]:g})" for k in range(len(edges) - 1)]


def measure(experiment: Experiment, seeds: list[int], n_trials: int, epochs: int, X, y):
    """Every scale over every seed: ``{scale: [(values, scores), ...]}``."""
    runs: dict[str, list[tuple[list[float], list[float]]]] = {s: [] for s in experiment.scales}
    for seed in seeds:
        for scale in experiment.scales:
            runs[scale].append(run_study(experiment, scale, seed, n_trials, epochs, X, y))
        best = {s: max(runs[s][-1][1]) for s in experiment.scales}
        print(
            f"{experiment.name}, seed {seed}: best "
            + ", ".join(f"{s} {b:.4f}" for s, b in best.items())
        )
    return runs


def report(experiment: Experiment, runs, tables: Tables, n_trials: int) -> None:
    names = decade_names(experiment)
    rows = []
    for scale, results in runs.items():
        shares = np.array([decade_shares(experiment, v) for v, _ in results])
        expected = expected_shares(experiment, scale)
        rows.append(
            [
                scale,
                *(
                    f"{100 * m:.0f} % (exp. {100 * e:.1f} %)"
                    for m, e in zip(shares.mean(axis=0), expected)
                ),
            ]
        )
    tables.add(
        f"{experiment.name}: share of trials in each decade of {experiment.label()}",
        ["scale", *names],
        rows,
    )
    n_seeds = len(next(iter(runs.values())))
    per_seed_best = [max(max(runs[scale][i][1]) for scale in runs) for i in range(n_seeds)]
    rows = []
    for scale, results in runs.items():
        good = [
            float(np.mean(np.array(s) >= best - GOOD_MARGIN))
            for (_, s), best in zip(results, per_seed_best)
        ]
        best_values = [v[int(np.argmax(s))] for v, s in results]
        rows.append(
            [
                scale,
                mean_std([max(s) for _, s in results]),
                mean_std([100 * g for g in good], 0) + " %",
                ", ".join(f"{b:.3g}" for b in best_values),
            ]
        )
    tables.add(
        f"{experiment.name}: best validation accuracy ({n_trials} trials per study, "
        "mean ± std over seeds)",
        ["scale", "best accuracy", "good trials", f"best {experiment.name} per seed"],
        rows,
    )


def figure(experiment: Experiment, runs) -> go.Figure:
    """Accuracy against the sampled quantity, one colour per scale, all seeds."""
    colors = ["#d62728", "#1f77b4"]
    fig = go.Figure()
    for color, (scale, results) in zip(colors, runs.items()):
        xs = [experiment.quantity(v) for values, _ in results for v in values]
        ys = [s for _, scores in results for s in scores]
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="markers",
                name=f"{scale} ({len(xs)} trials)",
                marker={"color": color, "size": 7, "opacity": 0.6},
            )
        )
    fig.update_layout(
        title=f"Validation accuracy against {experiment.label()} (log axis), by sampling scale",
        xaxis_title=f"{experiment.label()} (log scale)",
        yaxis_title="validation accuracy",
    )
    fig.update_xaxes(type="log")
    for edge in experiment.decades:
        fig.add_vline(x=edge, line={"color": "#bbb", "dash": "dot"})
    return fig


def main() -> None:
    parser = make_parser(__doc__)
    parser.add_argument("--trials", type=int, default=24, help="trials per study (24)")
    parser.add_argument("--seeds", type=int, default=3, help="repetitions (3)")
    parser.add_argument("--epochs", type=int, default=15, help="max epochs per trial (15)")
    args = parser.parse_args()
    if args.quick:
        args.trials, args.seeds, args.epochs = 6, 1, 2
    quiet_optuna()
    clock = Stopwatch()
    X, y = digits()
    seeds = list(range(args.seed, args.seed + args.seeds))
    tables = Tables()
    figures = []
    for experiment in (LEARNING_RATE, BETA):
        runs = measure(experiment, seeds, args.trials, args.epochs, X, y)
        report(experiment, runs, tables, args.trials)
        figures.append(figure(experiment, runs))
    write_page(
        args.out / "scale.html",
        "The right scale for each hyperparameter",
        paragraph(__doc__),
        figures,
        tables,
        [
            f"Fixed: 2 x 64 units with batch norm, batch 64, at most {args.epochs} epochs "
            f"(patience 5); beta studies: momentum at learning_rate "
            f"{BETA.fixed['learning_rate']}; {len(seeds)} seed(s), {args.trials} trials each."
        ],
    )
    clock.report()


if __name__ == "__main__":
    main()
