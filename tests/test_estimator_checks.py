"""scikit-learn's estimator API checks, with no expected failures."""

from __future__ import annotations

from sklearn.utils.estimator_checks import parametrize_with_checks

from optuna_dl import DeepNetClassifier


@parametrize_with_checks([DeepNetClassifier(max_epochs=20, random_state=0)])
def test_sklearn_compatible(estimator, check):
    check(estimator)
