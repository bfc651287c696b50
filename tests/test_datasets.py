"""Data sources: bundled sets, CSV files (errors name file, line and column), .npz files."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from optuna_dl.datasets import BUNDLED, DataError, load_bundled, load_csv, load_npz

IRIS_CSV = Path(__file__).resolve().parents[1] / "studies" / "data" / "iris.csv"


def write_csv(tmp_path: Path, content: bytes | str, name: str = "table.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def data_error(call, *parts: str) -> str:
    with pytest.raises(DataError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    for part in parts:
        assert part in message, message
    return message


# ---------------------------------------------------------------------- bundled
@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_sets_load(name):
    X, y = load_bundled(name)
    assert X.ndim == 2 and y.ndim == 1 and len(X) == len(y)
    assert np.issubdtype(X.dtype, np.floating)
    assert np.all(np.isfinite(X))
    assert len(np.unique(y)) >= 2


def test_unknown_bundled_set():
    data_error(lambda: load_bundled("mnist"), "'mnist'", "digits")


def test_shipped_iris_csv_is_scikit_learns_iris():
    from sklearn.datasets import load_iris

    X, y, features = load_csv(IRIS_CSV, "species")
    iris = load_iris()
    assert features == ["sepal_length_cm", "sepal_width_cm", "petal_length_cm", "petal_width_cm"]
    np.testing.assert_array_equal(X, iris.data)
    np.testing.assert_array_equal(y, iris.target_names[iris.target])
    assert set(y) == {"setosa", "versicolor", "virginica"}


# ------------------------------------------------------------------------- CSV
def test_csv_string_labels(tmp_path):
    path = write_csv(tmp_path, "a,b,species\n1,2.5,setosa\n3,-4e-1,virginica\n")
    X, y, features = load_csv(path, "species")
    np.testing.assert_array_equal(X, [[1.0, 2.5], [3.0, -0.4]])
    assert X.dtype == np.float64
    assert list(y) == ["setosa", "virginica"]
    assert features == ["a", "b"]


def test_csv_integer_labels(tmp_path):
    path = write_csv(tmp_path, "label,a\n0,1\n2,2\n1.0,3\n")
    X, y, features = load_csv(path, "label")
    assert y.dtype == np.int64
    assert list(y) == [0, 2, 1]
    assert features == ["a"]
    np.testing.assert_array_equal(X, [[1.0], [2.0], [3.0]])


def test_csv_fractional_labels_stay_strings(tmp_path):
    _, y, _ = load_csv(write_csv(tmp_path, "a,label\n1,0.5\n2,1\n"), "label")
    assert list(y) == ["0.5", "1"]


def test_csv_infinite_label_is_not_an_integer(tmp_path):
    _, y, _ = load_csv(write_csv(tmp_path, "a,label\n1,inf\n2,1\n"), "label")
    assert list(y) == ["inf", "1"]


def test_csv_whitespace_blank_lines_bom_and_crlf(tmp_path):
    content = "\ufeff a , b ,  label \r\n 1 , 2 ,  x \r\n\r\n\t3,\t4 , y\r\n\r\n"
    X, y, features = load_csv(write_csv(tmp_path, content.encode("utf-8")), "label")
    assert features == ["a", "b"]
    np.testing.assert_array_equal(X, [[1, 2], [3, 4]])
    assert list(y) == ["x", "y"]


def test_csv_quoted_fields(tmp_path):
    content = 'a,label\n1,"red, dark"\n2,"blue"\n'
    _, y, _ = load_csv(write_csv(tmp_path, content), "label")
    assert list(y) == ["red, dark", "blue"]


def test_csv_non_ascii_labels_and_columns(tmp_path):
    content = "größe,espèce\n1,café\n2,数字\n"
    X, y, features = load_csv(write_csv(tmp_path, content), "espèce")
    assert features == ["größe"]
    assert list(y) == ["café", "数字"]


@pytest.mark.parametrize(
    ("content", "parts"),
    [
        ("a,b,label\n1,2,x\n3,four,y\n", ["line 3", "column 'b'", "'four'", "not a number"]),
        ("a,b,label\n1,,x\n", ["line 2", "column 'b'", "''"]),
        ("a,b,label\n1,2,x\n\n3,4\n", ["line 4", "2 fields", "has 3"]),
        ("a,b,label\n1,2,x,9\n", ["line 2", "4 fields"]),
        ("a,b,label\n1,nan,x\n", ["line 2", "column 'b'", "finite"]),
        ("a,b,label\n1,2,\n", ["line 2", "'label'", "empty"]),
        ("a,a,label\n1,2,x\n", ["line 1", "'a'", "twice"]),
        ("a,b,label\n", ["header row and at least one data row"]),
        ("", ["header row"]),
        ("label\nx\ny\n", ["no feature columns"]),
        ('a,label\n1,"x\n2,y\n', ["line 3", "unexpected end of data"]),
    ],
    ids=[
        "non-numeric",
        "empty-cell",
        "ragged-short",
        "ragged-long",
        "nan",
        "empty-label",
        "duplicate-column",
        "header-only",
        "empty-file",
        "no-features",
        "unterminated-quote",
    ],
)
def test_csv_errors_name_file_line_and_column(tmp_path, content, parts):
    path = write_csv(tmp_path, content)
    data_error(lambda: load_csv(path, "label"), str(path), *parts)


def test_csv_not_utf8(tmp_path):
    path = write_csv(tmp_path, b"a,label\n1,x\n2,caf\xe9\n")
    data_error(lambda: load_csv(path, "label"), str(path), "line 3", "UTF-8", "0xe9")


def test_csv_not_utf8_after_a_byte_order_mark(tmp_path):
    path = write_csv(tmp_path, b"\xef\xbb\xbfa,label\n1,x\n2,\xff\n")
    data_error(lambda: load_csv(path, "label"), str(path), "line 3", "0xff")


def test_csv_target_absent(tmp_path):
    path = write_csv(tmp_path, "a,b,label\n1,2,x\n")
    data_error(lambda: load_csv(path, "species"), str(path), "'species'", "a, b, label")


def test_csv_missing_file(tmp_path):
    path = tmp_path / "absent.csv"
    data_error(lambda: load_csv(path, "label"), str(path), "cannot read")


def test_csv_path_is_a_directory(tmp_path):
    data_error(lambda: load_csv(tmp_path, "label"), str(tmp_path), "cannot read")


# ------------------------------------------------------------------------- npz
def test_npz_loads(tmp_path):
    X = np.arange(12, dtype=np.float32).reshape(4, 3)
    y = np.array(["a", "b", "a", "b"])
    np.savez(tmp_path / "d.npz", X=X, y=y, extra=np.zeros(2))
    X_loaded, y_loaded = load_npz(tmp_path / "d.npz")
    np.testing.assert_array_equal(X_loaded, X)
    np.testing.assert_array_equal(y_loaded, y)


def test_npz_compressed_loads(tmp_path):
    np.savez_compressed(tmp_path / "d.npz", X=np.ones((3, 2)), y=np.array([0, 1, 0]))
    X, y = load_npz(tmp_path / "d.npz")
    assert X.shape == (3, 2) and list(y) == [0, 1, 0]


class _Canary:
    """Unpickling it creates a file: proof that a pickle was executed."""

    path = ""

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


@pytest.mark.parametrize("key", ["X", "y"])
def test_npz_object_arrays_are_rejected_without_unpickling(tmp_path, key):
    canary = tmp_path / "canary"
    _Canary.path = str(canary)
    arrays = {"X": np.ones((2, 2)), "y": np.array([0, 1])}
    arrays[key] = np.array([_Canary(), _Canary()], dtype=object)
    np.savez(tmp_path / "d.npz", **arrays)
    path = tmp_path / "d.npz"
    data_error(lambda: load_npz(path), str(path), f"array {key!r}", "never unpickled")
    assert not canary.exists()


def test_a_pickle_named_npz_is_not_unpickled(tmp_path):
    canary = tmp_path / "canary"
    _Canary.path = str(canary)
    path = tmp_path / "d.npz"
    path.write_bytes(pickle.dumps({"X": _Canary()}))
    data_error(lambda: load_npz(path), str(path), "cannot read .npz")
    assert not canary.exists()


@pytest.mark.parametrize(
    ("arrays", "parts"),
    [
        ({"features": np.ones((2, 2)), "y": np.array([0, 1])}, ["missing array 'X'", "features"]),
        ({"X": np.ones((2, 2))}, ["missing array 'y'"]),
        ({"X": np.array([["a", "b"], ["c", "d"]]), "y": np.array([0, 1])}, ["'X'", "numbers"]),
        ({"X": np.ones(4), "y": np.arange(4)}, ["2-D", "(4,)"]),
        ({"X": np.ones((4, 2)), "y": np.arange(3)}, ["one label per row", "(3,)"]),
        ({"X": np.ones((2, 2)), "y": np.ones((2, 1))}, ["1-D"]),
        ({"X": np.array([[1.0, np.nan], [0.0, 0.0]]), "y": np.arange(2)}, ["NaN", "row 0"]),
    ],
    ids=["no-X", "no-y", "string-X", "1d-X", "length-mismatch", "2d-y", "nan"],
)
def test_npz_errors(tmp_path, arrays, parts):
    path = tmp_path / "d.npz"
    np.savez(path, **arrays)
    data_error(lambda: load_npz(path), str(path), *parts)


def test_npz_single_array_file(tmp_path):
    path = tmp_path / "d.npz"
    with open(path, "wb") as handle:
        np.save(handle, np.ones((2, 2)))
    data_error(lambda: load_npz(path), str(path), "single array")


@pytest.mark.parametrize("content", [b"", b"not a zip file at all", b"PK\x03\x04broken"])
def test_npz_corrupt_file(tmp_path, content):
    path = tmp_path / "d.npz"
    path.write_bytes(content)
    data_error(lambda: load_npz(path), str(path))


def test_npz_missing_file(tmp_path):
    path = tmp_path / "absent.npz"
    data_error(lambda: load_npz(path), str(path), "cannot read")
