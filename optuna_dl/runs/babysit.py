"""Pandas: babysit one model, epoch by epoch (``optuna-dl babysit``).

One network is trained on the study's data, one epoch at a time. After every epoch
its validation score and training loss are printed with a sparkline of the curve so
far, and a checkpoint is written (``DeepNetClassifier.save``: weights, batch-norm
statistics, optimizer state, epoch count and random-generator state). A checkpoint
can be resumed with changed hyperparameters, e.g. a lower learning rate after a
plateau; with unchanged ones the continued run is bit-identical to one that was never
interrupted.

Which parameters can change on resume:

- read every epoch, take effect at once: ``learning_rate``, ``learning_rate_decay``,
  ``decay_schedule``, ``batch_size``, ``l2``;
- baked into the optimizer: ``beta``, ``beta1``, ``beta2``, ``epsilon`` rebuild it with
  the new coefficients and carry its moments and step count over; a new ``optimizer``
  starts with a fresh state;
- baked into the network (``n_layers``, ``n_units``, ``activation``, ``batch_norm``,
  ``dropout``, ``dtype``): refused, they need a new run.

The data are the study's training part, split once into training and validation rows
with the study's ``seed`` and ``search.validation_fraction`` (the hold-out an
``optuna-dl run`` trial uses without CV), so a resumed run sees the same rows. The
features are standardized with statistics of the training rows; checkpoints hold the
classifier only, which takes standardized features.

Every babysat run is recorded in the study as one trial (user attribute
``mode = "babysit"``) with its validation score reported at every epoch (the step is
the epoch number counted from the first epoch of the network), its parameters, and
its value (the best epoch's score), so a report shows it next to the searched trials.
Babysat trials do not count toward the study's ``n_trials``.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

from optuna_dl.estimator import DeepNetClassifier, DivergenceWarning
from optuna_dl.records import BABYSIT, TrialRecord, is_babysat
from optuna_dl.runs.config import StudyConfig
from optuna_dl.runs.interrupts import InterruptGuard
from optuna_dl.runs.study import OpenStudy, open_study

#: Set by babysit itself, or meaningless when training one epoch at a time.
NOT_SETTABLE = {
    "random_state": "the study's seed sets it",
    "warm_start": "babysit always continues",
    "max_epochs": "use --epochs",
    "early_stopping": "babysit validates every epoch itself",
    "validation_fraction": "the study's search.validation_fraction sets the split",
    "n_iter_no_change": "you decide when to stop",
    "tol": "you decide when to stop",
    "verbose": "babysit prints every epoch",
}
SETTABLE = tuple(
    name for name in DeepNetClassifier._parameter_constraints if name not in NOT_SETTABLE
)
ARCHITECTURE = ("n_layers", "n_units", "activation", "batch_norm", "dropout", "dtype")
OPTIMIZER_DEFINING = ("optimizer", "beta", "beta1", "beta2", "epsilon")
_CHECKPOINT = re.compile(r"^trial-(\d+)-epoch-(\d+)\.npz$")
_TICKS = "▁▂▃▄▅▆▇█"


class BabysitError(ValueError):
    """A babysit request that cannot be carried out; ``str(error)`` is one line."""


# -------------------------------------------------------------------- --set
def _parse_value(text: str) -> Any:
    stripped = text.strip()
    if stripped.lower() in ("true", "false"):
        return stripped.lower() == "true"
    for convert in (int, float):
        try:
            return convert(stripped)
        except ValueError:
            pass
    return stripped


def parse_settings(items: Sequence[str]) -> dict[str, Any]:
    """``["learning_rate=0.01", ...]`` -> validated estimator parameters.

    >>> parse_settings(["learning_rate=1e-2", "optimizer=momentum", "batch_norm=false"])
    {'learning_rate': 0.01, 'optimizer': 'momentum', 'batch_norm': False}

    Raises
    ------
    BabysitError
        A malformed item, an unknown or unsettable parameter, a bad value, or the same
        parameter twice.
    """
    settings: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise BabysitError(f"--set {item!r}: expected NAME=VALUE, e.g. learning_rate=0.01.")
        if name in NOT_SETTABLE:
            raise BabysitError(f"--set {item}: {name!r} cannot be set ({NOT_SETTABLE[name]}).")
        if name not in DeepNetClassifier._parameter_constraints:
            raise BabysitError(
                f"--set {item}: unknown parameter {name!r}; settable: {', '.join(SETTABLE)}."
            )
        if name in settings:
            raise BabysitError(f"--set {item}: {name!r} is set twice.")
        value = _parse_value(text)
        rule = DeepNetClassifier._parameter_constraints[name]
        if getattr(rule, "kind", None) == "float" and isinstance(value, int):
            value = float(value)
        finite = not isinstance(value, float) or math.isfinite(value)
        if not (finite and rule.accepts(value)):
            raise BabysitError(f"--set {item}: {name} must be {rule.describe()}; got {text!r}.")
        settings[name] = value
    return settings


# --------------------------------------------------------------- the model
def _split(config: StudyConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, Any]:
    """Standardized training and validation rows (deterministic: the study's seed)."""
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    if config.task != "classification":
        raise BabysitError(
            f"{config.path}: babysit trains classifiers; this study's task is {config.task}."
        )
    X, _, y, _ = config.load_data()
    train, val = train_test_split(
        np.arange(len(y)),
        test_size=config.validation_fraction,
        stratify=y,
        random_state=config.seed,
    )
    train, val = np.sort(train), np.sort(val)
    scaler = StandardScaler().fit(X[train])
    return scaler.transform(X[train]), y[train], scaler.transform(X[val]), y[val], np.unique(y)


def _resume(path: Path, settings: dict[str, Any], n_features: int, classes: np.ndarray):
    """Load a checkpoint and apply ``settings``; returns the model and what was done."""
    try:
        model = DeepNetClassifier.load(path)
    except (FileNotFoundError, ValueError) as error:
        raise BabysitError(str(error).strip().splitlines()[0]) from None
    if model.n_features_in_ != n_features or not np.array_equal(
        np.asarray(model.classes_, dtype=object), np.asarray(classes, dtype=object)
    ):
        raise BabysitError(
            f"{path} was trained on {model.n_features_in_} features and classes "
            f"{list(model.classes_)!r}; this study's data have {n_features} features and "
            f"classes {list(classes)!r}."
        )
    current = model.get_params()
    changes = {k: v for k, v in settings.items() if current[k] != v}
    frozen = [k for k in changes if k in ARCHITECTURE]
    if frozen:
        name = frozen[0]
        raise BabysitError(
            f"cannot change {name} when resuming: it is built into the trained network "
            f"({name}={current[name]!r} in {path}); start a new run without --resume."
        )
    notes = []
    if changes:
        model.set_params(**changes)
        if any(k in OPTIMIZER_DEFINING for k in changes):
            if model.reset_optimizer(keep_state=True):
                notes.append(
                    f"optimizer {model.optimizer!r} rebuilt with the new coefficients; its "
                    "moments and step count carried over"
                )
            else:
                notes.append(
                    f"optimizer changed from {current['optimizer']!r} to {model.optimizer!r}; "
                    "its state starts from zero"
                )
    return model, changes, notes


# ----------------------------------------------------------------- the study
def _sampled_params(config: StudyConfig, params: dict[str, Any]):
    """The parameters the study's space searches, as the sampler would have drawn them,
    with their distributions; values outside the space are left out (they stay in the
    trial record's ``estimator_params``)."""
    chosen: dict[str, Any] = {}
    for d in config.space.active:
        if d.applies(chosen):
            chosen[d.name] = params[d.name]
    sampled, distributions = {}, {}
    for name, value in chosen.items():
        d = config.space[name]
        dist = d.distribution()
        try:
            drawn = d.from_estimator(value)
            back = d.to_estimator(drawn)
        except (TypeError, ValueError, OverflowError):
            continue
        same = back == value if isinstance(back, (str, bool)) else math.isclose(back, value)
        if isinstance(dist, CategoricalDistribution):
            inside = drawn in dist.choices
        else:
            inside = dist.low <= drawn <= dist.high
        if same and inside:
            sampled[d.sampled_name], distributions[d.sampled_name] = drawn, dist
    return chosen, sampled, distributions


def _parent(study: optuna.Study, path: Path, epoch: int) -> optuna.trial.FrozenTrial | None:
    """The babysat trial that wrote checkpoint ``path`` (by its name and directory)."""
    match = _CHECKPOINT.match(path.name)
    if not match or int(match.group(2)) != epoch:
        return None
    number = int(match.group(1))
    for trial in study.get_trials(deepcopy=False):
        if (
            trial.number == number
            and is_babysat(trial)
            and TrialRecord.from_trial(trial).checkpoint_dir == str(path.resolve().parent)
        ):
            return trial
    return None


# ------------------------------------------------------------------ display
def sparkline(values: Sequence[float], width: int = 40) -> str:
    """The last ``width`` values as block characters, scaled from their min to max.

    >>> sparkline([0.5, 0.75, 1.0])
    '▁▅█'
    """
    values = list(values)[-width:]
    if not values:
        return ""
    low, high = min(values), max(values)
    if high - low < 1e-12:
        return _TICKS[3] * len(values)
    return "".join(_TICKS[round((v - low) / (high - low) * (len(_TICKS) - 1))] for v in values)


def _save(model: DeepNetClassifier, path: Path) -> None:
    """Write atomically: a checkpoint is either the old file or the complete new one."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        model.save(temporary)
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()


# --------------------------------------------------------------------- main
@dataclass
class _Session:
    """The trial a babysat run writes to, and where its checkpoints go."""

    study: optuna.Study
    trial: optuna.Trial
    directory: Path
    scorer: Any
    start_epoch: int
    history: list[float]  # the scores reported so far, the parent trial's included


@dataclass
class _Outcome:
    """What the epochs of one babysat run produced."""

    curve: list[float] = field(default_factory=list)  # validation score per epoch
    losses: list[float] = field(default_factory=list)  # training loss per epoch
    checkpoint: Path | None = None  # the last one written
    diverged: str | None = None  # the DivergenceWarning's message
    interrupted: bool = False


def _check_epochs(config: StudyConfig, epochs: int | None) -> int:
    """``--epochs``, defaulting to the study's ``search.max_epochs``."""
    epochs = config.max_epochs if epochs is None else epochs
    if not 1 <= epochs <= 100_000:
        raise BabysitError(f"--epochs must be between 1 and 100000; got {epochs}.")
    return epochs


def _prepare_model(
    config: StudyConfig,
    settings: dict[str, Any],
    resume: Path | None,
    n_features: int,
    classes: np.ndarray,
) -> tuple[DeepNetClassifier, dict[str, Any], list[str]]:
    """The model to train (resumed from a checkpoint or new), the parameters that
    differ from where it started, and notes on what was done."""
    if resume is not None:
        return _resume(resume, settings, n_features, classes)
    model = DeepNetClassifier(**{"random_state": config.seed, **config.estimator, **settings})
    return model, dict(settings), []


def _checkpoint_directory(config: StudyConfig, checkpoint_dir: str | Path | None) -> Path:
    """The checkpoint directory, created if needed (one line if it cannot be)."""
    directory = Path(
        checkpoint_dir
        if checkpoint_dir is not None
        else config.path.resolve().parent / f"{config.name}-babysit"
    ).resolve()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise BabysitError(f"cannot create {str(directory)!r}: {error.strerror}.") from None
    return directory


def _open_trial(
    opened: OpenStudy,
    model: DeepNetClassifier,
    changes: dict[str, Any],
    resume: Path | None,
    directory: Path,
) -> _Session:
    """Create the babysat trial in the open study, replaying the parent trial's scores
    up to the resumed epoch."""
    from sklearn.metrics import get_scorer

    config, study, storage = opened.config, opened.study, opened.storage
    scorer = get_scorer(config.scoring)
    start_epoch = getattr(model, "n_iter_", 0)
    params = model.get_params()
    chosen, sampled, distributions = _sampled_params(config, params)
    record = TrialRecord(
        mode=BABYSIT,
        estimator_params={**chosen, **{k: params[k] for k in changes}},
        changes=dict(changes),
        checkpoint_dir=str(directory),
    )
    parent = None
    if resume is not None:
        parent = _parent(study, resume, start_epoch)
        record.resumed_from = str(resume.resolve())
        record.resumed_at_epoch = start_epoch
        if parent is not None:
            record.parent_trial = parent.number
    template = optuna.trial.create_trial(
        state=TrialState.RUNNING,
        params=sampled,
        distributions=distributions,
        user_attrs=record.to_user_attrs(),
    )
    # Not study.ask(): that would dequeue a WAITING trial (a heartbeat retry) that
    # belongs to the search; a new trial is created directly instead.
    study_id = storage.get_study_id_from_name(config.name)
    trial = optuna.Trial(study, storage.create_new_trial(study_id, template_trial=template))
    history: list[float] = []
    if parent is not None:
        for step, value in sorted(parent.intermediate_values.items()):
            if step <= start_epoch:
                trial.report(value, step)
                history.append(value)

    return _Session(study, trial, directory, scorer, start_epoch, history)


def _announce(
    config: StudyConfig,
    session: _Session,
    n_rows: tuple[int, int],
    epochs: int,
    resume: Path | None,
    changes: dict[str, Any],
    notes: list[str],
    out: Callable[[str], None],
) -> None:
    """Print what is about to be trained, from where, with which changes."""
    trial, start_epoch, directory = session.trial, session.start_epoch, session.directory
    out(
        f"babysitting trial {trial.number} of study {config.name!r}: "
        f"{n_rows[0]} training and {n_rows[1]} validation rows, {epochs} epochs"
        + (f" from epoch {start_epoch} of {resume}" if resume is not None else "")
    )
    for key, value in changes.items():
        out(f"  {key} = {value!r}")
    for note in notes:
        out(f"  note: {note}")
    out(f"  checkpoints: {directory}{os.sep}trial-{trial.number}-epoch-NNNN.npz")


def _partial_fit_watching_divergence(
    model: DeepNetClassifier,
    X: np.ndarray,
    y: np.ndarray,
    classes: np.ndarray,
    trial: optuna.Trial,
    interrupts: InterruptGuard,
) -> str | None:
    """Train one epoch; return the DivergenceWarning's message if it diverged."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DivergenceWarning)
        interrupts.call(lambda _: model.partial_fit(X, y, classes=classes), trial)
    found = [w for w in caught if issubclass(w.category, DivergenceWarning)]
    return str(found[0].message) if found else None


def _run_epochs(
    config: StudyConfig,
    model: DeepNetClassifier,
    data: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    session: _Session,
    epochs: int,
    out: Callable[[str], None],
) -> _Outcome:
    """Train up to ``epochs`` epochs; after each, score, checkpoint, report and print.
    Stops early on divergence or Ctrl-C (the epoch under way finishes first)."""
    X_train, y_train, X_val, y_val, classes = data
    trial, directory, history = session.trial, session.directory, session.history
    name = config.scoring
    result = _Outcome()
    with InterruptGuard() as interrupts:
        try:
            for _ in range(epochs):
                if interrupts.pending:
                    result.interrupted = True
                    break
                diverged = _partial_fit_watching_divergence(
                    model, X_train, y_train, classes, trial, interrupts
                )
                if diverged:
                    result.diverged = diverged
                    out(f"  diverged: {diverged}")
                    break
                score = float(session.scorer(model, X_val, y_val))
                epoch = model.n_iter_
                path = directory / f"trial-{trial.number}-epoch-{epoch:04d}.npz"
                _save(model, path)
                result.checkpoint = path
                trial.report(score, epoch)
                improved = not history or score > max(history)
                result.curve.append(score)
                history.append(score)
                result.losses.append(float(model.loss_curve_[-1]))
                out(
                    f"epoch {epoch:4d}  loss {result.losses[-1]:.4f}  {name} {score:.4f}"
                    f"{' *' if improved else '  '}  {sparkline(history)}"
                )
        except KeyboardInterrupt:
            result.interrupted = True
    return result


def _record_result(
    config: StudyConfig,
    session: _Session,
    result: _Outcome,
    out: Callable[[str], None],
) -> dict[str, Any]:
    """Store the curves in the trial and finish it (its value: the best epoch's score;
    pruned if it diverged before any epoch finished, else failed); print how to resume."""
    study, trial, start_epoch = session.study, session.trial, session.start_epoch
    curve, checkpoint, diverged = result.curve, result.checkpoint, result.diverged
    name = config.scoring
    best = int(np.argmax(curve)) if curve else None
    TrialRecord(
        learning_curve=curve,
        loss_curve=result.losses,
        first_epoch=start_epoch + 1,
        epochs=start_epoch + len(curve),
        diverged=diverged or None,
        best_epoch=None if best is None else start_epoch + best + 1,
    ).write(trial)
    if best is not None:
        study.tell(trial, curve[best])
    else:
        study.tell(trial, state=TrialState.PRUNED if diverged else TrialState.FAIL)
    summary = {
        "trial": trial.number,
        "value": curve[best] if best is not None else None,
        "best_epoch": start_epoch + best + 1 if best is not None else None,
        "epochs": start_epoch + len(curve),
        "checkpoint": checkpoint,
        "interrupted": result.interrupted,
    }
    if best is not None:
        out(
            f"trial {trial.number}: best {name} {curve[best]:.4f} at epoch "
            f"{summary['best_epoch']}; last checkpoint {checkpoint}"
        )
        out(
            f"resume with: optuna-dl babysit {config.path} --resume {checkpoint} "
            "[--set learning_rate=...]"
        )
    else:
        out(f"trial {trial.number}: no epoch finished; nothing to resume.")
    return summary


def babysit(
    config: StudyConfig,
    *,
    settings: dict[str, Any] | None = None,
    resume: str | Path | None = None,
    epochs: int | None = None,
    checkpoint_dir: str | Path | None = None,
    out: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train one model of ``config``'s study epoch by epoch; see the module docstring.

    Parameters
    ----------
    config : StudyConfig
        The study: its data, seed, estimator defaults, scoring and storage.
    settings : dict, optional
        Estimator parameters to set (as from :func:`parse_settings`).
    resume : str or path-like, optional
        A checkpoint to continue from.
    epochs : int, optional
        Epochs to train (default: the study's ``search.max_epochs``).
    checkpoint_dir : str or path-like, optional
        Where checkpoints go (default: ``<study name>-babysit`` next to the study file).
    out : callable, default=print
        Receives every line of output.

    Returns
    -------
    dict
        ``trial`` (its number), ``value``, ``best_epoch``, ``epochs`` (the network's
        epoch count), ``checkpoint`` (the last one written) and ``interrupted``.

    Raises
    ------
    BabysitError, ConfigError, StorageError
        One line each; raised before the study is touched.
    """
    settings = dict(settings or {})
    epochs = _check_epochs(config, epochs)
    data = _split(config)
    X_train, y_train, X_val, y_val, classes = data
    resume = None if resume is None else Path(resume)
    model, changes, notes = _prepare_model(config, settings, resume, X_train.shape[1], classes)
    directory = _checkpoint_directory(config, checkpoint_dir)
    # Everything is validated: from here on the study is written.
    with open_study(config, mode="babysit") as opened:
        session = _open_trial(opened, model, changes, resume, directory)
        n_rows = (len(y_train), len(y_val))
        _announce(config, session, n_rows, epochs, resume, changes, notes, out)
        result = _run_epochs(config, model, data, session, epochs, out)
        return _record_result(config, session, result, out)
