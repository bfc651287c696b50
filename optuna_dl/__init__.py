"""optuna-dl: a NumPy deep classifier with batch norm, tuned and explained with Optuna."""

from optuna_dl.callbacks import EpochCallback, EpochLogger, EpochRecord
from optuna_dl.estimator import DeepNetClassifier, DivergenceWarning
from optuna_dl.tuning.search import DeepNetSearchCV

__version__ = "0.1.0"

__all__ = [
    "DeepNetClassifier",
    "DeepNetSearchCV",
    "DivergenceWarning",
    "EpochCallback",
    "EpochLogger",
    "EpochRecord",
    "__version__",
]
