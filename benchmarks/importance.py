"""Cost of ranking hyperparameters with bootstrap intervals (a benchmark, not a test).

Builds a synthetic study of the package's default space with
``optuna.trial.create_trial`` + ``study.add_trials`` (the learning rate dominates,
``n_layers`` matters a little, ``one_minus_beta`` is conditional on momentum), then
times, in the same run:

- the peer: ``optuna.importance.get_param_importances`` once (PED-ANOVA, MDI), and
  what a naive bootstrap costs per resample when it builds an in-memory study
  (``create_study`` + ``add_trials``) for every resample;
- ours: :func:`optuna_dl.analysis.param_importances` with the evaluator called on a
  lightweight study-like view per resample.

Target: 1000 trials, 100 PED-ANOVA resamples in <= 5 s.

Run: ``python benchmarks/importance.py [--trials 1000] [--resamples 100]``
"""

from __future__ import annotations

import argparse
import math
import time
import warnings

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.importance import MeanDecreaseImpurityImportanceEvaluator, PedAnovaImportanceEvaluator
from optuna.trial import create_trial

from optuna_dl.analysis import param_importances

SPACE = {
    "learning_rate": FloatDistribution(1e-4, 1.0, log=True),
    "optimizer": CategoricalDistribution(["adam", "momentum"]),
    "n_layers": IntDistribution(1, 4),
    "learning_rate_decay": FloatDistribution(1e-3, 1.0, log=True),
    "one_minus_beta": FloatDistribution(1e-3, 1e-1, log=True),
    "n_units": IntDistribution(16, 512, log=True),
    "log2_batch_size": IntDistribution(5, 9),
}


def synthetic_study(n_trials: int, seed: int = 0) -> optuna.Study:
    """A study whose validation accuracy peaks at learning_rate = 1e-2."""
    rng = np.random.default_rng(seed)
    trials = []
    for _ in range(n_trials):
        params = {
            "learning_rate": float(10 ** rng.uniform(-4, 0)),
            "optimizer": str(rng.choice(["adam", "momentum"])),
            "n_layers": int(rng.integers(1, 5)),
            "learning_rate_decay": float(10 ** rng.uniform(-3, 0)),
            "n_units": int(round(math.exp(rng.uniform(math.log(16), math.log(512))))),
            "log2_batch_size": int(rng.integers(5, 10)),
        }
        if params["optimizer"] == "momentum":
            params["one_minus_beta"] = float(10 ** rng.uniform(-3, -1))
        lr = math.log10(params["learning_rate"])
        value = 0.95 - 0.1 * (lr + 2) ** 2 - 0.02 * params["n_layers"] + 0.01 * rng.normal()
        trials.append(
            create_trial(params=params, distributions={k: SPACE[k] for k in params}, value=value)
        )
    study = optuna.create_study(direction="maximize")
    study.add_trials(trials)
    return study


def _timed(fn, repeat: int = 1) -> tuple[float, object]:
    started = time.perf_counter()
    for _ in range(repeat):
        out = fn()
    return (time.perf_counter() - started) / repeat, out


def _naive_resample(study: optuna.Study, rng: np.random.Generator) -> float:
    """One resample the obvious way: a new in-memory study holding the picked trials."""
    trials = study.get_trials(deepcopy=False)
    picked = rng.integers(0, len(trials), size=len(trials))
    started = time.perf_counter()
    resampled = optuna.create_study(direction="maximize")
    resampled.add_trials([trials[i] for i in picked])
    optuna.importance.get_param_importances(resampled, evaluator=PedAnovaImportanceEvaluator())
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--resamples", type=int, default=100)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.simplefilter("ignore")

    build, study = _timed(lambda: synthetic_study(args.trials))
    n, b = args.trials, args.resamples
    rows = []
    ped_once, _ = _timed(
        lambda: optuna.importance.get_param_importances(
            study, evaluator=PedAnovaImportanceEvaluator()
        ),
        repeat=3,
    )
    rows.append(("Optuna get_param_importances, PED-ANOVA, once", ped_once, "-"))
    mdi_once, _ = _timed(
        lambda: optuna.importance.get_param_importances(
            study, evaluator=MeanDecreaseImpurityImportanceEvaluator(seed=0)
        )
    )
    rows.append(("Optuna get_param_importances, MDI, once", mdi_once, "-"))
    rng = np.random.default_rng(0)
    naive = float(np.mean([_naive_resample(study, rng) for _ in range(5)]))
    rows.append((f"naive bootstrap (new study per resample), x{b} (est.)", naive * (b + 1), "-"))
    ours, result = _timed(lambda: param_importances(study, n_bootstrap=b))
    top = result.params[0]
    rows.append(
        (
            f"optuna_dl param_importances, PED-ANOVA, {b} resamples",
            ours,
            f"{top.name} {top.importance:.2f} [{top.low:.2f}, {top.high:.2f}]",
        )
    )
    mdi_b = max(b // 10, 1)
    ours_mdi, result_mdi = _timed(
        lambda: param_importances(study, evaluator="mdi", n_bootstrap=mdi_b)
    )
    top = result_mdi.params[0]
    rows.append(
        (
            f"optuna_dl param_importances, MDI, {mdi_b} resamples",
            ours_mdi,
            f"{top.name} {top.importance:.2f} [{top.low:.2f}, {top.high:.2f}]",
        )
    )

    print(f"synthetic study: {n} trials, {len(SPACE)} parameters (built in {build:.2f} s)")
    print(f"{'what':<58} {'seconds':>8}  top parameter, importance [95% interval]")
    print("-" * 110)
    for what, seconds, note in rows:
        print(f"{what:<58} {seconds:>8.2f}  {note}")
    print("-" * 110)
    verdict = "meets" if ours <= 5.0 else "MISSES"
    print(f"target: {n} trials x {b} PED-ANOVA resamples <= 5 s: {verdict} ({ours:.2f} s)")
    print("PED-ANOVA ranking with intervals:")
    for p in result.params:
        print(
            f"  {p.name:<22} {p.importance:.3f} [{p.low:.3f}, {p.high:.3f}]  "
            f"rank {p.rank:g} [{p.rank_low:g}, {p.rank_high:g}]"
        )


if __name__ == "__main__":
    main()
