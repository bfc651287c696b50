"""DeepNetRegressor beside scikit-learn's MLPRegressor, in one run.

Both fit the same network (2 hidden layers of 128 ReLU units, batch 128, Adam at 1e-3,
up to 200 epochs, stopping when the training loss has not improved by 1e-4 for 10
epochs) on standardized features:

- diabetes: scikit-learn's ``load_diabetes`` (442 rows, 10 features);
- friedman1: ``make_friedman1(n_samples=5000, noise=1.0)`` (10 features, 5 used).

Each data set is split 75/25 once; R² is measured on the held-out quarter. DeepNet-
Regressor standardizes the targets itself and uses batch norm (its defaults);
MLPRegressor is run as is and, because it does not scale targets, also inside
``TransformedTargetRegressor(regressor=..., transformer=StandardScaler())``, the usual
way to give it standardized targets. Each model is fit once per seed; the table shows
the mean R² and epochs trained, the median fit time over the seeds, the fit time per
(mean) epoch, and the fit time as a multiple of DeepNetRegressor's. The two
"early stopping" rows hold out 10 % of the training rows and stop when their R² has not
improved by 1e-4 for 10 epochs (``early_stopping=True`` in both estimators), the usual
guard against overfitting a few hundred rows. BLAS is held to ``--threads``
threads for every model (DeepNetRegressor would pick one thread for layers this small
by itself; multithreaded BLAS on a busy machine slows MLPRegressor by an order of
magnitude).

    python benchmarks/regression.py [--seeds 3] [--threads 1] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

HIDDEN = 128
BATCH = 128
EPOCHS = 200


def load_data(quick: bool) -> dict[str, tuple[np.ndarray, ...]]:
    from sklearn.datasets import load_diabetes, make_friedman1
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    raw = {
        "diabetes": load_diabetes(return_X_y=True),
        "friedman1": make_friedman1(n_samples=500 if quick else 5000, noise=1.0, random_state=0),
    }
    data = {}
    for name, (X, y) in raw.items():
        X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
        scaler = StandardScaler().fit(X_train)
        data[name] = (scaler.transform(X_train), scaler.transform(X_test), y_train, y_test)
    return data


def make_models(seed: int, epochs: int) -> dict[str, object]:
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.neural_network import MLPRegressor
    from sklearn.preprocessing import StandardScaler

    from optuna_dl import DeepNetRegressor

    def mlp(early_stopping: bool = False) -> MLPRegressor:
        return MLPRegressor(
            early_stopping=early_stopping,
            hidden_layer_sizes=(HIDDEN, HIDDEN),
            activation="relu",
            solver="adam",
            alpha=0.0,
            batch_size=BATCH,
            learning_rate_init=1e-3,
            max_iter=epochs,
            tol=1e-4,
            n_iter_no_change=10,
            random_state=seed,
        )

    def ours(early_stopping: bool = False) -> DeepNetRegressor:
        return DeepNetRegressor(
            n_layers=2,
            n_units=HIDDEN,
            activation="relu",
            optimizer="adam",
            learning_rate=1e-3,
            batch_size=BATCH,
            max_epochs=epochs,
            tol=1e-4,
            n_iter_no_change=10,
            early_stopping=early_stopping,
            random_state=seed,
        )

    return {
        "DeepNetRegressor": ours(),
        "MLPRegressor": mlp(),
        "MLPRegressor + scaled y": TransformedTargetRegressor(
            regressor=mlp(), transformer=StandardScaler()
        ),
        "DeepNet, early stopping": ours(early_stopping=True),
        "MLP, early stopping": mlp(early_stopping=True),
    }


def epochs_of(model: Any) -> int:
    inner = getattr(model, "regressor_", model)
    return int(inner.n_iter_)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="fits per model and data set")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads for every model")
    parser.add_argument("--quick", action="store_true", help="smoke run: small data, 5 epochs")
    args = parser.parse_args()
    epochs = 5 if args.quick else EPOCHS
    seeds = 1 if args.quick else args.seeds

    print(
        f"R² on a held-out 25 %, mean of {seeds} seed(s); fit seconds: median; "
        f"BLAS threads: {args.threads}",
        flush=True,
    )
    header = (
        f"{'data':<10} {'model':<24} {'R2':>7} {'fit s':>8} {'epochs':>7} "
        f"{'ms/epoch':>9} {'s / ours':>9}"
    )
    print(header)
    print("-" * len(header), flush=True)
    for data_name, (X_train, X_test, y_train, y_test) in load_data(args.quick).items():
        results: dict[str, tuple[float, float, float]] = {}
        for name in make_models(0, epochs):
            scores, seconds, n_epochs = [], [], []
            for seed in range(seeds):
                model = make_models(seed, epochs)[name]
                started = time.perf_counter()
                with threadpool_limits(args.threads), warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # MLP's ConvergenceWarning in --quick
                    model.fit(X_train, y_train)
                seconds.append(time.perf_counter() - started)
                scores.append(model.score(X_test, y_test))
                n_epochs.append(epochs_of(model))
            results[name] = (
                float(np.mean(scores)),
                statistics.median(seconds),
                float(np.mean(n_epochs)),
            )
        ours = results["DeepNetRegressor"][1]
        for name, (r2, fit_seconds, mean_epochs) in results.items():
            print(
                f"{data_name:<10} {name:<24} {r2:>7.4f} {fit_seconds:>8.2f} "
                f"{mean_epochs:>7.1f} {1000 * fit_seconds / mean_epochs:>9.2f} "
                f"{fit_seconds / ours:>9.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
