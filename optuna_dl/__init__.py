"""optuna-dl: a NumPy deep classifier and regressor with batch norm, tuned and explained
with Optuna."""

from optuna_dl.callbacks import EpochCallback, EpochLogger, EpochRecord
from optuna_dl.estimator import DeepNetClassifier, DeepNetRegressor, DivergenceWarning
from optuna_dl.tuning import (
    DeepNetRegressorSearchCV,
    DeepNetSearchCV,
    Dimension,
    Objective,
    PruningCallback,
    SearchSpace,
)

__version__ = "0.1.0"

__all__ = [
    "DeepNetClassifier",
    "DeepNetRegressor",
    "DeepNetRegressorSearchCV",
    "DeepNetSearchCV",
    "Dimension",
    "DivergenceWarning",
    "EpochCallback",
    "EpochLogger",
    "EpochRecord",
    "Objective",
    "PruningCallback",
    "SearchSpace",
    "__version__",
]
