"""Data sources a study can name: scikit-learn's bundled sets, CSV files, .npz files."""

from __future__ import annotations

import csv
import math
import zipfile
from pathlib import Path

import numpy as np

BUNDLED = ("digits", "breast_cancer", "wine", "iris")


class DataError(ValueError):
    """A data source that cannot be read; the message names the file and the problem."""


def load_bundled(name: str) -> tuple[np.ndarray, np.ndarray]:
    """One of scikit-learn's bundled classification sets (nothing is downloaded)."""
    from sklearn import datasets

    if name not in BUNDLED:
        raise DataError(f"unknown bundled data set {name!r}; allowed: {', '.join(BUNDLED)}.")
    X, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    return X, y


def load_csv(path: Path, target: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read a CSV file with a header row; ``target`` names the label column.

    Every other column must hold numbers; labels may be numbers or strings.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features), float64
    y : ndarray of shape (n_samples,)
    feature_names : list of str
    """
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"{path}: cannot read CSV ({error}).") from None
    if len(rows) < 2:
        raise DataError(f"{path}: needs a header row and at least one data row.")
    header = [name.strip() for name in rows[0]]
    if target not in header:
        raise DataError(
            f"{path}: target column {target!r} is absent; columns: {', '.join(header)}."
        )
    target_index = header.index(target)
    features = [name for i, name in enumerate(header) if i != target_index]
    if not features:
        raise DataError(f"{path}: has no feature columns besides {target!r}.")
    X = np.empty((len(rows) - 1, len(features)))
    labels: list[str] = []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise DataError(
                f"{path}, line {line}: {len(row)} fields where the header has {len(header)}."
            )
        values = [cell.strip() for cell in row]
        labels.append(values.pop(target_index))
        for j, cell in enumerate(values):
            try:
                value = float(cell)
            except ValueError:
                raise DataError(
                    f"{path}, line {line}: column {features[j]!r} holds {cell!r}, not a number."
                ) from None
            if not math.isfinite(value):
                raise DataError(
                    f"{path}, line {line}: column {features[j]!r} holds {cell!r}; "
                    "values must be finite."
                )
            X[line - 2, j] = value
    return X, _labels(labels), features


def _labels(labels: list[str]) -> np.ndarray:
    try:
        numbers = np.array([float(v) for v in labels])
    except ValueError:
        return np.array(labels, dtype=object)
    if np.all(numbers == np.round(numbers)):
        return numbers.astype(np.int64)
    return np.array(labels, dtype=object)


def load_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read ``X`` and ``y`` from an ``.npz`` file (never unpickles)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in ("X", "y") if key not in archive.files]
            if missing:
                raise DataError(
                    f"{path}: missing array {missing[0]!r}; an .npz data file holds 'X' and "
                    f"'y' (found: {', '.join(archive.files) or 'nothing'})."
                )
            return archive["X"], archive["y"]
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        if isinstance(error, DataError):
            raise
        raise DataError(f"{path}: cannot read .npz ({error}).") from None
