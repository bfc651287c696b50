"""Shared by the study-runner tests."""

from __future__ import annotations

import optuna
import pytest


@pytest.fixture(autouse=True)
def quiet_optuna():
    """Optuna logs every trial at INFO; the tests only want warnings."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    yield
    optuna.logging.set_verbosity(verbosity)
