"""Fixtures shared by the nn tests: both kernel backends."""

from __future__ import annotations

import pytest

from optuna_dl.nn import kernels

BACKEND_PARAMS = [
    "numpy",
    pytest.param(
        "numba",
        marks=pytest.mark.skipif(not kernels.NUMBA_AVAILABLE, reason="numba is not installed"),
    ),
]


@pytest.fixture(params=BACKEND_PARAMS)
def backend(request):
    """Run the test once with the NumPy reference and once with the numba kernels."""
    with kernels.use_backend(request.param):
        yield request.param
