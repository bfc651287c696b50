"""Pandas or caviar: babysit one model, or train many in parallel, for the same wall clock.

The course notes: with little compute, babysit one model ("panda"): watch its
learning curve every epoch and nudge the hyperparameters, e.g. lower the learning
rate when the curve flattens. With enough compute, train many models in parallel
("caviar") and keep the best. On a 2-core machine, which gets further in the same
wall-clock time?

Pandas here is the package's babysit module (``optuna_dl.runs.babysit.babysit``, what
``optuna-dl babysit`` runs), driven by a scripted babysitter standing in for the
person: train ``--chunk`` epochs, look at the validation curve, and resume from the
last checkpoint with the learning rate divided by 3 when the chunk did not improve
the best score (by 10 when it diverged), until the budget is spent or a plateau at
a learning rate below 1e-5 says the model has converged. It uses one process.

Caviar is ``optuna-dl run STUDY --workers 2 --timeout T`` in a subprocess: two worker
processes on a shared SQLite study, TPE sampling and median pruning over the default
space (tiers 1-3, at most 128 units).

Both use the same study definition (digits, 20 % test set held out, the same 80/20
train/validation split of the rest, at most 30 epochs per trial). Measured: the best
validation accuracy reached within the budget (caviar: trials completed within the
budget, worker start-up included), models and epochs trained, and the test accuracy
of each side's best model. The machine is shared with other jobs, so wall-clock
budgets buy less than they would on an idle one; compare the two sides of one run.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import plotly.graph_objects as go
from _common import Stopwatch, Tables, make_parser, paragraph, quiet_optuna, write_page
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from optuna_dl import DeepNetClassifier
from optuna_dl.runs.babysit import babysit
from optuna_dl.runs.config import StudyConfig, load_config
from optuna_dl.runs.export import refit_best

STUDY = """\
name = "{name}"
direction = "maximize"
n_trials = 100000       # the timeout ends the run
seed = {seed}

[data]
source = "digits"
test_fraction = 0.2

[search]
validation_fraction = 0.2
max_epochs = 30
patience = 5
max_tier = 3

[space.n_units]
high = 128

[sampler]
name = "TPESampler"
n_startup_trials = 8

[pruner]
name = "MedianPruner"
n_startup_trials = 5
n_warmup_steps = 3
"""

#: The babysitter's starting point: the estimator's architecture defaults, Adam, and a
#: learning rate on the high side so that there is something to babysit.
START = {"n_layers": 2, "n_units": 128, "optimizer": "adam", "learning_rate": 0.03}
#: Below this learning rate a plateau means the model has converged: the babysitter stops.
MIN_RATE = 1e-5


def write_study(folder: Path, name: str, seed: int) -> StudyConfig:
    path = folder / f"{name}.toml"
    path.write_text(STUDY.format(name=name, seed=seed), encoding="utf-8")
    return load_config(path)


# ------------------------------------------------------------------ pandas
@dataclass
class Pandas:
    """What the babysitter saw and did."""

    times: list[float] = field(default_factory=list)  # seconds since start, per epoch
    scores: list[float] = field(default_factory=list)  # validation accuracy, per epoch
    rates: list[float] = field(default_factory=list)  # learning rate, per epoch
    decisions: list[tuple[int, str]] = field(default_factory=list)  # (epoch, what)
    best: float = -np.inf
    best_checkpoint: Path | None = None
    call_seconds: list[float] = field(default_factory=list)  # wall time of each babysit call
    stopped: float | None = None  # seconds, when the babysitter stopped before the budget

    @property
    def calls(self) -> int:
        return len(self.call_seconds)


def babysitter(config: StudyConfig, budget: float, chunk: int, folder: Path) -> Pandas:
    """Chunks of ``chunk`` epochs until ``budget`` seconds have passed."""
    seen = Pandas()
    started = time.perf_counter()
    settings: dict[str, Any] = dict(START)
    rate = START["learning_rate"]
    checkpoint: Path | None = None

    def watch(line: str) -> None:  # babysit prints one line per epoch, "epoch ..."
        if line.startswith("epoch"):
            seen.times.append(time.perf_counter() - started)
            seen.rates.append(rate)

    while time.perf_counter() - started < budget:
        call_started = time.perf_counter()
        summary = babysit(
            config,
            settings=settings,
            resume=checkpoint,
            epochs=chunk,
            checkpoint_dir=folder / "checkpoints",
            out=watch,
        )
        seen.call_seconds.append(time.perf_counter() - call_started)
        trial = optuna.load_study(study_name=config.name, storage=config.storage).trials[
            summary["trial"]
        ]
        curve = list(trial.user_attrs.get("learning_curve", []))
        seen.scores.extend(curve)
        epoch = summary["epochs"]
        if summary["checkpoint"] is not None:
            checkpoint = Path(summary["checkpoint"])
        if "diverged" in trial.user_attrs:
            rate /= 10
            seen.decisions.append((epoch, f"diverged: learning rate / 10 -> {rate:.3g}"))
        elif curve and max(curve) > seen.best + 1e-4:
            seen.best = max(curve)
            seen.best_checkpoint = (
                folder
                / "checkpoints"
                / f"trial-{trial.number}-epoch-{summary['best_epoch']:04d}.npz"
            )
        elif rate / 3 < MIN_RATE:
            seen.decisions.append((epoch, "plateau at the lowest learning rate: converged, stop"))
            seen.stopped = time.perf_counter() - started
            break
        else:
            rate /= 3
            seen.decisions.append((epoch, f"plateau: learning rate / 3 -> {rate:.3g}"))
        settings = {"learning_rate": rate}
    return seen


def pandas_test_accuracy(config: StudyConfig, checkpoint: Path) -> float:
    """The checkpoint takes features standardized on the training rows; redo that."""
    X_train, X_test, y_train, y_test = config.load_data()
    train, _ = train_test_split(
        np.arange(len(y_train)),
        test_size=config.validation_fraction,
        stratify=y_train,
        random_state=config.seed,
    )
    scaler = StandardScaler().fit(X_train[np.sort(train)])
    model = DeepNetClassifier.load(checkpoint)
    return float(model.score(scaler.transform(X_test), y_test))


# ------------------------------------------------------------------ caviar
@dataclass
class Caviar:
    study: optuna.Study
    started: float  # epoch seconds when the command started
    seconds: float  # wall time of the whole command (report writing included)
    output: str


def caviar(config: StudyConfig, budget: float, workers: int) -> Caviar:
    command = [
        sys.executable,
        "-m",
        "optuna_dl.cli",
        "run",
        str(config.path),
        "--workers",
        str(workers),
        "--timeout",
        f"{budget:g}",
        "--quiet",
    ]
    started = time.time()
    clock = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - clock
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
    study = optuna.load_study(study_name=config.name, storage=config.storage)
    return Caviar(study, started, seconds, done.stdout)


def completed_by(result: Caviar, budget: float) -> list[tuple[float, optuna.trial.FrozenTrial]]:
    """``(seconds since the command started, trial)`` of each completed trial, in order."""
    rows = [
        (t.datetime_complete.timestamp() - result.started, t)
        for t in result.study.trials
        if t.state == optuna.trial.TrialState.COMPLETE
    ]
    rows.sort(key=lambda r: r[0])
    return [r for r in rows if r[0] <= budget]


# ------------------------------------------------------------------ report
def _seconds(values: list[float]) -> str:
    return f"{values[0]:.1f}" if values else "-"


def report(pandas: Pandas, result: Caviar, args, tables: Tables, folder: Path) -> None:
    config_p = load_config(folder / "pandas.toml")
    config_c = load_config(folder / "caviar.toml")
    within = completed_by(result, args.budget)
    late = not within  # no trial completed within the budget: show the first one after it
    within = within or completed_by(result, float("inf"))[:1]
    best_trial = max((t for _, t in within), key=lambda t: t.value)
    X_train, X_test, y_train, y_test = config_c.load_data()
    _, caviar_test = refit_best(config_c, best_trial, X_train, y_train, X_test, y_test)
    trials = result.study.trials
    states = [t.state.name for t in trials]
    epochs = sum(int(t.user_attrs.get("epochs", 0)) for t in trials)
    pandas_test = (
        pandas_test_accuracy(config_p, pandas.best_checkpoint) if pandas.best_checkpoint else None
    )
    tables.add(
        f"Same wall-clock budget: {args.budget:g} s (machine shared with other jobs)",
        [
            "side",
            "processes",
            "models",
            "epochs trained",
            "best validation acc. within budget",
            "test acc. of that model",
        ],
        [
            [
                "pandas (babysit)",
                "1",
                f"1 ({pandas.calls} babysit calls, {len(pandas.decisions)} changes)",
                str(len(pandas.scores)),
                f"{pandas.best:.4f}",
                f"{pandas_test:.4f}" if pandas_test is not None else "-",
            ],
            [
                f"caviar (run --workers {args.workers})",
                str(args.workers),
                f"{len(trials)} ({states.count('COMPLETE')} complete, "
                f"{states.count('PRUNED')} pruned)",
                str(epochs),
                f"{best_trial.value:.4f} (trial {best_trial.number}"
                + (", the first to complete, after the budget)" if late else ")"),
                f"{caviar_test:.4f}",
            ],
        ],
    )
    first = min((s for s, _ in within), default=float("nan"))
    everything = completed_by(result, float("inf"))
    last = max((s for s, _ in everything), default=float("nan"))
    rows = [
        ["pandas", "first epoch finished", _seconds(pandas.times[:1])],
        ["pandas", "last epoch finished", _seconds(pandas.times[-1:])],
        ["pandas", f"first babysit call ({args.chunk} epochs)", _seconds(pandas.call_seconds[:1])],
        ["pandas", "last babysit call", _seconds(pandas.call_seconds[-1:])],
        [
            "pandas",
            "epochs per second",
            f"{len(pandas.scores) / max(pandas.times[-1:] or [1]):.1f}",
        ],
        ["caviar", "first trial completed", f"{first:.1f}"],
        ["caviar", "last trial completed", f"{last:.1f}"],
        ["caviar", "epochs per second (all workers)", f"{epochs / last:.1f}"],
        ["caviar", "whole command (start-up, trials, report)", f"{result.seconds:.1f}"],
    ]
    if pandas.stopped is not None:
        rows.insert(2, ["pandas", "babysitter stopped: converged", f"{pandas.stopped:.1f}"])
    if pandas.times:
        by_then = [t.value for s, t in everything if s <= pandas.times[-1]]
        rows.append(
            [
                "caviar",
                f"best validation acc. completed by {pandas.times[-1]:.1f} s (pandas' last epoch)",
                f"{max(by_then):.4f}" if by_then else "none completed",
            ]
        )
    tables.add(
        "Where the time went (seconds since that side started)", ["side", "what", "value"], rows
    )
    tables.add(
        "The babysitter's decisions",
        ["after epoch", "decision"],
        [[str(e), d] for e, d in pandas.decisions] or [["-", "no change needed"]],
    )
    params = best_trial.user_attrs.get("estimator_params", {})
    tables.add(
        "Caviar's best configuration",
        ["parameter", "value"],
        [[k, f"{v:.4g}" if isinstance(v, float) else str(v)] for k, v in params.items()],
    )
    top = sorted((t for _, t in within), key=lambda t: -t.value)[:5]
    tests = [refit_best(config_c, t, X_train, y_train, X_test, y_test)[1] for t in top]
    tables.add(
        "Caviar's best trials within the budget: validation accuracy, and test accuracy "
        "after the refit `optuna-dl export` does (all search data, the trial's best epoch count)",
        ["trial", "validation acc.", "test acc.", "parameters"],
        [
            [
                str(t.number),
                f"{t.value:.4f}",
                f"{test:.4f}",
                ", ".join(
                    f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in t.user_attrs.get("estimator_params", {}).items()
                ),
            ]
            for t, test in zip(top, tests)
        ],
    )


def figures(pandas: Pandas, result: Caviar, args) -> list[go.Figure]:
    race = go.Figure()
    race.add_trace(
        go.Scatter(
            x=pandas.times,
            y=list(np.maximum.accumulate(pandas.scores)) if pandas.scores else [],
            mode="lines+markers",
            name="pandas: best so far",
            line={"color": "#1f77b4", "shape": "hv"},
        )
    )
    rows = completed_by(result, float("inf"))
    race.add_trace(
        go.Scatter(
            x=[s for s, _ in rows],
            y=list(np.maximum.accumulate([t.value for _, t in rows])),
            mode="lines+markers",
            name="caviar: best completed trial so far",
            line={"color": "#d62728", "shape": "hv"},
        )
    )
    race.add_vline(x=args.budget, line={"color": "#999", "dash": "dot"})
    race.update_layout(
        title="Best validation accuracy against wall-clock time",
        xaxis_title="seconds since start",
        yaxis_title="validation accuracy",
    )
    curve = go.Figure()
    epochs = list(range(1, len(pandas.scores) + 1))
    curve.add_trace(go.Scatter(x=epochs, y=pandas.scores, mode="lines+markers", name="pandas"))
    curve.add_trace(
        go.Scatter(
            x=epochs,
            y=pandas.rates[: len(epochs)],
            mode="lines",
            name="learning rate",
            yaxis="y2",
            line={"dash": "dot", "shape": "hv"},
        )
    )
    curve.update_layout(
        title="The babysat model: validation accuracy and learning rate per epoch",
        xaxis_title="epoch",
        yaxis={"title": "validation accuracy"},
        yaxis2={"title": "learning rate", "type": "log", "overlaying": "y", "side": "right"},
    )
    return [race, curve]


def main() -> None:
    parser = make_parser(__doc__)
    parser.add_argument("--budget", type=float, default=40.0, help="seconds per side (40)")
    parser.add_argument("--workers", type=int, default=2, help="caviar processes (2)")
    parser.add_argument("--chunk", type=int, default=3, help="epochs between looks (3)")
    args = parser.parse_args()
    if args.quick:
        args.budget, args.chunk = 3.0, 2
    quiet_optuna()
    clock = Stopwatch()
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        pandas = babysitter(
            write_study(folder, "pandas", args.seed), args.budget, args.chunk, folder
        )
        print(f"pandas: {len(pandas.scores)} epochs, best {pandas.best:.4f}", flush=True)
        result = caviar(write_study(folder, "caviar", args.seed), args.budget, args.workers)
        print(f"caviar: {len(result.study.trials)} trials, best {result.study.best_value:.4f}")
        tables = Tables()
        report(pandas, result, args, tables, folder)
    write_page(
        args.out / "pandas_vs_caviar.html",
        "Pandas vs caviar",
        paragraph(__doc__),
        figures(pandas, result, args),
        tables,
    )
    clock.report()


if __name__ == "__main__":
    main()
