"""End-to-end tests of the ``optuna-dl`` command line on real SQLite files.

Most commands run in-process (``optuna_dl.cli.main``); a few run as real processes to
prove the console entry, Ctrl-C handling, and that the storage opens unchanged in
Optuna's own CLI and in optuna-dashboard.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from optuna_dl import DeepNetClassifier, cli
from optuna_dl.analysis.ranking import CAVEATS
from optuna_dl.cli import main
from optuna_dl.runs.config import load_config

IRIS_CSV = Path(__file__).resolve().parents[1] / "studies" / "data" / "iris.csv"
BIN = Path(sys.executable).parent
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)

STUDY = """\
name = "{name}"
n_trials = {n_trials}
seed = 0

[data]
source = "csv"
path = "iris.csv"
target = "species"

[search]
cv = 2
max_epochs = {max_epochs}
patience = {max_epochs}

[sampler]
name = "TPESampler"
n_startup_trials = 10   # random sampling throughout: resuming must not replay it
"""


def _report_available() -> bool:
    try:
        importlib.import_module("optuna_dl.analysis.report")
    except ImportError:
        return False
    return True


def write_study(
    folder: Path, name: str = "cli_iris", *, n_trials: int = 3, max_epochs: int = 3
) -> Path:
    """A tiny study on a copy of studies/data/iris.csv; storage defaults beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(IRIS_CSV, folder / "iris.csv")
    path = folder / f"{name}.toml"
    path.write_text(STUDY.format(name=name, n_trials=n_trials, max_epochs=max_epochs))
    return path


def run_cli(*args: object) -> tuple[int, str, str]:
    """``main(args)`` in-process: exit code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exit:
            code = exit.code
    return code, out.getvalue(), err.getvalue()


def cli_capsys(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    try:
        code = main([str(a) for a in args])
    except SystemExit as exit:
        code = exit.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, *parts: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("optuna-dl"), err
    assert "error:" in lines[0]
    assert "Traceback" not in err
    for part in parts:
        assert part in err, err


def storage_url(path: Path) -> str:
    return f"sqlite:///{path}"


def load(db: Path, name: str = "cli_iris") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=storage_url(db))


def finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=FINISHED)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def no_report(monkeypatch):
    """Skip the HTML report in runs that are not about it (it costs seconds)."""
    monkeypatch.setattr(cli, "_write_report", lambda study, config: None)


@pytest.fixture(scope="module")
def iris_run(tmp_path_factory):
    """One real ``optuna-dl run`` of 3 trials; other tests read (or copy) its storage."""
    toml = write_study(tmp_path_factory.mktemp("iris_run"))
    code, out, err = run_cli("run", toml)
    assert code == 0, err
    return {"toml": toml, "db": toml.with_suffix(".db"), "out": out, "err": err}


@pytest.fixture
def resumable(iris_run, tmp_path):
    """A private copy of the 3-trial study (TOML, data and storage) to run further."""
    toml = write_study(tmp_path)
    shutil.copy(iris_run["db"], tmp_path / "cli_iris.db")
    return toml


# ------------------------------------------------------------------------- run
@pytest.mark.slow  # its module fixture runs the 3-trial study
def test_run_creates_storage_and_prints_summary(iris_run):
    db, out = iris_run["db"], iris_run["out"]
    assert db.is_file()
    study = load(db)
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 3
    assert all(t.state in FINISHED for t in trials)
    counts = {s: sum(t.state == s for t in trials) for s in FINISHED}
    assert "study 'cli_iris' in sqlite:///" in out
    assert "0 trials finished, 3 to run" in out
    assert (
        f"3 trials: {counts[TrialState.COMPLETE]} complete, {counts[TrialState.PRUNED]} "
        f"pruned, {counts[TrialState.FAIL]} failed" in out
    )
    assert re.search(r"trial\s+0: (value|pruned|diverged)", out)
    best = study.best_trial
    assert f"best accuracy (2-fold CV): {best.value:.4f} (trial {best.number})" in out
    assert "best parameters:" in out
    for name in best.user_attrs["estimator_params"]:
        assert re.search(rf"^  {name} = ", out, re.MULTILINE), name
    assert "Traceback" not in iris_run["err"]
    # The study remembers how it was defined, so workers need no TOML.
    stored = study.user_attrs["optuna_dl_config"]
    assert stored["data"]["path"] == str(iris_run["toml"].parent.resolve() / "iris.csv")
    assert stored["seed"] == 0 and stored["n_trials"] == 3


@pytest.mark.slow
def test_run_writes_the_report_when_available(iris_run):
    if not _report_available():
        pytest.skip("optuna_dl.analysis.report is not importable")
    match = re.search(r"^report: (.+)$", iris_run["out"], re.MULTILINE)
    assert match, iris_run["out"]
    report = Path(match.group(1))
    assert report == iris_run["toml"].with_suffix(".html")
    assert report.is_file() and report.stat().st_size > 0


@pytest.mark.slow
def test_run_resumes_to_exactly_n_trials(resumable, capsys, no_report):
    db = resumable.with_suffix(".db")
    first = [t.params for t in load(db).trials]
    code, out, err = cli_capsys(capsys, "run", resumable, "--n-trials", 5)
    assert code == 0, err
    assert "3 trials finished, 2 to run" in out
    assert "5 trials: " in out
    study = load(db)
    assert len(finished(study)) == 5 == len(study.trials)
    # The resumed sampler is reseeded: it does not replay the first trials.
    assert all(t.params not in first for t in study.trials[3:])

    # Asking for fewer trials than the study holds runs none.
    code, out, err = cli_capsys(capsys, "run", resumable, "--quiet")
    assert code == 0, err
    assert "5 trials finished, 0 to run" in out
    assert len(load(db).trials) == 5


def test_run_overrides_storage_seed_n_trials(resumable, tmp_path, capsys, no_report):
    original = digest(resumable.with_suffix(".db"))
    other = tmp_path / "elsewhere" / "other.db"
    other.parent.mkdir()
    code, out, err = cli_capsys(
        capsys, "run", resumable, "--storage", storage_url(other), "--seed", 7, "--n-trials", 1
    )
    assert code == 0, err
    assert f"in {storage_url(other)}: 0 trials finished, 1 to run" in out
    study = load(other)
    assert len(study.trials) == 1
    assert study.user_attrs["optuna_dl_config"]["seed"] == 7
    assert study.user_attrs["optuna_dl_config"]["n_trials"] == 1
    assert digest(resumable.with_suffix(".db")) == original


def test_run_timeout_override(resumable, tmp_path, capsys, no_report):
    db = tmp_path / "timeout.db"
    started = time.monotonic()
    code, out, err = cli_capsys(
        capsys, "run", resumable, "--storage", storage_url(db), "--n-trials", 1000,
        "--timeout", 0.01, "-q",
    )  # fmt: skip
    assert code == 0, err
    assert "0 trials finished, 1000 to run" in out
    # The timeout is checked between trials: one (rarely two) trials ran.
    assert 1 <= len(load(db).trials) <= 2
    assert time.monotonic() - started < 60


# ------------------------------------------------------------------------ best
def test_best(iris_run, capsys):
    code, out, err = cli_capsys(capsys, "best", iris_run["toml"])
    assert code == 0, err
    best = load(iris_run["db"]).best_trial
    assert f"study 'cli_iris': best trial {best.number}, value {best.value:.4f}" in out
    assert "batch_size = " in out and "log2_batch_size" not in out


def test_best_json(iris_run, capsys):
    code, out, err = cli_capsys(capsys, "best", iris_run["toml"], "--json")
    assert code == 0, err
    summary = json.loads(out)
    best = load(iris_run["db"]).best_trial
    assert summary["study"] == "cli_iris"
    assert summary["trial"] == best.number
    assert summary["value"] == pytest.approx(best.value)
    # Estimator terms (batch_size = 2**k), not the sampled quantities (log2_batch_size).
    assert summary["params"] == best.user_attrs["estimator_params"]
    assert "batch_size" in summary["params"] and "log2_batch_size" not in summary["params"]
    assert summary["sampled_params"] == best.params
    assert summary["params"]["batch_size"] == 2 ** best.params["log2_batch_size"]
    assert summary["best_epoch"] == best.user_attrs["best_epoch"]
    DeepNetClassifier(**summary["params"])  # they are the classifier's own parameters


@pytest.mark.parametrize("command", ["best", "export"])
def test_best_and_export_leave_babysat_trials_out(resumable, tmp_path, capsys, command):
    from optuna_dl.records import BABYSIT

    MODE_ATTR = "mode"

    study = load(tmp_path / "cli_iris.db")
    search_best = study.best_trial
    babysat = study.ask()  # a hand-steered run scoring 1.0 on its own hold-out split
    babysat.set_user_attr(MODE_ATTR, BABYSIT)
    babysat.set_user_attr("estimator_params", {"n_layers": 1, "n_units": 3})
    study.tell(babysat, 1.0)
    assert study.best_trial.number == babysat.number  # Optuna alone would pick it
    extra = ["-o", tmp_path / "model.npz"] if command == "export" else ["--json"]
    code, out, err = cli_capsys(capsys, command, resumable, *extra)
    assert code == 0, err
    if command == "best":
        assert json.loads(out)["trial"] == search_best.number
    else:
        assert f"refit trial {search_best.number} " in out


def test_best_with_storage_option(iris_run, tmp_path, capsys):
    toml = write_study(tmp_path)  # its default storage does not exist
    code, out, err = cli_capsys(
        capsys, "best", toml, "--json", "--storage", storage_url(iris_run["db"])
    )
    assert code == 0, err
    assert json.loads(out)["study"] == "cli_iris"


# ---------------------------------------------------------------------- export
def test_export(iris_run, tmp_path, capsys):
    model_file = tmp_path / "model.npz"
    code, out, err = cli_capsys(capsys, "export", iris_run["toml"], "-o", model_file)
    assert code == 0, err
    match = re.search(r"held-out accuracy (\d\.\d{4}) on (\d+) samples", out)
    assert match, out
    printed, n_test = float(match.group(1)), int(match.group(2))
    assert f"model saved to {model_file}" in out
    model = DeepNetClassifier.load(model_file)
    _, X_test, _, y_test = load_config(iris_run["toml"]).load_data()
    assert n_test == len(y_test) == 30
    # Raw features in centimetres: the scaler is folded into the first layer.
    assert model.n_features_in_ == 4
    assert model.score(X_test, y_test) == pytest.approx(printed, abs=5e-5)
    assert set(model.classes_) == {"setosa", "versicolor", "virginica"}
    assert set(model.predict(X_test)) <= set(model.classes_)
    best = load(iris_run["db"]).best_trial
    for name, value in best.user_attrs["estimator_params"].items():
        assert model.get_params()[name] == value


def test_export_to_missing_folder(iris_run, tmp_path, capsys):
    code, out, err = cli_capsys(
        capsys, "export", iris_run["toml"], "-o", tmp_path / "no" / "such" / "model.npz"
    )
    assert_one_line_error(code, err, "cannot write")


# ------------------------------------------------------------------------ help
def _commands() -> list[str]:
    parser = cli.build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return sorted(commands.choices)


def test_the_documented_commands_exist():
    assert {"run", "best", "export"} <= set(_commands())


@pytest.mark.parametrize("command", [[]] + [[c] for c in _commands()], ids=str)
def test_help(capsys, command):
    code, out, err = cli_capsys(capsys, *command, "--help")
    assert code == 0
    assert out.startswith(f"usage: optuna-dl {' '.join(command)}".rstrip())
    assert err == ""


# ---------------------------------------------------------------------- errors
IRIS = 'n_trials = 3\n[data]\nsource = "iris"\n'
CSV = 'n_trials = 3\n[data]\nsource = "csv"\npath = "{}"\ntarget = "label"\n'
BAD_STUDIES = {
    "unknown-key": ("bogus = 1\n" + IRIS, "key 'bogus'"),
    "sampler-argument": (
        IRIS + '[sampler]\nname = "TPESampler"\nn_startup_trials = "x"\n',
        "key 'sampler'",
    ),
    "grid-missing-parameter": (
        IRIS + '[sampler]\nname = "GridSampler"\nsearch_space = {learning_rate = [0.1]}\n',
        "key 'sampler'",
    ),
    "unknown-pruner": (IRIS + '[pruner]\nname = "Nope"\n', "key 'pruner.name'"),
    "missing-data": ("n_trials = 3\n", "key 'data'"),
    "bad-csv": (CSV.format("bad.csv"), "line 3"),
    "missing-csv": (CSV.format("absent.csv"), "key 'data.path'"),
    "invalid-toml": ("n_trials = = 3\n", "not valid TOML"),
}


def write_bad_study(folder: Path, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "bad.csv").write_text("a,label\n1,x\n2,oops,y\n")
    path = folder / "bad_study.toml"
    path.write_text(body)
    return path


BAD_CALLS = [
    (command, case)
    for command in ("run", "best", "export")
    for case in BAD_STUDIES
    # best and export read no data, so a bad CSV only stops run
    if command == "run" or case != "bad-csv"
]


@pytest.mark.parametrize(("command", "case"), BAD_CALLS, ids=[f"{c}-{k}" for c, k in BAD_CALLS])
def test_bad_study_is_one_line_and_creates_no_storage(tmp_path, capsys, command, case):
    body, expected = BAD_STUDIES[case]
    path = write_bad_study(tmp_path, body)
    extra = ["-o", tmp_path / "model.npz"] if command == "export" else []
    code, out, err = cli_capsys(capsys, command, path, *extra)
    assert_one_line_error(code, err, str(path), expected)
    assert not list(tmp_path.glob("*.db"))
    assert not (tmp_path / "model.npz").exists()


def test_bad_study_leaves_existing_storage_untouched(resumable, tmp_path, capsys):
    db = resumable.with_suffix(".db")
    before = digest(db)
    bad = write_bad_study(tmp_path / "bad", BAD_STUDIES["sampler-argument"][0])
    code, _, err = cli_capsys(capsys, "run", bad, "--storage", storage_url(db))
    assert_one_line_error(code, err, "key 'sampler'")
    assert digest(db) == before


def test_missing_study_file(tmp_path, capsys):
    code, _, err = cli_capsys(capsys, "run", tmp_path / "absent.toml")
    assert_one_line_error(code, err, "absent.toml", "no such study file")


@pytest.mark.parametrize("command", ["best", "export"])
def test_best_and_export_before_any_run(tmp_path, capsys, command):
    toml = write_study(tmp_path)
    extra = ["-o", tmp_path / "model.npz"] if command == "export" else []
    code, _, err = cli_capsys(capsys, command, toml, *extra)
    assert_one_line_error(code, err, "cli_iris.db", "does not exist yet")
    assert not list(tmp_path.glob("*.db"))
    assert not (tmp_path / "model.npz").exists()


@pytest.mark.parametrize("command", ["best", "export"])
def test_best_and_export_on_storage_without_the_study(iris_run, tmp_path, capsys, command):
    toml = write_study(tmp_path, name="another")
    extra = ["-o", tmp_path / "model.npz"] if command == "export" else []
    args = ["--storage", storage_url(iris_run["db"])]
    code, _, err = cli_capsys(capsys, command, toml, *args, *extra)
    assert_one_line_error(code, err, "no study named 'another'", "optuna-dl run")


@pytest.mark.parametrize("command", ["best", "export"])
def test_best_and_export_without_a_completed_trial(tmp_path, capsys, command):
    toml = write_study(tmp_path)
    study = optuna.create_study(
        study_name="cli_iris", storage=storage_url(tmp_path / "cli_iris.db")
    )
    study.tell(study.ask(), state=TrialState.FAIL)
    extra = ["-o", tmp_path / "model.npz"] if command == "export" else []
    code, _, err = cli_capsys(capsys, command, toml, *extra)
    assert_one_line_error(code, err, "no completed trial yet")


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        (["--n-trials", "0"], "--n-trials"),
        (["--n-trials", "x"], "invalid int value"),
        (["--timeout", "-1"], "--timeout"),
        (["--timeout", "nan"], "--timeout"),
        (["--seed", "-1"], "--seed"),
        (["--seed", str(2**32)], "--seed"),
        (["--storage", "not-a-url"], "not the journal file 'not-a-url'"),
        (["--storage", "sqlite:/one/slash.db"], "cannot open storage sqlite:/one/slash.db"),
        (["--storage", "sqlite:////no/such/folder/x.db"], "cannot open storage"),
        (["--bogus"], "unrecognized arguments"),
    ],
    ids=str,
)
def test_bad_run_options(tmp_path, capsys, option, expected):
    toml = write_study(tmp_path)
    code, _, err = cli_capsys(capsys, "run", toml, *option)
    assert_one_line_error(code, err, expected)
    assert not list(tmp_path.glob("*.db"))


def test_storage_that_is_not_a_database(tmp_path, capsys):
    toml = write_study(tmp_path)
    before = digest(toml)
    code, _, err = cli_capsys(capsys, "best", toml, "--storage", storage_url(toml))
    assert_one_line_error(code, err, "cannot open storage", "not a database")
    assert digest(toml) == before


def test_storage_password_is_not_shown(tmp_path, capsys):
    toml = write_study(tmp_path)
    url = "postgresql+nosuchdriver://tuner:s3cret@localhost:1/studies"
    code, _, err = cli_capsys(capsys, "run", toml, "--storage", url)
    assert_one_line_error(code, err, "tuner:***@localhost")
    assert "s3cret" not in err


@pytest.mark.parametrize("argv", [["frobnicate"], [], ["run"], ["export", "x.toml"]], ids=str)
def test_usage_errors(capsys, argv):
    code, out, err = cli_capsys(capsys, *argv)
    assert_one_line_error(code, err, "--help")


# --------------------------------------------------------- as a real process
@pytest.mark.slow
def test_console_script(iris_run):
    script = BIN / "optuna-dl"
    assert script.is_file(), f"console script missing next to {sys.executable}"
    result = subprocess.run(
        [script, "best", iris_run["toml"], "--json"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["trial"] == load(iris_run["db"]).best_trial.number

    result = subprocess.run(
        [script, "run", iris_run["toml"], "--seed", "-5"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert_one_line_error(result.returncode, result.stderr, "--seed")


@pytest.mark.slow
def test_python_dash_m(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "optuna_dl.cli", "frobnicate"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert_one_line_error(result.returncode, result.stderr, "invalid choice")


@pytest.mark.slow
def test_ctrl_c_leaves_storage_consistent_and_resumes(tmp_path):
    toml = write_study(tmp_path, name="interrupted", n_trials=6, max_epochs=15)
    db = toml.with_suffix(".db")
    process = subprocess.Popen(
        [BIN / "optuna-dl", "run", toml],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A shell may start background jobs with SIGINT ignored; restore Ctrl-C.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        # The first line is printed (and flushed) once the study exists in storage;
        # polling earlier would race the CLI in creating the database.
        header = process.stdout.readline()
        assert "0 trials finished, 6 to run" in header, header + process.communicate()[1]
        deadline = time.monotonic() + 120
        while not finished(load(db, "interrupted")):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "no trial finished within 120 s"
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130, err
    assert "interrupted: storage is consistent; run 'optuna-dl run" in out
    assert "Traceback" not in err, err
    study = load(db, "interrupted")
    states = [t.state for t in study.get_trials(deepcopy=False)]
    assert TrialState.RUNNING not in states
    assert 1 <= len(states) < 6

    code, out, err = run_cli("run", toml, "--quiet")
    assert code == 0, err
    study = load(db, "interrupted")
    assert len(finished(study)) == 6 == len(study.trials)


# ------------------------------------------------- Optuna CLI, optuna-dashboard
def test_storage_opens_in_optunas_cli(iris_run):
    script = BIN / "optuna"
    assert script.is_file(), f"optuna's console script missing next to {sys.executable}"
    result = subprocess.run(
        [
            script,
            "trials",
            "--study-name",
            "cli_iris",
            "--storage",
            storage_url(iris_run["db"]),
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    trials = json.loads(result.stdout)
    expected = load(iris_run["db"]).trials
    assert [t["number"] for t in trials] == [t.number for t in expected]
    assert [t["state"] for t in trials] == [t.state.name for t in expected]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200
        return json.loads(response.read())


@pytest.mark.slow
def test_storage_opens_in_optuna_dashboard(iris_run):
    try:
        importlib.import_module("optuna_dashboard")
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("optuna-dashboard is not installed (pip install -e '.[test]')")
        pytest.skip("optuna-dashboard is not installed")
    script = BIN / "optuna-dashboard"
    command = (
        [script]
        if script.is_file()
        else [sys.executable, "-c", "from optuna_dashboard._cli import main; main()"]
    )
    port = _free_port()
    process = subprocess.Popen(
        [*command, storage_url(iris_run["db"]), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                pytest.fail(f"optuna-dashboard exited: {process.communicate()[0]}")
            try:
                studies = _get_json(f"{base}/api/studies")["study_summaries"]
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    pytest.fail("optuna-dashboard did not answer within 30 s")
                time.sleep(0.2)
        assert [s["study_name"] for s in studies] == ["cli_iris"]
        study_id = studies[0]["study_id"]
        detail = _get_json(f"{base}/api/studies/{study_id}")
        assert detail["name"] == "cli_iris"
        assert detail["objective_names"] == ["accuracy"]  # study.set_metric_names
        stored = load(iris_run["db"]).trials
        shown = sorted(detail["trials"], key=lambda t: t["number"])
        assert [t["number"] for t in shown] == [t.number for t in stored]
        for seen, trial in zip(shown, stored):
            assert seen["state"].upper() == trial.state.name
            assert seen["values"] == (trial.values or [])
            assert {v["step"]: v["value"] for v in seen["intermediate_values"]} == (
                trial.intermediate_values
            )
        importances = _get_json(f"{base}/api/studies/{study_id}/param_importances")
        (ranking,) = importances["param_importances"]
        searched = {name for t in stored for name in t.params}
        assert {entry["name"] for entry in ranking} == searched
        assert sum(entry["importance"] for entry in ranking) == pytest.approx(1.0)
    finally:
        process.terminate()
        try:
            process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


# ---------------------------------------------------------------------- report
@pytest.mark.slow
def test_report_writes_the_html_of_an_existing_study_without_running_trials(resumable, tmp_path):
    db = tmp_path / "cli_iris.db"
    before = [(t.number, t.state) for t in load(db).get_trials()]
    output = tmp_path / "out" / "study.html"
    code, out, err = run_cli("report", resumable, "-o", output)
    assert code == 0, err
    assert out.strip() == f"report: {output}"
    page = output.read_text(encoding="utf-8")
    assert "<h1>cli_iris</h1>" in page and "plotly" in page
    assert [(t.number, t.state) for t in load(db).get_trials()] == before


@pytest.mark.slow
def test_report_defaults_to_the_study_files_report_path(resumable):
    code, out, err = run_cli("report", resumable)
    assert code == 0, err
    expected = load_config(resumable).report
    assert out.strip() == f"report: {expected}" and expected.is_file()


@pytest.mark.parametrize(
    "case", ["missing file", "unknown study", "no finished trial", "output is a folder"]
)
def test_report_errors_are_one_line_and_write_nothing(resumable, tmp_path, case):
    output = tmp_path / "never.html"
    args = ["report", resumable, "-o", output]
    if case == "output is a folder":
        args = ["report", resumable, "-o", tmp_path]
        expected = "is a folder"
    elif case == "missing file":
        args += ["--storage", storage_url(tmp_path / "absent.db")]
        expected = "does not exist yet"
    elif case == "unknown study":
        optuna.create_study(study_name="other", storage=storage_url(tmp_path / "other.db"))
        args += ["--storage", storage_url(tmp_path / "other.db")]
        expected = "no study named 'cli_iris'"
    else:
        empty = tmp_path / "empty.db"
        optuna.create_study(study_name="cli_iris", storage=storage_url(empty))
        args += ["--storage", storage_url(empty)]
        expected = "no finished trial yet"
    code, _, err = run_cli(*args)
    assert_one_line_error(code, err, expected)
    assert not output.exists()
    assert not (tmp_path / "absent.db").exists()


@pytest.fixture
def journal_copy(resumable, tmp_path):
    """The 3-trial study copied into an Optuna journal file."""
    from optuna.storages.journal import JournalFileBackend

    journal = tmp_path / "cli_iris.log"
    optuna.copy_study(
        from_study_name="cli_iris",
        from_storage=storage_url(tmp_path / "cli_iris.db"),
        to_storage=optuna.storages.JournalStorage(JournalFileBackend(str(journal))),
    )
    return journal


@pytest.mark.slow
def test_report_importance_and_best_read_a_journal_file(resumable, journal_copy, tmp_path):
    before = digest(journal_copy)
    output = tmp_path / "journal.html"
    code, out, err = run_cli("report", resumable, "--storage", journal_copy, "-o", output)
    assert code == 0, err
    assert out.strip() == f"report: {output}"
    assert "<h1>cli_iris</h1>" in output.read_text(encoding="utf-8")
    from_database = run_cli("importance", resumable, "--json")
    from_journal = run_cli("importance", resumable, "--json", "--storage", journal_copy)
    assert from_journal[0] == 0, from_journal[2]
    assert json.loads(from_journal[1]) == json.loads(from_database[1])
    code, out, err = run_cli("best", resumable, "--json", "--storage", journal_copy)
    assert code == 0, err
    assert json.loads(out)["trial"] == load(tmp_path / "cli_iris.db").best_trial.number
    assert digest(journal_copy) == before  # read, never written


@pytest.mark.parametrize("command", ["run", "babysit", "worker"])
def test_trials_are_never_run_into_a_journal_file(resumable, journal_copy, command):
    before = digest(journal_copy)
    if command == "worker":
        args = ["worker", "--storage", journal_copy, "--study", "cli_iris"]
    else:
        args = [command, resumable, "--storage", journal_copy]
    code, _, err = run_cli(*args)
    assert_one_line_error(code, err, "not the journal file", "sqlite:///")
    assert digest(journal_copy) == before


@pytest.mark.parametrize("case", ["missing", "folder", "sqlite file", "not a journal"])
def test_a_bad_journal_file_is_a_one_line_error(resumable, tmp_path, case):
    journal = tmp_path / "study.log"
    expected = {
        "missing": "does not exist",
        "folder": "is a folder",
        "sqlite file": "is an SQLite database; give it as sqlite:///",
        "not a journal": "not an Optuna journal",
    }[case]
    if case == "folder":
        journal.mkdir()
    elif case == "sqlite file":
        journal = tmp_path / "cli_iris.db"
    elif case == "not a journal":
        journal.write_text("# notes, not a journal\n{}\n", encoding="utf-8")
    output = tmp_path / "never.html"
    code, _, err = run_cli("report", resumable, "--storage", journal, "-o", output)
    assert_one_line_error(code, err, f"cannot open journal file {str(journal)!r}", expected)
    assert not output.exists()
    assert journal.exists() == (case != "missing")


# ------------------------------------------------------------------ importance
def test_importance_prints_the_ranking_with_intervals_and_statements(resumable):
    code, out, err = run_cli("importance", resumable)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "study 'cli_iris'"
    assert lines[1].startswith("importance (MDI over every trial")
    assert "% intervals over 50 resamples" in lines[1]
    searched = {name for t in load(resumable.with_suffix(".db")).trials for name in t.params}
    rows = [line.split()[0] for line in lines[2 : 2 + len(searched)]]
    assert set(rows) == searched
    assert any("ranks first in" in line for line in lines)


def test_importance_json_has_value_interval_rank_interval_and_trials_per_parameter(
    resumable,
):
    code, out, err = run_cli("importance", resumable, "--json")
    assert code == 0, err
    document = json.loads(out)
    assert document["study"] == "cli_iris"
    assert document["n_trials"] == len(
        [t for t in load(resumable.with_suffix(".db")).trials if t.state == TrialState.COMPLETE]
    )
    assert isinstance(document["statements"], list) and document["statements"]
    for entry in document["params"]:
        assert set(entry) >= {"name", "importance", "interval", "rank", "rank_interval"}
        assert entry["n_trials"] == document["n_trials"]
        low, high = entry["interval"]
        assert low is None or 0 <= low <= high <= 1
        rank_low, rank_high = entry["rank_interval"]
        assert rank_low is None or 1 <= rank_low <= rank_high <= len(document["params"])


def test_the_completed_trials_ranking_is_printed_with_its_caveat(resumable):
    code, out, err = run_cli("importance", resumable, "--method", "completed")
    assert code == 0, err
    assert "MDI over the completed trials only" in out
    assert out.rstrip().splitlines()[-1] == f"  {CAVEATS['completed']}"
    code, out, err = run_cli("importance", resumable, "--method", "completed", "--json")
    assert code == 0, err
    assert json.loads(out)["caveat"] == CAVEATS["completed"]
    code, out, err = run_cli("importance", resumable, "--json")
    assert "caveat" not in json.loads(out)  # the default ranking counts every trial


@pytest.mark.parametrize(
    "case",
    [
        "no finished trial",
        "one finished trial",
        "plain optuna",
        "multi-objective",
        "unknown study",
        "unreachable storage",
    ],
)
def test_importance_errors_are_one_line_and_write_nothing(resumable, tmp_path, case):
    db = tmp_path / "other.db"
    url = storage_url(db)
    if case in ("no finished trial", "one finished trial"):
        study = optuna.create_study(study_name="cli_iris", storage=url, direction="maximize")
        study.set_user_attr("optuna_dl_config", {"name": "cli_iris"})
        if case == "one finished trial":
            study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
        expected = "finished trial(s); a ranking needs at least 2"
    elif case == "plain optuna":
        study = optuna.create_study(study_name="cli_iris", storage=url, direction="maximize")
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
        expected = "was not written by optuna-dl"
    elif case == "multi-objective":
        optuna.create_study(study_name="cli_iris", storage=url, directions=["maximize"] * 2)
        expected = "has 2 objectives"
    elif case == "unknown study":
        optuna.create_study(study_name="another", storage=url)
        expected = "no study named 'cli_iris'"
    else:
        url = "postgresql+psycopg://user:secret@127.0.0.1:1/none"
        expected = "cannot open storage"
    before = digest(db) if db.exists() else None
    code, out, err = run_cli("importance", resumable, "--storage", url)
    assert_one_line_error(code, err, expected)
    assert out == "" and "secret" not in err
    assert (digest(db) if db.exists() else None) == before


# ------------------------------------------------------------- several objectives
MULTI = 'directions = ["maximize", "minimize"]\nobjectives = ["accuracy", "n_params"]\n'


@pytest.fixture(scope="module")
def multi_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("multi")
    toml = write_study(folder, "multi", n_trials=5)
    toml.write_text(MULTI + toml.read_text())
    code, out, err = run_cli("run", toml)
    assert code == 0, err
    return {"toml": toml, "db": toml.with_suffix(".db"), "out": out}


@pytest.mark.slow
def test_a_multi_objective_run_prints_its_pareto_front(multi_run):
    study = load(multi_run["db"], "multi")
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert study.metric_names == ["accuracy", "n_params"]
    front = sorted(t.number for t in study.best_trials)
    out = multi_run["out"]
    assert "Pareto front:" in out and "accuracy (maximize), n_params (minimize)" in out
    table = out[out.index("Pareto front:") :].splitlines()[2 : 2 + len(front)]
    assert [int(line.split()[0]) for line in table] == front
    for line, number in zip(table, front):
        trial = study.trials[number]
        assert float(line.split()[2]) == pytest.approx(trial.values[1], rel=1e-3)
        assert (
            trial.values[1]
            == DeepNetClassifier(**trial.user_attrs["estimator_params"])
            .fit([[0.0] * 4, [1.0] * 4, [2.0] * 4], [0, 1, 2])
            .network_.flat_params.size
        )
    page = (multi_run["toml"].parent / "multi.html").read_text(encoding="utf-8")
    assert "Pareto front" in page and "Importance per objective" in page


@pytest.mark.slow
def test_best_and_export_ask_which_pareto_trial_and_take_trial_n(multi_run, tmp_path):
    study = load(multi_run["db"], "multi")
    front = sorted(t.number for t in study.best_trials)
    code, out, err = run_cli("best", multi_run["toml"])
    if len(front) > 1:
        assert_one_line_error(code, err, "Pareto-optimal trials", "--trial N")
    else:
        assert code == 0, err
    code, out, err = run_cli("best", multi_run["toml"], "--trial", front[-1], "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["trial"] == front[-1]
    assert list(summary["values"]) == ["accuracy", "n_params"]
    assert summary["values"]["n_params"] == study.trials[front[-1]].values[1]
    model = tmp_path / "chosen.npz"
    code, out, err = run_cli("export", multi_run["toml"], "--trial", front[-1], "-o", model)
    assert code == 0, err
    assert f"refit trial {front[-1]}" in out and model.is_file()
    code, _, err = run_cli("best", multi_run["toml"], "--trial", 999)
    assert_one_line_error(code, err, "--trial 999", "no completed search trial 999")


@pytest.mark.slow
def test_a_study_cannot_change_its_directions(multi_run, tmp_path):
    toml = write_study(tmp_path, "multi")
    shutil.copy(multi_run["db"], tmp_path / "multi.db")
    before = digest(tmp_path / "multi.db")
    code, _, err = run_cli("run", toml, "--n-trials", 6)
    assert_one_line_error(code, err, "key 'directions'", "maximize and minimize")
    assert digest(tmp_path / "multi.db") == before


# ------------------------------------------------------------------ regression
@pytest.mark.slow
def test_a_regression_study_runs_exports_and_ranks(tmp_path):
    toml = tmp_path / "reg.toml"
    toml.write_text(
        'name = "reg"\ntask = "regression"\nn_trials = 4\nseed = 0\n'
        '[data]\nsource = "diabetes"\n'
        "[search]\ncv = 2\nmax_epochs = 4\npatience = 4\n"
    )
    code, out, err = run_cli("run", toml)
    assert code == 0, err
    assert "best r2 (2-fold CV)" in out
    study = load(tmp_path / "reg.db", "reg")
    assert study.metric_names == ["r2"]
    model = tmp_path / "reg.npz"
    code, out, err = run_cli("export", toml, "-o", model)
    assert code == 0, err
    assert "held-out R²" in out and "DeepNetRegressor.load" in out
    from sklearn.metrics import r2_score

    from optuna_dl import DeepNetRegressor

    X_train, X_test, y_train, y_test = load_config(toml).load_data()
    loaded = DeepNetRegressor.load(model)
    printed = float(out.split("held-out R² ")[1].split()[0])
    assert r2_score(y_test, loaded.predict(X_test)) == pytest.approx(printed, abs=1e-4)
    code, out, err = run_cli("importance", toml, "--json")
    assert code == 0, err
    completed = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert json.loads(out)["n_trials"] == len(completed) >= 2
