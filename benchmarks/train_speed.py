"""Training speed of DeepNetClassifier beside scikit-learn's MLPClassifier and PyTorch.

DeepNetClassifier runs twice: "optuna-dl" with the numba kernels (the default) and
"optuna-dl-numpy" with the NumPy reference (``OPTUNA_DL_KERNELS=numpy``); "ours/them"
compares the numba path with each row. Every implementation trains the same network
(2 hidden layers of 256 ReLU units, batch 128, Adam at 1e-3, a fixed number of epochs)
on the same data, each in its own process, all in one run of this script:

- W1: scikit-learn's digits, 1437 training samples, 64 features;
- W2: make_classification(60000, 784, n_informative=100, n_classes=10), standardized,
  float32, 80/20 split.

PyTorch is a peer only (``pip install torch==2.13.0``); without it its rows are skipped.

    python benchmarks/train_speed.py [--epochs-w1 30] [--epochs-w2 3] [--threads 2]
                                     [--repeats 3] [--no-startup] [--no-profile]

Start-up: a first fit (1 epoch of 1024 W2 rows, then predict_proba) in a fresh process
against the same fit repeated in that process, with numba's cache directory empty
(cold: every kernel compiles), then filled (warm), and on the NumPy path. Profile:
seconds per W2 training step spent in each pass, on both paths, one thread.

Peak memory is the child's VmHWM at the end of training (whole process: interpreter,
libraries and data); "train MB" is its growth during training.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

IMPLEMENTATIONS = ("optuna-dl", "optuna-dl-numpy", "sklearn-mlp", "pytorch")
# Environment of each implementation's child process.
ENVIRONMENTS = {"optuna-dl": {"OPTUNA_DL_KERNELS": "numba"}}
ENVIRONMENTS["optuna-dl-numpy"] = {"OPTUNA_DL_KERNELS": "numpy"}
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
    import os

    from threadpoolctl import threadpool_limits

    from optuna_dl import DeepNetClassifier
    from optuna_dl.nn import kernels

    assert kernels.BACKEND == os.environ["OPTUNA_DL_KERNELS"], kernels.BACKEND

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


RUNNERS = {
    "optuna-dl": run_optuna_dl,
    "optuna-dl-numpy": run_optuna_dl,
    "sklearn-mlp": run_sklearn,
    "pytorch": run_pytorch,
}


def startup_child() -> None:
    """First and second fit in this process (see the module docstring)."""
    start = time.perf_counter()
    from optuna_dl import DeepNetClassifier
    from optuna_dl.nn import kernels

    imported = time.perf_counter() - start
    rng = np.random.default_rng(0)
    X = rng.standard_normal((1024, 784), dtype=np.float32)
    y = rng.integers(0, 10, 1024)

    def fit() -> float:
        start = time.perf_counter()
        model = DeepNetClassifier(n_layers=2, n_units=HIDDEN, max_epochs=1, random_state=0)
        model.fit(X, y).predict_proba(X)
        return time.perf_counter() - start

    first, second = fit(), fit()
    print(
        json.dumps(
            {"backend": kernels.BACKEND, "import": imported, "first": first, "second": second}
        )
    )


def profile_child(steps: int = 200) -> None:
    """Seconds per W2 training step in each pass, one BLAS thread."""
    from threadpoolctl import threadpool_limits

    import optuna_dl.nn.losses as losses
    from optuna_dl.nn import kernels
    from optuna_dl.nn.network import Network
    from optuna_dl.nn.optimizers import Adam

    rng = np.random.default_rng(0)
    X = rng.standard_normal((8192, 784), dtype=np.float32)
    y = rng.integers(0, 10, 8192)
    network = Network(784, 10, [HIDDEN, HIDDEN], rng=rng)
    optimizer = Adam()
    seconds: dict[str, float] = {}

    def timed(key, function):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            result = function(*args, **kwargs)
            seconds[key] = seconds.get(key, 0.0) + time.perf_counter() - start
            return result

        return wrapper

    for layer in network.layers:
        kind = type(layer).__name__
        for method in ("forward", "backward", "forward_activation", "backward_activation"):
            if hasattr(layer, method):
                key = f"{kind}.{method}"
                if method.endswith("_activation"):
                    key = f"BatchNorm+Activation.{method.split('_')[0]}"
                setattr(layer, method, timed(key, getattr(layer, method)))
    gather = timed("gather", kernels.take_rows)
    loss = timed("softmax cross-entropy", losses.softmax_cross_entropy)
    update = timed("optimizer (Adam)", optimizer.update)
    buffer = np.empty((BATCH, 784), np.float32)
    with threadpool_limits(1):
        for step in range(steps + 10):
            if step == 10:  # the first steps compile or warm up
                seconds.clear()
                start = time.perf_counter()
            rows = rng.integers(0, len(X), BATCH)
            X_batch = gather(X, rows, buffer)
            _, dlogits = loss(network.forward(X_batch, training=True), y[rows])
            network.backward(dlogits)
            update([network.flat_params], [network.flat_grads], 1e-3)
        total = time.perf_counter() - start
    seconds["total"] = total
    print(json.dumps({"backend": kernels.BACKEND, "steps": steps, "seconds": seconds}))


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
    parser.add_argument("--no-startup", action="store_true", help="skip the start-up table")
    parser.add_argument("--no-profile", action="store_true", help="skip the per-pass profile")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--startup-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--profile-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--impl", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--epochs", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if args.startup_child:
        startup_child()
        return
    if args.profile_child:
        profile_child()
        return

    try:
        import torch  # noqa: F401

        available = set(IMPLEMENTATIONS)
    except ImportError:
        available = set(IMPLEMENTATIONS) - {"pytorch"}
        print("pytorch not installed (pip install torch==2.13.0): its rows are skipped")
    print(
        "The machine may be shared: compare figures within one run only; every row is"
        " the fastest of --repeats runs.\n"
    )
    peak = measure_gemm_peak(args.threads)
    print(f"float32 GEMM peak, 2048^3, {args.threads} threads: {peak:.0f} GFLOP/s\n")
    if not args.no_startup:
        report_startup()
    if not args.no_profile:
        report_profile()
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
                    env={**os.environ, **ENVIRONMENTS.get(impl, {})},
                ).stdout
                run = json.loads(output.strip().splitlines()[-1])
                best = results.get(impl)
                if best is None or run["samples_per_second"] > best["samples_per_second"]:
                    results[impl] = run
            report(workload, epochs, results, peak, gemm_flops_per_sample(n_features, n_classes))


def _run_child(flag: str, environment: dict[str, str]) -> dict:
    output = subprocess.run(
        [sys.executable, __file__, flag],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **environment},
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def report_startup() -> None:
    with tempfile.TemporaryDirectory() as cache:
        runs = [
            (
                "numba, empty cache (cold)",
                {"OPTUNA_DL_KERNELS": "numba", "NUMBA_CACHE_DIR": cache},
            ),
            ("numba, warm cache", {"OPTUNA_DL_KERNELS": "numba", "NUMBA_CACHE_DIR": cache}),
            ("numpy", {"OPTUNA_DL_KERNELS": "numpy"}),
        ]
        results = [(name, _run_child("--startup-child", env)) for name, env in runs]
    print("Start-up: first fit (1 epoch, 1024 W2 rows, predict_proba) in a fresh process")
    header = f"{'path':<26} {'import s':>8} {'first fit s':>11} {'next fit s':>10} {'added s':>8}"
    print(header)
    print("-" * len(header))
    for name, r in results:
        print(
            f"{name:<26} {r['import']:>8.2f} {r['first']:>11.2f} {r['second']:>10.2f} "
            f"{r['first'] - r['second']:>8.2f}"
        )
    print()


def report_profile() -> None:
    results = {
        backend: _run_child("--profile-child", {"OPTUNA_DL_KERNELS": backend})
        for backend in ("numba", "numpy")
    }
    keys = sorted({k for r in results.values() for k in r["seconds"]} - {"total"})
    print("Profile: milliseconds per W2 training step (batch 128, Adam), 1 BLAS thread")
    header = f"{'pass':<32} {'numba ms':>9} {'share':>6} {'numpy ms':>9} {'share':>6}"
    print(header)
    print("-" * len(header))
    for key in [*keys, "total"]:
        cells = []
        for backend in ("numba", "numpy"):
            r = results[backend]
            value = r["seconds"].get(key)
            if value is None:
                cells.append(f"{'-':>9} {'':>6}")
            else:
                share = 100 * value / r["seconds"]["total"]
                cells.append(f"{1e3 * value / r['steps']:>9.3f} {share:>5.0f}%")
        print(f"{key:<32} {cells[0]} {cells[1]}")
    print()


def report(workload, epochs, results, peak, flops_per_sample) -> None:
    ours = results.get("optuna-dl")
    print(f"{workload}: {epochs} epochs")
    header = (
        f"{'implementation':<15} {'samples/s':>10} {'epoch s':>8} {'accuracy':>8} "
        f"{'predict 100k s':>14} {'peak MB':>8} {'train MB':>8} {'ours/them':>9}"
    )
    print(header)
    print("-" * len(header))
    for impl, r in results.items():
        ratio = ours["samples_per_second"] / r["samples_per_second"] if ours else float("nan")
        print(
            f"{impl:<15} {r['samples_per_second']:>10.0f} {r['epoch_seconds']:>8.3f} "
            f"{r['accuracy']:>8.4f} {r['predict_seconds']:>14.3f} {r['peak_mb']:>8.0f} "
            f"{r['training_mb']:>8.0f} {ratio:>9.2f}"
        )
    for impl in ("optuna-dl", "optuna-dl-numpy"):
        if impl in results:
            achieved = results[impl]["samples_per_second"] * flops_per_sample / 1e9
            print(
                f"{impl} GEMM throughput: {achieved:.0f} GFLOP/s = "
                f"{100 * achieved / peak:.0f} % of the measured peak"
            )
    print()


if __name__ == "__main__":
    main()
