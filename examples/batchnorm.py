"""Batch norm makes a deep network train faster and over a wider range of learning rates.

The course notes: normalizing every hidden pre-activation with the mini-batch mean and
variance (then scaling by a learnable ``gamma`` and shifting by ``beta``) keeps each
layer's input distribution stable, which speeds up training and makes the network
less sensitive to the learning rate (and to the initialization).

Measured on digits with the same network (``--layers`` hidden layers of 64 units,
momentum by default) and the same budget (``--epochs`` epochs, batch 64) with and
without batch norm, over a sweep of learning rates and several seeds: the epochs
needed to reach a target validation accuracy (0.95), the range of learning rates that
still train (reach 0.90) and that reach the target, and the learning curves. Nothing
else changes between the arms (same 80/20 split, same seed for initialization and
shuffling).

A third arm measures a pitfall found while writing this example: batch norm with a
last mini-batch of 3 rows. ``DeepNetClassifier`` merges a last batch of 1 row into the
previous one but trains on any other remainder as a batch of its own; the statistics
of 3 rows are degenerate, and that one step per epoch is enough to wreck training.
The arm trains on the first ``21 * 64 + 3`` training rows (1437 rows give a last
batch of 29, harmless).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
from _common import (
    Stopwatch,
    Tables,
    digits,
    make_parser,
    mean_std,
    paragraph,
    write_page,
)
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from optuna_dl import DeepNetClassifier, DivergenceWarning

BATCH = 64


@dataclass(frozen=True)
class Arm:
    name: str
    batch_norm: bool
    last_batch: int | None  # None: all training rows; k: trim them to leave k in the last batch
    color: str
    dash: str


ARMS = (
    Arm("batch norm", True, None, "#1f77b4", "solid"),
    Arm("no batch norm", False, None, "#d62728", "dash"),
    Arm("batch norm, last batch of 3", True, 3, "#9467bd", "dot"),
)


@dataclass(frozen=True)
class Run:
    """One network trained epoch by epoch."""

    arm: str
    learning_rate: float
    seed: int
    curve: tuple[float, ...]  # validation accuracy after each epoch
    diverged: bool
    seconds: float

    def epochs_to(self, target: float) -> int | None:
        """First epoch whose validation accuracy reaches ``target`` (None: never)."""
        for epoch, score in enumerate(self.curve, start=1):
            if score >= target:
                return epoch
        return None

    @property
    def best(self) -> float:
        """Best validation accuracy (0 when the first epoch already diverged)."""
        return max(self.curve) if self.curve else 0.0


def split(seed: int):
    """Standardized 80/20 stratified train/validation split of digits."""
    X, y = digits()
    X_train, X_val, y_train, y_val = train_test_split(
        X, y, test_size=0.2, stratify=y, random_state=seed
    )
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_val), y_train, y_val


def rows_for(arm: Arm, n: int) -> int:
    """Training rows of ``arm``: all, or the most that leave ``last_batch`` at the end."""
    if arm.last_batch is None:
        return n
    return (n - arm.last_batch) // BATCH * BATCH + arm.last_batch


def train(data, arm: Arm, learning_rate: float, seed: int, args) -> Run:
    """``args.epochs`` calls of ``partial_fit`` (one epoch each), scored after each."""
    X_train, X_val, y_train, y_val = data
    n = rows_for(arm, len(y_train))
    X_train, y_train = X_train[:n], y_train[:n]
    model = DeepNetClassifier(
        n_layers=args.layers,
        n_units=64,
        batch_norm=arm.batch_norm,
        optimizer=args.optimizer,
        learning_rate=learning_rate,
        batch_size=BATCH,
        random_state=seed,
    )
    classes = np.unique(y_val)
    curve: list[float] = []
    diverged = False
    seconds = 0.0
    for _ in range(args.epochs):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", DivergenceWarning)
            model.partial_fit(X_train, y_train, classes=classes)
        if any(issubclass(w.category, DivergenceWarning) for w in caught):
            diverged = True
            break
        seconds += model.history_[-1].seconds
        curve.append(float(model.score(X_val, y_val)))
    return Run(arm.name, learning_rate, seed, tuple(curve), diverged, seconds)


def sweep(args, learning_rates: list[float], seeds: list[int]) -> list[Run]:
    runs = []
    for seed in seeds:
        data = split(seed)
        for learning_rate in learning_rates:
            for arm in ARMS:
                runs.append(train(data, arm, learning_rate, seed, args))
        print(f"seed {seed} done", flush=True)
    return runs


def select(runs: list[Run], arm: Arm, learning_rate: float | None = None) -> list[Run]:
    return [
        r
        for r in runs
        if r.arm == arm.name and (learning_rate is None or r.learning_rate == learning_rate)
    ]


def epochs_cell(group: list[Run], target: float) -> str:
    """Median epochs to the target over the seeds that reached it, and how many did."""
    reached = [e for e in (r.epochs_to(target) for r in group) if e is not None]
    if not reached:
        return "never"
    return f"{np.median(reached):g} ({len(reached)}/{len(group)})"


def outcome_cell(group: list[Run]) -> str:
    diverged = sum(r.diverged for r in group)
    if all(not r.curve for r in group):
        return "diverged in epoch 1"
    cell = mean_std([r.best for r in group], 3)
    return cell + (f", {diverged} diverged" if diverged else "")


def rate_range(runs: list[Run], arm: Arm, learning_rates: list[float], target: float) -> str:
    """Learning rates at which every seed reaches ``target`` within the budget."""
    ok = [
        lr
        for lr in learning_rates
        if all(r.epochs_to(target) is not None for r in select(runs, arm, lr))
    ]
    if not ok:
        return "none"
    return f"{min(ok):g} to {max(ok):g} ({len(ok)} of {len(learning_rates)})"


def fastest(runs: list[Run], arm: Arm, learning_rates: list[float], target: float) -> str:
    """The fewest median epochs to the target over the rates that reach it in every seed."""
    medians = []
    for lr in learning_rates:
        epochs = [r.epochs_to(target) for r in select(runs, arm, lr)]
        if epochs and all(e is not None for e in epochs):
            medians.append((float(np.median(epochs)), lr))
    if not medians:
        return "never"
    epochs, lr = min(medians)
    return f"{epochs:g} (learning rate {lr:g})"


def ms_per_epoch(runs: list[Run]) -> float:
    epochs = sum(len(r.curve) for r in runs)
    return 1000 * sum(r.seconds for r in runs) / max(epochs, 1)


def report(runs: list[Run], learning_rates: list[float], args, tables: Tables) -> None:
    rows = []
    for lr in learning_rates:
        row = [f"{lr:.3g}"]
        for arm in ARMS:
            group = select(runs, arm, lr)
            row += [outcome_cell(group), epochs_cell(group, args.target)]
        rows.append(row)
    headers = ["learning rate"]
    for arm in ARMS:
        headers += [f"{arm.name}: best acc.", "epochs"]
    tables.add(
        f"Best validation accuracy in {args.epochs} epochs (mean ± std over seeds) and epochs "
        f"to reach {args.target:g} (median over the seeds that reached it)",
        headers,
        rows,
    )
    summary = [
        [
            arm.name,
            rate_range(runs, arm, learning_rates, args.trains),
            rate_range(runs, arm, learning_rates, args.target),
            fastest(runs, arm, learning_rates, args.target),
            f"{max(r.best for r in select(runs, arm)):.4f}",
            f"{ms_per_epoch(select(runs, arm)):.1f}",
        ]
        for arm in ARMS
    ]
    tables.add(
        f"Summary ({args.layers} hidden layers, {args.optimizer}, {args.epochs} epochs, "
        f"{len({r.seed for r in runs})} seed(s))",
        [
            "arm",
            f"learning rates that train (>= {args.trains:g} in every seed)",
            f"learning rates reaching {args.target:g} in every seed",
            "fewest epochs to the target (median over seeds, best rate)",
            "best accuracy",
            "ms per epoch",
        ],
        summary,
    )


def figures(runs: list[Run], learning_rates: list[float], args) -> list[go.Figure]:
    best = go.Figure()
    for arm in ARMS:
        means = [np.mean([r.best for r in select(runs, arm, lr)]) for lr in learning_rates]
        best.add_trace(
            go.Scatter(
                x=learning_rates,
                y=means,
                mode="lines+markers",
                name=arm.name,
                line={"color": arm.color, "dash": arm.dash},
            )
        )
    best.add_hline(y=args.target, line={"color": "#999", "dash": "dot"})
    best.update_layout(
        title=f"Best validation accuracy within {args.epochs} epochs (mean over seeds)",
        xaxis_title="learning rate",
        yaxis_title="best validation accuracy",
    )
    best.update_xaxes(type="log")

    curves = go.Figure()
    for lr in learning_rates:
        for arm in ARMS:
            group = [r.curve for r in select(runs, arm, lr) if r.curve]
            if not group:
                continue
            length = min(len(c) for c in group)
            curves.add_trace(
                go.Scatter(
                    x=list(range(1, length + 1)),
                    y=np.mean([c[:length] for c in group], axis=0),
                    mode="lines",
                    name=f"lr {lr:.3g}, {arm.name}",
                    line={"color": arm.color, "dash": arm.dash},
                    legendgroup=arm.name,
                    visible=True if 0.01 <= lr <= 1 else "legendonly",
                )
            )
    curves.add_hline(y=args.target, line={"color": "#999", "dash": "dot"})
    curves.update_layout(
        title="Learning curves (mean over seeds); click the legend to show other rates",
        xaxis_title="epoch",
        yaxis_title="validation accuracy",
        height=620,
    )
    return [best, curves]


def main() -> None:
    parser = make_parser(__doc__)
    parser.add_argument("--epochs", type=int, default=30, help="epochs per run (30)")
    parser.add_argument("--seeds", type=int, default=3, help="repetitions (3)")
    parser.add_argument("--layers", type=int, default=4, help="hidden layers (4)")
    parser.add_argument(
        "--optimizer", default="momentum", choices=("sgd", "momentum", "rmsprop", "adam")
    )
    parser.add_argument("--target", type=float, default=0.95, help="validation accuracy (0.95)")
    parser.add_argument(
        "--trains", type=float, default=0.90, help="accuracy that counts as training (0.90)"
    )
    args = parser.parse_args()
    learning_rates = [float(v) for v in np.logspace(-3, 1, 9)]
    if args.quick:
        args.epochs, args.seeds = 3, 1
        learning_rates = [1e-2, 1.0]
    clock = Stopwatch()
    seeds = list(range(args.seed, args.seed + args.seeds))
    runs = sweep(args, learning_rates, seeds)
    tables = Tables()
    report(runs, learning_rates, args, tables)
    write_page(
        args.out / "batchnorm.html",
        "With and without batch norm",
        paragraph(__doc__),
        figures(runs, learning_rates, args),
        tables,
        [
            "Timing: ms per epoch is wall time on a machine shared with other jobs; "
            "compare epochs, not seconds.",
            "The third arm trains on 1347 of the 1437 training rows so that its last "
            "mini-batch has 3 rows (21 x 64 + 3).",
        ],
    )
    clock.report()


if __name__ == "__main__":
    main()
