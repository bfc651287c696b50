"""Run the reference studies: many quasi-random, unpruned trials over a study's space.

The hyperparameter ranking a pruned study prints is checked against these studies
(``docs/IMPORTANCE.md``). Each problem is a study file of ``studies/`` taken as it is
(its default search space, folds, ``max_epochs``, ``patience``, seed and the same
:class:`~optuna_dl.tuning.objective.Objective`), with two changes: a scrambled Sobol
sampler instead of TPE and no pruning, so every trial trains to its own end (the
study file's patience still stops a trial that has stalled).

Every trial is stored in ``benchmarks/reference/<name>.npz`` (:func:`save`): sampled
parameters, the per-epoch validation score of each fold, the training loss, the state,
the value and the fit time. The Optuna study itself lives in a journal file outside
the repository, so a stopped run resumes where it stopped (the Sobol sequence
continues from the storage) and the data file is rewritten every ``--every`` trials.

Usage (one process, one BLAS thread; the data files are committed)::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 nice -n 5 \\
        python benchmarks/reference/run_reference.py --until 16:20 \\
        digits:studies/digits.toml:1024 breast_cancer:studies/breast_cancer.toml:1024

Problems run in the order given; each stops at its trial count or at ``--until``
(UTC), whichever comes first. Nothing in the test suite runs this script.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution, distribution_to_json
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from optuna_dl.runs.config import load_config

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
STATES = {TrialState.COMPLETE: 0, TrialState.PRUNED: 1, TrialState.FAIL: 2}


class RecordingScorer:
    """Wraps a scorer and keeps every score it returns, in call order.

    The objective scores each fold once per epoch, folds in order, so the scores of
    one trial reshape to ``(epochs, folds)``.
    """

    def __init__(self, scorer: Any) -> None:
        self.scorer = scorer
        self.scores: list[float] = []

    def __call__(self, *args: Any, **kwargs: Any) -> float:
        score = self.scorer(*args, **kwargs)
        self.scores.append(float(score))
        return score


def save(path: Path, study: optuna.Study, meta: dict[str, Any]) -> int:
    """Write every finished trial of ``study`` to ``path`` (compressed ``.npz``).

    Arrays (``n`` trials, ``E`` = max_epochs, ``F`` folds):

    - ``params`` (n, p) float: sampled values (categoricals as the index of the
      choice), ``nan`` where a conditional parameter was not sampled;
    - ``fold_curves`` (n, E, F) float32: validation score per epoch and fold, ``nan``
      after the trial's last epoch; ``learning_curve`` (n, E) is their mean as the
      objective reported it (float64); ``loss_curve`` (n, E) the mean training loss;
    - ``value`` (n,): the trial's value (``nan`` unless complete); ``state`` (n,)
      0 complete, 1 pruned (training diverged), 2 failed; ``epochs``, ``best_epoch``,
      ``fit_seconds``, ``number``;
    - ``meta``: JSON with the parameter names and distributions, the study file,
      the sampler and when the data were written.
    """
    trials = [t for t in study.get_trials(deepcopy=False) if t.state in STATES]
    names = meta["param_names"]
    dists = meta["distributions"]
    epochs_max, folds = meta["max_epochs"], meta["n_folds"]
    n = len(trials)
    params = np.full((n, len(names)), np.nan)
    fold_curves = np.full((n, epochs_max, folds), np.nan, dtype=np.float32)
    curve = np.full((n, epochs_max), np.nan)
    loss = np.full((n, epochs_max), np.nan, dtype=np.float32)
    value = np.full(n, np.nan)
    state = np.zeros(n, dtype=np.int8)
    epochs = np.zeros(n, dtype=np.int16)
    best_epoch = np.zeros(n, dtype=np.int16)
    seconds = np.full(n, np.nan)
    number = np.zeros(n, dtype=np.int32)
    diverged = np.zeros(n, dtype=bool)
    for i, t in enumerate(trials):
        for j, name in enumerate(names):
            if name in t.params:
                v = t.params[name]
                dist = optuna.distributions.json_to_distribution(dists[name])
                if isinstance(dist, CategoricalDistribution):
                    v = dist.to_internal_repr(v)
                params[i, j] = float(v)
        attrs = t.user_attrs
        lc = attrs.get("learning_curve", [])
        curve[i, : len(lc)] = lc
        lo = attrs.get("loss_curve", [])
        loss[i, : len(lo)] = lo
        fc = np.asarray(attrs.get("fold_curves", []), dtype=np.float32).reshape(-1, folds)
        fold_curves[i, : len(fc)] = fc
        value[i] = t.value if t.state == TrialState.COMPLETE else np.nan
        state[i] = STATES[t.state]
        epochs[i] = attrs.get("epochs", len(lc))
        best_epoch[i] = attrs.get("best_epoch", 0)
        seconds[i] = attrs.get("fit_seconds", np.nan)
        number[i] = t.number
        diverged[i] = "diverged" in attrs
    meta = dict(meta, written=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(
        tmp,
        params=params,
        fold_curves=fold_curves,
        learning_curve=curve,
        loss_curve=loss,
        value=value,
        state=state,
        epochs=epochs,
        best_epoch=best_epoch,
        fit_seconds=seconds,
        number=number,
        diverged=diverged,
        meta=np.array(json.dumps(meta)),
    )
    os.replace(tmp, path)
    return n


def run_problem(
    name: str,
    config_path: Path,
    n_trials: int,
    *,
    until: dt.datetime,
    every: int,
    seed: int,
    journal_dir: Path,
    out_dir: Path,
) -> None:
    """Run (or resume) one reference study until ``n_trials`` or ``until``."""
    config = load_config(config_path)
    X_train, _, y_train, _ = config.load_data()
    objective = config.make_objective(X_train, y_train)
    recorder = RecordingScorer(objective.scorer)
    objective.scorer = recorder
    folds = len(objective.splits)

    def recorded(trial: optuna.Trial) -> float:
        recorder.scores.clear()
        try:
            return objective(trial)
        finally:
            trial.set_user_attr("fold_curves", list(recorder.scores))

    journal_dir.mkdir(parents=True, exist_ok=True)
    storage = JournalStorage(JournalFileBackend(str(journal_dir / f"{name}.journal")))
    sampler = optuna.samplers.QMCSampler(
        qmc_type="sobol", scramble=True, seed=seed, warn_independent_sampling=False
    )
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        direction=config.direction,
        sampler=sampler,
        pruner=optuna.pruners.NopPruner(),
        load_if_exists=True,
    )
    # A trial left RUNNING by a killed run is failed so that it does not count.
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
    distributions = config.space.to_distributions()
    meta = {
        "problem": name,
        "study_file": str(config_path.relative_to(ROOT)),
        "sampler": f"QMCSampler(qmc_type='sobol', scramble=True, seed={seed})",
        "pruner": "NopPruner",
        "direction": config.direction,
        "scoring": config.scoring,
        "max_epochs": config.max_epochs,
        "patience": config.patience,
        "n_folds": folds,
        "n_train_samples": len(y_train),
        "param_names": list(distributions),
        "distributions": {k: distribution_to_json(d) for k, d in distributions.items()},
        "optuna": optuna.__version__,
    }
    out = out_dir / f"{name}.npz"
    done = sum(t.state in STATES for t in study.get_trials(deepcopy=False))
    print(f"{name}: {done} trials already stored; target {n_trials}", flush=True)
    started = time.perf_counter()
    ran = 0
    while done < n_trials and dt.datetime.now(dt.timezone.utc) < until:
        batch = min(every, n_trials - done)
        deadline = (until - dt.datetime.now(dt.timezone.utc)).total_seconds()
        study.optimize(recorded, n_trials=batch, timeout=max(deadline, 1.0))
        done = save(out, study, meta)
        ran += batch
        elapsed = time.perf_counter() - started
        per_trial = elapsed / max(ran, 1)
        eta = dt.datetime.now(dt.timezone.utc) + dt.timedelta(
            seconds=per_trial * (n_trials - done)
        )
        print(
            f"{name}: {done}/{n_trials} trials, {elapsed:.0f} s this run, "
            f"{per_trial:.2f} s/trial, ETA {eta:%H:%M:%S} UTC",
            flush=True,
        )
    size = out.stat().st_size if out.exists() else 0
    print(f"{name}: stopped at {done} trials; {out} ({size / 1e6:.2f} MB)", flush=True)


def _problem(text: str) -> tuple[str, Path, int]:
    name, path, n = text.split(":")
    return name, (ROOT / path).resolve(), int(n)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("problems", nargs="+", type=_problem, help="name:study_file:n_trials")
    parser.add_argument("--until", default="23:59", help="UTC time HH:MM to stop at")
    parser.add_argument("--every", type=int, default=16, help="trials between saves")
    parser.add_argument("--seed", type=int, default=0, help="Sobol scramble seed")
    parser.add_argument(
        "--journal-dir", type=Path, default=Path.home() / ".cache" / "optuna-dl-reference"
    )
    parser.add_argument("--out-dir", type=Path, default=HERE)
    args = parser.parse_args(argv)
    hour, minute = (int(x) for x in args.until.split(":"))
    until = dt.datetime.now(dt.timezone.utc).replace(
        hour=hour, minute=minute, second=0, microsecond=0
    )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message=".*QMCSampler.*")
    warnings.filterwarnings("ignore", message=".*independent sampler.*")
    for name, path, n in args.problems:
        run_problem(
            name,
            path,
            n,
            until=until,
            every=args.every,
            seed=args.seed,
            journal_dir=args.journal_dir,
            out_dir=args.out_dir,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
