"""Tuning with Optuna: the search space, the objective, pruning and the search estimator."""

from optuna_dl.tuning.objective import Objective
from optuna_dl.tuning.pruning import PruningCallback
from optuna_dl.tuning.search import DeepNetRegressorSearchCV, DeepNetSearchCV
from optuna_dl.tuning.space import Dimension, SearchSpace
from optuna_dl.tuning.staged import CoarseToFineResult, coarse_to_fine, shrink_space

__all__ = [
    "CoarseToFineResult",
    "DeepNetRegressorSearchCV",
    "DeepNetSearchCV",
    "Dimension",
    "Objective",
    "PruningCallback",
    "SearchSpace",
    "coarse_to_fine",
    "shrink_space",
]
