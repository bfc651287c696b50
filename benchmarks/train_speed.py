"""Training speed of DeepNetClassifier beside scikit-learn's MLPClassifier and PyTorch.

Every implementation trains the same network (2 hidden layers of 256 ReLU units, batch
128, Adam at 1e-3, a fixed number of epochs) on the same data, each in its own process,
all in one run of this script:

- W1: scikit-learn's digits, 1437 training samples, 64 features;
- W2: make_classification(60000, 784, n_informative=100, n_classes=10), standardized,
  float32, 80/20 split.

PyTorch is a peer only (``pip install torch==2.13.0``); without it its rows are skipped.

    python benchmarks/train_speed.py [--epochs-w1 30] [--epochs-w2 3] [--threads 2]
                                     [--repeats 3]

Peak memory is the child's VmHWM at the end of training (whole process: interpreter,
libraries and data); "train MB" is its growth during training.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

IMPLEMENTATIONS = ("optuna-dl", "sklearn-mlp", "pytorch")
HIDDEN = 256
BATCH = 128
PREDICT_ROWS = 100_000


def make_workloads(directory: Path) -> dict[str, Path]:
    from sklearn.datasets import load_digits, make_classification
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    paths = {}
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0)
    scaler = StandardScaler().fit(X_train)
    paths["W1"] = directory / "w1.npz"
    np.savez(
        paths["W1"],
        X_train=scaler.transform(X_train).astype(np.float32),
        X_test=scaler.transform(X_test).astype(np.float32),
        y_train=y_train,
        y_test=y_test,
    )
    X, y = make_classification(
        n_samples=60000, n_features=784, n_informative=100, n_classes=10, random_state=0
    )
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0)
    scaler = StandardScaler().fit(X_train)
    paths["W2"] = directory / "w2.npz"
    np.savez(
        paths["W2"],
        X_train=scaler.transform(X_train).astype(np.float32),
        X_test=scaler.transform(X_test).astype(np.float32),
        y_train=y_train,
        y_test=y_test,
    )
    return paths


def gemm_flops_per_sample(n_features: int, n_classes: int) -> float:
    """Forward and backward GEMM FLOPs of one sample (no input gradient at layer 1)."""
    d1, d2, d3 = n_features * HIDDEN, HIDDEN * HIDDEN, HIDDEN * n_classes
    forward = 2 * (d1 + d2 + d3)
    backward = 2 * (d1 + 2 * d2 + 2 * d3)
    return float(forward + backward)


def _status_mb(field: str) -> float:
    # VmHWM, unlike ru_maxrss, is not inherited across exec from the parent process.
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def peak_rss_mb() -> float:
    return _status_mb("VmHWM")


def current_rss_mb() -> float:
    return _status_mb("VmRSS")


# ------------------------------------------------------------------- children
def measure_estimator(model, data):
    """Fit and predict a scikit-learn-style classifier: seconds, accuracy, peak MB."""
    start = time.perf_counter()
    model.fit(data["X_train"], data["y_train"])
    fit_seconds = time.perf_counter() - start
    fit_peak = peak_rss_mb()
    accuracy = model.score(data["X_test"], data["y_test"])
    rows = np.resize(data["X_test"], (PREDICT_ROWS, data["X_test"].shape[1]))
    start = time.perf_counter()
    model.predict_proba(rows)
    predict_seconds = time.perf_counter() - start
    return fit_seconds, accuracy, predict_seconds, fit_peak


def run_optuna_dl(data, epochs, threads):
    from threadpoolctl import threadpool_limits

    from optuna_dl import DeepNetClassifier

    model = DeepNetClassifier(
        n_layers=2,
        n_units=HIDDEN,
        batch_size=BATCH,
        learning_rate=1e-3,
        max_epochs=epochs,
        n_iter_no_change=epochs + 1,
        random_state=0,
    )
    with threadpool_limits(threads):
        return measure_estimator(model, data)


def run_sklearn(data, epochs, threads):
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    from threadpoolctl import threadpool_limits

    model = MLPClassifier(
        hidden_layer_sizes=(HIDDEN, HIDDEN),
        batch_size=BATCH,
        learning_rate_init=1e-3,
        alpha=0.0,
        max_iter=epochs,
        n_iter_no_change=epochs + 1,
        tol=0.0,
        random_state=0,
    )
    with threadpool_limits(threads), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return measure_estimator(model, data)


def run_pytorch(data, epochs, threads):
    import torch
    from torch import nn

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    X = torch.from_numpy(data["X_train"])
    y = torch.from_numpy(data["y_train"].astype(np.int64))
    n_features, n_classes = X.shape[1], int(y.max()) + 1
    model = nn.Sequential(
        nn.Linear(n_features, HIDDEN, bias=False),
        nn.BatchNorm1d(HIDDEN),
        nn.ReLU(),
        nn.Linear(HIDDEN, HIDDEN, bias=False),
        nn.BatchNorm1d(HIDDEN),
        nn.ReLU(),
        nn.Linear(HIDDEN, n_classes),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_function = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(X), generator=generator)
        for begin in range(0, len(X), BATCH):
            batch = order[begin : begin + BATCH]
            if len(batch) < 2:
                continue
            optimizer.zero_grad(set_to_none=True)
            loss = loss_function(model(X[batch]), y[batch])
            loss.backward()
            optimizer.step()
    fit_seconds = time.perf_counter() - start
    fit_peak = peak_rss_mb()
    model.eval()
    with torch.no_grad():
        predicted = model(torch.from_numpy(data["X_test"])).argmax(1).numpy()
        accuracy = float(np.mean(predicted == data["y_test"]))
        rows = torch.from_numpy(np.resize(data["X_test"], (PREDICT_ROWS, data["X_test"].shape[1])))
        start = time.perf_counter()
        torch.softmax(model(rows), dim=1)
        predict_seconds = time.perf_counter() - start
    return fit_seconds, accuracy, predict_seconds, fit_peak


RUNNERS = {"optuna-dl": run_optuna_dl, "sklearn-mlp": run_sklearn, "pytorch": run_pytorch}


def child(args: argparse.Namespace) -> None:
    with np.load(args.data) as archive:
        data = {key: archive[key] for key in archive.files}
    baseline = current_rss_mb()
    fit_seconds, accuracy, predict_seconds, fit_peak = RUNNERS[args.impl](
        data, args.epochs, args.threads
    )
    n_train = len(data["y_train"])
    print(
        json.dumps(
            {
                "samples_per_second": n_train * args.epochs / fit_seconds,
                "epoch_seconds": fit_seconds / args.epochs,
                "accuracy": accuracy,
                "predict_seconds": predict_seconds,
                "peak_mb": fit_peak,
                "training_mb": fit_peak - baseline,
            }
        )
    )


def measure_gemm_peak(threads: int) -> float:
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    a = rng.standard_normal((2048, 2048), dtype=np.float32)
    b = rng.standard_normal((2048, 2048), dtype=np.float32)
    out = np.empty_like(a)
    with threadpool_limits(threads):
        np.matmul(a, b, out=out)
        best = np.inf
        for _ in range(5):
            start = time.perf_counter()
            np.matmul(a, b, out=out)
            best = min(best, time.perf_counter() - start)
    return 2 * 2048**3 / best / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs-w1", type=int, default=30)
    parser.add_argument("--epochs-w2", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs per implementation; the fastest is kept"
    )
    parser.add_argument("--only", choices=IMPLEMENTATIONS, nargs="*", default=IMPLEMENTATIONS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--impl", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--epochs", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    try:
        import torch  # noqa: F401

        available = set(IMPLEMENTATIONS)
    except ImportError:
        available = set(IMPLEMENTATIONS) - {"pytorch"}
        print("pytorch not installed (pip install torch==2.13.0): its rows are skipped")
    peak = measure_gemm_peak(args.threads)
    print(f"float32 GEMM peak, 2048^3, {args.threads} threads: {peak:.0f} GFLOP/s\n")
    with tempfile.TemporaryDirectory() as directory:
        paths = make_workloads(Path(directory))
        for workload, epochs in (("W1", args.epochs_w1), ("W2", args.epochs_w2)):
            with np.load(paths[workload]) as archive:
                n_features = archive["X_train"].shape[1]
                n_classes = int(archive["y_train"].max()) + 1
            results: dict[str, dict] = {}
            # Interleave the implementations and keep each one's fastest run: the
            # machine is noisy, and the fastest run is the least disturbed one.
            for impl in [i for _ in range(args.repeats) for i in args.only if i in available]:
                output = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--child",
                        "--impl",
                        impl,
                        "--data",
                        str(paths[workload]),
                        "--epochs",
                        str(epochs),
                        "--threads",
                        str(args.threads),
                    ],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
                run = json.loads(output.strip().splitlines()[-1])
                best = results.get(impl)
                if best is None or run["samples_per_second"] > best["samples_per_second"]:
                    results[impl] = run
            report(workload, epochs, results, peak, gemm_flops_per_sample(n_features, n_classes))


def report(workload, epochs, results, peak, flops_per_sample) -> None:
    ours = results.get("optuna-dl")
    print(f"{workload}: {epochs} epochs")
    header = (
        f"{'implementation':<13} {'samples/s':>10} {'epoch s':>8} {'accuracy':>8} "
        f"{'predict 100k s':>14} {'peak MB':>8} {'train MB':>8} {'ours/them':>9}"
    )
    print(header)
    print("-" * len(header))
    for impl, r in results.items():
        ratio = ours["samples_per_second"] / r["samples_per_second"] if ours else float("nan")
        print(
            f"{impl:<13} {r['samples_per_second']:>10.0f} {r['epoch_seconds']:>8.3f} "
            f"{r['accuracy']:>8.4f} {r['predict_seconds']:>14.3f} {r['peak_mb']:>8.0f} "
            f"{r['training_mb']:>8.0f} {ratio:>9.2f}"
        )
    if ours:
        achieved = ours["samples_per_second"] * flops_per_sample / 1e9
        print(
            f"optuna-dl GEMM throughput: {achieved:.0f} GFLOP/s = "
            f"{100 * achieved / peak:.0f} % of the measured peak"
        )
    print()


if __name__ == "__main__":
    main()
