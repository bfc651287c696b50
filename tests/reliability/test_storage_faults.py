"""Storage faults: ``optuna-dl run`` on a storage that cannot be written, a disk that is
or becomes full, and a PostgreSQL server that is unreachable or stops mid-study.

Every fault must end the command with exit code 2 and one line on stderr that names
the storage (password hidden) and the cause, with no traceback. Nothing half made is
left behind (a new SQLite file that could not be set up is removed; no study without
trials appears), and every trial finished before the fault is kept unchanged. When the
fault came mid-study, running the command again once the storage works resumes the
study: the trial the fault interrupted is failed by heartbeat and run again, and the
study ends with exactly ``n_trials`` finished trials.

Everything is real: SQLite files, processes, file permissions, file systems and a
throwaway PostgreSQL cluster (tests/conftest.py).

* **Read-only.** Folders and files are made read-only with ``chmod``. Root ignores
  permissions, so as root the command runs without the capabilities that let it
  (``CAP_DAC_OVERRIDE`` and ``CAP_DAC_READ_SEARCH`` are dropped from its capability
  bounding set before it starts), which makes it as bound by them as any user.
* **Full disk.** Two ways. The command's own file-size limit (``RLIMIT_FSIZE``, set
  with ``prlimit``) stops the database from growing (``EFBIG``, SQLite's "disk I/O
  error"): this works for any user. And when this process may mount file systems
  (root with ``CAP_SYS_ADMIN``), the database also lives on a 4 MiB tmpfs that is
  filled up with a file (``ENOSPC``, SQLite's "database or disk is full").

The tally is written to ``storage_fault_counts.json`` in pytest's base temporary
directory and printed by the last test (``pytest -s``).
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import hashlib
import io
import json
import os
import re
import resource
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.engine import make_url

from optuna_dl.cli import main
from optuna_dl.runs.budget import finished_trials

ENV = {
    **os.environ,
    "OPTUNA_DL_HEARTBEAT_INTERVAL": "1",
    "OPTUNA_DL_GRACE_PERIOD": "3",
    "PYTHONUNBUFFERED": "1",
}
STUDY = (Path(__file__).parents[1] / "data" / "slow_iris_study.toml.template").read_text()
DONE = (TrialState.COMPLETE, TrialState.PRUNED)
#: per fault: injected, finished trials before it, trials lost, ...
COUNTS: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)


# --------------------------------------------------------------------- helpers
def study_file(folder: Path, *, n_trials: int = 4, max_epochs: int = 3) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "faults.toml"
    text = STUDY.format(name="faults", n_trials=n_trials, max_epochs=max_epochs, max_units=64)
    path.write_text(text)
    return path


def cli(*args: object, preexec: Callable[[], None] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "optuna_dl.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=ENV,
        preexec_fn=preexec,
        timeout=240,
    )


def start(*args: object) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "optuna_dl.cli", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )


def assert_one_line_error(code: int, out: str, err: str, *parts: str, url: str = "") -> None:
    """Exit code 2, one line on stderr naming ``parts``, no traceback, no password."""
    assert code == 2, f"exit code {code}\n{out}\n{err}"
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("optuna-dl: error: "), err
    assert "Traceback" not in out + err
    for part in parts:
        assert part in err, err
    password = make_url(url).password if url else None
    if password:
        assert password not in out + err
        assert "***@" in err, err


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_trials(url: str) -> dict[int, FrozenTrial]:
    storage = optuna.storages.RDBStorage(url)
    try:
        return {
            t.number: t for t in storage.get_all_trials(storage.get_study_id_from_name("faults"))
        }
    finally:
        storage.engine.dispose()


def study_names(url: str) -> list[str]:
    storage = optuna.storages.RDBStorage(url)
    try:
        return [s.study_name for s in storage.get_all_studies()]
    finally:
        storage.engine.dispose()


def finished_count(url: str) -> int:
    try:
        return len(finished_trials(read_trials(url).values()))
    except (KeyError, Exception):  # the study or the schema does not exist yet
        return 0


def wait_for_finished(process: subprocess.Popen, url: str, count: int) -> None:
    deadline = time.monotonic() + 120
    while finished_count(url) < count:
        if process.poll() is not None:
            out, err = process.communicate()
            pytest.fail(f"the run ended before {count} trials finished: {out}\n{err}")
        assert time.monotonic() < deadline, f"{count} trials did not finish within 120 s"
        time.sleep(0.1)


def check_resumed(
    fault: str,
    study: Path,
    url: str,
    before: dict[int, FrozenTrial],
    n_trials: int,
) -> None:
    """After a fault mid-study: the trials finished before it are unchanged, and running
    the command again ends the study with exactly ``n_trials`` finished trials, the
    interrupted trial failed and run again with the parameters it had drawn."""
    # ``before`` was read while the run went on, statement by statement, so only its
    # states are compared; whole trials are compared once the failed run has ended.
    after_fault = read_trials(url)
    lost = [
        t.number
        for t in before.values()
        if t.state in DONE
        and (t.number not in after_fault or after_fault[t.number].state != t.state)
    ]
    kept = [t for t in after_fault.values() if t.state in DONE]
    interrupted = [n for n, t in after_fault.items() if t.state == TrialState.RUNNING]
    result = cli("run", study, "--storage", url, "-q")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    resumed = read_trials(url)
    lost += [t.number for t in kept if not _same(t, resumed[t.number])]
    assert not lost, f"trials changed or lost: {lost}"
    for number in interrupted:
        assert resumed[number].state == TrialState.FAIL
        (retry,) = [t for t in resumed.values() if t.system_attrs.get("failed_trial") == number]
        # The parameters drawn before the fault are kept (the fault may come before all
        # of them were drawn; the retry then draws the others).
        assert after_fault[number].params.items() <= retry.params.items()
        assert retry.state in DONE
    assert len(finished_trials(resumed.values())) == n_trials
    assert not {t.state for t in resumed.values()} & {TrialState.RUNNING, TrialState.WAITING}
    assert study_names(url) == ["faults"]
    counts = COUNTS[fault]
    counts["finished trials before the fault"] += len(kept)
    counts["trials lost"] += len(set(lost))
    counts["trials interrupted, then retried"] += len(interrupted)


def _same(a: FrozenTrial, b: FrozenTrial) -> bool:
    return (a.state, a.params, a.values, a.intermediate_values, a.datetime_complete) == (
        b.state,
        b.params,
        b.values,
        b.intermediate_values,
        b.datetime_complete,
    )


# ------------------------------------------------------------------- read-only
_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH = 1, 2


def _drop_permission_override() -> None:
    """preexec_fn: the child (and what it executes) loses the capabilities with which
    root ignores file permissions."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
        if libc.prctl(_PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


@pytest.fixture
def bound_by_permissions(tmp_path: Path) -> Callable[[], None] | None:
    """The preexec_fn that makes a child bound by file permissions (None when this
    process is not root). Checked: the child cannot write into a read-only folder."""
    preexec = _drop_permission_override if os.geteuid() == 0 else None
    probe = tmp_path / "probe"
    probe.mkdir()
    probe.chmod(0o555)
    try:
        result = subprocess.run(
            [sys.executable, "-c", f"open({str(probe / 'x')!r}, 'w')"],
            capture_output=True,
            preexec_fn=preexec,
        )
    except subprocess.SubprocessError as error:
        pytest.fail(f"cannot start a process bound by file permissions: {error}")
    finally:
        probe.chmod(0o755)
    if result.returncode == 0:
        pytest.fail("a process wrote into a read-only folder: permissions are not enforced")
    return preexec


@contextlib.contextmanager
def read_only(*paths: Path) -> Iterator[None]:
    modes = {path: path.stat().st_mode for path in paths}
    try:
        for path in paths:
            path.chmod(0o555 if path.is_dir() else 0o444)
        yield
    finally:
        for path, mode in modes.items():
            path.chmod(mode)


@pytest.mark.slow
@pytest.mark.parametrize("where", ["read-only folder", "a file where the folder is", "no folder"])
def test_a_new_sqlite_file_that_cannot_be_created(
    tmp_path: Path, bound_by_permissions: Callable[[], None] | None, where: str
) -> None:
    study = study_file(tmp_path / "study")
    folder = tmp_path / "data"
    if where == "a file where the folder is":
        folder.write_text("not a folder\n")
    elif where == "read-only folder":
        folder.mkdir()
    url = f"sqlite:///{folder / 'faults.db'}"
    expected = {
        "read-only folder": "is not writable",
        "a file where the folder is": "is not a folder",
        "no folder": "does not exist",
    }[where]
    with read_only(folder) if folder.is_dir() else contextlib.nullcontext():
        result = cli("run", study, "--storage", url, preexec=bound_by_permissions)
    assert_one_line_error(
        result.returncode, result.stdout, result.stderr, f"cannot open storage {url}", expected
    )
    assert not (folder.is_dir() and any(folder.iterdir()))  # nothing was created
    COUNTS[f"SQLite: new file, {where}"]["faults injected"] += 1


@pytest.mark.slow
def test_a_read_only_sqlite_file_is_refused_unchanged_and_still_read(
    tmp_path: Path, bound_by_permissions: Callable[[], None] | None
) -> None:
    """``run`` refuses, the file keeps its bytes; ``best`` and ``export`` still work."""
    study = study_file(tmp_path / "study", n_trials=2)
    folder = tmp_path / "data"
    folder.mkdir()
    db = folder / "faults.db"
    url = f"sqlite:///{db}"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["run", str(study), "--storage", url, "-q"]) == 0
    before = digest(db)
    trials = read_trials(url)
    with read_only(db, folder):
        result = cli("run", study, "--storage", url, "--n-trials", 4, preexec=bound_by_permissions)
        assert_one_line_error(
            result.returncode,
            result.stdout,
            result.stderr,
            f"storage {url} failed",
            "attempt to write a readonly database",
        )
        assert digest(db) == before
        best = cli("best", study, "--storage", url, "--json", preexec=bound_by_permissions)
        assert best.returncode == 0, best.stderr
        assert json.loads(best.stdout)["trial"] in trials
        model = tmp_path / "model.npz"
        export = cli("export", study, "--storage", url, "-o", model, preexec=bound_by_permissions)
        assert export.returncode == 0, export.stderr
        assert model.is_file()
        assert digest(db) == before
    assert sorted(os.listdir(folder)) == ["faults.db"]  # no journal left behind
    counts = COUNTS["SQLite: read-only file"]
    counts["faults injected"] += 1
    counts["finished trials before the fault"] += len(trials)


# ------------------------------------------------------------------ full disk
def _may_mount() -> bool:
    """Whether this process may mount a file system (root with CAP_SYS_ADMIN)."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return False
    found = re.search(r"^CapEff:\s*([0-9a-f]+)$", status, re.MULTILINE)
    return os.geteuid() == 0 and found is not None and bool(int(found.group(1), 16) >> 21 & 1)


#: How a disk is made full: a tmpfs that is filled up, where this process may mount
#: one; a file-size limit on the command everywhere.
DISKS = (["tmpfs"] if _may_mount() else []) + ["file size limit"]


class SmallDisk:
    """A folder on a disk that a test can fill up (see the module docstring)."""

    def __init__(self, folder: Path, kind: str) -> None:
        self.folder, self.kind = folder, kind
        self.filler = folder / "filler"
        folder.mkdir()
        if kind == "tmpfs":
            mount = ["mount", "-t", "tmpfs", "-o", "size=4m,mode=755", "optuna-dl-test"]
            subprocess.run([*mount, str(folder)], check=True, capture_output=True)

    def fill(self, process: subprocess.Popen | None = None) -> None:
        """No more room: fill the tmpfs, or forbid ``process`` to grow its files."""
        if self.kind == "tmpfs":
            # ENOSPC ends the filling, even at the open: the study's own writes may
            # have taken the last page already, which is the fault wanted either way.
            with contextlib.suppress(OSError), open(self.filler, "ab") as handle:
                while True:
                    handle.write(b"\0" * 65536)
                    handle.flush()
        else:
            assert process is not None
            size = max((p.stat().st_size for p in self.folder.glob("*.db")), default=0)
            resource.prlimit(process.pid, resource.RLIMIT_FSIZE, (size, size))

    def full_from_the_start(self) -> Callable[[], None] | None:
        """Fill the disk now; the preexec_fn the command then needs (file size limit)."""
        if self.kind == "tmpfs":
            self.fill()
            return None
        # One page: the first page of the database, and nothing more. (A limit of 0
        # would also stop the small files libraries create at import time.)
        return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    @property
    def full_message(self) -> str:
        """SQLite's message: ENOSPC is SQLITE_FULL, EFBIG an I/O error."""
        return "database or disk is full" if self.kind == "tmpfs" else "disk I/O error"

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def remove(self) -> None:
        if self.kind == "tmpfs":
            subprocess.run(["umount", "-l", str(self.folder)], capture_output=True)


@pytest.fixture(params=DISKS)
def small_disk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SmallDisk]:
    disk = SmallDisk(tmp_path / "disk", request.param)
    try:
        yield disk
    finally:
        disk.remove()


@pytest.mark.slow
def test_a_new_sqlite_file_on_a_full_disk_is_not_left_behind(
    tmp_path: Path, small_disk: SmallDisk
) -> None:
    study = study_file(tmp_path / "study")
    url = f"sqlite:///{small_disk.folder / 'faults.db'}"
    preexec = small_disk.full_from_the_start()
    result = cli("run", study, "--storage", url, preexec=preexec)
    assert_one_line_error(
        result.returncode,
        result.stdout,
        result.stderr,
        f"cannot open storage {url}",
        small_disk.full_message,
    )
    assert not list(small_disk.folder.glob("faults.db*"))  # removed again
    COUNTS[f"SQLite: new file on a full disk ({small_disk.kind})"]["faults injected"] += 1


@pytest.mark.slow
def test_a_disk_that_fills_up_mid_study(tmp_path: Path, small_disk: SmallDisk) -> None:
    n_trials = 8
    study = study_file(tmp_path / "study", n_trials=n_trials, max_epochs=10)
    url = f"sqlite:///{small_disk.folder / 'faults.db'}"
    process = start("run", study, "--storage", url, "-q")
    wait_for_finished(process, url, 2)
    small_disk.fill(process)
    before = read_trials(url)
    out, err = process.communicate(timeout=120)
    assert_one_line_error(
        process.returncode, out, err, f"storage {url} failed", small_disk.full_message, "to resume"
    )
    small_disk.free()
    fault = f"SQLite: disk full mid-study ({small_disk.kind})"
    check_resumed(fault, study, url, before, n_trials)
    COUNTS[fault]["faults injected"] += 1


# ------------------------------------------------------------------ PostgreSQL
@pytest.mark.slow
def test_an_unreachable_postgresql_server(tmp_path: Path) -> None:
    """A closed loopback port: ``run`` (as a process, with and without workers),
    ``best``, ``export`` and ``worker`` (in this process) each say so in one line, with
    the password hidden."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but the psycopg driver is not installed")
        pytest.skip("the psycopg driver is not installed (pip install 'optuna-dl[postgres]')")
    study = study_file(tmp_path / "study")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again when the block ends
    closed = f"postgresql+psycopg://optuna_dl:pw-{secrets.token_hex(8)}@127.0.0.1:{port}/studies"
    model = tmp_path / "model.npz"
    for args in (
        ["run", study, "--storage", closed],
        ["run", study, "--storage", closed, "--workers", "2"],
        ["best", study, "--storage", closed],
        ["export", study, "--storage", closed, "-o", model],
        ["worker", "--storage", closed, "--study", "faults"],
    ):
        if args[0] == "run":
            result = cli(*args)
            code, out, err = result.returncode, result.stdout, result.stderr
        else:
            out_buffer, err_buffer = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out_buffer), contextlib.redirect_stderr(err_buffer):
                code = main([str(a) for a in args])
            out, err = out_buffer.getvalue(), err_buffer.getvalue()
        assert_one_line_error(
            code, out, err, "cannot open storage", "Connection refused", url=closed
        )
        COUNTS["PostgreSQL: unreachable server"]["faults injected"] += 1
    assert not model.exists()


@pytest.mark.slow
def test_a_postgresql_server_that_stops_mid_study(tmp_path: Path, postgres_cluster: Any) -> None:
    n_trials = 8
    study = study_file(tmp_path / "study", n_trials=n_trials, max_epochs=10)
    url = postgres_cluster.url
    process = start("run", study, "--storage", url, "-q")
    wait_for_finished(process, url, 2)
    before = read_trials(url)
    postgres_cluster.stop()
    out, err = process.communicate(timeout=120)
    postgres_cluster.start()
    assert_one_line_error(process.returncode, out, err, "failed", "to resume", url=url)
    check_resumed("PostgreSQL: server stopped mid-study", study, url, before, n_trials)
    COUNTS["PostgreSQL: server stopped mid-study"]["faults injected"] += 1


# ----------------------------------------------------------------- the tally
def test_zz_tally(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Print and save the tally (runs last in this file: pytest keeps definition order)."""
    if not COUNTS:
        pytest.skip("the storage fault tests did not run in this test run")
    total: collections.Counter = collections.Counter()
    for counts in COUNTS.values():
        total.update(counts)
    report = {"total": total, "faults": COUNTS}
    path = tmp_path_factory.getbasetemp() / "storage_fault_counts.json"
    path.write_text(json.dumps(report, indent=2, sort_keys=True))
    print(
        f"\n{total['faults injected']} storage faults injected, "
        f"{total['trials lost']} trials lost; {total['finished trials before the fault']} "
        f"finished trials kept, {total['trials interrupted, then retried']} interrupted "
        f"trials retried.\n"
        f"{json.dumps(COUNTS, indent=1, sort_keys=True)}"
    )
    assert total["trials lost"] == 0
