"""The ``optuna-dl`` command line: ``run``, ``report``, ``importance``, ``best``,
``export``, ``worker``, ``babysit``.

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
from typing import Any, NoReturn

import optuna
from optuna.trial import TrialState

from optuna_dl.records import TrialRecord, best_trials, estimator_params, is_babysat
from optuna_dl.runs.budget import finished_trials
from optuna_dl.runs.config import CONFIG_ATTR, ConfigError, StudyConfig, load_config
from optuna_dl.runs.runner import run_trials
from optuna_dl.runs.storage import StorageError
from optuna_dl.runs.study import OpenStudy, open_study

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


READ_STORAGE_HELP = "storage URL, or an Optuna journal file's path (default: the study file's)"


def _search_best(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """The best completed trial of the search, or None.

    Babysat trials are left out: their value is one hold-out split's score of a model
    steered by hand, not the study's validation (often cross-validation), and their
    model is already in their checkpoints.
    """
    return next(iter(best_trials(study, 1, babysat=False)), None)


def _best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial:
    best = _search_best(study)
    if best is None:
        raise CommandError(
            f"study {study.study_name!r} has no completed trial yet "
            "(babysat trials are not counted: their models are in their checkpoints)."
        )
    return best


def _chosen_trial(study: optuna.Study, config: StudyConfig, number: int | None):
    """The trial ``best`` and ``export`` work on: ``--trial N``, else the best one; a
    multi-objective study with several Pareto-optimal trials asks which."""
    if number is not None:
        for trial in study.get_trials(deepcopy=False):
            if trial.number == number:
                if trial.state != TrialState.COMPLETE or is_babysat(trial):
                    break
                return trial
        raise CommandError(
            f"--trial {number}: study {config.name!r} has no completed search trial {number}."
        )
    if not config.multi_objective:
        return _best_trial(study)
    front = _pareto_front(study)
    if len(front) == 1:
        return front[0]
    if not front:
        return _best_trial(study)  # says there is no completed trial
    numbers = ", ".join(str(t.number) for t in front)
    raise CommandError(
        f"study {config.name!r} has {len(front)} Pareto-optimal trials ({numbers}); "
        "pick one with --trial N."
    )


def _pareto_front(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The Pareto-optimal completed search trials, by number."""
    front = [t for t in study.best_trials if not is_babysat(t)]
    return sorted(front, key=lambda t: t.number)


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
    # The study file has been validated and the data read: from here on, storage is written.
    with open_study(config, mode="run") as opened:
        return _run_study(opened, objective, workers, args.quiet)


def _run_study(opened: OpenStudy, objective: Any, workers: int | None, quiet: bool) -> int:
    started = time.perf_counter()
    status = run_trials(opened, objective, workers=workers, quiet=quiet)
    _print_summary(opened.study, opened.config, time.perf_counter() - started)
    _write_report(opened.study, opened.config)
    if status == 130:
        print(
            f"interrupted: storage is consistent; run 'optuna-dl run {opened.config.path}' "
            "to resume."
        )
    return status


def _print_summary(study: optuna.Study, config: StudyConfig, seconds: float) -> None:
    trials = study.get_trials(deepcopy=False)
    counts = {state: sum(t.state == state for t in trials) for state in FINISHED}
    print(
        f"\n{len(trials)} trials: {counts[TrialState.COMPLETE]} complete, "
        f"{counts[TrialState.PRUNED]} pruned, {counts[TrialState.FAIL]} failed "
        f"(this run: {seconds:.1f} s)"
    )
    if config.multi_objective:
        _print_pareto_front(study, config)
        return
    best = _search_best(study)
    if best is None:
        print("no completed trial yet (babysat trials are not counted).")
        return
    validation = (
        f"{config.cv}-fold CV" if config.cv else f"{config.validation_fraction:g} hold-out"
    )
    print(f"best {config.scoring} ({validation}): {best.value:.4f} (trial {best.number})")
    print("best parameters:")
    for name, value in estimator_params(best).items():
        print(f"  {name} = {_format_value(value)}")
    if counts[TrialState.COMPLETE] >= 2:
        from optuna_dl.analysis.ranking import study_ranking

        try:
            result = study_ranking(study)
        except (RuntimeError, ValueError) as error:
            print(f"importance: not available ({error})")
            return
        _print_ranking(result)


def _print_pareto_front(study: optuna.Study, config: StudyConfig) -> None:
    front = _pareto_front(study)
    if not front:
        print("no completed trial yet (babysat trials are not counted).")
        return
    goals = ", ".join(f"{o} ({d})" for o, d in zip(config.objectives, config.directions))
    print(f"Pareto front: {len(front)} trial(s) no other trial beats on every objective: {goals}")
    print("  trial  " + "  ".join(f"{o:>12}" for o in config.objectives))
    for trial in front:
        print(f"  {trial.number:5d}  " + "  ".join(f"{v:>12.4g}" for v in trial.values))
    print(f"pick one with: optuna-dl export {config.path} --trial N -o model.npz")


def _print_ranking(result: Any, method: str = "rungs") -> None:
    """A ranking with its intervals and what the resamples say about its order."""
    from optuna_dl.analysis.confidence import rank_confidence
    from optuna_dl.analysis.ranking import CAVEATS, RANKINGS

    print(
        f"importance ({RANKINGS[method]}: {result.n_trials} trials, "
        f"{100 * result.confidence:.0f} % intervals over {result.n_bootstrap} resamples):"
    )
    for p in result.params:
        rank = "-" if p.rank != p.rank else f"{p.rank:g}"
        print(
            f"  {p.name:<22} {p.importance:.3f}  [{p.low:.3f}, {p.high:.3f}]  "
            f"rank {rank} [{p.rank_low:g}, {p.rank_high:g}]"
        )
    for statement in rank_confidence(result).statements:
        print(f"  {statement}")
    if method in CAVEATS:
        print(f"  {CAVEATS[method]}")


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
    with open_study(config) as opened:
        best = _chosen_trial(opened.study, config, args.trial)
    record = TrialRecord.from_trial(best)
    values = dict(zip(config.objectives, best.values))
    summary = {
        "study": config.name,
        "trial": best.number,
        "value": best.values[0],
        **({"values": values} if config.multi_objective else {}),
        "params": estimator_params(best),
        "sampled_params": best.params,
        "best_epoch": record.best_epoch,
        "epochs": record.epochs,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        described = ", ".join(f"{k} {v:.4g}" for k, v in values.items())
        which = "trial" if config.multi_objective or args.trial is not None else "best trial"
        print(
            f"study {config.name!r}: {which} {best.number}, "
            + (described if config.multi_objective else f"value {best.values[0]:.4f}")
        )
        for name, value in summary["params"].items():
            print(f"  {name} = {_format_value(value)}")
    return 0


def command_export(args: argparse.Namespace) -> int:
    from optuna_dl.runs.export import refit_best

    config = _config(args)
    with open_study(config) as opened:
        best = _chosen_trial(opened.study, config, args.trial)
    X_train, X_test, y_train, y_test = config.load_data()
    model, pipeline_accuracy = refit_best(config, best, X_train, y_train, X_test, y_test)
    output = Path(args.output)
    try:
        model.save(output)
    except OSError as error:
        raise CommandError(f"cannot write {str(output)!r}: {error.strerror}.") from None
    score = model.score(X_test, y_test)
    measure = "R²" if config.task == "regression" else "accuracy"
    print(
        f"refit trial {best.number} for {model.n_iter_} epochs on {len(y_train)} samples; "
        f"held-out {measure} {score:.4f} on {len(y_test)} samples"
    )
    if f"{score:.4f}" != f"{pipeline_accuracy:.4f}":
        print(f"  (the scaler+network pipeline scored {pipeline_accuracy:.4f})")
    print(f"model saved to {output} (load it with {type(model).__name__}.load)")
    return 0


def command_worker(args: argparse.Namespace) -> int:
    import os

    from optuna_dl.runs.workers import run_worker

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
    report = run_worker(
        url,
        args.study,
        n_trials=args.n_trials,
        timeout=args.timeout,
        threads=args.threads,
        quiet=args.quiet,
    )
    return 130 if report.interrupted else 0


def command_report(args: argparse.Namespace) -> int:
    from optuna_dl.analysis.report import write_report

    config = _config(args)
    output = Path(args.output) if args.output else config.report
    if output.is_dir():
        raise CommandError(f"-o {str(output)!r} is a folder; give the HTML file to write.")
    with open_study(config) as opened:
        if not finished_trials(opened.study.get_trials(deepcopy=False)):
            raise CommandError(
                f"study {config.name!r} has no finished trial yet; run some trials first "
                f"('optuna-dl run {config.path}')."
            )
        try:
            path = write_report(opened.study, output, space=config.space, title=config.name)
        except OSError as error:
            raise CommandError(
                f"cannot write {str(output)!r}: {error.strerror or error}."
            ) from None
    print(f"report: {path}")
    return 0


def command_importance(args: argparse.Namespace) -> int:
    from optuna_dl.analysis.confidence import ranking_to_json
    from optuna_dl.analysis.ranking import CAVEATS, study_ranking

    config = _config(args)
    with open_study(config) as opened:
        study = opened.study
        if len(study.directions) > 1:
            raise CommandError(
                f"study {config.name!r} has {len(study.directions)} objectives; "
                "'optuna-dl importance' ranks single-objective studies."
            )
        if CONFIG_ATTR not in study.user_attrs:
            raise CommandError(
                f"study {config.name!r} was not written by optuna-dl (it has no stored "
                "definition), so its trials lack the learning curves a ranking reads."
            )
        n_finished = len(finished_trials(study.get_trials(deepcopy=False)))
        if n_finished < 2:
            raise CommandError(
                f"study {config.name!r} has {n_finished} finished trial(s); a ranking needs "
                "at least 2."
            )
        result = study_ranking(study, method=args.method)
    if args.json:
        document = {"study": config.name, "method": args.method, **ranking_to_json(result)}
        if args.method in CAVEATS:
            document["caveat"] = CAVEATS[args.method]
        print(json.dumps(document, indent=2))
    else:
        print(f"study {config.name!r}")
        _print_ranking(result, args.method)
    return 0


def command_babysit(args: argparse.Namespace) -> int:
    from optuna_dl.runs.babysit import BabysitError, babysit, parse_settings

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
    best.add_argument("--storage", help=READ_STORAGE_HELP)
    best.add_argument("--json", action="store_true", help="print JSON")
    best.add_argument("--trial", type=int, metavar="N", help="this trial instead of the best")
    best.set_defaults(handler=command_best)

    export = commands.add_parser(
        "export", help="refit the best configuration and save it as a model file"
    )
    export.add_argument("config")
    export.add_argument("-o", "--output", required=True, help="model file to write (.npz)")
    export.add_argument("--storage", help=READ_STORAGE_HELP)
    export.add_argument("--trial", type=int, metavar="N", help="this trial instead of the best")
    export.set_defaults(handler=command_export)

    importance = commands.add_parser(
        "importance",
        help="rank an existing study's hyperparameters, with intervals, without running trials",
    )
    importance.add_argument("config", help="study file, e.g. studies/digits.toml")
    importance.add_argument("--storage", help=READ_STORAGE_HELP)
    importance.add_argument("--json", action="store_true", help="print JSON")
    importance.add_argument(
        "--method",
        choices=("rungs", "completed"),
        default="rungs",
        help="rungs: every trial, pruned ones at the rungs they reached (default); "
        "completed: the completed trials only, for comparison",
    )
    importance.set_defaults(handler=command_importance)

    report = commands.add_parser(
        "report", help="write the HTML report of an existing study, without running trials"
    )
    report.add_argument("config", help="study file, e.g. studies/digits.toml")
    report.add_argument(
        "-o", "--output", help="HTML file to write (default: the study file's report)"
    )
    report.add_argument("--storage", help=READ_STORAGE_HELP)
    report.set_defaults(handler=command_report)

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
