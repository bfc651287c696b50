"""scikit-learn's estimator API checks.

One check is expected to fail, for the reason scikit-learn gives for its own
``MLPClassifier`` and ``MLPRegressor`` with stochastic solvers: it compares a model fit
with integer ``sample_weight`` to one fit on repeated rows, and mini-batches, shuffling,
batch-norm statistics and Adam's per-step normalization all see repeated rows
differently from weighted ones. Weights do equal repetition in the loss of a batch;
``tests/test_estimator.py`` checks that with full-batch SGD.
"""

from __future__ import annotations

from sklearn.utils.estimator_checks import parametrize_with_checks

from optuna_dl import DeepNetClassifier, DeepNetRegressor

EXPECTED_FAILED_CHECKS = {
    "check_sample_weight_equivalence_on_dense_data": (
        "mini-batch training with batch norm and Adam sees repeated rows differently "
        "from weighted ones; the weighted loss itself equals repetition"
    ),
}


@parametrize_with_checks(
    [
        DeepNetClassifier(max_epochs=20, learning_rate=3e-3, random_state=0),
        DeepNetRegressor(max_epochs=20, learning_rate=3e-3, random_state=0),
    ],
    expected_failed_checks=lambda estimator: EXPECTED_FAILED_CHECKS,
)
def test_sklearn_compatible(estimator, check):
    check(estimator)
