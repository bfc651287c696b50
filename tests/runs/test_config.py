"""Study files: every bad case is one ConfigError line naming the file and the key."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import optuna
import pytest

from optuna_dl.runs.config import ConfigError, config_to_dict, load_config
from optuna_dl.runs.storage import open_storage

STUDIES = Path(__file__).resolve().parents[2] / "studies"
SHIPPED = sorted(STUDIES.glob("*.toml"))

BASE = """\
n_trials = 3

[data]
source = "iris"
"""


def write(tmp_path: Path, text: str, name: str = "study.toml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def config_error(path: Path, key: str | None, *, load_data: bool = False) -> str:
    """Load ``path`` (and its data), expect one ConfigError line naming file and key."""
    with pytest.raises(ConfigError) as info:
        config = load_config(path)
        if load_data:
            config.load_data()
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message
    if key is not None:
        assert f"key {key!r}" in message
    return message


def csv_study(tmp_path: Path, csv: bytes, target: str = "label") -> Path:
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "table.csv").write_bytes(csv)
    return write(
        tmp_path,
        f'n_trials = 3\n[data]\nsource = "csv"\npath = "data/table.csv"\ntarget = "{target}"\n',
    )


def iris_csv_bytes() -> bytes:
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    rows = ["a,b,c,d,label"] + [",".join(f"{v:.1f}" for v in x) + f",c{t}" for x, t in zip(X, y)]
    return ("\n".join(rows) + "\n").encode()


# ------------------------------------------------------------------ unknown keys
@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ("bogus = 1\n" + BASE, "bogus"),
        (BASE + "bogus = 1\n", "data.bogus"),
        (BASE + "[search]\nfolds = 3\n", "search.folds"),
        (
            BASE + "[space.learning_rate]\nlow = 1e-3\nmaximum = 1.0\n",
            "space.learning_rate.maximum",
        ),
        (BASE + "[estimator]\nhidden_units = 3\n", "estimator.hidden_units"),
    ],
    ids=["top-level", "data", "search", "space", "estimator"],
)
def test_unknown_key(tmp_path, extra, key):
    message = config_error(write(tmp_path, extra), key)
    assert "unknown" in message
    assert "allowed" in message


def test_unknown_space_entry_needs_a_kind(tmp_path):
    message = config_error(write(tmp_path, BASE + "[space.l2]\nlow = 0.0\n"), "space.l2")
    assert "kind" in message


# -------------------------------------------------------------------- bad types
@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        ('n_trials = "ten"\n[data]\nsource = "iris"\n', "n_trials", "an integer"),
        (BASE.replace("n_trials = 3", "n_trials = 3\nseed = 1.5"), "seed", "an integer"),
        (BASE + "[search]\ncv = true\n", "search.cv", "an integer"),
        (BASE.replace("n_trials = 3", "n_trials = 3\ntimeout = true"), "timeout", "a number"),
        (BASE + "test_fraction = 0.5\n[search]\nscoring = 3\n", "search.scoring", "a string"),
        (BASE + "[space]\nlearning_rate = 0.1\n", "space.learning_rate", "table"),
        (BASE + "[estimator]\nn_units = 1.5\n", "estimator.n_units", ""),
        (BASE + "[estimator]\nbatch_norm = 1\n", "estimator.batch_norm", ""),
        ('n_trials = 3\ndata = "iris"\n', "data", "a table"),
    ],
    ids=[
        "n_trials-string",
        "seed-float",
        "cv-bool",
        "timeout-bool",
        "scoring-int",
        "space-entry-not-table",
        "estimator-int-param-float",
        "estimator-bool-param-int",
        "data-not-table",
    ],
)
def test_wrong_type(tmp_path, text, key, expected):
    message = config_error(write(tmp_path, text), key)
    assert expected in message


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("n_trials = 1_000_000_000_000\n[data]\nsource = 'iris'\n", "n_trials"),
        ("n_trials = 100000000000000000000000000\n[data]\nsource = 'iris'\n", "n_trials"),
        ("n_trials = 0\n[data]\nsource = 'iris'\n", "n_trials"),
        (BASE.replace("n_trials = 3", "n_trials = 3\nseed = 1_000_000_000_000"), "seed"),
        (BASE.replace("n_trials = 3", "n_trials = 3\nseed = -1"), "seed"),
        ("timeout = 1e12\n[data]\nsource = 'iris'\n", "timeout"),
        ("timeout = inf\n[data]\nsource = 'iris'\n", "timeout"),
        ("timeout = nan\n[data]\nsource = 'iris'\n", "timeout"),
        (BASE + "[search]\nmax_epochs = 1_000_000_000_000\n", "search.max_epochs"),
        (BASE + "[search]\ncv = 1\n", "search.cv"),
        (BASE + "test_fraction = 1.5\n", "data.test_fraction"),
        (BASE + "[space.learning_rate]\nhigh = 1e400\n", "space.learning_rate.high"),
    ],
    ids=[
        "n_trials-1e12",
        "n_trials-beyond-int64",
        "n_trials-zero",
        "seed-huge",
        "seed-negative",
        "timeout-huge",
        "timeout-inf",
        "timeout-nan",
        "max_epochs-huge",
        "cv-one-fold",
        "test_fraction",
        "space-bound-inf",
    ],
)
def test_out_of_range(tmp_path, text, key):
    config_error(write(tmp_path, text), key)


def test_missing_n_trials_and_timeout(tmp_path):
    message = config_error(write(tmp_path, '[data]\nsource = "iris"\n'), "n_trials")
    assert "timeout" in message


def test_timeout_alone_is_enough(tmp_path):
    config = load_config(write(tmp_path, 'timeout = 60\n[data]\nsource = "iris"\n'))
    assert config.n_trials is None
    assert config.timeout == 60.0


# --------------------------------------------------------- samplers and pruners
def test_unknown_sampler(tmp_path):
    message = config_error(
        write(tmp_path, BASE + '[sampler]\nname = "BayesSampler"\n'), "sampler.name"
    )
    assert "TPESampler" in message


def test_unknown_pruner(tmp_path):
    message = config_error(
        write(tmp_path, BASE + '[pruner]\nname = "EarlyPruner"\n'), "pruner.name"
    )
    assert "MedianPruner" in message


def test_sampler_without_name(tmp_path):
    config_error(write(tmp_path, BASE + "[sampler]\nn_startup_trials = 3\n"), "sampler.name")


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ('name = "TPESampler"\nn_startup_trials = "x"', "TypeError"),
        ('name = "TPESampler"\nstartup_trials = 3', "startup_trials"),
        ('name = "RandomSampler"\nseed = "abc"', "RandomSampler"),
        ('name = "GridSampler"\nsearch_space = {learning_rate = [0.01, 0.1]}', "not found"),
        ('name = "GridSampler"', "search_space"),
    ],
    ids=["tpe-startup-string", "tpe-unknown-kwarg", "random-seed-string", "grid-partial", "grid"],
)
def test_sampler_bad_argument(tmp_path, table, expected):
    message = config_error(write(tmp_path, BASE + f"[sampler]\n{table}\n"), "sampler")
    assert expected in message


@pytest.mark.parametrize(
    "table",
    [
        'name = "MedianPruner"\nn_warmup_steps = -1',
        'name = "MedianPruner"\nwarmup = 3',
        'name = "HyperbandPruner"\nmin_resource = "x"',
        'name = "ThresholdPruner"',
    ],
    ids=["median-negative", "median-unknown-kwarg", "hyperband-string", "threshold-no-bound"],
)
def test_pruner_bad_argument(tmp_path, table):
    config_error(write(tmp_path, BASE + f"[pruner]\n{table}\n"), "pruner")


def test_grid_sampler_covering_the_space_is_accepted(tmp_path):
    text = BASE + (
        "[search]\nmax_tier = 1\n"
        '[sampler]\nname = "GridSampler"\nsearch_space = {learning_rate = [0.01, 0.1]}\n'
    )
    config = load_config(write(tmp_path, text))
    assert isinstance(config.make_sampler(), optuna.samplers.GridSampler)


def test_cmaes_sampler_needs_the_cmaes_package(tmp_path):
    path = write(tmp_path, BASE + '[sampler]\nname = "CmaEsSampler"\n')
    if importlib.util.find_spec("cmaes") is None:
        message = config_error(path, "sampler.name")
        assert "pip install cmaes" in message
    else:
        assert isinstance(load_config(path).make_sampler(), optuna.samplers.CmaEsSampler)


def test_sampler_and_pruner_arguments_are_passed(tmp_path):
    text = BASE + (
        '[sampler]\nname = "TPESampler"\nn_startup_trials = 4\n'
        '[pruner]\nname = "MedianPruner"\nn_warmup_steps = 2\n'
    )
    config = load_config(write(tmp_path, text))
    assert config.sampler == {"name": "TPESampler", "n_startup_trials": 4}
    assert config.make_pruner()._n_warmup_steps == 2


# ------------------------------------------------------------------------- data
def test_missing_data_table(tmp_path):
    message = config_error(write(tmp_path, "n_trials = 3\n"), "data")
    assert "csv" in message


def test_unknown_data_source(tmp_path):
    message = config_error(write(tmp_path, BASE.replace('"iris"', '"mnist"')), "data.source")
    assert "breast_cancer" in message


def test_bundled_source_takes_no_path(tmp_path):
    config_error(write(tmp_path, BASE + 'path = "x.csv"\n'), "data.path")


def test_missing_csv_file(tmp_path):
    text = 'n_trials = 3\n[data]\nsource = "csv"\npath = "data/none.csv"\ntarget = "y"\n'
    message = config_error(write(tmp_path, text), "data.path")
    assert "none.csv" in message


def test_csv_source_needs_a_path_and_a_target(tmp_path):
    config_error(write(tmp_path, 'n_trials = 3\n[data]\nsource = "csv"\n'), "data.path")
    (tmp_path / "t.csv").write_text("a,y\n1,0\n")
    text = 'n_trials = 3\n[data]\nsource = "csv"\npath = "t.csv"\n'
    config_error(write(tmp_path, text), "data.target")


@pytest.mark.parametrize(
    ("csv", "expected"),
    [
        (b"a,b,label\n1,2,x\n3,four,y\n", ["line 3", "'b'", "'four'"]),
        (b"a,b,label\n1,2,x\n3,4\n", ["line 3", "2 fields"]),
        (b"a,b,label\n1,2,x\n3,4,caf\xe9\n", ["line 3", "UTF-8"]),
        (b"a,b,label\n1,inf,x\n3,4,y\n", ["line 2", "finite"]),
    ],
    ids=["non-numeric-cell", "ragged-row", "not-utf8", "infinite"],
)
def test_unreadable_csv(tmp_path, csv, expected):
    path = csv_study(tmp_path, csv)
    message = config_error(path, "data", load_data=True)
    assert "table.csv" in message
    for part in expected:
        assert part in message


def test_csv_target_column_absent(tmp_path):
    path = csv_study(tmp_path, b"a,b,label\n1,2,x\n3,4,y\n", target="species")
    message = config_error(path, "data", load_data=True)
    assert "'species'" in message
    assert "a, b, label" in message


def test_csv_class_too_small_to_stratify(tmp_path):
    rows = b"a,label\n" + b"".join(b"%d,x\n" % i for i in range(10)) + b"10,y\n"
    config_error(csv_study(tmp_path, rows), "data.test_fraction", load_data=True)


def test_csv_with_a_single_class(tmp_path):
    message = config_error(csv_study(tmp_path, b"a,label\n1,x\n2,x\n"), "data", load_data=True)
    assert "two classes" in message


def test_npz_without_X(tmp_path):
    np.savez(tmp_path / "data.npz", features=np.ones((4, 2)), y=np.arange(4))
    path = write(tmp_path, 'n_trials = 3\n[data]\nsource = "npz"\npath = "data.npz"\n')
    message = config_error(path, "data", load_data=True)
    assert "'X'" in message
    assert "data.npz" in message


def test_npz_with_target_key(tmp_path):
    np.savez(tmp_path / "data.npz", X=np.ones((4, 2)), y=np.arange(4))
    text = 'n_trials = 3\n[data]\nsource = "npz"\npath = "data.npz"\ntarget = "y"\n'
    config_error(write(tmp_path, text), "data.target")


def test_npz_source_loads(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "data.npz", X=rng.normal(size=(40, 3)), y=np.repeat([0, 1], 20))
    config = load_config(
        write(tmp_path, 'n_trials = 3\n[data]\nsource = "npz"\npath = "data.npz"\n')
    )
    X_train, X_test, y_train, y_test = config.load_data()
    assert X_train.shape == (32, 3) and X_test.shape == (8, 3)
    assert sorted(np.unique(y_test)) == [0, 1]


# ------------------------------------------------------------------------ space
def test_space_override_low_not_below_high(tmp_path):
    text = BASE + "[space.learning_rate]\nlow = 0.5\nhigh = 0.5\n"
    message = config_error(write(tmp_path, text), "space.learning_rate")
    assert "low must be < high" in message


def test_space_log_scale_needs_positive_low(tmp_path):
    text = BASE + '[space.learning_rate]\nlow = 0.0\nscale = "log"\n'
    message = config_error(write(tmp_path, text), "space.learning_rate")
    assert "low > 0" in message


def test_space_unknown_scale(tmp_path):
    text = BASE + '[space.learning_rate]\nscale = "exp"\n'
    config_error(write(tmp_path, text), "space.learning_rate.scale")


def test_estimator_parameter_fixed_and_searched(tmp_path):
    text = BASE + "[estimator]\nlearning_rate = 0.01\n"
    message = config_error(write(tmp_path, text), "estimator.learning_rate")
    assert "enabled = false" in message


def test_estimator_parameter_fixed_once_searching_is_off(tmp_path):
    text = BASE + "[estimator]\nlearning_rate = 0.01\n[space.learning_rate]\nenabled = false\n"
    config = load_config(write(tmp_path, text))
    assert config.estimator == {"learning_rate": 0.01}
    assert "learning_rate" not in [d.name for d in config.space.active]
    assert config.make_estimator().named_steps["classifier"].learning_rate == 0.01


# ------------------------------------------------------------------ TOML, names
def test_invalid_toml_syntax(tmp_path):
    path = write(tmp_path, "n_trials = 3\n[data\nsource = 'iris'\n")
    message = config_error(path, None)
    assert "not valid TOML" in message
    assert "line 2" in message


def test_missing_study_file(tmp_path):
    message = config_error(tmp_path / "absent.toml", None)
    assert "no such study file" in message


def test_non_ascii_study_name_is_accepted(tmp_path):
    name = "étude-ñ 数字"
    config = load_config(write(tmp_path, f'name = "{name}"\n' + BASE))
    assert config.name == name
    assert config.storage == f"sqlite:///{tmp_path.resolve() / (name + '.db')}"
    assert config.report == tmp_path.resolve() / f"{name}.html"
    # The default storage really opens with that name.
    study = optuna.create_study(study_name=name, storage=open_storage(config.storage))
    assert study.study_name == name
    assert (tmp_path / f"{name}.db").is_file()


@pytest.mark.parametrize("name", ["a/b", "what?", "50%", "", "   ", "x" * 201])
def test_unusable_study_name(tmp_path, name):
    config_error(write(tmp_path, f'name = "{name}"\n' + BASE), "name")


def test_any_name_with_explicit_storage_and_report(tmp_path):
    text = f'name = "a/b?"\nstorage = "sqlite:///{tmp_path}/s.db"\nreport = "r.html"\n' + BASE
    assert load_config(write(tmp_path, text)).name == "a/b?"


# --------------------------------------------------------------- valid configs
@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_study_loads(path):
    config = load_config(path)
    assert config.name == path.stem
    assert config.storage == f"sqlite:///{STUDIES.resolve() / path.stem}.db"
    assert config.n_trials is not None
    X_train, X_test, y_train, y_test = config.load_data()
    assert len(X_train) == len(y_train) and len(X_test) == len(y_test)
    assert len(np.unique(y_train)) >= 2
    config.make_objective(X_train, y_train)


def test_shipped_studies_include_the_csv_study():
    names = {p.stem for p in SHIPPED}
    assert {"digits", "breast_cancer", "wine", "iris_csv"} <= names
    config = load_config(STUDIES / "iris_csv.toml")
    assert config.data.source == "csv"
    assert config.data.path == (STUDIES / "data" / "iris.csv").resolve()


def test_defaults(tmp_path):
    config = load_config(write(tmp_path, BASE, name="my_study.toml"))
    assert config.name == "my_study"
    assert config.direction == "maximize"
    assert config.n_trials == 3 and config.timeout is None
    assert config.seed == 0
    assert config.storage == f"sqlite:///{tmp_path.resolve() / 'my_study.db'}"
    assert config.report == tmp_path.resolve() / "my_study.html"
    assert config.cv is None and config.validation_fraction == 0.2
    assert (config.max_epochs, config.patience, config.scoring) == (30, 10, "accuracy")
    assert config.sampler == {"name": "TPESampler"}
    assert config.pruner == {"name": "MedianPruner"}
    assert isinstance(config.make_sampler(), optuna.samplers.TPESampler)
    assert isinstance(config.make_pruner(), optuna.pruners.MedianPruner)
    assert config.data.test_fraction == 0.2
    assert config.estimator == {}
    assert [d.name for d in config.space.active] == [
        "learning_rate",
        "optimizer",
        "n_layers",
        "learning_rate_decay",
        "beta",
        "n_units",
        "batch_size",
    ]


def test_paths_are_relative_to_the_study_file(tmp_path, monkeypatch):
    folder = tmp_path / "project" / "studies"
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "table.csv").write_bytes(iris_csv_bytes())
    text = (
        'name = "rel"\nn_trials = 3\nreport = "reports/rel.html"\n'
        '[data]\nsource = "csv"\npath = "data/table.csv"\ntarget = "label"\n'
    )
    write(folder, text, name="rel.toml")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config(Path("..") / "project" / "studies" / "rel.toml")
    assert config.data.path == (folder / "data" / "table.csv").resolve()
    assert config.report == folder.resolve() / "reports" / "rel.html"
    assert config.storage == f"sqlite:///{folder.resolve() / 'rel.db'}"
    X_train, _, y_train, _ = config.load_data()
    assert X_train.shape == (120, 4)
    assert set(np.unique(y_train)) == {"c0", "c1", "c2"}


def test_absolute_report_path_is_kept(tmp_path):
    report = tmp_path / "out" / "r.html"
    config = load_config(write(tmp_path, f'report = "{report}"\n' + BASE))
    assert config.report == report


def test_config_to_dict_records_what_is_in_effect(tmp_path):
    import dataclasses
    import json

    (tmp_path / "t.csv").write_bytes(iris_csv_bytes())
    text = (
        'n_trials = 3\nstorage = "sqlite:///secret.db"\n'
        '[data]\nsource = "csv"\npath = "t.csv"\ntarget = "label"\n'
    )
    config = load_config(write(tmp_path, text))
    config = dataclasses.replace(config, seed=7, n_trials=9, timeout=30.0)
    stored = config_to_dict(config)
    json.dumps(stored)
    assert "storage" not in stored
    assert stored["data"]["path"] == str((tmp_path / "t.csv").resolve())
    assert (stored["seed"], stored["n_trials"], stored["timeout"]) == (7, 9, 30.0)
    assert stored["name"] == "study"


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_resumed_sampler_is_reseeded_but_qmc_is_not(tmp_path):
    tpe = load_config(write(tmp_path, BASE))
    first = tpe.make_sampler()._rng.rng.random()
    assert tpe.make_sampler()._rng.rng.random() == first
    assert tpe.make_sampler(resumed=3)._rng.rng.random() != first
    qmc = load_config(write(tmp_path, BASE + '[sampler]\nname = "QMCSampler"\nscramble = true\n'))
    assert qmc.make_sampler(resumed=3)._seed == qmc.make_sampler()._seed == 0


@pytest.mark.parametrize(
    ("head", "key", "expected"),
    [
        ('directions = ["maximize", "minimize"]\n', "directions", "needs objectives"),
        ('objectives = ["accuracy", "n_params"]\n', "objectives", "needs directions"),
        (
            'direction = "maximize"\ndirections = ["maximize", "minimize"]\n'
            'objectives = ["accuracy", "n_params"]\n',
            "directions",
            "not both",
        ),
        ('directions = ["maximize"]\nobjectives = ["accuracy"]\n', "directions", "2 to 4"),
        (
            'directions = ["up", "down"]\nobjectives = ["accuracy", "n_params"]\n',
            "directions",
            "2 to 4",
        ),
        (
            'directions = ["maximize", "minimize"]\nobjectives = ["accuracy"]\n',
            "objectives",
            "one per direction",
        ),
        (
            'directions = ["maximize", "minimize"]\nobjectives = ["accuracy", "accuracy"]\n',
            "objectives",
            "different objectives",
        ),
        (
            'directions = ["maximize", "minimize"]\nobjectives = ["n_params", "accuracy"]\n',
            "objectives",
            "the first objective is the validation score",
        ),
        (
            'directions = ["maximize", "minimize"]\nobjectives = ["accuracy", "memory"]\n',
            "objectives",
            "unknown objective 'memory'",
        ),
        ('directions = "maximize"\nobjectives = ["accuracy"]\n', "directions", "an array"),
    ],
)
def test_bad_multi_objective_keys_are_one_line_errors(tmp_path, head, key, expected):
    message = config_error(write(tmp_path, head + BASE), key)
    assert expected in message


def test_a_multi_objective_study_file_is_read(tmp_path):
    config = load_config(
        write(
            tmp_path,
            'directions = ["maximize", "minimize"]\n'
            'objectives = ["accuracy", "fit_seconds"]\n' + BASE,
        )
    )
    assert config.multi_objective
    assert config.directions == ("maximize", "minimize")
    assert config.objectives == ("accuracy", "fit_seconds")
    single = load_config(write(tmp_path, BASE, "single.toml"))
    assert not single.multi_objective and single.objectives == ("accuracy",)


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        ('task = "ranking"\n' + BASE, "task", "must be one of classification, regression"),
        ('task = "regression"\n' + BASE, "task", "'iris' is for classification"),
        ('n_trials = 3\n[data]\nsource = "diabetes"\n', "task", "is for regression"),
        (
            'task = "regression"\nn_trials = 3\n[data]\nsource = "diabetes"\n'
            '[search]\nscoring = "accuracy"\n',
            "search.scoring",
            "'accuracy' cannot score regression",
        ),
    ],
)
def test_bad_tasks_are_one_line_errors(tmp_path, text, key, expected):
    assert expected in config_error(write(tmp_path, text), key)


def test_a_regression_study_scores_r2_and_builds_a_regressor(tmp_path):
    config = load_config(
        write(tmp_path, 'task = "regression"\nn_trials = 3\n[data]\nsource = "diabetes"\n')
    )
    assert config.task == "regression" and config.scoring == "r2"
    pipeline = config.make_estimator()
    assert type(pipeline.steps[-1][1]).__name__ == "DeepNetRegressor"
    X_train, X_test, y_train, y_test = config.load_data()
    assert y_train.dtype == np.float64 and len(y_train) + len(y_test) == 442


def test_a_regression_study_needs_numeric_targets(tmp_path):
    (tmp_path / "t.csv").write_text("a,b,label\n1,2,x\n3,4,y\n5,6,x\n7,8,y\n9,1,x\n")
    path = write(
        tmp_path,
        'task = "regression"\nn_trials = 3\n[data]\nsource = "csv"\npath = "t.csv"\n'
        'target = "label"\n',
    )
    message = config_error(path, "data", load_data=True)
    assert "needs numeric targets" in message
