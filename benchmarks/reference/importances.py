"""Reference importances from the reference studies, with their own uncertainty.

Reads ``benchmarks/reference/<problem>.npz`` (written by ``run_reference.py``) and
computes, with each evaluator the package offers (PED-ANOVA, fANOVA, mean decrease
in impurity), the importance of every hyperparameter with bootstrap intervals, its
rank with a rank interval and the share of resamples that rank it first. It writes
``benchmarks/reference/reference.json`` (the problems of an earlier run that are
not recomputed are kept) and prints a table.

What is explained, at epoch budget ``k``: the best mean validation score a trial
reached within its first ``k`` epochs (what the study would have recorded as the
trial's value had ``max_epochs`` been ``k``); ``final`` is the trial's value. A
trial that stopped early (patience) keeps its best score at later budgets. Trials
whose training diverged (pruned by the objective) are left out, as Optuna's
evaluators leave out every trial that did not complete; their number is recorded.
Epochs 2, 6 and 18 are the successive-halving rungs of the README study, so
pruning-aware rankings can be compared with the reference at the rung they see.

fANOVA is slow (about 32 s per evaluation on 1000 trials with Optuna's 64 trees):
it runs here with ``--fanova-trees`` trees and ``--fanova-bootstrap`` resamples, at
the ``--fanova-epochs`` budgets only; the JSON records the settings of every entry.
Optuna 5's fANOVA and MDI leave out ``one_minus_beta`` (sampled only with momentum);
PED-ANOVA assesses it on the trials that have it.

Usage::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/reference/importances.py
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.distributions import json_to_distribution
from optuna.importance import (
    FanovaImportanceEvaluator,
    MeanDecreaseImpurityImportanceEvaluator,
    PedAnovaImportanceEvaluator,
)
from optuna.trial import create_trial

from optuna_dl.analysis.importance import ImportanceResult, param_importances

HERE = Path(__file__).resolve().parent


def load(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays of a reference data file and its metadata."""
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files if k != "meta"}
        meta = json.loads(str(data["meta"]))
    return arrays, meta


def value_at(arrays: dict[str, np.ndarray], epoch: int | None) -> np.ndarray:
    """Best mean validation score within the first ``epoch`` epochs (None: the value).

    ``nan`` for trials that did not complete.
    """
    if epoch is None:
        return arrays["value"].copy()
    curve = arrays["learning_curve"][:, :epoch]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-nan rows
        best = np.nanmax(np.where(np.isnan(curve), -np.inf, curve), axis=1)
    best[~np.isfinite(best)] = np.nan
    best[arrays["state"] != 0] = np.nan
    return best


def reference_study(
    arrays: dict[str, np.ndarray], meta: dict[str, Any], values: np.ndarray
) -> optuna.Study:
    """An in-memory study of the trials with a finite value, with ``values`` as values."""
    names = meta["param_names"]
    dists = {k: json_to_distribution(v) for k, v in meta["distributions"].items()}
    trials = []
    for i in np.flatnonzero(np.isfinite(values)):
        params, used = {}, {}
        for j, name in enumerate(names):
            x = arrays["params"][i, j]
            if np.isnan(x):
                continue
            dist = dists[name]
            params[name] = dist.to_external_repr(x)
            used[name] = dist
        trials.append(create_trial(params=params, distributions=used, value=float(values[i])))
    study = optuna.create_study(direction=meta["direction"])
    study.add_trials(trials)
    return study


def summarize(result: ImportanceResult, settings: str) -> dict[str, Any]:
    """The JSON entry of one evaluator's result."""
    first = (
        (result.bootstrap_ranks == 1).mean(axis=0)
        if result.n_bootstrap
        else np.full(len(result.params), np.nan)
    )
    return {
        "evaluator": result.evaluator,
        "settings": settings,
        "n_trials": result.n_trials,
        "n_bootstrap": result.n_bootstrap,
        "confidence": result.confidence,
        "seconds": round(result.seconds, 2),
        "notes": list(result.notes),
        "params": [
            {
                "name": p.name,
                "importance": round(p.importance, 4),
                "interval": [round(p.low, 4), round(p.high, 4)],
                "rank": p.rank,
                "rank_interval": [p.rank_low, p.rank_high],
                "share_ranked_first": round(float(f), 3),
            }
            for p, f in zip(result.params, first)
        ],
    }


def markdown(report: dict[str, Any]) -> str:
    """Markdown tables of ``reference.json``: per problem, the final-value importances
    (one column per evaluator) and the ranking at every budget."""
    lines: list[str] = []
    for problem, entry in report["problems"].items():
        final = entry["by_epoch"]["final"]
        evaluators = list(final)
        header = " | ".join(
            f"{e} (n={final[e]['n_trials']}, B={final[e]['n_bootstrap']})" for e in evaluators
        )
        lines += [
            f"\n{problem}, final value: importance [95 % interval], rank [interval], "
            "share of resamples ranking it first\n"
        ]
        lines += [f"| parameter | {header} |", "|---" * (len(evaluators) + 1) + "|"]
        names = [p["name"] for p in final[evaluators[0]]["params"]]
        names += [
            n
            for e in evaluators
            for n in (p["name"] for p in final[e]["params"])
            if n not in names
        ]
        names = list(dict.fromkeys(names))
        for name in names:
            cells = []
            for e in evaluators:
                p = next((q for q in final[e]["params"] if q["name"] == name), None)
                if p is None:
                    cells.append("not assessed")
                    continue
                low, high = p["interval"]
                rank_low, rank_high = p["rank_interval"]
                cells.append(
                    f"{p['importance']:.2f} [{low:.2f}, {high:.2f}], "
                    f"{p['rank']:g} [{rank_low:g}, {rank_high:g}], "
                    f"{p['share_ranked_first']:.0%}"
                )
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines += [f"\n{problem}, ranking by budget (rank interval):\n"]
        lines += [
            "| budget | " + " | ".join(evaluators) + " |",
            "|---" * (len(evaluators) + 1) + "|",
        ]
        for label, by_evaluator in entry["by_epoch"].items():
            cells = []
            for e in evaluators:
                if e not in by_evaluator:
                    cells.append("")
                    continue
                cells.append(
                    ", ".join(
                        f"{p['name']} [{p['rank_interval'][0]:g}-{p['rank_interval'][1]:g}]"
                        for p in by_evaluator[e]["params"]
                    )
                )
            budget = "final" if label == "final" else f"{label} epochs"
            lines.append(f"| {budget} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", nargs="+", default=["digits", "breast_cancer"])
    parser.add_argument("--epochs", nargs="+", default=["1", "2", "6", "18", "final"])
    parser.add_argument("--evaluators", nargs="+", default=["ped_anova", "mdi", "fanova"])
    parser.add_argument("--n-bootstrap", type=int, default=200, help="PED-ANOVA resamples")
    parser.add_argument("--mdi-trees", type=int, default=64)
    parser.add_argument("--mdi-bootstrap", type=int, default=100)
    parser.add_argument("--fanova-trees", type=int, default=16)
    parser.add_argument("--fanova-bootstrap", type=int, default=20)
    parser.add_argument("--fanova-epochs", nargs="+", default=["2", "final"])
    parser.add_argument("--out", type=Path, default=HERE / "reference.json")
    parser.add_argument(
        "--table-only", action="store_true", help="print the tables of --out and stop"
    )
    args = parser.parse_args(argv)
    if args.table_only:
        print(markdown(json.loads(args.out.read_text())))
        return 0
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    command = "python benchmarks/reference/importances.py " + " ".join(argv or sys.argv[1:])
    report: dict[str, Any] = {
        "explained": "best mean validation score within the first k epochs (final: the value)",
        "problems": {},
    }
    if args.out.exists():  # problems computed by an earlier run are kept
        report["problems"] = json.loads(args.out.read_text())["problems"]
    for problem in args.problems:
        arrays, meta = load(HERE / f"{problem}.npz")
        state = arrays["state"]
        entry: dict[str, Any] = {
            "command": command,
            "data_file": f"benchmarks/reference/{problem}.npz",
            "study_file": meta["study_file"],
            "sampler": meta["sampler"],
            "n_trials_stored": int(len(state)),
            "n_complete": int((state == 0).sum()),
            "n_diverged": int(arrays["diverged"].sum()),
            "n_failed": int((state == 2).sum()),
            "max_epochs": meta["max_epochs"],
            "by_epoch": {},
        }
        print(
            f"\n== {problem}: {entry['n_trials_stored']} trials stored, "
            f"{entry['n_complete']} complete, {entry['n_diverged']} diverged "
            f"({meta['study_file']}, {meta['sampler']})"
        )
        for label in args.epochs:
            epoch = None if label == "final" else int(label)
            study = reference_study(arrays, meta, value_at(arrays, epoch))
            by_evaluator = {}
            for name in args.evaluators:
                if name == "fanova" and label not in args.fanova_epochs:
                    continue
                if name == "fanova":
                    evaluator: Any = FanovaImportanceEvaluator(n_trees=args.fanova_trees, seed=0)
                    n_bootstrap = args.fanova_bootstrap
                    settings = f"n_trees={args.fanova_trees} (Optuna's default: 64)"
                elif name == "mdi":
                    evaluator = MeanDecreaseImpurityImportanceEvaluator(
                        n_trees=args.mdi_trees, seed=0
                    )
                    n_bootstrap = args.mdi_bootstrap
                    settings = f"n_trees={args.mdi_trees}"
                else:
                    evaluator = PedAnovaImportanceEvaluator()
                    n_bootstrap = args.n_bootstrap
                    settings = "Optuna's defaults (target_quantile=0.1, region_quantile=1.0)"
                started = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    result = param_importances(
                        study, evaluator=evaluator, n_bootstrap=n_bootstrap, random_state=0
                    )
                summary = summarize(result, settings)
                summary["evaluator"] = name
                by_evaluator[name] = summary
                cells = "  ".join(
                    f"{p['name']} {p['importance']:.3f} [{p['interval'][0]:.3f},"
                    f"{p['interval'][1]:.3f}] r{p['rank']:g} [{p['rank_interval'][0]:g},"
                    f"{p['rank_interval'][1]:g}]"
                    for p in summary["params"]
                )
                print(
                    f"{problem} epoch {label:>5} {name:9} n={result.n_trials} "
                    f"B={result.n_bootstrap} {time.perf_counter() - started:6.1f}s  {cells}",
                    flush=True,
                )
            entry["by_epoch"][label] = by_evaluator
        report["problems"][problem] = entry
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(markdown(report))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
