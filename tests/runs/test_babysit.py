"""Pandas: ``optuna-dl babysit`` trains one model epoch by epoch with checkpoints,
resumes exactly, accepts changed hyperparameters, and records each run as a trial."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState, create_trial

from optuna_dl import DeepNetClassifier
from optuna_dl.cli import main
from optuna_dl.runs.babysit import BabysitError, _resume, _split, parse_settings, sparkline
from optuna_dl.runs.budget import finished_trials
from optuna_dl.runs.config import load_config

STUDY = """\
name = "pets"
n_trials = 2
seed = 7

[data]
source = "wine"

[estimator]
dropout = 0.1

[search]
max_epochs = 3
validation_fraction = 0.25

[pruner]
name = "NopPruner"
"""


@pytest.fixture
def study_file(tmp_path: Path) -> Path:
    path = tmp_path / "pets.toml"
    path.write_text(STUDY)
    return path


def _checkpoint(study_file: Path, trial: int, epoch: int) -> Path:
    return study_file.parent / "pets-babysit" / f"trial-{trial}-epoch-{epoch:04d}.npz"


def _same_model(a: DeepNetClassifier, b: DeepNetClassifier, X: np.ndarray) -> bool:
    arrays = zip(a.network_.state_arrays(), b.network_.state_arrays())
    moments = [
        np.array_equal(x, y)
        for slot in a.optimizer_.state()
        for x, y in zip(a.optimizer_.state()[slot], b.optimizer_.state()[slot])
    ]
    return (
        all(np.array_equal(x, y) for x, y in arrays)
        and all(moments)
        and a.optimizer_.t == b.optimizer_.t
        and a.n_iter_ == b.n_iter_
        and np.array_equal(a.predict_proba(X), b.predict_proba(X))
    )


# --------------------------------------------------------------- exact resume
@pytest.mark.parametrize("optimizer", ["adam", "momentum", "rmsprop", "sgd"])
def test_checkpoint_resume_is_bit_identical(optimizer: str, tmp_path: Path) -> None:
    """4 epochs straight == 2 epochs, save, load, 2 more epochs (every network array,
    the optimizer state and predict_proba), with dropout and a decaying rate."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(150, 6))
    y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1)
    params = dict(
        optimizer=optimizer, dropout=0.2, learning_rate_decay=0.3, batch_size=32, random_state=5
    )
    straight = DeepNetClassifier(**params)
    for _ in range(4):
        straight.partial_fit(X, y, classes=[0, 1, 2])
    first = DeepNetClassifier(**params)
    for _ in range(2):
        first.partial_fit(X, y, classes=[0, 1, 2])
    first.save(tmp_path / "half.npz")
    resumed = DeepNetClassifier.load(tmp_path / "half.npz")
    for _ in range(2):
        resumed.partial_fit(X, y, classes=[0, 1, 2])
    assert _same_model(straight, resumed, X)


def test_babysit_resume_matches_an_uninterrupted_run(study_file: Path, capsys) -> None:
    assert main(["babysit", str(study_file), "--epochs", "4", "--set", "n_units=32"]) == 0
    assert main(["babysit", str(study_file), "--epochs", "2", "--set", "n_units=32"]) == 0
    half = _checkpoint(study_file, 1, 2)
    assert main(["babysit", str(study_file), "--resume", str(half), "--epochs", "2"]) == 0
    out = capsys.readouterr().out
    assert "epoch    4" in out and "resume with:" in out

    X_train, _, X_val, _, _ = _split(load_config(study_file))
    straight = DeepNetClassifier.load(_checkpoint(study_file, 0, 4))
    resumed = DeepNetClassifier.load(_checkpoint(study_file, 2, 4))
    assert _same_model(straight, resumed, np.vstack([X_train, X_val]))

    study = optuna.load_study(study_name="pets", storage=load_config(study_file).storage)
    one, two, three = study.get_trials()
    # The same validation rows every time: the resumed run reports the same scores.
    assert three.intermediate_values == one.intermediate_values
    assert three.user_attrs["parent_trial"] == 1
    assert three.user_attrs["resumed_at_epoch"] == 2
    assert sorted(two.intermediate_values) == [1, 2]
    for trial in (one, two, three):
        assert trial.state == TrialState.COMPLETE
        assert trial.user_attrs["mode"] == "babysit"
        assert trial.value == max(trial.user_attrs["learning_curve"])
        assert trial.user_attrs["estimator_params"]["n_units"] == 32
    assert one.params["n_units"] == 32  # in the study's space, as the sampler would see it
    assert finished_trials(study.get_trials()) == []  # not part of the search's budget


# ------------------------------------------------------- changed parameters
def test_resume_with_a_lower_learning_rate_takes_effect(study_file: Path) -> None:
    assert main(["babysit", str(study_file), "--epochs", "2"]) == 0
    half = _checkpoint(study_file, 0, 2)
    args = ["babysit", str(study_file), "--resume", str(half), "--epochs", "1"]
    assert main([*args, "--set", "learning_rate=1e-4"]) == 0
    assert main(args) == 0
    lowered = DeepNetClassifier.load(_checkpoint(study_file, 1, 3))
    unchanged = DeepNetClassifier.load(_checkpoint(study_file, 2, 3))
    assert lowered.learning_rate == 1e-4

    # Exactly what set_params on the loaded checkpoint and one partial_fit give.
    X_train, y_train, _, _, classes = _split(load_config(study_file))
    by_hand = DeepNetClassifier.load(half).set_params(learning_rate=1e-4)
    by_hand.partial_fit(X_train, y_train, classes=classes)
    assert by_hand.history_[-1].learning_rate == 1e-4
    for a, b in zip(lowered.network_.state_arrays(), by_hand.network_.state_arrays()):
        assert np.array_equal(a, b)
    assert not np.array_equal(lowered.network_.flat_params, unchanged.network_.flat_params)
    study = optuna.load_study(study_name="pets", storage=load_config(study_file).storage)
    trial = study.trials[1]
    assert trial.user_attrs["changes"] == {"learning_rate": 1e-4}
    assert trial.params["learning_rate"] == 1e-4


def test_optimizer_coefficients_rebuild_the_optimizer(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(60, 4)), np.arange(60) % 2
    model = DeepNetClassifier(random_state=0, n_units=8).partial_fit(X, y)
    model.save(tmp_path / "m.npz")
    saved = {slot: [a.copy() for a in arrays] for slot, arrays in model.optimizer_.state().items()}

    same_kind, changes, notes = _resume(tmp_path / "m.npz", {"beta1": 0.5}, 4, np.array([0, 1]))
    assert changes == {"beta1": 0.5}
    assert same_kind.optimizer_.beta1 == 0.5  # not the checkpoint's 0.9 baked in
    assert same_kind.optimizer_.t == model.optimizer_.t
    for slot, arrays in saved.items():
        assert all(
            np.array_equal(a, b) for a, b in zip(arrays, same_kind.optimizer_.state()[slot])
        )
    assert "carried over" in notes[0]

    other, _, notes = _resume(tmp_path / "m.npz", {"optimizer": "momentum"}, 4, np.array([0, 1]))
    assert type(other.optimizer_).__name__ == "Momentum"
    assert other.optimizer_.t == 0 and "starts from zero" in notes[0]
    other.partial_fit(X, y)  # and it trains

    with pytest.raises(BabysitError, match="cannot change n_units when resuming"):
        _resume(tmp_path / "m.npz", {"n_units": 16}, 4, np.array([0, 1]))
    with pytest.raises(BabysitError, match="features"):
        _resume(tmp_path / "m.npz", {}, 5, np.array([0, 1]))


# ---------------------------------------------------------------- --set
def test_settings_are_parsed_and_validated() -> None:
    assert parse_settings(["n_units=64", "l2=0", "batch_norm=False", "optimizer=sgd"]) == {
        "n_units": 64,
        "l2": 0.0,
        "batch_norm": False,
        "optimizer": "sgd",
    }
    bad = {
        "learning_rate": "expected NAME=VALUE",
        "lr=0.1": "unknown parameter 'lr'",
        "learning_rate=fast": "must be a number in (0, inf)",
        "learning_rate=inf": "must be a number",
        "n_units=2.5": "must be an integer",
        "optimizer=nesterov": "must be one of",
        "random_state=3": "cannot be set",
        "max_epochs=3": "use --epochs",
    }
    for item, message in bad.items():
        with pytest.raises(BabysitError) as caught:
            parse_settings([item])
        assert message in str(caught.value)
    with pytest.raises(BabysitError, match="set twice"):
        parse_settings(["l2=0.1", "l2=0.2"])


def test_bad_requests_are_one_line_and_write_nothing(study_file: Path, capsys) -> None:
    storage = Path(load_config(study_file).storage[len("sqlite:///") :])
    cases = [
        (["--set", "lr=0.1"], "unknown parameter 'lr'"),
        (["--set", "n_units=-3"], "n_units must be an integer in [1, inf)"),
        (["--resume", str(study_file.parent / "none.npz")], "does not exist"),
        (["--resume", str(study_file)], "not a readable optuna-dl model file"),
        (["--epochs", "0"], "--epochs must be between 1 and 100000"),
    ]
    for extra, message in cases:
        assert main(["babysit", str(study_file), *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert not storage.exists()


def test_babysit_leaves_queued_search_trials_alone(study_file: Path) -> None:
    """A WAITING trial (e.g. a heartbeat retry) belongs to the search: babysit creates
    its own trial instead of dequeuing it, as study.ask() would."""
    config = load_config(study_file)
    study = optuna.create_study(study_name="pets", storage=config.storage, direction="maximize")
    study.add_trial(create_trial(state=TrialState.WAITING, params={}, distributions={}))
    assert main(["babysit", str(study_file), "--epochs", "1", "--set", "n_units=8"]) == 0
    states = [t.state for t in study.get_trials()]
    assert states == [TrialState.WAITING, TrialState.COMPLETE]


def test_sparkline() -> None:
    assert sparkline([]) == ""
    assert sparkline([0.3, 0.3]) == "▄▄"
    assert sparkline([0.0, 0.5, 1.0]) == "▁▅█"
    assert len(sparkline(list(range(100)), width=40)) == 40
