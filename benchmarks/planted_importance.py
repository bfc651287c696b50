"""The importance evaluators on the planted-truth problem (docs/IMPORTANCE.md).

Two parameters matter (``learning_rate_decay``, ``log2_batch_size``); 300 randomly
sampled trials, unpruned and under the README study's successive halving. Prints the
top three of each ranking with 95 % bootstrap intervals (50 resamples) of the
importance and of the rank. fANOVA runs with 16 trees (Optuna's default: 64).

Usage::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/planted_importance.py
"""

from __future__ import annotations

import warnings

import optuna
from optuna.importance import FanovaImportanceEvaluator
from optuna.trial import TrialState

from optuna_dl.analysis.importance import ImportanceResult, importances_at_epoch, param_importances
from optuna_dl.tuning.planted import planted_study


def show(label: str, r: ImportanceResult) -> None:
    top = "  ".join(
        f"{p.name} {p.importance:.3f} [{p.low:.3f},{p.high:.3f}] r[{p.rank_low:g},{p.rank_high:g}]"
        for p in r.params[:3]
    )
    print(f"{label:28} {r.evaluator:9} n={r.n_trials:3}  {top}")


def main() -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.simplefilter("ignore")
    evaluators = {
        "ped_anova": "ped_anova",
        "fanova": FanovaImportanceEvaluator(n_trees=16, seed=0),
        "mdi": "mdi",
    }
    unpruned = planted_study(300, pruner=optuna.pruners.NopPruner(), seed=4)
    halved = planted_study(300, seed=4)
    complete = len(halved.get_trials(states=(TrialState.COMPLETE,)))
    print("successive halving: complete", complete, "of 300")
    for evaluator in evaluators.values():
        show("unpruned, final", param_importances(unpruned, evaluator=evaluator, n_bootstrap=50))
        show(
            "halving, completed only",
            param_importances(halved, evaluator=evaluator, n_bootstrap=50),
        )
        show(
            "halving, epoch 2 (all)",
            importances_at_epoch(halved, 2, evaluator=evaluator, n_bootstrap=50),
        )


if __name__ == "__main__":
    main()
