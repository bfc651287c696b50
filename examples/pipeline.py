"""DeepNetClassifier is an ordinary scikit-learn classifier: pipelines, CV, searches, files.

The project's promise: the NumPy network behaves like any scikit-learn estimator, so
it drops into a ``Pipeline`` after a ``StandardScaler``, is scored by
``cross_val_score``, tuned by ``GridSearchCV`` (flat hyperparameters named after the
course) or by ``DeepNetSearchCV`` (an Optuna study with per-epoch pruning behind the
same API), and saved to an ``.npz`` file that loads without unpickling and predicts
exactly what the original predicted.

Measured on digits (a fixed 20 % test set): 5-fold cross-validation accuracy, the best
configuration and test accuracy of a small grid and of a ``DeepNetSearchCV`` study,
and a save/load round trip (identical predictions and probabilities, bit for bit).
Each winner is also refit with several network seeds, because one test score moves
by a few test rows from seed to seed.
Wall times are on a machine shared with other jobs.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
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
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from optuna_dl import DeepNetClassifier, DeepNetSearchCV, SearchSpace

STEP = "deepnetclassifier"  # the name make_pipeline gives the network step


def make_model(epochs: int, seed: int) -> Pipeline:
    return make_pipeline(
        StandardScaler(),
        DeepNetClassifier(n_units=64, batch_size=64, max_epochs=epochs, random_state=seed),
    )


def timed(function, *args, **kwargs) -> tuple[Any, float]:
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - started


def grid_search(model: Pipeline, X, y, args) -> GridSearchCV:
    grid = {
        f"{STEP}__learning_rate": [1e-3, 1e-2, 1e-1],
        f"{STEP}__n_layers": [1, 2],
    }
    if args.quick:
        grid = {f"{STEP}__learning_rate": [1e-2, 1e-1]}
    return GridSearchCV(model, grid, cv=3).fit(X, y)


def optuna_search(model: Pipeline, X, y, args) -> DeepNetSearchCV:
    return DeepNetSearchCV(
        model,
        SearchSpace.default(max_tier=2),
        n_trials=args.trials,
        cv=3,
        max_epochs=args.epochs,
        patience=5,
        random_state=args.seed,
    ).fit(X, y)


def round_trip(model: Pipeline, X_test) -> dict[str, Any]:
    """Save the fitted network, load it, and compare its outputs with the original's."""
    scaler, network = model[:-1], model[-1]
    Z = scaler.transform(X_test)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "digits.npz"
        network.save(path)
        size = path.stat().st_size
        loaded = DeepNetClassifier.load(path)
    same_labels = np.array_equal(network.predict(Z), loaded.predict(Z))
    same_proba = np.array_equal(network.predict_proba(Z), loaded.predict_proba(Z))
    same_params = network.get_params() == loaded.get_params()
    return {
        "size": size,
        "labels": same_labels,
        "proba": same_proba,
        "params": same_params,
        "max_diff": float(np.abs(network.predict_proba(Z) - loaded.predict_proba(Z)).max()),
    }


def seed_spread(models: dict[str, Pipeline], data, seeds: list[int]) -> list[list[str]]:
    """Each fitted model's configuration refit with other network seeds, scored on test.

    One test score depends on the seed; this shows whether a search's winner beats the
    defaults beyond that noise.
    """
    X_train, X_test, y_train, y_test = data
    rows = []
    for name, fitted in models.items():
        scores = [
            clone(fitted)
            .set_params(**{f"{STEP}__random_state": seed})
            .fit(X_train, y_train)
            .score(X_test, y_test)
            for seed in seeds
        ]
        rows.append([name, str(fitted[-1].max_epochs), mean_std(scores), f"{min(scores):.4f}"])
    return rows


def describe(params: dict[str, Any]) -> str:
    return ", ".join(
        f"{k.removeprefix(STEP + '__')}={v:.3g}"
        if isinstance(v, float)
        else f"{k.removeprefix(STEP + '__')}={v}"
        for k, v in params.items()
    )


def figures(grid: GridSearchCV, search: DeepNetSearchCV, accuracies: dict[str, float]):
    results = grid.cv_results_
    labels = [describe(p) for p in results["params"]]
    grid_fig = go.Figure(
        go.Bar(
            x=labels,
            y=results["mean_test_score"],
            error_y={"type": "data", "array": results["std_test_score"]},
            marker={"color": "#1f77b4"},
        )
    )
    grid_fig.update_layout(
        title="GridSearchCV: mean 3-fold accuracy per configuration",
        yaxis_title="accuracy",
    )
    trials = search.study_.trials
    history = go.Figure()
    for state, color in (("COMPLETE", "#1f77b4"), ("PRUNED", "#ff7f0e")):
        chosen = [t for t in trials if t.state.name == state]
        history.add_trace(
            go.Scatter(
                x=[t.number for t in chosen],
                y=[
                    max(t.intermediate_values.values()) if t.intermediate_values else None
                    for t in chosen
                ],
                mode="markers",
                name=state.lower(),
                marker={"color": color, "size": 9},
            )
        )
    history.update_layout(
        title="DeepNetSearchCV: best epoch's mean CV accuracy per trial",
        xaxis_title="trial",
        yaxis_title="accuracy",
    )
    bars = go.Figure(go.Bar(x=list(accuracies), y=list(accuracies.values())))
    bars.update_layout(title="Test accuracy (20 % held out)", yaxis_title="accuracy")
    bars.update_yaxes(range=[0.9, 1.0])
    return [grid_fig, history, bars]


def main() -> None:
    parser = make_parser(__doc__)
    parser.add_argument("--epochs", type=int, default=30, help="max epochs (30)")
    parser.add_argument("--trials", type=int, default=12, help="DeepNetSearchCV trials (12)")
    parser.add_argument("--seeds", type=int, default=5, help="refits per winner (5)")
    args = parser.parse_args()
    if args.quick:
        args.epochs, args.trials, args.seeds = 3, 3, 2
    quiet_optuna()
    clock = Stopwatch()
    X, y = digits()
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.2, stratify=y, random_state=args.seed
    )
    model = make_model(args.epochs, args.seed)

    scores, cv_seconds = timed(cross_val_score, model, X_train, y_train, cv=5)
    fitted, fit_seconds = timed(make_model(args.epochs, args.seed).fit, X_train, y_train)
    grid, grid_seconds = timed(grid_search, model, X_train, y_train, args)
    search, search_seconds = timed(optuna_search, model, X_train, y_train, args)
    trip = round_trip(fitted, X_test)

    accuracies = {
        "Pipeline, defaults": float(fitted.score(X_test, y_test)),
        "GridSearchCV best": float(grid.score(X_test, y_test)),
        "DeepNetSearchCV best": float(search.score(X_test, y_test)),
    }
    states = [t.state.name for t in search.study_.trials]
    spread = seed_spread(
        {
            "Pipeline, defaults": fitted,
            "GridSearchCV best": grid.best_estimator_,
            "DeepNetSearchCV best": search.best_estimator_,
        },
        (X_train, X_test, y_train, y_test),
        list(range(args.seed, args.seed + args.seeds)),
    )
    tables = Tables()
    tables.add(
        "The estimator in scikit-learn's tools (digits, 20 % test set)",
        ["step", "result", "test accuracy", "seconds"],
        [
            [
                "cross_val_score (5 folds)",
                f"accuracy {mean_std(scores)}",
                "-",
                f"{cv_seconds:.1f}",
            ],
            [
                "Pipeline.fit (StandardScaler -> DeepNetClassifier)",
                f"{fitted[-1].n_iter_} epochs",
                f"{accuracies['Pipeline, defaults']:.4f}",
                f"{fit_seconds:.1f}",
            ],
            [
                f"GridSearchCV ({len(grid.cv_results_['params'])} configurations x 3 folds)",
                f"cv {grid.best_score_:.4f}: {describe(grid.best_params_)}",
                f"{accuracies['GridSearchCV best']:.4f}",
                f"{grid_seconds:.1f}",
            ],
            [
                f"DeepNetSearchCV ({len(states)} trials x 3 folds, "
                f"{states.count('PRUNED')} pruned)",
                f"cv {search.best_score_:.4f}: {describe(search.best_params_)}",
                f"{accuracies['DeepNetSearchCV best']:.4f}",
                f"{search_seconds:.1f}",
            ],
        ],
    )
    tables.add(
        "Save and load (DeepNetClassifier.save / .load, .npz without pickle)",
        [
            "file size",
            "same labels",
            "same probabilities (bit for bit)",
            "same params",
            "largest difference",
        ],
        [
            [
                f"{trip['size'] / 1024:.0f} KiB",
                trip["labels"],
                trip["proba"],
                trip["params"],
                f"{trip['max_diff']:.1e}",
            ]
        ],
    )
    tables.add(
        f"Test accuracy of each winner refit with {args.seeds} network seeds",
        ["model", "epochs", "test accuracy", "worst seed"],
        spread,
    )
    write_page(
        args.out / "pipeline.html",
        "DeepNetClassifier in scikit-learn's tools",
        paragraph(__doc__),
        figures(grid, search, accuracies),
        tables,
    )
    clock.report()
    if not (trip["labels"] and trip["proba"]):
        raise SystemExit("round trip changed the predictions")


if __name__ == "__main__":
    main()
