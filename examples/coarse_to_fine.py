"""Coarse to fine: zooming in on the region of the best trials beats one wide search.

The course notes: sample the space at random, notice where the good points cluster,
then sample that smaller region more densely. With the same number of trials, three
stages (each narrowed, in every parameter's own scale, to the range of the previous
stage's best quarter) should find a better configuration than one stage over the
wide space, and spend more of its trials on good configurations.

Measured on digits with ``optuna_dl.tuning.coarse_to_fine`` and random sampling: one
stage of N trials against three stages of N/3, over several seeds. Each seed holds
out its own 20 % test set; the search sees only the rest (its own 80/20
train/validation split). Reported: the best validation accuracy, the share of trials
within one point of accuracy of the best trial of either arm, and the test accuracy
of each arm's best configuration refit on the search data.
"""

from __future__ import annotations

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
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from optuna_dl import DeepNetClassifier, Objective, SearchSpace
from optuna_dl.tuning import CoarseToFineResult, coarse_to_fine

ARMS = ("1 stage", "3 stages")
GOOD_MARGIN = 0.01


def template() -> Any:
    return make_pipeline(StandardScaler(), DeepNetClassifier(n_units=64, batch_size=64))


def search(arm: str, budget: int, seed: int, epochs: int, X, y) -> CoarseToFineResult:
    """One arm on the search data; the stages share the objective's splits."""
    objective = Objective(
        X,
        y,
        space=SearchSpace.default(max_tier=2),
        estimator=template(),
        validation_fraction=0.2,
        max_epochs=epochs,
        patience=5,
        random_state=seed,
    )
    stages = [budget] if arm == "1 stage" else [budget // 3] * 3
    return coarse_to_fine(
        objective,
        n_trials=stages,
        pruner=optuna.pruners.NopPruner(),
        seed=seed,
        study_name=f"{arm}-seed{seed}",
    )


def test_accuracy(result: CoarseToFineResult, seed: int, data) -> float:
    """Refit the best configuration on all search data for its best epoch count."""
    X_search, X_test, y_search, y_test = data
    trial = result.best_trial
    model = template().set_params(
        **{f"deepnetclassifier__{k}": v for k, v in trial.user_attrs["estimator_params"].items()},
        deepnetclassifier__max_epochs=int(trial.user_attrs["best_epoch"]),
        deepnetclassifier__n_iter_no_change=10_000,
        deepnetclassifier__random_state=seed,
    )
    return float(model.fit(X_search, y_search).score(X_test, y_test))


def values(result: CoarseToFineResult) -> list[float]:
    """Every trial's value in run order (0 for a trial that did not complete)."""
    return [
        t.value if t.value is not None else 0.0 for study in result.studies for t in study.trials
    ]


def run(args) -> tuple[dict[str, list[dict[str, Any]]], dict[str, CoarseToFineResult]]:
    X, y = digits()
    outcomes: dict[str, list[dict[str, Any]]] = {arm: [] for arm in ARMS}
    first: dict[str, CoarseToFineResult] = {}
    for seed in range(args.seed, args.seed + args.seeds):
        data = train_test_split(X, y, test_size=0.2, stratify=y, random_state=seed)
        results = {
            arm: search(arm, args.trials, seed, args.epochs, data[0], data[2]) for arm in ARMS
        }
        best = max(r.best_value for r in results.values())
        for arm, result in results.items():
            scores = values(result)
            lr = result.spaces[-1]["learning_rate"]
            outcomes[arm].append(
                {
                    "seed": seed,
                    "best": result.best_value,
                    "good": float(np.mean(np.array(scores) >= best - GOOD_MARGIN)),
                    "test": test_accuracy(result, seed, data),
                    "lr_range": (lr.low, lr.high),
                    "trials": result.n_trials,
                    "best_stage": result.best_stage,
                    "curve": list(np.maximum.accumulate(scores)),
                }
            )
            first.setdefault(arm, result)
        print(
            f"seed {seed}: " + ", ".join(f"{a} {outcomes[a][-1]['best']:.4f}" for a in ARMS),
            flush=True,
        )
    return outcomes, first


def report(outcomes: dict[str, list[dict[str, Any]]], args, tables: Tables) -> None:
    rows = []
    for arm in ARMS:
        runs = outcomes[arm]
        rows.append(
            [
                arm,
                str(runs[0]["trials"]),
                mean_std([r["best"] for r in runs]),
                mean_std([100 * r["good"] for r in runs], 0) + " %",
                mean_std([r["test"] for r in runs]),
            ]
        )
    tables.add(
        f"Same budget ({args.trials} trials), {args.seeds} seed(s), mean ± std",
        ["arm", "trials", "best validation acc.", "good trials", "test acc. of the best"],
        rows,
    )
    diffs = [t["best"] - o["best"] for t, o in zip(outcomes["3 stages"], outcomes["1 stage"])]
    test_diffs = [t["test"] - o["test"] for t, o in zip(outcomes["3 stages"], outcomes["1 stage"])]
    tables.add(
        "Paired by seed: 3 stages minus 1 stage",
        ["quantity", "difference", "3 stages better/tied/worse"],
        [
            ["best validation accuracy", mean_std(diffs), _tally(diffs)],
            ["test accuracy of the best", mean_std(test_diffs), _tally(test_diffs)],
        ],
    )
    per_seed = []
    for one, three in zip(outcomes["1 stage"], outcomes["3 stages"]):
        low, high = three["lr_range"]
        per_seed.append(
            [
                one["seed"],
                f"{one['best']:.4f} / {one['test']:.4f}",
                f"{three['best']:.4f} / {three['test']:.4f}",
                str(three["best_stage"]),
                f"[{low:.2g}, {high:.2g}]",
            ]
        )
    tables.add(
        "Per seed: best validation / test accuracy, and the learning-rate range of stage 3",
        ["seed", "1 stage", "3 stages", "stage of the best", "stage-3 learning_rate range"],
        per_seed,
    )


def _tally(diffs: list[float]) -> str:
    better = sum(d > 0 for d in diffs)
    tied = sum(d == 0 for d in diffs)
    return f"{better}/{tied}/{len(diffs) - better - tied}"


def figures(outcomes, first: dict[str, CoarseToFineResult]) -> list[go.Figure]:
    colors = {"1 stage": "#d62728", "3 stages": "#1f77b4"}
    history = go.Figure()
    for arm in ARMS:
        curves = np.array([r["curve"] for r in outcomes[arm]])
        history.add_trace(
            go.Scatter(
                x=list(range(1, curves.shape[1] + 1)),
                y=curves.mean(axis=0),
                name=arm,
                line={"color": colors[arm]},
            )
        )
    history.update_layout(
        title="Best validation accuracy so far (mean over seeds)",
        xaxis_title="trial",
        yaxis_title="best accuracy so far",
    )
    stage_colors = ["#9ecae1", "#4292c6", "#08306b"]
    points = go.Figure()
    for arm, result in first.items():
        for k, study in enumerate(result.studies):
            done = [t for t in study.trials if t.value is not None]
            points.add_trace(
                go.Scatter(
                    x=[t.user_attrs["estimator_params"]["learning_rate"] for t in done],
                    y=[t.value for t in done],
                    mode="markers",
                    name=arm if arm == "1 stage" else f"stage {k + 1}",
                    marker={
                        "color": colors[arm] if arm == "1 stage" else stage_colors[k % 3],
                        "size": 8,
                        "opacity": 0.75,
                        "symbol": "circle" if arm == "1 stage" else "diamond",
                    },
                )
            )
    points.update_layout(
        title="Validation accuracy against the learning rate, first seed",
        xaxis_title="learning_rate",
        yaxis_title="validation accuracy",
    )
    points.update_xaxes(type="log")
    return [history, points]


def main() -> None:
    parser = make_parser(__doc__)
    parser.add_argument("--trials", type=int, default=30, help="total trials per arm (30)")
    parser.add_argument("--seeds", type=int, default=3, help="repetitions (3)")
    parser.add_argument("--epochs", type=int, default=15, help="max epochs per trial (15)")
    args = parser.parse_args()
    if args.quick:
        args.trials, args.seeds, args.epochs = 6, 1, 2
    quiet_optuna()
    clock = Stopwatch()
    outcomes, first = run(args)
    tables = Tables()
    report(outcomes, args, tables)
    write_page(
        args.out / "coarse_to_fine.html",
        "Coarse to fine vs one wide search",
        paragraph(__doc__),
        figures(outcomes, first),
        tables,
        [
            "Space: SearchSpace.default(max_tier=2): learning_rate, optimizer, n_layers, "
            f"learning_rate_decay, beta; 64 units, batch 64, at most {args.epochs} epochs "
            "(patience 5), random sampling, no pruning."
        ],
    )
    clock.report()


if __name__ == "__main__":
    main()
