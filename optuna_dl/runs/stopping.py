"""Stop a study once its ranking of hyperparameters is settled (``[stop]``)."""

from __future__ import annotations

from collections.abc import Callable

import optuna

from optuna_dl.analysis.confidence import rank_confidence
from optuna_dl.analysis.ranking import study_ranking
from optuna_dl.runs.budget import finished_trials
from optuna_dl.runs.config import StopRule


def settled_ranking(rule: StopRule) -> Callable[[optuna.Study], str | None]:
    """A check for :func:`~optuna_dl.runs.budget.run_budget`'s ``should_stop``.

    It looks at the study once it has ``rule.min_trials`` finished trials and then
    whenever ``rule.check_every`` more have finished, and returns why to stop (one
    line) once the first ``rule.confident_top`` places of the study's ranking are
    settled, else None.
    """
    next_look = rule.min_trials  # several workers may each skip some counts

    def check(study: optuna.Study) -> str | None:
        nonlocal next_look
        finished = len(finished_trials(study.get_trials(deepcopy=False)))
        if finished < next_look:
            return None
        next_look = finished + rule.check_every
        result = study_ranking(study)
        if rank_confidence(result).settled_top < rule.confident_top:
            return None
        settled = ", ".join(result.names[: rule.confident_top])
        return (
            f"the first {rule.confident_top} place(s) of the ranking ({settled}) are settled "
            f"after {finished} finished trials; no further trial is started"
        )

    return check
