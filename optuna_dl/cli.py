"""The ``optuna-dl`` command line: ``run``, ``best``, ``export``, ``worker``, ``babysit``.

Every error is one line on stderr with exit code 2; nothing is written to storage
before the study file has been fully validated.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import optuna
from optuna.trial import TrialState

from optuna_dl.tuning.config import (
    CONFIG_ATTR,
    ConfigError,
    StudyConfig,
    config_to_dict,
    load_config,
)
from optuna_dl.tuning.interrupts import InterruptGuard
from optuna_dl.tuning.storage import (
    QuietStorageFailures,
    StorageError,
    close_storage,
    fail_stale_trials,
    guard_storage,
    open_storage,
    redact,
    remove_sqlite_file,
    sqlite_file,
    storage_errors,
    use_write_ahead_log,
)

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


class CommandError(Exception):
    """A user-facing failure: printed as one line, exit code 2."""


def _config(args: argparse.Namespace) -> StudyConfig:
    config = load_config(args.config)
    changes: dict[str, Any] = {}
    for option in ("n_trials", "timeout", "storage", "seed"):
        value = getattr(args, option, None)
        if value is not None:
            changes[option] = value
    # The same bounds as the study file's keys.
    if "n_trials" in changes and not 1 <= args.n_trials <= 1_000_000:
        raise CommandError(f"--n-trials must be between 1 and 1000000; got {args.n_trials}.")
    if "timeout" in changes and not 0 < args.timeout <= 30 * 86400:
        raise CommandError(f"--timeout must be in (0, 2592000] seconds; got {args.timeout}.")
    if "seed" in changes and not 0 <= args.seed < 2**32:
        raise CommandError(f"--seed must be in [0, 2**32); got {args.seed}.")
    if "storage" in changes and not args.storage.strip():
        raise CommandError("--storage must be a storage URL such as sqlite:///study.db.")
    return dataclasses.replace(config, **changes) if changes else config


def _load_study(config: StudyConfig) -> optuna.Study:
    _require_storage(config.storage)
    storage = open_storage(config.storage)
    try:
        with storage_errors(config.storage):
            return optuna.load_study(study_name=config.name, storage=storage)
    except KeyError:
        raise CommandError(
            f"no study named {config.name!r} in {redact(config.storage)}; run "
            f"'optuna-dl run {config.path}' first."
        ) from None


def _require_storage(url: str) -> None:
    if url.startswith("sqlite:///"):
        file = Path(url[len("sqlite:///") :])
        if not file.exists():
            raise CommandError(f"storage file {str(file)!r} does not exist yet.")


def _search_best(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """The best completed trial of the search, or None.

    Babysat trials are left out: their value is one hold-out split's score of a model
    steered by hand, not the study's validation (often cross-validation), and their
    model is already in their checkpoints.
    """
    from optuna_dl.analysis._summary import best_trials
    from optuna_dl.tuning.workers import is_babysat

    return next((t for t in best_trials(study, k=None) if not is_babysat(t)), None)


def _best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial:
    best = _search_best(study)
    if best is None:
        raise CommandError(
            f"study {study.study_name!r} has no completed trial yet "
            "(babysat trials are not counted: their models are in their checkpoints)."
        )
    return best


def _describe_params(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    return dict(trial.user_attrs.get("estimator_params", trial.params))


def _format_value(value: Any) -> str:
    return (
        f"{value:.4g}"
        if isinstance(value, float)
        else repr(value)
        if isinstance(value, str)
        else str(value)
    )


# ------------------------------------------------------------------ commands
def command_run(args: argparse.Namespace) -> int:
    workers = getattr(args, "workers", None)
    if workers is not None and not 1 <= workers <= 256:
        raise CommandError(f"--workers must be between 1 and 256; got {workers}.")
    config = _config(args)
    X_train, _, y_train, _ = config.load_data()
    objective = config.make_objective(X_train, y_train)
    file = sqlite_file(config.storage)
    new_file = file is not None and not file.exists()
    storage = open_storage(config.storage)
    # The study file has been validated and the data read: from here on, storage is written.
    created = resumable = False
    try:
        with storage_errors(config.storage), QuietStorageFailures(config.storage) as background:
            stored = _stored_directions(storage, config.name)
            if stored is not None and stored != [config.direction]:
                raise CommandError(
                    f"{config.path}: key 'direction': study {config.name!r} in "
                    f"{redact(config.storage)} was created to {' and '.join(stored)}, not "
                    f"to {config.direction}; change direction or the study's name."
                )
            study = config.create_study(storage)
            created = stored is None
            study.set_user_attr(CONFIG_ATTR, config_to_dict(config))
            resumable = True
            use_write_ahead_log(storage)
            status = _run_study(study, config, objective, workers, args.quiet)
        background.report()
        return status
    except StorageError as error:
        if created:
            _discard_if_empty(storage, config.name, file if new_file else None)
        if not resumable:
            raise
        reason = str(error).rstrip(".")
        raise StorageError(
            f"{reason}. Finished trials are kept; run 'optuna-dl run {config.path}' again "
            "once the storage works, to resume."
        ) from None
    finally:
        close_storage(storage)


def _stored_directions(storage: Any, name: str) -> list[str] | None:
    """The directions of study ``name`` in ``storage`` (None: there is no such study)."""
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        return None
    return [d.name.lower() for d in storage.get_study_directions(study_id)]


def _discard_if_empty(storage: Any, name: str, new_file: Path | None) -> None:
    """After a storage failure, remove what this run created if it holds no trial: the
    study, or the SQLite file it created. Best effort; nothing is removed if the
    storage cannot even be read."""
    with contextlib.suppress(Exception):
        study_id = storage.get_study_id_from_name(name)
        if storage.get_all_trials(study_id, deepcopy=False):
            return
        others = [s for s in storage.get_all_studies() if s.study_name != name]
        if new_file is not None and not others:
            close_storage(storage)
            remove_sqlite_file(new_file)
        else:
            storage.delete_study(study_id)


def _run_study(
    study: optuna.Study,
    config: StudyConfig,
    objective: Any,
    workers: int | None,
    quiet: bool,
) -> int:
    from optuna_dl.tuning.workers import tally

    # Finished: COMPLETE, PRUNED or FAIL, but not a stale failure a heartbeat retry
    # replaced and not a babysat trial (see optuna_dl.tuning.workers).
    fail_stale_trials(study)
    now = tally(study.get_trials(deepcopy=False))
    remaining = None if config.n_trials is None else max(config.n_trials - now.finished, 0)
    print(
        f"study {config.name!r} in {redact(config.storage)}: {now.finished} trials finished"
        + (f", {remaining} to run" if remaining is not None else "")
        + (
            f" ({now.running} RUNNING in another process or left by a stopped run)"
            if remaining and now.running
            else ""
        ),
        flush=True,
    )
    started = time.perf_counter()
    interrupted = False
    status = 0
    if remaining != 0 and workers is not None:
        from optuna_dl.tuning.workers import run_workers

        status = run_workers(config, workers, quiet=quiet)
        interrupted = status == 130
    elif remaining != 0:
        interrupted = _optimize(study, config, guard_storage(objective), quiet)
    _print_summary(study, config, time.perf_counter() - started)
    _write_report(study, config)
    if interrupted:
        print(f"interrupted: storage is consistent; run 'optuna-dl run {config.path}' to resume.")
        return 130
    return status


def _optimize(study: optuna.Study, config: StudyConfig, objective: Any, quiet: bool) -> bool:
    """Run trials in this process until the study has ``n_trials`` finished trials, as
    the workers count them (see :mod:`optuna_dl.tuning.workers`); True if interrupted.

    A trial left RUNNING by a run that was killed counts as committed: once its
    heartbeat is older than the grace period it is failed and a copy with the same
    parameters is queued, which this loop runs. If the target is reached while such a
    trial is still RUNNING, the loop waits for it (it may be alive in another process)
    until it finishes or is failed and queued again.
    """
    from optuna_dl.tuning.workers import POLL_SECONDS, tally

    target = config.n_trials
    deadline = None if config.timeout is None else time.monotonic() + config.timeout

    def should_start() -> tuple[bool, Any]:
        fail_stale_trials(study)
        now = tally(study.get_trials(deepcopy=False))
        return now.waiting > 0 or target is None or now.committed < target, now

    def stop_at_target(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if not should_start()[0]:
            study.stop()

    guard = InterruptGuard()
    callbacks = ([] if quiet else [_print_trial]) + [guard.after_trial, stop_at_target]
    waiting_said = False
    try:
        with guard:
            while not guard.pending:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                start, now = should_start()
                if start:
                    # At most one trial per place not yet finished: a stale trial's
                    # copy takes the place of the trial it replaces.
                    study.optimize(
                        guard.wrap(objective),
                        n_trials=None if target is None else max(target - now.finished, 1),
                        timeout=left,
                        show_progress_bar=sys.stderr.isatty() and not quiet,
                        callbacks=callbacks,
                    )
                    continue
                if now.running == 0:
                    break
                if not waiting_said:
                    print(
                        f"waiting for {now.running} RUNNING trial(s): another process's, or "
                        "a stopped run's, failed after the heartbeat grace period and run "
                        "again here",
                        flush=True,
                    )
                    waiting_said = True
                time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        return True
    return guard.pending


def _print_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    if trial.state == TrialState.COMPLETE:
        outcome = f"value {trial.value:.4f}"
    elif trial.state == TrialState.PRUNED:
        reason = trial.user_attrs.get("diverged")
        outcome = (
            "diverged" if reason else f"pruned after {trial.user_attrs.get('epochs', '?')} epochs"
        )
    else:
        outcome = trial.state.name.lower()
    seconds = trial.duration.total_seconds() if trial.duration else 0.0
    retry = trial.system_attrs.get("failed_trial")
    note = f" [retry of trial {retry}]" if retry is not None else ""
    print(f"  trial {trial.number:4d}: {outcome}  ({seconds:.1f} s){note}", flush=True)


def _print_summary(study: optuna.Study, config: StudyConfig, seconds: float) -> None:
    trials = study.get_trials(deepcopy=False)
    counts = {state: sum(t.state == state for t in trials) for state in FINISHED}
    print(
        f"\n{len(trials)} trials: {counts[TrialState.COMPLETE]} complete, "
        f"{counts[TrialState.PRUNED]} pruned, {counts[TrialState.FAIL]} failed "
        f"(this run: {seconds:.1f} s)"
    )
    best = _search_best(study)
    if best is None:
        print("no completed trial yet (babysat trials are not counted).")
        return
    validation = (
        f"{config.cv}-fold CV" if config.cv else f"{config.validation_fraction:g} hold-out"
    )
    print(f"best {config.scoring} ({validation}): {best.value:.4f} (trial {best.number})")
    print("best parameters:")
    for name, value in _describe_params(best).items():
        print(f"  {name} = {_format_value(value)}")
    if counts[TrialState.COMPLETE] >= 2:
        try:
            with warnings.catch_warnings():
                # "Some regimes ... have less than 2 trials": expected on small studies.
                warnings.simplefilter("ignore", UserWarning)
                importances = optuna.importance.get_param_importances(study)
        except (RuntimeError, ValueError) as error:
            print(f"importance: not available ({error})")
            return
        print("importance (PED-ANOVA, completed trials):")
        for name, value in importances.items():
            print(f"  {name:<22} {value:.3f}")


def _write_report(study: optuna.Study, config: StudyConfig) -> None:
    try:
        from optuna_dl.analysis.report import write_report
    except ImportError:
        return
    try:
        path = write_report(study, config.report, space=config.space, title=config.name)
    except Exception as error:  # the study is saved; a failed report must not hide that
        lines = str(error).strip().splitlines()
        reason = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
        print(f"optuna-dl: warning: report not written ({reason})", file=sys.stderr)
        return
    print(f"report: {path}")


def command_best(args: argparse.Namespace) -> int:
    config = _config(args)
    study = _load_study(config)
    with storage_errors(config.storage):
        best = _best_trial(study)
    summary = {
        "study": config.name,
        "trial": best.number,
        "value": best.value,
        "params": _describe_params(best),
        "sampled_params": best.params,
        "best_epoch": best.user_attrs.get("best_epoch"),
        "epochs": best.user_attrs.get("epochs"),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"study {config.name!r}: best trial {best.number}, value {best.value:.4f}")
        for name, value in summary["params"].items():
            print(f"  {name} = {_format_value(value)}")
    return 0


def command_export(args: argparse.Namespace) -> int:
    from optuna_dl.tuning.export import refit_best

    config = _config(args)
    study = _load_study(config)
    with storage_errors(config.storage):
        best = _best_trial(study)
    X_train, X_test, y_train, y_test = config.load_data()
    model, pipeline_accuracy = refit_best(config, best, X_train, y_train, X_test, y_test)
    output = Path(args.output)
    try:
        model.save(output)
    except OSError as error:
        raise CommandError(f"cannot write {str(output)!r}: {error.strerror}.") from None
    accuracy = model.score(X_test, y_test)
    print(
        f"refit trial {best.number} for {model.n_iter_} epochs on {len(y_train)} samples; "
        f"held-out accuracy {accuracy:.4f} on {len(y_test)} samples"
    )
    if abs(accuracy - pipeline_accuracy) > 1e-9:
        print(f"  (the scaler+network pipeline scored {pipeline_accuracy:.4f})")
    print(f"model saved to {output} (load it with DeepNetClassifier.load)")
    return 0


def command_worker(args: argparse.Namespace) -> int:
    import os

    from optuna_dl.tuning.workers import WorkerError, run_worker

    url = args.storage or os.environ.get("OPTUNA_DL_STORAGE", "")
    if not url.strip():
        raise CommandError(
            "--storage (or the OPTUNA_DL_STORAGE environment variable) must be a storage "
            "URL such as postgresql+psycopg://user:password@host/studies."
        )
    if args.n_trials is not None and not 1 <= args.n_trials <= 1_000_000:
        raise CommandError(f"--n-trials must be between 1 and 1000000; got {args.n_trials}.")
    if args.timeout is not None and not 0 < args.timeout <= 30 * 86400:
        raise CommandError(f"--timeout must be in (0, 2592000] seconds; got {args.timeout}.")
    if args.threads is not None and not 1 <= args.threads <= 1024:
        raise CommandError(f"--threads must be between 1 and 1024; got {args.threads}.")
    _require_storage(url)
    try:
        report = run_worker(
            url,
            args.study,
            n_trials=args.n_trials,
            timeout=args.timeout,
            threads=args.threads,
            quiet=args.quiet,
        )
    except WorkerError as error:
        raise CommandError(str(error)) from None
    return 130 if report.interrupted else 0


def command_babysit(args: argparse.Namespace) -> int:
    from optuna_dl.babysit import BabysitError, babysit, parse_settings

    try:
        settings = parse_settings(args.set or [])
        config = _config(args)
        summary = babysit(
            config,
            settings=settings,
            resume=args.resume,
            epochs=args.epochs,
            checkpoint_dir=args.checkpoint_dir,
        )
    except BabysitError as error:
        raise CommandError(str(error)) from None
    return 130 if summary["interrupted"] else 0


# -------------------------------------------------------------------- parser
class _ArgumentParser(argparse.ArgumentParser):
    """argparse with the one-line error convention of the other errors."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help').\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(
        prog="optuna-dl",
        description="Tune, explain and export DeepNetClassifier studies defined in TOML files.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="create or resume a study and run its trials")
    run.add_argument("config", help="study file, e.g. studies/digits.toml")
    run.add_argument("--n-trials", type=int, help="total number of finished trials wanted")
    run.add_argument("--timeout", type=float, help="stop starting trials after this many seconds")
    run.add_argument("--storage", help="storage URL (default: the study file's)")
    run.add_argument("--seed", type=int, help="seed for the sampler, splits and networks")
    run.add_argument("-q", "--quiet", action="store_true", help="no per-trial lines")
    run.add_argument(
        "--workers",
        type=int,
        metavar="K",
        help="run the trials in K worker processes on this machine (BLAS threads: cores / K)",
    )
    run.set_defaults(handler=command_run)

    best = commands.add_parser("best", help="show the best trial")
    best.add_argument("config")
    best.add_argument("--storage")
    best.add_argument("--json", action="store_true", help="print JSON")
    best.set_defaults(handler=command_best)

    export = commands.add_parser(
        "export", help="refit the best configuration and save it as a model file"
    )
    export.add_argument("config")
    export.add_argument("-o", "--output", required=True, help="model file to write (.npz)")
    export.add_argument("--storage")
    export.set_defaults(handler=command_export)

    worker = commands.add_parser(
        "worker", help="join a study on shared storage and run its trials (no study file)"
    )
    worker.add_argument("--storage", help="storage URL of the study (default: $OPTUNA_DL_STORAGE)")
    worker.add_argument("--study", required=True, help="name of the study to join")
    worker.add_argument(
        "--n-trials", type=int, help="total finished trials wanted (default: the study's)"
    )
    worker.add_argument(
        "--timeout", type=float, help="stop starting trials after this many seconds"
    )
    worker.add_argument(
        "--threads", type=int, help="BLAS threads of this worker (default: all cores)"
    )
    worker.add_argument("-q", "--quiet", action="store_true", help="no per-trial lines")
    worker.set_defaults(handler=command_worker)

    babysit = commands.add_parser(
        "babysit", help="train one model epoch by epoch with checkpoints; resume with changes"
    )
    babysit.add_argument("config", help="study file, e.g. studies/digits.toml")
    babysit.add_argument(
        "--set",
        action="append",
        metavar="NAME=VALUE",
        help="an estimator parameter, e.g. learning_rate=0.01 (repeatable)",
    )
    babysit.add_argument(
        "--resume", metavar="CHECKPOINT", help="continue from this .npz checkpoint"
    )
    babysit.add_argument(
        "--epochs", type=int, help="epochs to train now (default: search.max_epochs)"
    )
    babysit.add_argument(
        "--checkpoint-dir", help="where checkpoints go (default: <study dir>/<name>-babysit)"
    )
    babysit.add_argument("--storage", help="storage URL (default: the study file's)")
    babysit.add_argument("--seed", type=int, help="seed for the split and the network")
    babysit.set_defaults(handler=command_babysit)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``optuna-dl`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return args.handler(args)
    except (ConfigError, CommandError, StorageError) as error:
        print(f"optuna-dl: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # outside a study's trials: nothing to clean up
        print("optuna-dl: interrupted.", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into head & co.
        sys.stderr.close()
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
