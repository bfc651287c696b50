"""Model files: ``.npz`` with a JSON header, read with ``allow_pickle=False``.

Opening a model file never runs code: every entry is a plain numeric or string array,
and the header is JSON text checked before any array is used.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from optuna_dl._validation import check_parameters

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


def _plain(value: Any) -> Any:
    """A NumPy scalar as the Python value JSON can store."""
    return value.item() if isinstance(value, np.generic) else value


@dataclass
class ModelState:
    """Everything a model file holds, as plain values and arrays.

    The estimator turns itself into one (``_BaseDeepNet._to_state``) and builds
    itself from one (``_BaseDeepNet._from_state``); this module turns one into a
    file and back, checking what it reads, without knowing the estimator's internals.
    """

    params: dict[str, Any]
    #: The classifier's ``classes_``; None for a regressor.
    classes: np.ndarray | None
    n_features_in: int
    feature_names_in: np.ndarray | None
    #: ``Network.state_arrays()``: parameters then buffers, in the network's order.
    network: list[np.ndarray]
    optimizer_t: int
    #: The optimizer's state arrays by slot (empty for plain SGD or before a step).
    optimizer_state: dict[str, list[np.ndarray]]
    rng: np.random.Generator
    n_iter: int
    loss_curve: list[float]
    validation_scores: list[float] | None
    best_validation_score: float | None
    diverged: bool
    #: The regressor's target scaling (``y_mean_``, ``y_scale_``); None for a classifier.
    target_mean: np.ndarray | None = None
    target_scale: np.ndarray | None = None


def save_model(model: Any, path: Any) -> None:
    """Write ``model`` (a fitted DeepNetClassifier or DeepNetRegressor) to ``path``."""
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(model, "network_")
    state: ModelState = model._to_state()
    arrays: dict[str, np.ndarray] = {}
    for i, array in enumerate(state.network):
        arrays[f"network_{i:03d}"] = array
    for slot, slot_arrays in state.optimizer_state.items():
        for i, array in enumerate(slot_arrays):
            arrays[f"optimizer_{slot}_{i:03d}"] = array
    if state.classes is not None:
        arrays["classes"], classes_kind = _label_array(state.classes)
    else:
        classes_kind = None
        arrays["target_mean"] = np.asarray(state.target_mean, dtype=np.float64)
        arrays["target_scale"] = np.asarray(state.target_scale, dtype=np.float64)
    if state.feature_names_in is not None:
        arrays["feature_names"] = np.asarray(state.feature_names_in, dtype=str)
    params = dict(state.params)
    if not (params["random_state"] is None or isinstance(params["random_state"], int)):
        params["random_state"] = None
    if isinstance(params.get("class_weight"), dict):
        # JSON keys are strings: store [label, weight] pairs to keep numeric labels.
        params["class_weight"] = [
            [_plain(label), float(weight)] for label, weight in params["class_weight"].items()
        ]
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "class": type(model).__name__,
        "params": params,
        "n_features_in": int(state.n_features_in),
        "classes_kind": classes_kind,
        "n_iter": int(state.n_iter),
        "loss_curve": [float(v) for v in state.loss_curve],
        "validation_scores": state.validation_scores,
        "best_validation_score": state.best_validation_score,
        "diverged": bool(state.diverged),
        "optimizer_t": int(state.optimizer_t),
        "optimizer_slots": list(state.optimizer_state),
        "rng_state": state.rng.bit_generator.state,
        "rng_name": type(state.rng.bit_generator).__name__,
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
        model = cls._from_state(_decode(cls, header, contents))
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


def _decode(cls: Any, header: dict[str, Any], contents: dict[str, np.ndarray]) -> ModelState:
    """The state stored in a file, its parameters checked against ``cls``'s rules and
    its sizes against its arrays (before anything of those sizes is allocated)."""
    if not isinstance(header.get("params"), dict):
        raise ValueError("the header has no parameter table")
    stored = dict(header["params"])
    if isinstance(stored.get("class_weight"), list):
        pairs = stored["class_weight"]
        if not all(isinstance(pair, list) and len(pair) == 2 for pair in pairs):
            raise ValueError("class_weight in the header is not a list of [label, weight]")
        stored["class_weight"] = {label: weight for label, weight in pairs}
    params = cls(**stored).get_params(deep=False)
    check_parameters(cls.__name__, params, cls._parameter_constraints)
    target_mean = target_scale = None
    if header["classes_kind"] is None:  # a regressor: its target scaling instead of classes
        classes = None
        target_mean, target_scale = contents["target_mean"], contents["target_scale"]
        if target_mean.dtype != np.float64 or target_mean.shape != target_scale.shape:
            raise ValueError("the target scaling arrays do not match")
        if (
            target_mean.ndim > 1
            or not np.isfinite(target_scale).all()
            or (target_scale <= 0).any()
        ):
            raise ValueError("the target scaling arrays are not a mean and a positive scale")
        n_outputs = target_mean.size
    else:
        classes = contents["classes"]
        if header["classes_kind"] == "str":
            classes = classes.astype(object)
        n_outputs = classes.size
    n_features, n_arrays = _check_sizes(params, header["n_features_in"], n_outputs, contents)
    feature_names = contents.get("feature_names")
    rng = np.random.default_rng()
    if header["rng_name"] != type(rng.bit_generator).__name__:
        raise ValueError(f"unsupported random generator {header['rng_name']!r}")
    rng.bit_generator.state = header["rng_state"]
    slots = header["optimizer_slots"]
    return ModelState(
        params=params,
        classes=classes,
        n_features_in=n_features,
        feature_names_in=None if feature_names is None else feature_names.astype(object),
        network=[contents[f"network_{i:03d}"] for i in range(n_arrays)],
        # The optimizer updates one flat vector of every parameter: one array per slot.
        optimizer_state={slot: [contents[f"optimizer_{slot}_000"]] for slot in slots}
        if slots
        else {},
        optimizer_t=int(header["optimizer_t"]),
        rng=rng,
        n_iter=int(header["n_iter"]),
        loss_curve=list(header["loss_curve"]),
        validation_scores=header["validation_scores"],
        best_validation_score=header["best_validation_score"],
        diverged=bool(header["diverged"]),
        target_mean=target_mean,
        target_scale=target_scale,
    )


def _check_sizes(
    params: dict[str, Any], n_features: Any, n_outputs: int, contents: dict
) -> tuple[int, int]:
    """Check the header's sizes against the stored arrays before a network of those
    sizes is allocated (a crafted header could ask for terabytes); return n_features
    and the number of network arrays."""
    per_layer = 5 if params["batch_norm"] else 2  # W, gamma, beta and 2 moving averages; W, b
    n_arrays = params["n_layers"] * per_layer + 2
    for i in range(n_arrays):
        contents[f"network_{i:03d}"]  # a KeyError names the first missing array
    if isinstance(n_features, bool) or not isinstance(n_features, int):
        raise ValueError(f"n_features_in is {n_features!r}, not an integer")
    width = params["n_units"] if params["n_layers"] else n_outputs
    shape = contents["network_000"].shape
    if shape != (n_features, width):
        raise ValueError(
            f"array shape {shape} does not match n_features_in={n_features} and "
            f"{'n_units' if params['n_layers'] else 'the output count'}={width}"
        )
    return n_features, n_arrays
