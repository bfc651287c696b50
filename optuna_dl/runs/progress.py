"""The line printed for each finished trial by ``run``, ``run --workers`` and ``worker``."""

from __future__ import annotations

from optuna.trial import FrozenTrial, TrialState

from optuna_dl.records import TrialRecord


def trial_line(trial: FrozenTrial, worker: int | None = None) -> str:
    """One line on how ``trial`` ended, its duration, and where it ran.

    Parameters
    ----------
    trial : FrozenTrial
        A finished trial.
    worker : int, optional
        Process id of the worker that ran it, shown in brackets.

    Examples
    --------
    >>> from optuna.trial import create_trial
    >>> print(trial_line(create_trial(value=0.93125)))
      trial   -1: value 0.9313  (0.0 s)
    >>> pruned = create_trial(state=TrialState.PRUNED, user_attrs={"epochs": 6})
    >>> print(trial_line(pruned, worker=42))
      trial   -1: pruned after 6 epochs  (0.0 s) [worker 42]
    """
    record = TrialRecord.from_trial(trial)
    if trial.state == TrialState.COMPLETE:
        values = trial.values
        outcome = (
            f"value {values[0]:.4f}"
            if len(values) == 1
            else "values " + ", ".join(f"{v:.4g}" for v in values)
        )
    elif trial.state == TrialState.PRUNED:
        epochs = "?" if record.epochs is None else record.epochs
        outcome = "diverged" if record.diverged else f"pruned after {epochs} epochs"
    else:
        outcome = trial.state.name.lower()
    seconds = trial.duration.total_seconds() if trial.duration else 0.0
    notes = [] if worker is None else [f"worker {worker}"]
    retry = trial.system_attrs.get("failed_trial")
    if retry is not None:
        notes.append(f"retry of trial {retry}")
    note = f" [{', '.join(notes)}]" if notes else ""
    return f"  trial {trial.number:4d}: {outcome}  ({seconds:.1f} s){note}"
