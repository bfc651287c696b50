"""The ranking optuna-dl prints: one function every door uses.

``optuna-dl run``'s summary, ``optuna-dl importance``, the report and
``DeepNetSearchCV.importances()`` all rank a study's hyperparameters with
:func:`study_ranking`, so they can never disagree about which answer is *the* answer.
"""

from __future__ import annotations

import warnings

import optuna
from optuna.trial import TrialState

from optuna_dl.analysis._result import ImportanceResult
from optuna_dl.analysis.importance import InsufficientTrialsWarning, param_importances

__all__ = ["DEFAULT_BOOTSTRAP", "RANKINGS", "study_ranking"]

#: Resamples behind the printed intervals and statements.
DEFAULT_BOOTSTRAP = 200

#: The rankings :func:`study_ranking` offers, with what each one uses.
RANKINGS = {
    "completed": "PED-ANOVA over the completed trials",
}


def study_ranking(
    study: optuna.Study,
    *,
    method: str = "completed",
    n_bootstrap: int = DEFAULT_BOOTSTRAP,
    random_state: int | None = 0,
) -> ImportanceResult:
    """Rank ``study``'s hyperparameters the way optuna-dl reports them.

    Parameters
    ----------
    study : optuna.Study
        A single-objective study.
    method : str, default="completed"
        A key of :data:`RANKINGS`.
    n_bootstrap : int, default=200
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
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsufficientTrialsWarning)
        # "Some regimes ... have less than 2 trials": expected on small studies.
        warnings.simplefilter("ignore", UserWarning)
        return param_importances(
            study,
            evaluator="ped_anova",
            states=(TrialState.COMPLETE,),
            n_bootstrap=n_bootstrap,
            random_state=random_state,
        )
