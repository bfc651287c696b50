"""Caviar on one machine: trials per hour of a digits study with 1 and 2 workers.

Every row runs the same study in a fresh SQLite file: the digits study
(``studies/digits.toml``: 40 trials of up to 40 epochs, 3-fold CV on 1437 training
images, the course's tier 1-3 space) with pruning off and ``patience = max_epochs``,
so every trial trains every epoch and the work does not depend on which worker runs
what. The same ``--trials`` configurations (drawn once by a seeded random sampler,
longest first) are queued in every row, so each row trains exactly the same networks:

- ``run``: ``optuna-dl run`` in one process (the reference);
- ``run --workers 1``: one worker process with all cores' BLAS threads;
- ``run --workers 2``: two worker processes with cores / 2 BLAS threads each.

Columns: *wall* is the whole command (interpreter and worker start-up, the trials,
the summary and the HTML report); *trials* is the span from the first trial's start
to the last trial's end in storage; *cpu* is the CPU time of the command and its
workers. Speed-ups are against ``run --workers 1``. With ``--repeat R`` the rows run
in R interleaved rounds and each row shows its best round (other load on the machine
only ever adds time). ``--small`` restricts the space to networks of at most 64
units and batches of at most 64, which the estimator trains with one BLAS thread even
when it could use more (with larger networks, one worker already keeps both cores
partly busy, which caps what a second worker can add).

    python benchmarks/parallel.py [--trials 40] [--epochs 40] [--repeat 1] [--small]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

ROOT = Path(__file__).resolve().parents[1]
STUDY = """\
name = "digits_parallel"
direction = "maximize"
n_trials = {trials}
seed = 0

[data]
source = "digits"
test_fraction = 0.2

[search]
cv = 3
max_epochs = {epochs}
patience = {epochs}
max_tier = 3

[sampler]
name = "RandomSampler"

[pruner]
name = "NopPruner"
"""
SMALL = """
[space.n_units]
high = 64

[space.batch_size]
high = 64
"""


def configurations(config, trials: int) -> list[dict]:
    """``trials`` parameter sets of the study's space, most expensive first."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    drawn = []
    for _ in range(trials):
        trial = study.ask()
        params = config.space.suggest(trial)
        study.tell(trial, 0.0)
        drawn.append((trial.params, params))

    def cost(item: tuple[dict, dict]) -> float:
        p = item[1]
        units, layers = p.get("n_units", 128), p.get("n_layers", 2)
        per_batch = 2e4 / p.get("batch_size", 128)  # fixed cost of a step
        return 64 * units + (layers - 1) * units**2 + 10 * units + per_batch * units

    return [sampled for sampled, _ in sorted(drawn, key=cost, reverse=True)]


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_row(label: str, extra: list[str], study_text: str, trials: int) -> dict:
    from optuna_dl.runs.budget import finished_trials
    from optuna_dl.runs.config import CONFIG_ATTR, config_to_dict, load_config

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "digits_parallel.toml"
        path.write_text(study_text)
        config = load_config(path)
        study = optuna.create_study(
            study_name=config.name, storage=config.storage, direction=config.direction
        )
        study.set_user_attr(CONFIG_ATTR, config_to_dict(config))
        for params in configurations(config, trials):
            study.enqueue_trial(params)
        load_before = os.getloadavg()[0]
        cpu_before = cpu_seconds()
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "optuna_dl.cli", "run", str(path), "-q", *extra],
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - started
        cpu = cpu_seconds() - cpu_before
        if result.returncode != 0:
            raise SystemExit(f"{label} failed:\n{result.stdout}\n{result.stderr}")
        done = optuna.load_study(study_name=config.name, storage=config.storage).trials
        assert len(finished_trials(done)) == trials == len(done), label
        span = (
            max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)
        ).total_seconds()
        pids = {t.user_attrs.get("worker_pid") for t in done} - {None}
        return {
            "label": label,
            "wall": wall,
            "span": span,
            "cpu": cpu,
            "processes": max(len(pids), 1),
            "load": (load_before, os.getloadavg()[0]),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=1, help="interleaved rounds")
    parser.add_argument("--small", action="store_true", help="single-thread networks only")
    parser.add_argument("--no-reference", action="store_true", help="skip the plain run row")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from optuna_dl._pool import cpu_count

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study_text = STUDY.format(trials=args.trials, epochs=args.epochs)
    if args.small:
        study_text += SMALL
    plan = [] if args.no_reference else [("run", [])]
    plan += [(f"run --workers {k}", ["--workers", str(k)]) for k in args.workers]
    runs: dict[str, list[dict]] = {label: [] for label, _ in plan}
    for round_ in range(args.repeat):
        for label, extra in plan:
            row = run_row(label, extra, study_text, args.trials)
            runs[label].append(row)
            print(
                f"  round {round_ + 1}: {label}: {row['wall']:.1f} s wall, "
                f"{row['span']:.1f} s of trials, load {row['load'][0]:.1f}",
                file=sys.stderr,
                flush=True,
            )
    rows = [min(results, key=lambda r: r["span"]) for results in runs.values()]
    base = next((r for r in rows if r["label"] == "run --workers 1"), rows[0])

    space = "networks <= 64 units, batches <= 64" if args.small else "the study's space"
    print(
        f"digits, {args.trials} trials x {args.epochs} epochs x 3 folds ({space}), "
        f"{cpu_count()} cores, Python {sys.version.split()[0]}, optuna {optuna.__version__}"
        + (f", best of {args.repeat} rounds" if args.repeat > 1 else "")
    )
    header = (
        f"{'command':<16} {'procs':>5} {'wall s':>7} {'trials/h':>8} {'speed-up':>8} "
        f"{'trials s':>8} {'trials/h':>8} {'speed-up':>8} {'cpu s':>6}  load avg"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['label']:<16} {r['processes']:>5} {r['wall']:>7.1f} "
            f"{args.trials / r['wall'] * 3600:>8.0f} {base['wall'] / r['wall']:>7.2f}x "
            f"{r['span']:>8.1f} {args.trials / r['span'] * 3600:>8.0f} "
            f"{base['span'] / r['span']:>7.2f}x {r['cpu']:>6.1f}  "
            f"{r['load'][0]:.1f}-{r['load'][1]:.1f}"
        )


if __name__ == "__main__":
    main()
