"""How close a pruned study's importance ranking comes to the reference ranking.

The reference studies (``benchmarks/reference/``) hold the full learning curve of
every configuration. A pruned study is simulated by drawing its trials at random
from them (random sampling, as the README digits study samples) and replaying each
trial's stored curve epoch by epoch through the study file's own pruner (the README
digits study: successive halving, rungs at epochs 2, 6 and 18, reduction factor 3,
100 trials): Optuna makes the same pruning decisions it would have made had the
networks been trained, for none of the cost. Every candidate ranking of the
simulated study is compared with the reference ranking of the same evaluator
(``reference.json``, final values): top-1 agreement, how often the top parameter is
one the reference itself can rank first (its reference rank interval contains 1),
and Spearman's rho over the parameters both rank, over seeds. Studies with fewer
than 2 usable trials give no ranking and are not counted.

``--printed --sampler study`` mimics a study file whose sampler is not random (the
breast cancer study's TPE): the sampler proposes each configuration in a proposal
study told every replayed outcome, and the nearest unused reference trial on the
sampling scales is replayed (its own parameters recorded). Nearest neighbours among
1024 trials only approximate the proposal, so read it as what the sampler's
concentration does to the ranking, not as the sampler's exact study.

Candidates: ``completed`` (Optuna's evaluators on the completed trials, what a study
prints today), ``first rung`` (every trial's score at the earliest pruning step,
:func:`~optuna_dl.analysis.importance.importances_at_epoch`), ``ped+pruned``,
``rungs`` and ``imputed`` (:mod:`optuna_dl.analysis.pruning_aware`).

Usage::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/importance_accuracy.py \\
        --problem digits --seeds 20
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/importance_accuracy.py \
        --problem digits --seeds 10 --printed [--sampler study] [--n-trials N]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.distributions import (
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    json_to_distribution,
)
from scipy.stats import spearmanr

from optuna_dl.analysis.importance import (
    ImportanceResult,
    importances_at_epoch,
    param_importances,
)
from optuna_dl.analysis.pruning_aware import (
    imputed_final_importances,
    ped_anova_with_pruned,
    rung_weighted_importances,
)
from optuna_dl.runs.config import load_config
from optuna_dl.tuning.pruning import may_prune

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "benchmarks" / "reference"


def _suggest(trial: optuna.Trial, name: str, dist: Any) -> Any:
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, log=dist.log)
    if isinstance(dist, FloatDistribution):
        return trial.suggest_float(name, dist.low, dist.high, log=dist.log)
    raise TypeError(type(dist).__name__)


def _unit(dist: Any, internal: np.ndarray) -> np.ndarray:
    """Internal values on a [0, 1] scale (log scale for log distributions)."""
    if isinstance(dist, CategoricalDistribution):
        return np.asarray(internal, dtype=float)
    low, high = float(dist.low), float(dist.high)
    x = np.asarray(internal, dtype=float)
    if dist.log:
        return (np.log(x) - np.log(low)) / (np.log(high) - np.log(low))
    return (x - low) / (high - low)


def nearest_reference(
    data: dict[str, np.ndarray],
    meta: dict[str, Any],
    params: dict[str, Any],
    used: set[int],
) -> int:
    """The unused reference trial nearest to ``params``: same categorical values and
    the same conditional parameters present, then the least Euclidean distance on the
    sampling scales (each scaled to [0, 1])."""
    names = meta["param_names"]
    dists = {k: json_to_distribution(v) for k, v in meta["distributions"].items()}
    ok = np.ones(len(data["state"]), dtype=bool)
    ok[list(used)] = False
    distance = np.zeros(len(ok))
    for j, name in enumerate(names):
        column = data["params"][:, j]
        if name not in params:
            ok &= np.isnan(column)
            continue
        internal = dists[name].to_internal_repr(params[name])
        ok &= ~np.isnan(column)
        if isinstance(dists[name], CategoricalDistribution):
            ok &= column == internal
        else:
            diff = _unit(dists[name], np.nan_to_num(column, nan=internal))
            distance += (diff - _unit(dists[name], np.array([internal]))[0]) ** 2
    if not ok.any():  # no reference trial matches the categorical values: nearest overall
        ok = np.ones(len(ok), dtype=bool)
        ok[list(used)] = False
    return int(np.flatnonzero(ok)[np.argmin(distance[ok])])


def simulate(
    data: dict[str, np.ndarray],
    meta: dict[str, Any],
    picked: np.ndarray,
    pruner: optuna.pruners.BasePruner,
    sampler: optuna.samplers.BaseSampler | None = None,
) -> optuna.Study:
    """Replay the reference trials ``picked``, in order, through ``pruner``.

    With ``sampler``, the trials are not drawn at random: before each trial
    ``sampler`` proposes a configuration (in a proposal study that is told every
    replayed outcome, pruned trials with their reports), and the unused reference
    trial nearest to it is replayed. ``picked`` then only sets the number of trials.
    The study records the reference trial's own parameters, so every recorded
    configuration has its own learning curve.
    """
    names = meta["param_names"]
    dists = {k: json_to_distribution(v) for k, v in meta["distributions"].items()}
    study = optuna.create_study(
        direction=meta["direction"],
        sampler=optuna.samplers.RandomSampler(seed=0),
        pruner=pruner,
    )
    queue = list(picked)
    proposals = None
    if sampler is not None:
        proposals = optuna.create_study(direction=meta["direction"], sampler=sampler)
        queue = []

    def objective(trial: optuna.Trial) -> float:
        i = queue[trial.number]
        for j, name in enumerate(names):
            if not np.isnan(data["params"][i, j]):
                _suggest(trial, name, dists[name])
        curve = data["learning_curve"][i]
        curve = curve[~np.isnan(curve)]
        for epoch, score in enumerate(curve, start=1):
            trial.report(float(score), epoch)
            if may_prune(pruner, epoch) and trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {epoch}")
        if data["diverged"][i]:
            trial.set_user_attr("diverged", "replayed")
            raise optuna.TrialPruned("diverged")
        return float(np.max(curve))

    def reference_params(i: int) -> dict[str, Any]:
        params = {}
        for j, name in enumerate(names):
            x = data["params"][i, j]
            if not np.isnan(x):
                params[name] = dists[name].to_external_repr(x)
        return params

    if proposals is None:
        for i in picked:
            study.enqueue_trial(reference_params(i))
        study.optimize(objective, n_trials=len(picked))
        return study
    conditional = {"one_minus_beta": ("optimizer", "momentum")}
    for _ in range(len(picked)):
        proposal = proposals.ask()
        params = {}
        for name in names:
            parent = conditional.get(name)
            if parent is not None and params.get(parent[0]) != parent[1]:
                continue
            params[name] = _suggest(proposal, name, dists[name])
        i = nearest_reference(data, meta, params, set(queue))
        queue.append(i)
        study.enqueue_trial(reference_params(i))
        study.optimize(objective, n_trials=1)
        replayed = study.trials[-1]
        for step, value in sorted(replayed.intermediate_values.items()):
            proposal.report(value, step)
        if replayed.state == optuna.trial.TrialState.COMPLETE:
            proposals.tell(proposal, replayed.value)
        else:
            proposals.tell(proposal, state=optuna.trial.TrialState.PRUNED)
    return study


def first_rung(study: optuna.Study) -> int:
    """The earliest step at which a trial was pruned (1 when none was)."""
    steps = [
        max(t.intermediate_values)
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.PRUNED,))
        if t.intermediate_values
    ]
    return min(steps, default=1)


def agreement(result: ImportanceResult, reference: dict[str, Any]) -> tuple[float, float, float]:
    """Top-1 agreement (1 or 0), whether our top parameter can rank first in the
    reference (its reference rank interval contains 1), and Spearman's rho over the
    parameters both rank."""
    ref = {p["name"]: p["importance"] for p in reference["params"]}
    can_lead = {p["name"] for p in reference["params"] if p["rank_interval"][0] == 1}
    ours = {p.name: p.importance for p in result.params}
    common = [n for n in ref if n in ours]
    if not common or not np.all(np.isfinite([ours[n] for n in common])):
        return np.nan, np.nan, np.nan
    top_ref = max(common, key=lambda n: ref[n])
    top_ours = max(common, key=lambda n: ours[n])
    rho = spearmanr([ref[n] for n in common], [ours[n] for n in common]).statistic
    return float(top_ref == top_ours), float(top_ours in can_lead), float(rho)


def printed_ranking(
    args: argparse.Namespace,
    data: dict[str, np.ndarray],
    meta: dict[str, Any],
    reference: dict[str, Any],
    config: Any,
) -> int:
    """Score the ranking a study prints against the reference of the same evaluator.

    Per method: top-1 agreement, median Spearman's rho, calibration (how often a
    parameter's 95 % interval holds the reference value), how often an order the
    statements call settled agrees with the reference (first place and neighbour
    pairs), the trials each ranking rests on, and the wall time of one ranking.
    """
    from optuna_dl.analysis.confidence import rank_confidence
    from optuna_dl.analysis.ranking import study_ranking

    ref = reference["by_epoch"]["final"]["mdi"]
    ref_value = {p["name"]: p["importance"] for p in ref["params"]}
    ref_interval = {p["name"]: p["interval"] for p in ref["params"]}
    ref_top = max(ref_value, key=ref_value.get)
    rows: dict[str, dict[str, list[float]]] = {}
    n_complete: list[int] = []
    started = time.perf_counter()
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        rng = np.random.default_rng(seed)
        picked = rng.choice(len(data["state"]), size=config.n_trials, replace=False)
        sampler = None
        if args.sampler == "study":
            sampler = dataclasses.replace(config, seed=seed).make_sampler()
        study = simulate(data, meta, picked, config.make_pruner(), sampler)
        n_complete.append(
            len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
        )
        for method in ("rungs", "completed"):
            row = rows.setdefault(method, {})
            tic = time.perf_counter()
            result = study_ranking(study, method=method)
            row.setdefault("seconds", []).append(time.perf_counter() - tic)
            row.setdefault("trials", []).append(result.n_trials)
            common = [p for p in result.params if p.name in ref_value]
            if len(common) < 2 or not np.all(np.isfinite([p.importance for p in common])):
                continue
            row.setdefault("top1", []).append(float(common[0].name == ref_top))
            rho = spearmanr(
                [ref_value[p.name] for p in common], [p.importance for p in common]
            ).statistic
            row.setdefault("rho", []).append(float(rho))
            row.setdefault("covered", []).extend(
                float(p.low <= ref_value[p.name] <= p.high) for p in common
            )
            confidence = rank_confidence(result)
            # An order is claimed when the statements call it settled: first place
            # (above every other parameter) and each settled neighbour pair.
            first = result.names[0]
            claims = [
                (pair.upper, pair.lower)
                for pair in confidence.pairs
                if pair.settled and pair.upper in ref_value and pair.lower in ref_value
            ]
            if confidence.settled_top >= 1:
                claims += [(first, name) for name in ref_value if name != first]
            for upper, lower in claims:
                row.setdefault("settled", []).append(float(ref_value[upper] > ref_value[lower]))
                # Contradicted: the reference's own intervals put the pair the other way.
                row.setdefault("contradicted", []).append(
                    float(ref_interval[lower][0] > ref_interval[upper][1])
                )
    sampled = (
        f"sampler {config.sampler['name']} {dict(list(config.sampler.items())[1:])} "
        "(nearest reference trial)"
        if args.sampler == "study"
        else "sampled at random"
    )
    print(
        f"{args.problem}: {args.seeds} simulated studies of {config.n_trials} trials "
        f"({sampled}, pruner {config.pruner['name']}; completed trials per study: min "
        f"{min(n_complete)}, median {int(np.median(n_complete))}, max {max(n_complete)}), "
        f"the printed ranking against the reference's MDI ranking (top: {ref_top}); "
        f"{time.perf_counter() - started:.0f} s"
    )
    print(
        f"{'method':10} {'top-1':>9} {'median rho':>11} {'calibration':>12} "
        f"{'settled orders right':>21} {'contradicted':>13} {'trials':>14} {'s/ranking':>10}"
    )
    for method, row in rows.items():
        top1, rho, covered = (np.array(row.get(k, [])) for k in ("top1", "rho", "covered"))
        settled = np.array(row.get("settled", []))
        contradicted = np.array(row.get("contradicted", []))
        trials = np.array(row["trials"])
        print(
            f"{method:10} {int(top1.sum()):3}/{len(top1):<3}   "
            f"{np.median(rho) if rho.size else float('nan'):9.2f} "
            f"{np.mean(covered) if covered.size else float('nan'):11.2f} "
            f"{int(settled.sum()):10}/{len(settled):<4}   "
            f"{int(contradicted.sum()):6}/{len(contradicted):<4}   "
            f"{np.median(trials):6.0f} [{trials.min()}-{trials.max()}] "
            f"{np.median(row['seconds']):9.2f}"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problem", default="digits")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument(
        "--first-seed", type=int, default=0, help="seeds first-seed, ... (--printed)"
    )
    parser.add_argument("--evaluators", nargs="+", default=["ped_anova", "mdi", "fanova"])
    parser.add_argument("--reference-dir", type=Path, default=REFERENCE)
    parser.add_argument(
        "--n-trials", type=int, help="trials per simulated study (default: the study file's)"
    )
    parser.add_argument(
        "--printed",
        action="store_true",
        help="score only the ranking optuna-dl prints (study_ranking, with its intervals "
        "and statements) and its completed-trials variant",
    )
    parser.add_argument(
        "--sampler",
        choices=("random", "study"),
        default="random",
        help="random: draw the reference trials at random; study: let the study file's "
        "sampler (seeded with the simulation's seed) propose each configuration and replay "
        "the nearest unused reference trial (--printed only)",
    )
    parser.add_argument(
        "--tpe-startup-trials",
        type=int,
        help="with --sampler study: propose with TPESampler(n_startup_trials=N) instead of "
        "the study file's sampler",
    )
    parser.add_argument(
        "--min-resource",
        type=int,
        help="the successive-halving pruner's first rung at this epoch instead of the "
        "study file's",
    )
    parser.add_argument(
        "--reduction-factor",
        type=int,
        help="the successive-halving pruner's reduction factor instead of the study file's",
    )
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.simplefilter("ignore")
    with np.load(args.reference_dir / f"{args.problem}.npz") as f:
        data = {k: f[k] for k in f.files if k != "meta"}
        meta = json.loads(str(f["meta"]))
    reference = json.loads((args.reference_dir / "reference.json").read_text())["problems"][
        args.problem
    ]
    config = load_config(ROOT / meta["study_file"])
    if args.n_trials is not None:
        config = dataclasses.replace(config, n_trials=args.n_trials)
    if args.tpe_startup_trials is not None:
        sampler = {"name": "TPESampler", "n_startup_trials": args.tpe_startup_trials}
        config = dataclasses.replace(config, sampler=sampler)
    for key in ("min_resource", "reduction_factor"):
        if getattr(args, key) is not None:
            pruner = {**config.pruner, key: getattr(args, key)}
            config = dataclasses.replace(config, pruner=pruner)
    n_trials = config.n_trials
    if args.printed:
        return printed_ranking(args, data, meta, reference, config)
    candidates: dict[str, Callable[[optuna.Study, str], ImportanceResult | None]] = {
        "completed": lambda s, e: param_importances(s, evaluator=e, n_bootstrap=0),
        "first rung": lambda s, e: importances_at_epoch(
            s, first_rung(s), evaluator=e, n_bootstrap=0
        ),
        "ped+pruned": lambda s, e: (
            ped_anova_with_pruned(s, n_bootstrap=0) if e == "ped_anova" else None
        ),
        "rungs": lambda s, e: rung_weighted_importances(s, evaluator=e, n_bootstrap=0),
        "imputed": lambda s, e: imputed_final_importances(s, evaluator=e, n_bootstrap=0),
    }
    scores: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    n_complete = []
    started = time.perf_counter()
    for seed in range(args.seeds):
        rng = np.random.default_rng(seed)
        picked = rng.choice(len(data["state"]), size=n_trials, replace=False)
        study = simulate(data, meta, picked, config.make_pruner())
        n_complete.append(
            len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
        )
        for evaluator in args.evaluators:
            ref = reference["by_epoch"]["final"].get(evaluator)
            if ref is None:
                continue
            for name, candidate in candidates.items():
                result = candidate(study, evaluator)
                if result is not None:
                    scores.setdefault((evaluator, name), []).append(agreement(result, ref))
    print(
        f"{args.problem}: {args.seeds} simulated studies of {n_trials} trials "
        f"(pruner {config.pruner['name']}), completed trials per study: "
        f"min {min(n_complete)}, median {int(np.median(n_complete))}, max {max(n_complete)}; "
        f"{time.perf_counter() - started:.0f} s"
    )
    print(
        f"{'evaluator':10} {'candidate':11} {'top-1 agreement':>16} {'top can lead':>14} "
        f"{'Spearman rho mean [min, max]':>30}"
    )
    for (evaluator, name), values in scores.items():
        arr = np.array(values)
        top, lead, rho = arr[:, 0], arr[:, 1], arr[:, 2]
        ok = np.isfinite(rho)
        print(
            f"{evaluator:10} {name:11} {np.nanmean(top):8.2f} ({int(np.nansum(top)):2}/"
            f"{int(ok.sum()):2}) {np.nanmean(lead):6.2f} ({int(np.nansum(lead)):2}/"
            f"{int(ok.sum()):2})   {np.mean(rho[ok]):6.2f} [{np.min(rho[ok]):5.2f}, "
            f"{np.max(rho[ok]):5.2f}]"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
