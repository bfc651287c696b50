"""Model files: ``.npz`` with a JSON header, read with ``allow_pickle=False``.

Opening a model file never runs code: every entry is a plain numeric or string array,
and the header is JSON text checked before any array is used.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from optuna_dl.nn.network import Network

FORMAT = "optuna-dl-model"
FORMAT_VERSION = 1


def _label_array(labels: np.ndarray) -> tuple[np.ndarray, str]:
    if labels.dtype.kind in "biuf":
        return labels, labels.dtype.kind
    if labels.dtype.kind == "U":
        return labels, "unicode"
    as_list = labels.tolist()
    if all(isinstance(v, str) for v in as_list):
        return np.array(as_list, dtype=str), "str"
    raise ValueError(
        f"cannot save classes_ of dtype {labels.dtype}: only numbers and strings are "
        "stored in model files."
    )


def save_model(model: Any, path: Any) -> None:
    """Write ``model`` (a fitted DeepNetClassifier) to ``path``."""
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(model, "network_")
    arrays: dict[str, np.ndarray] = {}
    for i, array in enumerate(model.network_.state_arrays()):
        arrays[f"network_{i:03d}"] = array
    optimizer = model.optimizer_
    for slot, slot_arrays in optimizer.state().items():
        for i, array in enumerate(slot_arrays):
            arrays[f"optimizer_{slot}_{i:03d}"] = array
    arrays["classes"], classes_kind = _label_array(model.classes_)
    if hasattr(model, "feature_names_in_"):
        arrays["feature_names"] = np.asarray(model.feature_names_in_, dtype=str)
    params = model.get_params(deep=False)
    if not (params["random_state"] is None or isinstance(params["random_state"], int)):
        params["random_state"] = None
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "class": type(model).__name__,
        "params": params,
        "n_features_in": int(model.n_features_in_),
        "classes_kind": classes_kind,
        "n_iter": int(model.n_iter_),
        "loss_curve": [float(v) for v in model.loss_curve_],
        "validation_scores": model.validation_scores_,
        "best_validation_score": model.best_validation_score_,
        "diverged": bool(model.diverged_),
        "optimizer_t": int(optimizer.t),
        "optimizer_slots": list(optimizer.state()),
        "rng_state": model._rng.bit_generator.state,
        "rng_name": type(model._rng.bit_generator).__name__,
    }
    arrays["header"] = np.array(json.dumps(header))
    with open(os.fspath(path), "wb") as handle:
        np.savez(handle, **arrays)


def load_model(cls: type, path: Any) -> Any:
    """Read a model file written by :func:`save_model`."""
    name = os.fspath(path)
    if not os.path.isfile(name):
        raise FileNotFoundError(f"model file {name!r} does not exist.")
    try:
        with np.load(name, allow_pickle=False) as archive:
            contents = {key: archive[key] for key in archive.files}
    except Exception as error:
        # A damaged archive surfaces as a dozen exception types: BadZipFile, EOFError,
        # NotImplementedError (an unknown compression method or zip version),
        # RuntimeError (the encryption flag), SyntaxError or tokenize.TokenError (a
        # garbled .npy header, parsed before the CRC is checked), zlib and lzma errors,
        # MemoryError (an absurd declared shape). All mean the same thing.
        raise ValueError(
            f"{name!r} is not a readable optuna-dl model file ({type(error).__name__}: {error})."
        ) from None
    not_arrays = [key for key, value in contents.items() if not isinstance(value, np.ndarray)]
    if not_arrays:  # np.load hands back members that are not .npy files as raw bytes
        raise ValueError(
            f"{name!r} is not a readable optuna-dl model file (entry {not_arrays[0]!r} "
            "is not a NumPy array)."
        )
    header = _read_header(name, contents, cls)
    try:
        if not isinstance(header.get("params"), dict):
            raise ValueError("the header has no parameter table")
        model = cls(**header["params"])
        _restore(model, header, contents)
    except (KeyError, ValueError, TypeError, ArithmeticError) as error:
        raise ValueError(f"{name!r} is a damaged optuna-dl model file: {error}") from None
    return model


def _read_header(name: str, contents: dict[str, np.ndarray], cls: type) -> dict[str, Any]:
    raw = contents.get("header")
    if raw is None or raw.dtype.kind != "U" or raw.ndim != 0:
        raise ValueError(f"{name!r} has no optuna-dl header; it is not a model file.")
    try:
        header = json.loads(str(raw))
    except json.JSONDecodeError as error:
        raise ValueError(f"{name!r} has a corrupt header: {error}.") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ValueError(f"{name!r} is not an optuna-dl model file.")
    if header.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{name!r} has model format version {header.get('format_version')!r}; this "
            f"optuna-dl reads version {FORMAT_VERSION}."
        )
    # The file's class must be cls or one of its bases (whose parameters cls accepts).
    if header.get("class") not in [base.__name__ for base in cls.__mro__]:
        raise ValueError(f"{name!r} holds a {header.get('class')!r} model, not a {cls.__name__}.")
    return header


def _restore(model: Any, header: dict[str, Any], contents: dict[str, np.ndarray]) -> None:
    from optuna_dl._validation import check_parameters
    from optuna_dl.estimator import DTYPES, _make_generator

    check_parameters(
        type(model).__name__, model.get_params(deep=False), type(model)._parameter_constraints
    )
    classes = contents["classes"]
    if header["classes_kind"] == "str":
        classes = classes.astype(object)
    model.classes_ = classes
    model.n_features_in_ = _check_sizes(model, header["n_features_in"], classes.size, contents)
    if "feature_names" in contents:
        model.feature_names_in_ = contents["feature_names"].astype(object)
    rng = _make_generator(None)
    if header["rng_name"] != type(rng.bit_generator).__name__:
        raise ValueError(f"unsupported random generator {header['rng_name']!r}")
    rng.bit_generator.state = header["rng_state"]
    model._rng = rng
    network = Network(
        model.n_features_in_,
        classes.size,
        [model.n_units] * model.n_layers,
        activation=model.activation,
        batch_norm=model.batch_norm,
        dropout=model.dropout,
        rng=rng,
        dtype=DTYPES[model.dtype],
    )
    n_arrays = len(network.state_arrays())
    network.set_state_arrays([contents[f"network_{i:03d}"] for i in range(n_arrays)])
    rng.bit_generator.state = header["rng_state"]  # building the network drew from it
    model.network_ = network
    optimizer = model._make_optimizer()
    slots = header["optimizer_slots"]
    if slots:
        expected = [network.flat_params]
        state = {
            slot: [contents[f"optimizer_{slot}_{i:03d}"] for i in range(len(expected))]
            for slot in slots
        }
        for slot, arrays in state.items():
            for array, param in zip(arrays, expected):
                if array.shape != param.shape or array.dtype != param.dtype:
                    raise ValueError(
                        f"optimizer state {slot!r} has shape {array.shape} and dtype "
                        f"{array.dtype}; the network needs {param.shape} and {param.dtype}"
                    )
        optimizer.load_state(header["optimizer_t"], state)
    else:
        optimizer.t = int(header["optimizer_t"])
    model.optimizer_ = optimizer
    model.n_iter_ = int(header["n_iter"])
    model.loss_curve_ = list(header["loss_curve"])
    model.validation_scores_ = header["validation_scores"]
    model.best_validation_score_ = header["best_validation_score"]
    model.history_ = []
    model.diverged_ = bool(header["diverged"])


def _check_sizes(model: Any, n_features: Any, n_classes: int, contents: dict) -> int:
    """Check the header's sizes against the stored arrays before a network of those
    sizes is allocated (a crafted header could ask for terabytes); return n_features."""
    per_layer = 5 if model.batch_norm else 2  # W, gamma, beta and 2 moving averages; W, b
    for i in range(model.n_layers * per_layer + 2):
        contents[f"network_{i:03d}"]  # a KeyError names the first missing array
    if isinstance(n_features, bool) or not isinstance(n_features, int):
        raise ValueError(f"n_features_in is {n_features!r}, not an integer")
    width = model.n_units if model.n_layers else n_classes
    shape = contents["network_000"].shape
    if shape != (n_features, width):
        raise ValueError(
            f"array shape {shape} does not match n_features_in={n_features} and "
            f"{'n_units' if model.n_layers else 'the class count'}={width}"
        )
    return n_features
