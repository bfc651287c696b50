"""The ``optuna-dl`` command line: ``run``, ``best``, ``export``.

Every error is one line on stderr with exit code 2; nothing is written to storage
before the study file has been fully validated.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from optuna_dl.tuning.config import ConfigError, StudyConfig, config_to_dict, load_config
from optuna_dl.tuning.storage import fail_stale_trials, open_storage, redact

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
    if getattr(args, "n_trials", None) is not None and args.n_trials < 1:
        raise CommandError(f"--n-trials must be a positive integer; got {args.n_trials}.")
    if getattr(args, "timeout", None) is not None and args.timeout <= 0:
        raise CommandError(f"--timeout must be positive; got {args.timeout}.")
    return dataclasses.replace(config, **changes) if changes else config


def _load_study(config: StudyConfig) -> optuna.Study:
    _require_storage(config.storage)
    storage = open_storage(config.storage)
    try:
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


def _finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=FINISHED)


def _best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial:
    try:
        return study.best_trial
    except ValueError:
        raise CommandError(f"study {study.study_name!r} has no completed trial yet.") from None


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
    config = _config(args)
    X_train, _, y_train, _ = config.load_data()
    objective = config.make_objective(X_train, y_train)
    storage = open_storage(config.storage)
    study = optuna.create_study(
        study_name=config.name,
        storage=storage,
        direction=config.direction,
        sampler=config.make_sampler(),
        pruner=config.make_pruner(),
        load_if_exists=True,
    )
    study.set_user_attr("optuna_dl_config", config_to_dict(config))
    fail_stale_trials(study)
    done = len(_finished(study))
    remaining = None if config.n_trials is None else max(config.n_trials - done, 0)
    print(
        f"study {config.name!r} in {redact(config.storage)}: {done} trials finished"
        + (f", {remaining} to run" if remaining is not None else "")
    )
    started = time.perf_counter()
    interrupted = False
    if remaining != 0:
        try:
            study.optimize(
                objective,
                n_trials=remaining,
                timeout=config.timeout,
                show_progress_bar=sys.stderr.isatty() and not args.quiet,
                callbacks=[_print_trial] if not args.quiet else [],
            )
        except KeyboardInterrupt:
            interrupted = True
    _print_summary(study, config, time.perf_counter() - started)
    _write_report(study, config)
    if interrupted:
        print(f"interrupted: storage is consistent; run 'optuna-dl run {config.path}' to resume.")
        return 130
    return 0


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
    print(f"  trial {trial.number:4d}: {outcome}  ({trial.duration.total_seconds():.1f} s)")


def _print_summary(study: optuna.Study, config: StudyConfig, seconds: float) -> None:
    trials = study.get_trials(deepcopy=False)
    counts = {state: sum(t.state == state for t in trials) for state in FINISHED}
    print(
        f"\n{len(trials)} trials: {counts[TrialState.COMPLETE]} complete, "
        f"{counts[TrialState.PRUNED]} pruned, {counts[TrialState.FAIL]} failed "
        f"(this run: {seconds:.1f} s)"
    )
    if counts[TrialState.COMPLETE] == 0:
        print("no completed trial yet.")
        return
    best = study.best_trial
    validation = (
        f"{config.cv}-fold CV" if config.cv else f"{config.validation_fraction:g} hold-out"
    )
    print(f"best {config.scoring} ({validation}): {best.value:.4f} (trial {best.number})")
    print("best parameters:")
    for name, value in _describe_params(best).items():
        print(f"  {name} = {_format_value(value)}")
    if counts[TrialState.COMPLETE] >= 2:
        try:
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
    path = write_report(study, config.report, space=config.space, title=config.name)
    print(f"report: {path}")


def command_best(args: argparse.Namespace) -> int:
    config = _config(args)
    study = _load_study(config)
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


# -------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``optuna-dl`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return args.handler(args)
    except (ConfigError, CommandError) as error:
        print(f"optuna-dl: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into head & co.
        sys.stderr.close()
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
