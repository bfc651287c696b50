"""Property-based fuzzing of study files through the ``optuna-dl`` command line.

Each input is one of the shipped study files (``studies/*.toml``), made tiny (one
epoch on one hold-out split, one trial) and then damaged. Two strategies:

* **Any damage**: values of the wrong type, missing sections and keys, unknown keys,
  keys moved to another table, huge, negative or zero numbers, NaN and infinities,
  non-ASCII, empty and over-long names, tables where a value belongs and values where
  a table belongs, TOML dates, and broken TOML syntax or bytes.
* **Plausible values**: one or two values of the search space, the fixed estimator
  parameters, the sampler, the pruner or ``[search]`` set to numbers at the edges
  (``10**30``, ``1e308``, 0, -1, ``5e-324``, NaN), other kinds, scales and choices,
  so that many files stay valid and their trials really run.

Each damaged file goes through ``optuna-dl run``, ``best`` or ``export`` (in-process,
``optuna_dl.cli.main``) against a storage that either does not exist yet or already
holds the study with one finished trial. Every input must end in one of two ways:

* exit code 0: the damage left a valid study file, and the command did its work (a
  ``run`` on a new storage trains one trial) without a traceback;
* exit code 2 with one line on stderr and no traceback. A study-file error names the
  file and the key (or "not valid TOML" and the line); ``best`` and ``export`` may
  instead say that the storage holds no study of that name. The storage is untouched
  (a new SQLite file was not created, an existing one has the same bytes) and no model
  file is written.

Anything else (another exit code, an exception, a traceback, a changed storage) is a
failure. Hypothesis runs derandomized with no example database, so the same inputs are
tried on every run. The tally is written to ``config_fuzz_counts.json`` in pytest's
base temporary directory and printed by the last test (``pytest -s``).
"""

from __future__ import annotations

import collections
import contextlib
import copy
import datetime
import hashlib
import io
import json
import logging
import math
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optuna_dl import cli

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

STUDIES = Path(__file__).resolve().parents[2] / "studies"
#: outcome counts per test, e.g. COUNTS["any damage"]["refused"]
COUNTS: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
#: what the refusals named: "key 'search.cv'", "TOML syntax", ...
NAMED: collections.Counter = collections.Counter()
#: how often each kind of damage was drawn
COVERAGE: collections.Counter = collections.Counter()
#: seconds spent per command and outcome
SECONDS: collections.Counter = collections.Counter()


def fuzz_settings(max_examples: int) -> settings:
    """Deterministic (derandomized, no example database), no deadline."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )


def tiny(document: dict[str, Any]) -> dict[str, Any]:
    """A shipped study with one epoch per trial on one hold-out split (the command
    lines ask for one trial)."""
    document = copy.deepcopy(document)
    search = document.setdefault("search", {})
    search.pop("cv", None)
    search["max_epochs"] = 1
    search["patience"] = 1
    return document


BASES = {path.stem: tiny(tomllib.loads(path.read_text())) for path in STUDIES.glob("*.toml")}
BASES = dict(sorted(BASES.items()))


# -------------------------------------------------------------- TOML writing
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else _string(key)


def _string(text: str) -> str:
    # JSON string escapes are TOML basic-string escapes; DEL must be escaped in TOML.
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(type(value))


def dump(document: dict[str, Any]) -> str:
    """``document`` as TOML: tables as [headers], nested tables as [a.b] headers."""
    lines: list[str] = []

    def table(body: dict[str, Any], prefix: list[str]) -> None:
        scalars = {k: v for k, v in body.items() if not isinstance(v, dict)}
        tables = {k: v for k, v in body.items() if isinstance(v, dict)}
        if prefix and (scalars or not tables):
            lines.append("[" + ".".join(_key(p) for p in prefix) + "]")
        lines.extend(f"{_key(k)} = {_value(v)}" for k, v in scalars.items())
        for key, sub in tables.items():
            table(sub, [*prefix, key])

    table(document, [])
    return "\n".join(lines) + "\n"


def test_the_toml_writer_round_trips_every_base_study() -> None:
    for document in BASES.values():
        assert tomllib.loads(dump(document)) == document


# ------------------------------------------------------------------- damage
HUGE = [10**30, -(10**30), 2**63 - 1, 2**64, 1e308, -1e308, 10**9]
EDGE = [0, -1, 1, 2, 0.0, -0.0, 0.5, 1.5, 5e-324, 1e-308, 0.999999]
NON_FINITE = [math.inf, -math.inf, math.nan]
DATES = [datetime.date(2024, 1, 1), datetime.datetime(2024, 1, 1, 12, 0), datetime.time(12, 0)]
WRONG_TYPE = [True, False, "", " ", "x", "0.1", [], [1, 2], ["a"], [[1]], [{}], {}, {"a": 1}]
WRONG_TYPE += DATES
TEXT = ["日本語", "straße", "🙂", "a/b", "x" * 300, "\x00", "\x7f", "relu", "log", "int"]
POOLS = {"huge": HUGE, "edge": EDGE, "non-finite": NON_FINITE, "type": WRONG_TYPE, "text": TEXT}
NAMES = ["", " ", "研究", "straße", "🙂", "a/b", "..", "x" * 201, "x" * 200, "a\x00b", "-"]
TOP_KEYS = ["name", "direction", "n_trials", "timeout", "seed", "storage", "report"]
TOP_KEYS += ["data", "estimator", "search", "space", "sampler", "pruner"]
NEW_KEYS = ["bogus", "n_trial", "Name", "日本", "", "cv", "kind", "name", "seed", "low"]
ESTIMATOR_KEYS = [
    "n_layers", "n_units", "activation", "batch_norm", "optimizer", "learning_rate", "beta",
    "learning_rate_decay", "decay_schedule", "batch_size", "l2", "dropout", "early_stopping",
    "tol", "dtype", "verbose", "random_state", "warm_start",
]  # fmt: skip
SPACE_ENTRIES = [
    "learning_rate", "optimizer", "n_layers", "learning_rate_decay", "beta", "n_units",
    "batch_size", "beta1", "epsilon", "dropout", "l2", "activation", "bogus",
]  # fmt: skip
SPACE_FIELDS = {
    "low": [], "high": [], "tier": [1, 4, 10],
    "enabled": [True, False], "kind": ["float", "int", "categorical"],
    "scale": ["linear", "log", "reverse_log", "power_of_two"],
    "choices": [["relu", "tanh"], [0.1, 0.2], [1, 10**30], [math.nan], [True], ["adam"]],
}  # fmt: skip
SAMPLER_ARGS = ["n_startup_trials", "multivariate", "constant_liar", "n_ei_candidates", "seed"]
SAMPLER_ARGS += ["warn_independent_sampling", "scramble", "qmc_type", "bogus"]
PRUNER_ARGS = ["n_startup_trials", "n_warmup_steps", "interval_steps", "min_resource"]
PRUNER_ARGS += ["max_resource", "reduction_factor", "percentile", "patience", "bogus"]
SAMPLERS = ["TPESampler", "RandomSampler", "QMCSampler", "GridSampler", "CmaEsSampler", "x"]
PRUNERS = ["MedianPruner", "PercentilePruner", "SuccessiveHalvingPruner", "HyperbandPruner"]
PRUNERS += ["PatientPruner", "ThresholdPruner", "WilcoxonPruner", "NopPruner", "x"]
SYNTAX = ["truncate", "insert", "duplicate", "bytes", "crlf"]


def _paths(document: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every key path of ``document`` (tables and values)."""
    if not isinstance(document, dict):
        return []
    paths = []
    for key, value in document.items():
        paths.append((*prefix, key))
        paths.extend(_paths(value, (*prefix, key)))
    return paths


def _tables(document: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    for key, value in document.items():
        if isinstance(value, dict):
            found.extend(_tables(value, (*prefix, key)))
    return found


def _table(document: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any] | None:
    """The table at ``path``, created if missing; None if a value is in the way."""
    for key in path:
        document = document.setdefault(key, {})
        if not isinstance(document, dict):
            return None
    return document


def _short(value: Any) -> str:
    text = _value(value)
    return text if len(text) <= 30 else text[:27] + "..."


@st.composite
def damaged_studies(draw: st.DrawFn) -> dict[str, Any]:
    """A damaged study: its base name, the bytes of the file, and the damage done."""
    base = draw(st.sampled_from(sorted(BASES)))
    document = copy.deepcopy(BASES[base])
    damage: list[str] = []
    damaged: list[str] = []  # dotted keys touched

    def hostile(*extra: Any) -> Any:
        pool = draw(st.sampled_from([*POOLS, "extra"] if extra else list(POOLS)))
        COVERAGE[f"value: {pool}"] += 1
        return copy.deepcopy(
            draw(st.sampled_from(list(extra) if pool == "extra" else POOLS[pool]))
        )

    def assign(path: tuple[str, ...], value: Any, kind: str) -> None:
        table = _table(document, path[:-1])
        if table is None:
            return
        table[path[-1]] = value
        damage.append(f"{kind} {'.'.join(path)} = {_short(value)}")
        damaged.append(".".join(path))
        COVERAGE[kind] += 1

    for _ in range(draw(st.sampled_from([1, 1, 1, 2, 2, 3]))):
        kind = draw(
            st.sampled_from(
                ["value", "value", "delete", "unknown key", "top-level key", "name",
                 "estimator", "estimator", "space", "space", "space", "max_tier", "sampler",
                 "pruner", "move"]
            )
        )  # fmt: skip
        paths = _paths(document)
        if kind == "value" and paths:
            assign(draw(st.sampled_from(paths)), hostile(), kind)
        elif kind == "delete" and paths:
            path = draw(st.sampled_from(paths))
            del _table(document, path[:-1])[path[-1]]
            damage.append(f"delete {'.'.join(path)}")
            damaged.append(".".join(path))
            COVERAGE[kind] += 1
        elif kind == "unknown key":
            path = draw(st.sampled_from(_tables(document)))
            assign((*path, draw(st.sampled_from(NEW_KEYS))), hostile(), kind)
        elif kind == "top-level key":
            assign((draw(st.sampled_from(TOP_KEYS)),), hostile(), kind)
        elif kind == "name":
            assign(("name",), draw(st.sampled_from(NAMES)), kind)
        elif kind == "estimator":
            key = draw(st.sampled_from(ESTIMATOR_KEYS))
            assign(("estimator", key), hostile(), kind)
        elif kind == "space":
            field = draw(st.sampled_from(sorted(SPACE_FIELDS)))
            entry = draw(st.sampled_from(SPACE_ENTRIES))
            assign(("space", entry, field), hostile(*SPACE_FIELDS[field]), kind)
        elif kind == "max_tier":
            assign(("search", "max_tier"), draw(st.sampled_from([1, 2, 4, 10, 0, 11])), kind)
        elif kind == "sampler":
            if draw(st.booleans()):
                assign(("sampler", "name"), draw(st.sampled_from(SAMPLERS)), kind)
            else:
                assign(("sampler", draw(st.sampled_from(SAMPLER_ARGS))), hostile(), kind)
        elif kind == "pruner":
            if draw(st.booleans()):
                assign(("pruner", "name"), draw(st.sampled_from(PRUNERS)), kind)
            else:
                assign(("pruner", draw(st.sampled_from(PRUNER_ARGS))), hostile(), kind)
        elif kind == "move" and paths:  # a key moved into another table
            path = draw(st.sampled_from(paths))
            value = _table(document, path[:-1]).pop(path[-1])
            target = draw(st.sampled_from(_tables(document)))
            _table(document, target)[path[-1]] = value
            damage.append(f"move {'.'.join(path)} to [{'.'.join(target)}]")
            damaged.extend([".".join(path), ".".join((*target, path[-1]))])
            COVERAGE[kind] += 1
    text = dump(document)
    syntax = draw(st.sampled_from(["none"] * 8 + SYNTAX))
    if syntax == "truncate":
        text = text[: draw(st.integers(0, len(text) - 1))]
    elif syntax == "insert":
        at = draw(st.integers(0, len(text)))
        text = (
            text[:at] + draw(st.sampled_from(["=", "[", "]", '"', "\n[", "{", "\\"])) + text[at:]
        )
    elif syntax == "duplicate":
        lines = text.splitlines(keepends=True)
        line = draw(st.integers(0, len(lines) - 1))
        text = "".join(lines[: line + 1] + [lines[line]] + lines[line + 1 :])
    elif syntax == "crlf":
        text = text.replace("\n", "\r\n")
    raw = text.encode()
    if syntax == "bytes":
        at = draw(st.integers(0, len(raw)))
        raw = (
            raw[:at]
            + draw(st.sampled_from([b"\xff", b"\x00", b"\xef\xbb\xbf", b"\xc3"]))
            + raw[at:]
        )
    if syntax != "none":
        damage.append(f"syntax: {syntax}")
        COVERAGE[f"syntax: {syntax}"] += 1
    return {"base": base, "raw": raw, "damage": damage, "damaged": damaged}


NUMBERS = HUGE + EDGE + NON_FINITE
#: Complete entries for parameters the default space does not search.
NEW_ENTRIES = {
    "dropout": {"kind": "float", "low": 0.0, "high": 0.5},
    "l2": {"kind": "float", "low": 1e-6, "high": 1e-2, "scale": "log"},
    "activation": {"kind": "categorical", "choices": ["relu", "tanh"]},
    "bogus": {"kind": "float", "low": 0.0, "high": 1.0},
}
ESTIMATOR_VALUES = NUMBERS + [True, "relu", "adam", "float64", "step", ""]
SEARCH_KEYS = ["cv", "validation_fraction", "max_epochs", "patience", "max_tier"]


@st.composite
def plausible_damage(draw: st.DrawFn) -> dict[str, Any]:
    """A study with one or two values of its space, estimator, sampler, pruner or
    search settings changed to an edge value of the right type, or to another kind,
    scale or choice list: often still valid, so its trial runs."""
    base = draw(st.sampled_from(sorted(BASES)))
    document = copy.deepcopy(BASES[base])
    damage: list[str] = []
    damaged: list[str] = []
    if draw(st.booleans()):  # fewer searched parameters: more can be fixed
        document["search"]["max_tier"] = 1
        damage.append("max_tier = 1")
    for _ in range(draw(st.sampled_from([1, 1, 2]))):
        target = draw(
            st.sampled_from(["space"] * 3 + ["estimator"] * 2 + ["sampler", "pruner", "search"])
        )
        if target == "space":
            entry = draw(st.sampled_from(SPACE_ENTRIES))
            space = document.setdefault("space", {})
            if entry in NEW_ENTRIES and entry not in space:
                space[entry] = copy.deepcopy(NEW_ENTRIES[entry])
            field = draw(st.sampled_from(sorted(SPACE_FIELDS)))
            pool = SPACE_FIELDS[field] + (NUMBERS if field in ("low", "high", "tier") else [])
            path: tuple[str, ...] = ("space", entry, field)
        elif target == "estimator":
            path, pool = ("estimator", draw(st.sampled_from(ESTIMATOR_KEYS))), ESTIMATOR_VALUES
        elif target == "sampler":
            args = SAMPLER_ARGS if draw(st.integers(0, 3)) else ["name"]
            path = ("sampler", draw(st.sampled_from(args)))
            pool = SAMPLERS[:-1] if path[-1] == "name" else NUMBERS + [True, "sobol"] + DATES
        elif target == "pruner":
            args = PRUNER_ARGS if draw(st.integers(0, 3)) else ["name"]
            path = ("pruner", draw(st.sampled_from(args)))
            pool = PRUNERS[:-1] if path[-1] == "name" else NUMBERS + [True, "auto"] + DATES
        else:
            path, pool = ("search", draw(st.sampled_from(SEARCH_KEYS))), NUMBERS
        value = copy.deepcopy(draw(st.sampled_from(pool)))
        _table(document, path[:-1])[path[-1]] = value
        damage.append(f"{'.'.join(path)} = {_short(value)}")
        damaged.append(".".join(path))
        COVERAGE[f"plausible: {target}"] += 1
    return {"base": base, "raw": dump(document).encode(), "damage": damage, "damaged": damaged}


# --------------------------------------------------------------- the runs
def digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def run_cli(*args: object) -> tuple[int, str, str]:
    """``main(args)`` in-process: exit code, stdout, stderr (Optuna's log included)."""
    out, err = io.StringIO(), io.StringIO()
    handler = logging.StreamHandler(err)
    logger = logging.getLogger("optuna")
    logger.addHandler(handler)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = cli.main([str(a) for a in args])
            except SystemExit as exit:
                code = exit.code
    finally:
        logger.removeHandler(handler)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A folder with the CSV data, and for each base study a storage holding it with one
    finished trial (what ``best`` and ``export`` read, and what ``run`` resumes)."""
    folder = tmp_path_factory.mktemp("config_fuzz")
    (folder / "data").mkdir()
    shutil.copy(STUDIES / "data" / "iris.csv", folder / "data" / "iris.csv")
    templates = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cli, "_write_report", lambda study, config: None)
        for base, document in BASES.items():
            path = folder / f"{base}.toml"
            path.write_text(dump(document))
            db = folder / f"{base}.template.db"
            code, _, err = run_cli("run", path, "--storage", f"sqlite:///{db}", "--n-trials", 1)
            assert code == 0, err
            templates[base] = db
    return {"folder": folder, "templates": templates}


def _refusal(err: str, path: Path, command: str) -> str:
    """Check that a refusal is one line that says what it is about; what it names."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("optuna-dl: error: "), err
    assert "Traceback" not in err, err
    message = lines[0][len("optuna-dl: error: ") :]
    if message.startswith(f"{path}:"):
        key = re.search(r": key '([^']*)': ", message)
        if key:
            return f"key '{key.group(1)}'"
        assert "not valid TOML" in message, message
        assert "line" in message or "end of document" in message, message
        return "TOML syntax"
    # Not about the study file: the storage has no study of that name (best, export).
    assert command in ("best", "export") and "no study named" in message, message
    return "no study of that name"


def check(
    work: dict[str, Any], case: dict[str, Any], command: str, existing: bool, test: str
) -> None:
    """Run ``command`` on the damaged file; check and count the outcome."""
    folder: Path = work["folder"]
    path = folder / f"{case['base']}.toml"
    path.write_bytes(case["raw"])
    db, model = folder / "fuzz.db", folder / "model.npz"
    db.unlink(missing_ok=True)
    model.unlink(missing_ok=True)
    if existing or command != "run":
        shutil.copy(work["templates"][case["base"]], db)
    before = digest(db)
    args: list[object] = [command, path, "--storage", f"sqlite:///{db}"]
    if command == "run":
        args += ["--n-trials", 1, "-q"]
    elif command == "export":
        args += ["-o", model]
    counts = COUNTS[test]
    counts["tried"] += 1
    counts[f"{command}: tried"] += 1
    started = time.perf_counter()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cli, "_write_report", lambda study, config: None)  # seconds each
        try:
            code, out, err = run_cli(*args)
        except BaseException as error:  # any escape is a finding
            counts["escaped"] += 1
            raise AssertionError(f"{case['damage']}: {type(error).__name__}: {error}") from error
    outcome = {0: "valid", 2: "refused"}.get(code, "other")
    SECONDS[f"{command}: {outcome}"] += time.perf_counter() - started
    counts[outcome] += 1
    counts[f"{command}: {outcome}"] += 1
    if code == 0:
        assert "Traceback" not in err, f"{case['damage']}\n{err}"
        if command == "run" and not existing:
            assert "0 trials finished, 1 to run" in out, out
        return
    assert code == 2, f"exit code {code}: {case['damage']}\n{err}"
    named = _refusal(err, path, command)
    NAMED[named] += 1
    assert digest(db) == before, f"a refused {command} changed the storage: {case['damage']}"
    assert not model.exists()
    if named.startswith("key") and not any(d.startswith("syntax") for d in case["damage"]):
        key = named[len("key '") : -1]
        related = any(
            key == d or d.startswith(f"{key}.") or key.startswith(f"{d}.") for d in case["damaged"]
        )
        counts["refused, naming a damaged key" if related else "refused, naming another key"] += 1


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:`warn_independent_sampling` has been deprecated")
@given(
    case=damaged_studies(),
    command=st.sampled_from(["run"] * 4 + ["best", "export"]),
    existing=st.booleans(),
)
@fuzz_settings(600)
def test_any_damage_is_refused_in_one_line_or_runs(
    work: dict[str, Any], case: dict[str, Any], command: str, existing: bool
) -> None:
    check(work, case, command, existing, "any damage")


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:`warn_independent_sampling` has been deprecated")
@given(case=plausible_damage(), command=st.sampled_from(["run"] * 6 + ["best", "export"]))
@fuzz_settings(300)
def test_plausible_values_are_refused_in_one_line_or_run(
    work: dict[str, Any], case: dict[str, Any], command: str
) -> None:
    check(work, case, command, False, "plausible values")


# ------------------------------------------------------------- fixed cases
IRIS = 'n_trials = 1\n[data]\nsource = "iris"\n[search]\nmax_epochs = 1\nmax_tier = 1\n'
#: Study files that used to pass validation and then fail with a traceback (exit 1):
#: TypeError when the definition was stored as JSON, after the study had been created;
#: ValueError or OverflowError in the first trial (or, for an argument of the sampler's
#: model-based phase, in the first trial after its 60 random ones).
REGRESSIONS = {
    "date-in-sampler-argument": (
        IRIS + '[sampler]\nname = "TPESampler"\nconstant_liar = 2024-01-01\n',
        "sampler.constant_liar",
    ),
    "date-in-choices": (
        IRIS + '[space.activation]\nkind = "categorical"\nchoices = [2024-01-01]\n',
        "space.activation.choices",
    ),
    "bound-outside-the-estimator-range": (
        IRIS + '[space.dropout]\nkind = "float"\nlow = 0.5\nhigh = 1.5\n',
        "space.dropout",
    ),
    "zero-learning-rate": (
        IRIS + '[space.learning_rate]\nscale = "linear"\nlow = 0\n',
        "space.learning_rate",
    ),
    "float-entry-for-an-integer": (
        IRIS + '[space.n_layers]\nenabled = true\nkind = "float"\nlow = 1.0\nhigh = 3.0\n',
        "space.n_layers",
    ),
    "unknown-choice": (
        IRIS + '[space.activation]\nkind = "categorical"\nchoices = ["relu", "swish"]\n',
        "space.activation",
    ),
    "nan-choice": (IRIS + '[space.l2]\nkind = "categorical"\nchoices = [nan]\n', "space.l2"),
    "huge-fixed-n-layers": (
        IRIS + "[estimator]\nn_layers = 1000000000000\n",
        "estimator.n_layers",
    ),
    "huge-fixed-n-units": (IRIS + "[estimator]\nn_units = 10000000000000\n", "estimator.n_units"),
    "late-sampler-argument": (
        IRIS + '[sampler]\nname = "TPESampler"\nn_startup_trials = 60\n'
        "n_ei_candidates = 1000000000000000000000000000000\n",
        "sampler",
    ),
    "huge-searched-n-units": (
        IRIS.replace("max_tier = 1", "max_tier = 3") + "[space.n_units]\nhigh = 1e308\n",
        "space.n_units",
    ),
}


@pytest.mark.parametrize("case", REGRESSIONS)
def test_files_that_used_to_fail_in_a_trial_are_refused(tmp_path: Path, case: str) -> None:
    body, key = REGRESSIONS[case]
    path = tmp_path / "study.toml"
    path.write_text(body)
    db = tmp_path / "study.db"
    code, _, err = run_cli("run", path, "--storage", f"sqlite:///{db}")
    assert code == 2, err
    assert _refusal(err, path, "run") == f"key '{key}'"
    assert not db.exists()
    COUNTS["fixed cases"]["tried"] += 1
    COUNTS["fixed cases"]["refused"] += 1


@pytest.mark.slow
def test_a_study_file_that_changes_the_direction_of_a_stored_study_is_refused(
    work: dict[str, Any], tmp_path: Path
) -> None:
    """Resuming used to load the stored study and silently keep its direction."""
    db = tmp_path / "wine.db"
    shutil.copy(work["templates"]["wine"], db)
    before = digest(db)
    document = copy.deepcopy(BASES["wine"])
    document["direction"] = "minimize"
    path = tmp_path / "wine.toml"
    path.write_text(dump(document))
    code, _, err = run_cli("run", path, "--storage", f"sqlite:///{db}")
    assert code == 2, err
    assert _refusal(err, path, "run") == "key 'direction'"
    assert "maximize" in err
    assert digest(db) == before
    COUNTS["fixed cases"]["tried"] += 1
    COUNTS["fixed cases"]["refused"] += 1


# ----------------------------------------------------------------- the tally
def test_zz_tally(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Print and save the tally (runs last in this file: pytest keeps definition order)."""
    fuzzed = {test: COUNTS[test] for test in ("any damage", "plausible values") if test in COUNTS}
    if not fuzzed:
        pytest.skip("the fuzz tests did not run in this test run")
    report = {
        "counts": COUNTS,
        "named": NAMED,
        "coverage": COVERAGE,
        "seconds": {key: round(value, 1) for key, value in SECONDS.items()},
    }
    path = tmp_path_factory.getbasetemp() / "config_fuzz_counts.json"
    path.write_text(json.dumps(report, indent=2, sort_keys=True))
    for test, counts in fuzzed.items():
        print(
            f"\n{test}: {counts['tried']} study files tried, {counts['valid']} valid (exit 0), "
            f"{counts['refused']} refused (exit 2), {counts['other']} other; "
            f"{json.dumps(dict(sorted(counts.items())))}"
        )
        # Not vacuous: both outcomes occur often.
        assert counts["tried"] == counts["valid"] + counts["refused"]
        assert counts["valid"] >= counts["tried"] // 20
        assert counts["refused"] >= counts["tried"] // 4
    print(f"seconds: {json.dumps(report['seconds'], sort_keys=True)}")
    print(f"coverage: {json.dumps(dict(sorted(COVERAGE.items())))}")
