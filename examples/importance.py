"""The course's priority tiers: learning rate first; layers, decay and momentum next; units after.

The course notes rank the hyperparameters: the learning rate matters most (tier 1);
the number of layers, the learning-rate decay and momentum's ``beta`` come second
(tier 2, with the optimizer); the number of hidden units and the mini-batch size third
(tier 3); Adam's ``beta1``, ``beta2`` and ``epsilon`` are "not important" (tier 4).

Measured on digits: a random-search study over ``SearchSpace.default()`` (tiers 1-3;
``--max-tier 4`` adds Adam's coefficients), then ``optuna_dl.analysis``: PED-ANOVA
and MDI importances with bootstrap intervals of the importance and of the rank, and
Spearman's rho between the prior tiers and the measured ranks (1 = the notes' order
exactly), with its bootstrap interval. Random sampling, not TPE, so that the trials
cover the space evenly and the importances are not those of the region TPE zoomed
into; no pruning, so every trial completes and counts. The number of units is capped
(``--max-units``) to keep the study within its time budget.
"""

from __future__ import annotations

import math
import warnings

import optuna
from _common import Stopwatch, Tables, digits, make_parser, quiet_optuna
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from optuna_dl import DeepNetClassifier, Objective, SearchSpace
from optuna_dl.analysis import (
    ImportanceResult,
    InsufficientTrialsWarning,
    PriorComparison,
    compare_with_prior,
    param_importances,
    write_report,
)


def make_space(max_tier: int, max_units: int) -> SearchSpace:
    """The default space of tiers ``<= max_tier`` with ``n_units`` capped."""
    return SearchSpace.default(max_tier=max_tier).override("n_units", high=max_units)


def run_study(space: SearchSpace, n_trials: int, epochs: int, seed: int) -> optuna.Study:
    X, y = digits()
    objective = Objective(
        X,
        y,
        space=space,
        estimator=make_pipeline(StandardScaler(), DeepNetClassifier()),
        validation_fraction=0.2,
        max_epochs=epochs,
        patience=5,
        random_state=seed,
    )
    study = optuna.create_study(
        study_name="importance",
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=seed),
        pruner=optuna.pruners.NopPruner(),
    )
    study.optimize(objective, n_trials=n_trials)
    return study


def interval(low: float, high: float, digits: int = 2) -> str:
    if math.isnan(low) or math.isnan(high):
        return "-"
    return f"[{low:.{digits}f}, {high:.{digits}f}]"


def importance_tables(
    results: dict[str, ImportanceResult], comparison: PriorComparison, tables: Tables
) -> None:
    ped = results["ped_anova"]
    other = {name: r for name, r in results.items() if name != "ped_anova"}
    rows = []
    for row in comparison.rows:
        cells = [row.name, str(row.tier) if row.tier is not None else "-"]
        if row.name in ped.names:
            p = ped.get(row.name)
            cells += [f"{p.importance:.3f}", interval(p.low, p.high), f"{p.rank:g}"]
            cells.append(interval(p.rank_low, p.rank_high, 0))
        else:
            cells += ["-"] * 4
        for result in other.values():
            cells.append(f"{result.get(row.name).rank:g}" if row.name in result.names else "-")
        rows.append(cells)
    tables.add(
        f"Prior tier against measured rank ({ped.n_trials} completed trials, "
        f"{ped.n_bootstrap} bootstrap resamples, 95% intervals)",
        [
            "parameter",
            "tier",
            "PED-ANOVA importance",
            "interval",
            "rank",
            "rank interval",
            *(f"{name} rank" for name in other),
        ],
        rows,
    )
    agreement = [
        [
            "PED-ANOVA",
            f"{comparison.rho:.2f}" if not math.isnan(comparison.rho) else "-",
            interval(comparison.rho_low, comparison.rho_high),
            str(comparison.n_common),
            comparison.reason or "",
        ]
    ]
    for name, result in other.items():
        c = compare_with_prior(result, comparison_tiers(comparison))
        agreement.append(
            [
                name,
                f"{c.rho:.2f}" if not math.isnan(c.rho) else "-",
                interval(c.rho_low, c.rho_high),
                str(c.n_common),
                c.reason or "",
            ]
        )
    tables.add(
        "Agreement with the notes: Spearman's rho between tier and measured rank",
        ["evaluator", "rho", "95% interval", "parameters compared", "note"],
        agreement,
    )


def comparison_tiers(comparison: PriorComparison) -> dict[str, int]:
    return {r.name: r.tier for r in comparison.rows if r.tier is not None}


def best_table(study: optuna.Study, tables: Tables) -> None:
    done = sorted((t for t in study.trials if t.value is not None), key=lambda t: -float(t.value))[
        :5
    ]
    rows = [
        [
            t.number,
            f"{t.value:.4f}",
            ", ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                for k, v in t.user_attrs["estimator_params"].items()
            ),
        ]
        for t in done
    ]
    tables.add("The five best trials", ["trial", "validation accuracy", "parameters"], rows)


def main() -> None:
    parser = make_parser(__doc__)
    parser.add_argument("--trials", type=int, default=120, help="trials (120)")
    parser.add_argument("--epochs", type=int, default=15, help="max epochs per trial (15)")
    parser.add_argument("--max-tier", type=int, default=3, help="tiers searched (3)")
    parser.add_argument("--max-units", type=int, default=128, help="n_units upper bound (128)")
    parser.add_argument("--bootstrap", type=int, default=100, help="PED-ANOVA resamples (100)")
    args = parser.parse_args()
    if args.quick:
        args.trials, args.epochs, args.bootstrap, args.max_units = 8, 2, 10, 32
    quiet_optuna()
    clock = Stopwatch()
    space = make_space(args.max_tier, args.max_units)
    study = run_study(space, args.trials, args.epochs, args.seed)
    print(f"{len(study.trials)} trials in {clock.seconds:.1f} s; best {study.best_value:.4f}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsufficientTrialsWarning)  # shown in the table
        results = {
            "ped_anova": param_importances(study, n_bootstrap=args.bootstrap, random_state=0),
            "mdi": param_importances(
                study, evaluator="mdi", n_bootstrap=args.bootstrap // 10, random_state=0
            ),
        }
    for result in results.values():
        if result.warning:
            print(f"warning ({result.evaluator}): {result.warning}")
    comparison = compare_with_prior(results["ped_anova"], space)
    tables = Tables()
    importance_tables(results, comparison, tables)
    best_table(study, tables)
    path = write_report(
        study,
        args.out / "importance.html",
        space=space,
        title="Which hyperparameters mattered on digits (random search over the default space)",
    )
    print(f"\nwrote {path} (optuna_dl.analysis.write_report)")
    clock.report()


if __name__ == "__main__":
    main()
