"""Data sources a study can name: scikit-learn's bundled sets, CSV files, .npz files."""

from __future__ import annotations

import codecs
import csv
import io
import math
import zipfile
from pathlib import Path

import numpy as np

#: scikit-learn's bundled data sets, by the task they are for (nothing is downloaded).
BUNDLED_TASKS = {
    "digits": "classification",
    "breast_cancer": "classification",
    "wine": "classification",
    "iris": "classification",
    "diabetes": "regression",
}
BUNDLED = tuple(BUNDLED_TASKS)


class DataError(ValueError):
    """A data source that cannot be read; the message names the file and the problem."""


def load_bundled(name: str) -> tuple[np.ndarray, np.ndarray]:
    """One of scikit-learn's bundled data sets (:data:`BUNDLED_TASKS`)."""
    from sklearn import datasets

    if name not in BUNDLED:
        raise DataError(f"unknown bundled data set {name!r}; allowed: {', '.join(BUNDLED)}.")
    X, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    return X, y


def load_csv(path: Path, target: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read a UTF-8 CSV file with a header row; ``target`` names the label column.

    Every other column must hold numbers; labels may be numbers or strings. Cells are
    stripped of surrounding whitespace, empty lines are skipped and a byte-order mark
    is ignored. Errors name the file, the line and the column.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features), float64
    y : ndarray of shape (n_samples,)
    feature_names : list of str
    """
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise DataError(f"{path}: cannot read CSV ({error.strerror or error}).") from None
    bom = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        text = data[bom:].decode("utf-8")
    except UnicodeDecodeError as error:
        start = bom + error.start
        line = data[:start].count(b"\n") + 1
        raise DataError(
            f"{path}, line {line}: not UTF-8 (byte {data[start]:#04x}); save the file as UTF-8."
        ) from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[tuple[int, list[str]]] = []
    try:
        for row in reader:
            if row and any(cell.strip() for cell in row):
                rows.append((reader.line_num, row))
    except csv.Error as error:
        raise DataError(f"{path}, line {reader.line_num}: cannot parse CSV ({error}).") from None
    if len(rows) < 2:
        raise DataError(f"{path}: needs a header row and at least one data row.")
    header = [name.strip() for name in rows[0][1]]
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise DataError(f"{path}, line {rows[0][0]}: column {duplicates[0]!r} appears twice.")
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
    for i, (line, row) in enumerate(rows[1:]):
        if len(row) != len(header):
            raise DataError(
                f"{path}, line {line}: {len(row)} fields where the header has {len(header)}."
            )
        values = [cell.strip() for cell in row]
        label = values.pop(target_index)
        if not label:
            raise DataError(f"{path}, line {line}: column {target!r} (the target) is empty.")
        labels.append(label)
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
            X[i, j] = value
    return X, _labels(labels), features


def _labels(labels: list[str]) -> np.ndarray:
    try:
        numbers = np.array([float(v) for v in labels])
    except ValueError:
        return np.array(labels, dtype=object)
    if np.all(np.abs(numbers) < 2**53) and np.all(numbers == np.round(numbers)):
        return numbers.astype(np.int64)
    return np.array(labels, dtype=object)


def load_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read ``X`` (2-D, numeric) and ``y`` (1-D, one label per row) from an ``.npz``
    file. Pickles are never loaded: object arrays are rejected."""
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise DataError(f"{path}: cannot read .npz ({error}).") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(
            f"{path}: holds a single array, not an .npz archive of arrays 'X' and 'y'."
        )
    with archive:
        missing = [key for key in ("X", "y") if key not in archive.files]
        if missing:
            raise DataError(
                f"{path}: missing array {missing[0]!r}; an .npz data file holds 'X' and "
                f"'y' (found: {', '.join(archive.files) or 'nothing'})."
            )
        arrays = {}
        for key in ("X", "y"):
            try:
                arrays[key] = archive[key]
            except ValueError as error:
                if "allow_pickle" in str(error):
                    raise DataError(
                        f"{path}: array {key!r} holds Python objects, which are never "
                        "unpickled; store numbers (and string labels) as plain arrays."
                    ) from None
                raise DataError(f"{path}: cannot read array {key!r} ({error}).") from None
            except (OSError, zipfile.BadZipFile, EOFError) as error:
                raise DataError(f"{path}: cannot read array {key!r} ({error}).") from None
    X, y = arrays["X"], arrays["y"]
    if X.dtype.kind not in "biuf":
        raise DataError(f"{path}: array 'X' must hold numbers; got dtype {X.dtype}.")
    if X.ndim != 2 or y.ndim != 1 or len(X) != len(y):
        raise DataError(
            f"{path}: 'X' must be 2-D and 'y' 1-D with one label per row of 'X'; got "
            f"shapes {X.shape} and {y.shape}."
        )
    if not np.all(np.isfinite(X)):
        row = int(np.argwhere(~np.isfinite(X))[0][0])
        raise DataError(f"{path}: array 'X' holds NaN or infinity (row {row}).")
    return X, y
