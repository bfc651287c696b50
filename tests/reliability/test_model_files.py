"""Model files under fault injection: what tests/test_persistence.py does not cover.

Every damaged file must be refused with a ValueError (or, for a path that is not a
regular file, FileNotFoundError); no damage may yield a model that differs from the
saved one, and loading never runs code. A hypothesis-drawn set of models must round
trip to bit-identical predictions.

The number of corrupted files tried is written to ``model_file_counts.json`` in
pytest's base temporary directory and printed by the last test (``pytest -s``). Set
``RELIABILITY_EXHAUSTIVE=1`` to flip every bit of the file instead of a sample (60,480
loads of the 7,560-byte file, about 4 minutes).
"""

from __future__ import annotations

import collections
import gzip
import io
import json
import os
import pickle
import re
import struct
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optuna_dl import DeepNetClassifier
from optuna_dl.estimator import DivergenceWarning
from optuna_dl.nn.activations import ACTIVATIONS
from optuna_dl.nn.optimizers import OPTIMIZERS

#: corrupted-file outcomes per test, e.g. COUNTS["bit_flips"]["ValueError/BadZipFile"]
COUNTS: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
EXHAUSTIVE = os.environ.get("RELIABILITY_EXHAUSTIVE") == "1"


def fuzz_settings(max_examples: int) -> settings:
    """Deterministic (derandomized, no example database), no deadline."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        database=None,
        derandomize=True,
    )


# --------------------------------------------------------------- the subject
@pytest.fixture(scope="module")
def X():
    return np.random.default_rng(0).normal(size=(40, 3))


@pytest.fixture(scope="module")
def original(tmp_path_factory, X):
    """A model with every kind of array (weights, bias, batch-norm parameters and
    moving averages, Adam moments, string classes), saved once: (model, file bytes)."""
    y = np.array(["ant", "bee", "cat", "dog"])[np.arange(40) % 4]
    model = DeepNetClassifier(n_layers=1, n_units=4, max_epochs=2, random_state=0).fit(X, y)
    path = tmp_path_factory.mktemp("original") / "model.npz"
    model.save(path)
    return model, path.read_bytes()


def regions(content: bytes) -> list[tuple[str, int, int]]:
    """(name, start, stop) of the parts of an .npz: for each member its zip local
    header, its .npy header and its array data; then the central directory and the
    end-of-central-directory record."""
    parts = []
    for info in zipfile.ZipFile(io.BytesIO(content)).infolist():
        start = info.header_offset
        name_length, extra_length = struct.unpack("<HH", content[start + 26 : start + 30])
        data = start + 30 + name_length + extra_length
        npy_header = 10 + struct.unpack("<H", content[data + 8 : data + 10])[0]
        parts.append(("zip local header", start, data))
        parts.append(("npy header", data, data + npy_header))
        parts.append(("array data", data + npy_header, data + info.compress_size))
    end = len(content) - 22
    directory = struct.unpack("<I", content[end + 16 : end + 20])[0]
    parts.append(("central directory", directory, end))
    parts.append(("end of central directory", end, len(content)))
    return parts


def region_of(position: int, parts: list[tuple[str, int, int]]) -> str:
    for name, start, stop in parts:
        if start <= position < stop:
            return name
    return "between members"


def check_damaged(path: Path, model: DeepNetClassifier, X: np.ndarray) -> str:
    """Load a damaged file: a ValueError, or a model identical to ``model``.

    Returns the outcome, e.g. "ValueError/BadZipFile" or "loaded, identical".
    """
    try:
        loaded = DeepNetClassifier.load(path)
    except ValueError as error:
        message = str(error)
        assert path.name in message, message
        inner = re.search(r"model file \((\w+):", message)
        return f"ValueError/{inner.group(1) if inner else 'header or content check'}"
    # Any other exception type propagates and fails the test.
    assert loaded.get_params() == model.get_params()
    assert np.array_equal(loaded.classes_, model.classes_)
    for a, b in zip(loaded.network_.state_arrays(), model.network_.state_arrays(), strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert np.array_equal(loaded.predict_proba(X), model.predict_proba(X))
    return "loaded, identical"


# --------------------------------------------------------------- truncation
@pytest.mark.slow
def test_truncation_at_every_kind_of_cut_point_is_refused(tmp_path, original, X):
    model, content = original
    parts = regions(content)
    cuts = set(range(0, 128))  # the first local header and .npy header, byte by byte
    cuts |= set(range(len(content) - 150, len(content)))  # central directory end, EOCD
    cuts |= set(range(0, len(content), 17))  # everything else, sampled
    cuts |= {stop for _, _, stop in parts} | {stop - 1 for _, _, stop in parts}
    cuts.discard(len(content))  # (the last byte is cut: len(content) - 1 is in)
    counts = COUNTS["truncation"]
    path = tmp_path / "truncated.npz"
    for cut in sorted(cuts):
        path.write_bytes(content[:cut])
        outcome = check_damaged(path, model, X)
        assert outcome.startswith("ValueError"), f"a file cut at {cut} loaded"
        counts["tried"] += 1
        counts[outcome] += 1
    assert counts["tried"] >= 700


def test_trailing_garbage_is_ignored_or_refused(tmp_path, original, X):
    model, content = original
    counts = COUNTS["trailing_garbage"]
    for extra in (b"\0", b"junk" * 100, content, np.random.default_rng(1).bytes(5000)):
        path = tmp_path / "padded.npz"
        path.write_bytes(content + extra)
        counts["tried"] += 1
        counts[check_damaged(path, model, X)] += 1


# ----------------------------------------------------------------- bit flips
@pytest.mark.slow
def test_single_bit_flips_are_refused_or_harmless(tmp_path, original, X):
    """Every byte of the zip structures, every third of the .npy headers and every
    tenth of the array data, with one random bit flipped (every bit of every byte when
    exhaustive)."""
    model, content = original
    parts = regions(content)
    rng = np.random.default_rng(2024)
    flips: list[tuple[int, int]] = []
    for position in range(len(content)):
        region = region_of(position, parts)
        if EXHAUSTIVE:
            flips += [(position, bit) for bit in range(8)]
        elif (
            (region == "array data" and position % 10 == 0)
            or (region == "npy header" and position % 3 == 0)
            or region not in ("array data", "npy header")
        ):
            flips.append((position, int(rng.integers(8))))
    counts = COUNTS["bit_flips"]
    by_region = COUNTS["bit_flips_by_region"]
    path = tmp_path / "flipped.npz"
    for position, bit in flips:
        damaged = bytearray(content)
        damaged[position] ^= 1 << bit
        path.write_bytes(damaged)
        region = region_of(position, parts)
        try:
            outcome = check_damaged(path, model, X)
        except AssertionError as error:
            raise AssertionError(f"flip of bit {bit} at byte {position} ({region})") from error
        if region == "array data":  # the zip CRC-32 catches every flip in the weights
            assert outcome == "ValueError/BadZipFile", (position, bit, outcome)
        counts["tried"] += 1
        counts[outcome] += 1
        by_region[f"{region}: {outcome}"] += 1
    assert counts["tried"] >= 2000 if EXHAUSTIVE else 1500


@fuzz_settings(300)
@given(
    damage=st.lists(
        st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)),
        min_size=1,
        max_size=12,
    ),
    burst=st.booleans(),
)
def test_random_byte_damage_is_refused_or_harmless(tmp_path, original, X, damage, burst):
    """Random bytes XOR-ed with random values, scattered or in one burst."""
    model, content = original
    damaged = bytearray(content)
    start = int(damage[0][0] * len(content))
    for i, (where, mask) in enumerate(damage):
        position = min(start + i, len(content) - 1) if burst else int(where * len(content))
        damaged[position] ^= mask
    path = tmp_path / "damaged.npz"
    path.write_bytes(damaged)
    counts = COUNTS["random_byte_damage"]
    counts["tried"] += 1
    counts[check_damaged(path, model, X)] += 1


# ------------------------------------------------------ crafted content
def entries_of(content: bytes, tmp_path: Path) -> dict[str, np.ndarray]:
    path = tmp_path / "source.npz"
    path.write_bytes(content)
    with np.load(path, allow_pickle=False) as archive:
        return {key: archive[key] for key in archive.files}


def write(path: Path, entries: dict, **kwargs) -> Path:
    with open(path, "wb") as handle:
        np.savez(handle, **entries, **kwargs)
    return path


def with_header(entries: dict, header: dict) -> dict:
    return {**entries, "header": np.array(json.dumps(header))}


@pytest.mark.parametrize(
    "value, message",
    [
        ("LogisticRegression", "holds a 'LogisticRegression' model, not a DeepNetClassifier"),
        (None, "holds a None model"),
        (["DeepNetClassifier"], "holds a \\['DeepNetClassifier'\\] model"),  # unhashable
        ("deepnetclassifier", "holds a 'deepnetclassifier' model"),
    ],
)
def test_a_file_of_another_class_is_refused(tmp_path, original, value, message):
    _, content = original
    entries = entries_of(content, tmp_path)
    header = json.loads(str(entries["header"]))
    header["class"] = value
    path = write(tmp_path / "other.npz", with_header(entries, header))
    with pytest.raises(ValueError, match=message):
        DeepNetClassifier.load(path)
    del header["class"]
    path = write(tmp_path / "classless.npz", with_header(entries, header))
    with pytest.raises(ValueError, match="holds a None model"):
        DeepNetClassifier.load(path)


def test_a_subclass_loads_files_of_its_base_class_but_not_the_reverse(tmp_path, original):
    class Tuned(DeepNetClassifier):
        pass

    model, content = original
    path = tmp_path / "base.npz"
    path.write_bytes(content)
    assert type(Tuned.load(path)) is Tuned
    Tuned(**model.get_params()).fit(np.eye(4), ["a", "b", "a", "b"]).save(tmp_path / "sub.npz")
    with pytest.raises(ValueError, match="holds a 'Tuned' model, not a DeepNetClassifier"):
        DeepNetClassifier.load(tmp_path / "sub.npz")


@pytest.mark.parametrize("version", [0, 2, "1", 1.5, None, [1]])
def test_a_file_of_another_format_version_is_refused(tmp_path, original, version):
    _, content = original
    entries = entries_of(content, tmp_path)
    header = json.loads(str(entries["header"]))
    header["format_version"] = version
    path = write(tmp_path / "versioned.npz", with_header(entries, header))
    with pytest.raises(ValueError, match="has model format version"):
        DeepNetClassifier.load(path)


class Payload:
    """Unpickling this object creates ``path``: loading must never do it."""

    def __init__(self, path):
        self.path = os.fspath(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_pickle_in_any_entry_is_refused_without_running_code(tmp_path, original):
    _, content = original
    entries = entries_of(content, tmp_path)
    marker = tmp_path / "marker"
    counts = COUNTS["pickle_bearing"]
    for entry in entries:
        payload = np.array([Payload(marker)], dtype=object)
        path = write(tmp_path / "evil.npz", {**entries, entry: payload}, allow_pickle=True)
        with pytest.raises(ValueError, match="Object arrays cannot be loaded"):
            DeepNetClassifier.load(path)
        assert not marker.exists(), entry
        counts["tried"] += 1
    assert counts["tried"] == len(entries) >= 10


@pytest.mark.parametrize(
    "make",
    ["pickle_member", "npy_of_pickle", "gzip_of_pickle", "pickle_protocol_0"],
)
def test_pickles_in_other_disguises_are_refused_without_running_code(tmp_path, original, make):
    _, content = original
    marker = tmp_path / "marker"
    path = tmp_path / "model.npz"
    evil = pickle.dumps(Payload(marker))
    if make == "pickle_member":  # a zip member that is not .npy: np.load gives bytes
        path.write_bytes(content)
        with zipfile.ZipFile(path, "a") as archive:
            archive.writestr("evil.pkl", evil)
        expected = "entry 'evil.pkl' is not a NumPy array"
    elif make == "npy_of_pickle":  # a plain .npy of an object array, renamed
        with open(path, "wb") as handle:
            np.save(handle, np.array([Payload(marker)], dtype=object), allow_pickle=True)
        expected = "not a readable optuna-dl model file"
    elif make == "gzip_of_pickle":
        path.write_bytes(gzip.compress(evil))
        expected = "not a readable optuna-dl model file"
    else:
        path.write_bytes(pickle.dumps(Payload(marker), protocol=0))
        expected = "not a readable optuna-dl model file"
    with pytest.raises(ValueError, match=expected):
        DeepNetClassifier.load(path)
    assert not marker.exists()
    COUNTS["pickle_bearing"]["tried"] += 1


@pytest.mark.parametrize(
    "kind",
    ["empty", "text", "npy_renamed", "empty_zip", "png", "zip_of_text_members"],
)
def test_files_that_are_not_model_archives_are_refused(tmp_path, kind):
    path = tmp_path / "model.npz"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("weights: [1, 2, 3]\n")
    elif kind == "npy_renamed":  # np.load returns an ndarray: used to be a TypeError
        with open(path, "wb") as handle:
            np.save(handle, np.zeros(3))
    elif kind == "empty_zip":
        zipfile.ZipFile(path, "w").close()
    elif kind == "png":
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    else:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("header.txt", "hello")
    with pytest.raises(ValueError, match=r"not a readable optuna-dl model file|no optuna-dl"):
        DeepNetClassifier.load(path)
    COUNTS["not_an_archive"]["tried"] += 1


def test_paths_that_are_not_regular_files_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        DeepNetClassifier.load(tmp_path)  # a directory
    with pytest.raises(FileNotFoundError, match="does not exist"):
        DeepNetClassifier.load(tmp_path / "missing.npz")
    if hasattr(os, "mkfifo") and sys.platform != "win32":  # opening a FIFO would block
        fifo = tmp_path / "fifo.npz"
        os.mkfifo(fifo)
        with pytest.raises(FileNotFoundError, match="does not exist"):
            DeepNetClassifier.load(fifo)
    COUNTS["not_a_file"]["tried"] += 3


@pytest.mark.parametrize(
    "field, value, message",
    [
        # used to escape as ZeroDivisionError from the weight initializer
        ("n_features_in", 0, "does not match n_features_in=0"),
        # used to escape as OverflowError from int(inf)
        ("n_features_in", float("inf"), "n_features_in is inf, not an integer"),
        ("n_iter", float("inf"), "cannot convert float infinity"),
        ("optimizer_t", float("inf"), "cannot convert float infinity"),
        # used to allocate the network first (MemoryError, or an out-of-memory kill for
        # sizes that fit in virtual memory but not in RAM)
        ("n_features_in", 10**12, "does not match n_features_in=1000000000000"),
        ("n_features_in", 1e9, "n_features_in is 1000000000.0, not an integer"),
        ("n_units", 10**9, "does not match n_features_in=3 and n_units=1000000000"),
        ("n_layers", 10**9, "'network_007'"),
    ],
)
def test_header_sizes_that_do_not_match_the_arrays_are_refused(
    tmp_path, original, field, value, message
):
    _, content = original
    entries = entries_of(content, tmp_path)
    header = json.loads(str(entries["header"]))
    if field in header["params"]:
        header["params"][field] = value
    else:
        header[field] = value
    path = write(tmp_path / "sizes.npz", with_header(entries, header))
    with pytest.raises(ValueError, match=f"damaged optuna-dl model file: .*{message}"):
        DeepNetClassifier.load(path)
    COUNTS["crafted_header"]["tried"] += 1


GARBAGE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.lists(st.integers(-3, 3), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def header_paths(header: dict) -> list[tuple[str, ...]]:
    paths = []
    for key, value in header.items():
        paths.append((key,))
        if isinstance(value, dict):
            paths += [(key, inner) for inner in value]
    return sorted(paths)


@pytest.mark.slow
@fuzz_settings(400)
@given(data=st.data())
def test_a_crafted_header_is_refused_or_gives_a_working_model(tmp_path, original, X, data):
    """Header fields (CRC-valid, so only a crafted file has them) set to garbage or
    deleted: a ValueError, or a model whose probabilities are finite."""
    _, content = original
    entries = entries_of(content, tmp_path)
    header = json.loads(str(entries["header"]))
    for _ in range(data.draw(st.integers(1, 3))):
        key_path = data.draw(st.sampled_from(header_paths(header)))
        value = data.draw(GARBAGE)
        target = header
        for key in key_path[:-1]:
            target = target[key]
        if data.draw(st.booleans()):
            target[key_path[-1]] = value
        else:
            del target[key_path[-1]]
    path = write(tmp_path / "crafted.npz", with_header(entries, header))
    counts = COUNTS["crafted_header"]
    counts["tried"] += 1
    try:
        loaded = DeepNetClassifier.load(path)
    except ValueError as error:
        assert str(error).strip()
        counts["ValueError"] += 1
        return
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            proba = loaded.predict_proba(X)
    except ValueError:
        counts["loaded, predict refused"] += 1
        return
    assert np.all(np.isfinite(proba))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-6)
    counts["loaded, finite"] += 1


# --------------------------------------------------------------- round trips
LABELS = {
    "int": lambda c: np.arange(c) * 3 + 1,
    "negative_int": lambda c: -np.arange(c) - 100,
    "str": lambda c: np.array([f"label {i}" for i in range(c)]),
    "unicode": lambda c: np.array([f"ÿ日本🙂{i}" for i in range(c)]),
    "object_str": lambda c: np.array([f"obj{i}" for i in range(c)], dtype=object),
    "bool": lambda c: np.array([False, True]),
    "integral_float": lambda c: np.arange(c) * 2.0 - 1.0,
    "uint8": lambda c: np.arange(c, dtype=np.uint8) + 250 - c,
}


@pytest.mark.slow
@fuzz_settings(200)
@given(
    label_kind=st.sampled_from(sorted(LABELS)),
    n_classes=st.integers(2, 5),
    dtype=st.sampled_from(["float32", "float64"]),
    batch_norm=st.booleans(),
    n_layers=st.integers(0, 3),
    n_units=st.integers(1, 8),
    activation=st.sampled_from(sorted(ACTIVATIONS)),
    optimizer=st.sampled_from(sorted(OPTIMIZERS)),
    early_stopping=st.booleans(),
    dropout=st.sampled_from([0.0, 0.3]),
    seed=st.integers(0, 2**32 - 1),
)
def test_round_trip_gives_bit_identical_predictions(
    tmp_path,
    label_kind,
    n_classes,
    dtype,
    batch_norm,
    n_layers,
    n_units,
    activation,
    optimizer,
    early_stopping,
    dropout,
    seed,
):
    rng = np.random.default_rng(seed)
    table = LABELS[label_kind](n_classes)
    X = rng.normal(size=(60, 4)) * rng.choice([1e-3, 1.0, 1e3])
    y = table[np.arange(60) % table.size]
    model = DeepNetClassifier(
        dtype=dtype,
        batch_norm=batch_norm,
        n_layers=n_layers,
        n_units=n_units,
        activation=activation,
        optimizer=optimizer,
        early_stopping=early_stopping,
        validation_fraction=0.25,
        dropout=dropout,
        max_epochs=3,
        random_state=seed,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DivergenceWarning)
        model.fit(X, y)
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = DeepNetClassifier.load(path)
    COUNTS["round_trip"]["tried"] += 1
    X_new = rng.normal(size=(25, 4))
    for data in (X, X_new):
        assert np.array_equal(loaded.predict_proba(data), model.predict_proba(data))
        predicted, expected = loaded.predict(data), model.predict(data)
        assert predicted.dtype == expected.dtype
        assert np.array_equal(predicted, expected)
    assert loaded.classes_.dtype == model.classes_.dtype
    for a, b in zip(loaded.network_.state_arrays(), model.network_.state_arrays(), strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)


# ---------------------------------------------------------------- the tally
@pytest.fixture(scope="module", autouse=True)
def write_counts(tmp_path_factory):
    yield
    path = tmp_path_factory.getbasetemp() / "model_file_counts.json"
    path.write_text(json.dumps(COUNTS, indent=2, sort_keys=True))


@pytest.fixture(scope="module", autouse=True)
def report_counts(tmp_path_factory):
    """After the module: the tally, printed (pytest -s) and written as JSON."""
    yield
    if not COUNTS:
        return
    corrupt = sum(
        counts["tried"]
        for name, counts in COUNTS.items()
        if name not in ("round_trip", "bit_flips_by_region")
    )
    print(f"\ncorrupt or hostile model files tried: {corrupt}")
    print(json.dumps(COUNTS, indent=1, sort_keys=True))
    path = tmp_path_factory.getbasetemp() / "model_file_counts.json"
    path.write_text(json.dumps({"corrupt_files_tried": corrupt, "counts": COUNTS}, indent=1))
