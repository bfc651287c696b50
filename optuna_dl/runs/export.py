"""Refit a study's best configuration and turn it into one self-contained model."""

from __future__ import annotations

from typing import Any

import numpy as np
import optuna

from optuna_dl.estimator import DeepNetClassifier, DeepNetRegressor
from optuna_dl.records import TrialRecord


def refit_best(
    config: Any,
    trial: optuna.trial.FrozenTrial,
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
) -> tuple[DeepNetClassifier | DeepNetRegressor, float]:
    """Train the trial's configuration on all of ``X_train`` for the epochs it used.

    The study's pipeline standardizes features before the network; the scaler is
    folded into the first layer, so the returned network takes raw features and
    needs no pipeline around it.

    Returns
    -------
    model : DeepNetClassifier or DeepNetRegressor
        Fitted on ``X_train``, accepting unscaled features.
    pipeline_score : float
        Held-out score (``model.score``: accuracy, or R² for a regressor) of the
        scaler + network pipeline before folding.
    """
    pipeline = config.make_estimator()
    record = TrialRecord.from_trial(trial)
    params = dict(record.estimator_params or {})
    epochs = int(record.best_epoch if record.best_epoch is not None else config.max_epochs)
    step = pipeline.steps[-1][0]
    pipeline.set_params(
        **{f"{step}__{k}": v for k, v in params.items()}, **{f"{step}__max_epochs": epochs}
    )
    pipeline.fit(X_train, y_train)
    pipeline_score = float(pipeline.score(X_test, y_test))
    scaler, model = pipeline.named_steps["scale"], pipeline.steps[-1][1]
    model.network_.absorb_input_scaling(scaler.mean_, scaler.scale_)
    return model, pipeline_score
