"""save/load: exact round trips, and refusal (never execution) of bad files."""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification

from optuna_dl import DeepNetClassifier
from optuna_dl._persistence import FORMAT_VERSION


@pytest.fixture(scope="module")
def data():
    return make_classification(
        n_samples=120,
        n_features=5,
        n_informative=4,
        n_redundant=0,
        n_classes=3,
        random_state=0,
    )


def small(**params):
    defaults = dict(n_units=8, max_epochs=3, batch_size=32, random_state=0)
    return DeepNetClassifier(**{**defaults, **params})


def round_trip(model, path):
    model.save(path)
    return DeepNetClassifier.load(path)


def assert_same_model(loaded, model, X):
    assert type(loaded) is DeepNetClassifier
    assert loaded.get_params() == model.get_params()
    assert loaded.classes_.dtype == model.classes_.dtype
    assert np.array_equal(loaded.classes_, model.classes_)
    assert loaded.n_features_in_ == model.n_features_in_
    assert loaded.n_iter_ == model.n_iter_
    assert loaded.loss_curve_ == model.loss_curve_
    assert loaded.validation_scores_ == model.validation_scores_
    assert loaded.best_validation_score_ == model.best_validation_score_
    assert loaded.diverged_ == model.diverged_
    assert loaded.optimizer_.t == model.optimizer_.t
    for a, b in zip(loaded.network_.state_arrays(), model.network_.state_arrays(), strict=True):
        assert a.dtype == b.dtype
        assert np.array_equal(a, b)
    proba, expected_proba = loaded.predict_proba(X), model.predict_proba(X)
    assert np.array_equal(proba, expected_proba)
    predicted, expected = loaded.predict(X), model.predict(X)
    assert predicted.dtype == expected.dtype
    assert np.array_equal(predicted, expected)


def assert_same_weights(a, b):
    for x, y in zip(a.network_.state_arrays(), b.network_.state_arrays(), strict=True):
        assert np.array_equal(x, y)
    assert a.optimizer_.t == b.optimizer_.t
    for slot, arrays in a.optimizer_.state().items():
        for x, y in zip(arrays, b.optimizer_.state()[slot], strict=True):
            assert np.array_equal(x, y)


# ---------------------------------------------------------------- round trip
@pytest.mark.parametrize(
    "params",
    [
        {},
        {"dtype": "float64"},
        {"optimizer": "sgd", "n_layers": 0},
        {"optimizer": "momentum", "dropout": 0.3, "batch_norm": False},
        {"optimizer": "rmsprop", "activation": "tanh"},
        {"early_stopping": True, "validation_fraction": 0.25},
    ],
)
def test_round_trip_is_bit_identical(tmp_path, data, params):
    X, y = data
    model = small(**params).fit(X, y)
    loaded = round_trip(model, tmp_path / "model.npz")
    assert_same_model(loaded, model, X)


def test_round_trip_with_string_labels(tmp_path, data):
    X, y = data
    labels = np.array(["cat", "dog", "emu"])[y]
    model = small().fit(X, labels)
    loaded = round_trip(model, str(tmp_path / "model.npz"))  # a str path works too
    assert_same_model(loaded, model, X)
    assert set(loaded.predict(X)) <= {"cat", "dog", "emu"}


def test_round_trip_with_object_labels_and_feature_names(tmp_path, data):
    X, y = data
    columns = ["alpha", "beta", "gamma", "delta", "epsilon"]
    frame = pd.DataFrame(X, columns=columns)
    labels = pd.Series(np.array(["low", "mid", "high"], dtype=object)[y])
    model = small(dtype="float64").fit(frame, labels)
    loaded = round_trip(model, tmp_path / "model.npz")
    assert_same_model(loaded, model, frame)
    assert list(loaded.feature_names_in_) == columns
    with pytest.raises(ValueError, match="feature names should match"):
        loaded.predict(frame.rename(columns={"alpha": "a"}))


def test_loaded_model_continues_training_identically(tmp_path, data):
    X, y = data
    model = small(dropout=0.2, learning_rate_decay=0.3).fit(X, y)
    loaded = round_trip(model, tmp_path / "model.npz")

    model.partial_fit(X, y)
    loaded.partial_fit(X, y)
    assert_same_weights(loaded, model)
    assert loaded.n_iter_ == model.n_iter_ == 4

    model.set_params(warm_start=True).fit(X, y)
    loaded.set_params(warm_start=True).fit(X, y)
    assert_same_weights(loaded, model)
    assert loaded.n_iter_ == model.n_iter_ == 7
    assert [r.learning_rate for r in loaded.history_] == [
        r.learning_rate for r in model.history_[-4:]
    ]
    assert np.array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_a_saved_file_is_a_plain_npz(tmp_path, data):
    X, y = data
    path = tmp_path / "model.npz"
    small().fit(X, y).save(path)
    with np.load(path, allow_pickle=False) as archive:  # no object arrays at all
        assert all(archive[key].dtype != object for key in archive.files)
        header = json.loads(str(archive["header"]))
    assert header["format"] == "optuna-dl-model"
    assert header["format_version"] == FORMAT_VERSION


def test_saving_an_unfitted_model_fails(tmp_path):
    with pytest.raises(ValueError, match="not fitted yet"):
        small().save(tmp_path / "model.npz")
    assert not (tmp_path / "model.npz").exists()


# ------------------------------------------------------------------ bad files
@pytest.fixture
def saved(tmp_path, data):
    """A valid model file, and its entries as a dict of arrays."""
    path = tmp_path / "model.npz"
    small().fit(*data).save(path)
    with np.load(path, allow_pickle=False) as archive:
        entries = {key: archive[key] for key in archive.files}
    return path, entries


def write(path, entries, **kwargs):
    with open(path, "wb") as handle:
        np.savez(handle, **entries, **kwargs)
    return path


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        DeepNetClassifier.load(tmp_path / "nothing.npz")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        DeepNetClassifier.load(tmp_path)  # a directory is not a model file


@pytest.mark.parametrize("keep", [0.0, 0.1, 0.5, 0.99])
def test_truncated_file(tmp_path, saved, keep):
    path, _ = saved
    content = path.read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(content[: int(len(content) * keep)])
    with pytest.raises(ValueError, match="not a readable optuna-dl model file"):
        DeepNetClassifier.load(truncated)


def test_random_bytes(tmp_path):
    path = tmp_path / "noise.npz"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ValueError, match="not a readable optuna-dl model file"):
        DeepNetClassifier.load(path)


def test_a_zip_that_is_not_an_npz(tmp_path):
    path = tmp_path / "archive.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("header.npy", b"definitely not an npy file")
    with pytest.raises(ValueError, match="not a readable optuna-dl model file"):
        DeepNetClassifier.load(path)


def test_an_npz_with_a_member_that_is_not_an_array(tmp_path, saved):
    path, _ = saved
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("junk.npy", b"not an array")
    with pytest.raises(ValueError, match="entry 'junk' is not a NumPy array"):
        DeepNetClassifier.load(path)


def test_npz_without_header(tmp_path):
    path = write(tmp_path / "plain.npz", {"weights": np.zeros((3, 3))})
    with pytest.raises(ValueError, match="has no optuna-dl header; it is not a model file"):
        DeepNetClassifier.load(path)


def test_header_that_is_not_text(tmp_path, saved):
    _, entries = saved
    path = write(tmp_path / "bad.npz", {**entries, "header": np.arange(3)})
    with pytest.raises(ValueError, match="has no optuna-dl header"):
        DeepNetClassifier.load(path)


def test_header_with_bad_json(tmp_path, saved):
    _, entries = saved
    path = write(tmp_path / "bad.npz", {**entries, "header": np.array('{"format": ')})
    with pytest.raises(ValueError, match="has a corrupt header"):
        DeepNetClassifier.load(path)


def edit_header(tmp_path, entries, **changes):
    header = json.loads(str(entries["header"]))
    header.update(changes)
    return write(tmp_path / "edited.npz", {**entries, "header": np.array(json.dumps(header))})


def test_header_with_wrong_format_version(tmp_path, saved):
    _, entries = saved
    path = edit_header(tmp_path, entries, format_version=FORMAT_VERSION + 1)
    with pytest.raises(ValueError, match=rf"format version {FORMAT_VERSION + 1}; this optuna-dl"):
        DeepNetClassifier.load(path)


def test_header_of_another_format(tmp_path, saved):
    _, entries = saved
    path = edit_header(tmp_path, entries, format="something-else")
    with pytest.raises(ValueError, match="is not an optuna-dl model file"):
        DeepNetClassifier.load(path)
    path = write(tmp_path / "list.npz", {**entries, "header": np.array("[1, 2]")})
    with pytest.raises(ValueError, match="is not an optuna-dl model file"):
        DeepNetClassifier.load(path)


@pytest.mark.parametrize(
    "params, message",
    [
        (5, "no parameter table"),
        ({"bogus": 1}, "unexpected keyword argument 'bogus'"),
        ({"n_units": -5}, "parameter 'n_units' must be"),
        ({"activation": "os.system"}, "parameter 'activation' must be"),
    ],
)
def test_header_with_bad_parameters(tmp_path, saved, params, message):
    _, entries = saved
    header = json.loads(str(entries["header"]))
    changed = {**header["params"], **params} if isinstance(params, dict) else params
    path = edit_header(tmp_path, entries, params=changed)
    with pytest.raises(ValueError, match=f"damaged optuna-dl model file: .*{message}"):
        DeepNetClassifier.load(path)


def test_header_missing_a_field(tmp_path, saved):
    _, entries = saved
    header = json.loads(str(entries["header"]))
    del header["n_iter"]
    path = write(tmp_path / "bad.npz", {**entries, "header": np.array(json.dumps(header))})
    with pytest.raises(ValueError, match="damaged optuna-dl model file: 'n_iter'"):
        DeepNetClassifier.load(path)


def test_missing_or_misshapen_weights(tmp_path, saved):
    _, entries = saved
    missing = {k: v for k, v in entries.items() if k != "network_000"}
    with pytest.raises(ValueError, match="damaged optuna-dl model file: 'network_000'"):
        DeepNetClassifier.load(write(tmp_path / "missing.npz", missing))
    misshapen = {**entries, "network_000": np.zeros((2, 2), dtype=np.float32)}
    with pytest.raises(ValueError, match=r"damaged optuna-dl model file: array shape \(2, 2\)"):
        DeepNetClassifier.load(write(tmp_path / "misshapen.npz", misshapen))


class Payload:
    """Unpickling this object creates ``path`` (it must never happen on load)."""

    def __init__(self, path):
        self.path = os.fspath(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("entry", ["header", "network_000", "extra"])
def test_pickle_bearing_file_is_refused_without_running_code(tmp_path, saved, entry):
    _, entries = saved
    marker = tmp_path / "marker"
    payload = np.array([Payload(marker)], dtype=object)
    path = write(tmp_path / "evil.npz", {**entries, entry: payload}, allow_pickle=True)

    with pytest.raises(ValueError, match="not a readable optuna-dl model file") as info:
        DeepNetClassifier.load(path)
    assert "Object arrays cannot be loaded" in str(info.value)
    assert not marker.exists()

    # The payload is live: unpickling it (which load must never do) creates the file.
    with np.load(path, allow_pickle=True) as archive:
        archive[entry]
    assert marker.exists()
    marker.unlink()


def test_a_pickle_renamed_to_npz_is_refused(tmp_path):
    import pickle

    marker = tmp_path / "marker"
    path = tmp_path / "model.npz"
    path.write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(ValueError, match="not a readable optuna-dl model file"):
        DeepNetClassifier.load(path)
    assert not marker.exists()


def _imported_modules(module) -> set[str]:
    """Every module an ``import`` statement of ``module``'s source names, at any depth
    (inside functions and ``if TYPE_CHECKING:`` blocks too), made absolute."""
    import ast
    import inspect

    package = module.__name__.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(inspect.getsource(module))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def test_persistence_does_not_import_the_estimator():
    # The estimator imports _persistence; the other way round would be a cycle.
    import optuna_dl._persistence as persistence
    import optuna_dl.estimator as estimator

    assert "optuna_dl._persistence" in _imported_modules(estimator)
    imported = _imported_modules(persistence)
    assert not {name for name in imported if name.startswith("optuna_dl.estimator")}


@pytest.mark.parametrize("class_weight", [{0: 2.0, 2: 0.5}, "balanced"])
def test_class_weight_survives_a_round_trip(data, tmp_path, class_weight):
    X, y = data
    model = small(class_weight=class_weight).fit(X, y)
    loaded = round_trip(model, tmp_path / "weighted.npz")
    assert loaded.class_weight == class_weight
    assert_same_model(loaded, model, X)
    # The labels keep their type: a refit applies the same weights.
    refit_loaded, refit_model = loaded.fit(X, y), small(class_weight=class_weight).fit(X, y)
    assert np.array_equal(refit_loaded.predict_proba(X), refit_model.predict_proba(X))


def test_string_label_class_weight_survives_a_round_trip(data, tmp_path):
    X, y = data
    names = np.array(["a", "b", "c"])[y]
    model = small(class_weight={"b": 3.0}).fit(X, names)
    loaded = round_trip(model, tmp_path / "names.npz")
    assert loaded.class_weight == {"b": 3.0}
    assert_same_model(loaded, model, X)
