"""DeepNetClassifier on both kernel backends: the same training, the same rules."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from sklearn.datasets import load_digits, make_classification

from optuna_dl import DeepNetClassifier, DivergenceWarning
from optuna_dl.nn import kernels

PARAMS = dict(n_layers=2, n_units=32, batch_size=32, max_epochs=3, random_state=0)
# float32 weights after 3 epochs (39 steps) of both backends; the kernels round
# differently (fused multiply-adds, reordered sums). Measured: at most 2.4e-7 apart.
WEIGHT_TOLERANCE = 1e-5


def data():
    X, y = make_classification(
        n_samples=400, n_features=10, n_informative=6, n_classes=3, random_state=0
    )
    return X.astype(np.float32), y


@pytest.mark.slow
@pytest.mark.skipif(not kernels.numba_available(), reason="numba is not installed")
@pytest.mark.parametrize(
    "extra",
    [{}, {"optimizer": "momentum", "dropout": 0.2, "activation": "tanh", "l2": 1e-3}],
    ids=["adam", "momentum-dropout"],
)
def test_the_environment_variable_selects_numpy_and_both_train_the_same_weights(tmp_path, extra):
    """The NumPy path runs in a child process started with OPTUNA_DL_KERNELS=numpy."""
    path = tmp_path / "numpy.npz"
    script = textwrap.dedent(
        f"""
        import numpy as np
        from optuna_dl.nn import kernels
        from tests.test_estimator_kernels import PARAMS, data
        from optuna_dl import DeepNetClassifier
        assert kernels.BACKEND == "numpy", kernels.BACKEND
        model = DeepNetClassifier(**PARAMS, **{extra!r}).fit(*data())
        proba = model.predict_proba(data()[0])
        np.savez({str(path)!r}, *model.network_.state_arrays(), proba=proba)
        """
    )
    environment = {**os.environ, "OPTUNA_DL_KERNELS": "numpy"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    subprocess.run([sys.executable, "-c", script], env=environment, cwd=root, check=True)
    with kernels.use_backend("numba"):
        model = DeepNetClassifier(**PARAMS, **extra).fit(*data())
    with np.load(path) as saved:
        reference = [saved[f"arr_{i}"] for i in range(len(model.network_.state_arrays()))]
        proba = saved["proba"]
    for got, expected in zip(model.network_.state_arrays(), reference):
        assert got.dtype == expected.dtype == np.float32
        np.testing.assert_allclose(got, expected, rtol=WEIGHT_TOLERANCE, atol=WEIGHT_TOLERANCE)
    np.testing.assert_allclose(model.predict_proba(data()[0]), proba, atol=WEIGHT_TOLERANCE)


@pytest.mark.slow
def test_an_unknown_backend_name_is_an_error():
    script = "import optuna_dl"
    environment = {**os.environ, "OPTUNA_DL_KERNELS": "cuda"}
    result = subprocess.run(
        [sys.executable, "-c", script], env=environment, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "OPTUNA_DL_KERNELS must be one of ('numba', 'numpy') or unset, got 'cuda'" in (
        result.stderr
    )


@pytest.mark.parametrize("batch_norm", [False, True])
def test_divergence_warns_on_both_backends(backend, batch_norm):
    X, y = load_digits(return_X_y=True)
    model = DeepNetClassifier(
        learning_rate=1e6,
        optimizer="sgd",
        batch_norm=batch_norm,
        max_epochs=10,
        random_state=0,
    )
    with np.errstate(all="ignore"):
        with pytest.warns(DivergenceWarning, match="diverged"):
            model.fit(X[:200], y[:200])
    assert model.diverged_
    assert np.isfinite(model.predict_proba(X[:200])).all()
    assert all(np.isfinite(p).all() for p in model.network_.params)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dtype_rules_and_bad_input_hold_on_both_backends(backend, dtype):
    X, y = data()
    model = DeepNetClassifier(**PARAMS, dtype=dtype).fit(X.astype(np.float64), y)
    assert all(a.dtype == np.dtype(dtype) for a in model.network_.state_arrays())
    assert model.predict_proba(X).dtype == np.float64
    bad = X.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        DeepNetClassifier(**PARAMS).fit(bad, y)
