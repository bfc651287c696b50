"""The ranking optuna-dl prints: one function every door uses.

``optuna-dl run``'s summary, ``optuna-dl importance``, the report and the stop rule
all rank a study's hyperparameters with :func:`study_ranking`, so they never disagree
about which answer is *the* answer.

The default, ``method="rungs"``, counts every trial: the importance of the score at
each pruning rung (every trial that reached it, pruned ones included) and of the
completed trials' final values, by mean decrease in impurity of a random forest,
averaged with weights equal to the trials behind each
(:func:`~optuna_dl.analysis.pruning_aware.rung_weighted_importances`,
``intervals="mixture"``). Each bootstrap resample is one level's resample, drawn by
weight, so the intervals and the statements built on them carry what the rungs and
the final values disagree on: early in training the batch size and the optimizer set
the pace, not the final score, and that is a bias that resampling one level, or
averaging the levels' resamples, cannot see.

It was chosen by measurement, not argument (``docs/IMPORTANCE.md``,
``benchmarks/README.md``). On 20 simulated README studies (100 random trials on
digits) against the reference's MDI ranking, the averaged resamples held the
reference value in 71 % of their 95 % intervals and called 37 orders settled, 4 of
them wrong; the mixture holds it in 93 % and called 3 orders settled, all right, with
the same point ranking (right first parameter in 15 of 20, median rho 0.94).
Weighting each rung by how well its order carries to the final values
(``weights="linked"``) did not rank better (14 of 20, median rho 0.83).
``method="completed"`` is the ranking of the completed trials alone, kept beside it
for comparison.
"""

from __future__ import annotations

import warnings

import optuna
from optuna.importance import MeanDecreaseImpurityImportanceEvaluator

from optuna_dl.analysis._result import ImportanceResult
from optuna_dl.analysis.importance import InsufficientTrialsWarning, param_importances
from optuna_dl.analysis.pruning_aware import rung_weighted_importances

__all__ = ["CAVEATS", "DEFAULT_BOOTSTRAP", "RANKINGS", "study_ranking"]

#: Resamples behind the printed intervals and statements.
DEFAULT_BOOTSTRAP = 50
#: Trees of each random forest (Optuna's default is 64): a quarter of the time per
#: resample; the bootstrap intervals carry the forests' own spread.
FOREST_TREES = 16

#: The rankings :func:`study_ranking` offers, and what each one rests on.
RANKINGS = {
    "rungs": "MDI over every trial, rungs weighted by the trials behind each, intervals "
    "spanning the rungs",
    "completed": "MDI over the completed trials only",
}
#: What must be said beside a ranking: the completed trials are the ones the pruner let
#: finish, and measured against the reference studies the "settled" orders of that
#: ranking were contradicted (``benchmarks/README.md``, "Importance accuracy").
CAVEATS = {
    "completed": "for comparison only: the completed trials are the ones the pruner let "
    "finish, not a sample of the space, so even a settled order here describes them, not "
    "the space",
}


def study_ranking(
    study: optuna.Study,
    *,
    method: str = "rungs",
    n_bootstrap: int = DEFAULT_BOOTSTRAP,
    random_state: int | None = 0,
) -> ImportanceResult:
    """Rank ``study``'s hyperparameters the way optuna-dl reports them.

    Parameters
    ----------
    study : optuna.Study
        A single-objective study.
    method : {"rungs", "completed"}, default="rungs"
        A key of :data:`RANKINGS`.
    n_bootstrap : int, default=50
    random_state : int or None, default=0

    Returns
    -------
    ImportanceResult
        With ``warning`` set (not raised) when there are too few trials.
    """
    if method not in RANKINGS:
        raise ValueError(f"method must be one of {', '.join(RANKINGS)}; got {method!r}.")
    if len(study.directions) > 1:
        raise ValueError("study_ranking explains single-objective studies.")
    evaluator = MeanDecreaseImpurityImportanceEvaluator(n_trees=FOREST_TREES, seed=random_state)
    options = {"evaluator": evaluator, "n_bootstrap": n_bootstrap, "random_state": random_state}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsufficientTrialsWarning)
        warnings.simplefilter("ignore", UserWarning)
        if method == "completed":
            result = param_importances(study, **options)
        else:
            try:
                result = rung_weighted_importances(
                    study, weights="trials", intervals="mixture", **options
                )
            except ValueError:  # no rung and no final value with 2 trials yet
                result = param_importances(study, **options)
    return result._replace(evaluator="mdi")
