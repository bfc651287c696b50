"""Shared by tests in several folders: throwaway PostgreSQL clusters.

A cluster is made with ``initdb`` on a free loopback port (unix socket in a temporary
directory, a password for the test role) and removed afterwards. Without PostgreSQL
binaries or the psycopg driver the tests that need one skip, except under ``CI=true``,
where a missing component fails them.
"""

from __future__ import annotations

import glob
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from optuna_dl.nn import kernels

POSTGRES_ROLE = "optuna_dl"


def missing(reason: str) -> None:
    """Skip the test, or fail it under ``CI=true``, where every component must exist."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)


def free_port() -> int:
    """A loopback TCP port that nothing listens on (at the time of asking)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PostgresCluster:
    """A throwaway PostgreSQL cluster on 127.0.0.1 with a ``studies`` database.

    ``url`` is ``postgresql+psycopg://optuna_dl:<password>@127.0.0.1:<port>/studies``;
    the password is distinctive (``pw-`` and 16 hex digits), so a leak is found by
    searching for it. :meth:`stop` and :meth:`start` take the server down and up again.

    For speed the server does not wait for its log to be written when a transaction
    commits (``synchronous_commit=off``), so a crash can lose the last commits. A
    ``durable`` cluster waits, as PostgreSQL does by default: a crash of the server
    then loses no committed transaction. (``fsync`` stays off: the machine does not
    crash in these tests.)
    """

    def __init__(self, *, durable: bool = False) -> None:
        self.durable = durable
        binaries = sorted(
            glob.glob("/usr/lib/postgresql/*/bin/initdb"),
            key=lambda path: [int(part) for part in re.findall(r"\d+", path)],
        )
        initdb = binaries[-1] if binaries else shutil.which("initdb")
        if initdb is None:
            missing("PostgreSQL is not installed (no initdb; apt-get install postgresql)")
        self.pg_ctl = str(Path(initdb).with_name("pg_ctl"))
        try:
            import psycopg
        except ImportError:
            missing("the psycopg driver is not installed (pip install 'optuna-dl[postgres]')")

        self.password = "pw-" + secrets.token_hex(8)
        as_root = os.geteuid() == 0
        self.prefix: list[str] = []
        self.directory = Path(tempfile.mkdtemp(prefix="optuna-dl-pg-"))
        if as_root:  # PostgreSQL refuses to run as root
            import pwd

            try:
                account = pwd.getpwnam("postgres")
            except KeyError:
                shutil.rmtree(self.directory)
                missing("running as root and there is no 'postgres' system user")
            os.chown(self.directory, account.pw_uid, account.pw_gid)
            self.prefix = ["runuser", "-u", "postgres", "--"]
        password_file = self.directory / "password"
        password_file.write_text(self.password + "\n")
        if as_root:
            os.chown(password_file, account.pw_uid, account.pw_gid)
        password_file.chmod(0o600)
        self.data, self.log = self.directory / "data", self.directory / "server.log"
        self.port = free_port()
        try:
            self._run(
                initdb,
                "-D",
                str(self.data),
                "-U",
                POSTGRES_ROLE,
                f"--pwfile={password_file}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--no-sync",
                "-E",
                "UTF8",
            )
            self.start()
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
            detail = getattr(error, "stderr", b"") or b""
            server_log = self.log.read_text() if self.log.exists() else ""
            shutil.rmtree(self.directory, ignore_errors=True)
            pytest.fail(f"could not start PostgreSQL: {error}: {detail.decode()} {server_log}")
        try:
            with psycopg.connect(
                host="127.0.0.1",
                port=self.port,
                user=POSTGRES_ROLE,
                password=self.password,
                dbname="postgres",
                autocommit=True,
            ) as connection:
                connection.execute("CREATE DATABASE studies")
        except Exception:
            self.remove()
            raise
        self.url = (
            f"postgresql+psycopg://{POSTGRES_ROLE}:{self.password}@127.0.0.1:{self.port}/studies"
        )

    def _run(self, *command: str) -> None:
        subprocess.run([*self.prefix, *command], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        """Start the server (on the same port) and wait until it accepts connections."""
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} "
            f"-c unix_socket_directories={self.directory} "
            "-c fsync=off -c full_page_writes=off"
        )
        if not self.durable:
            options += " -c synchronous_commit=off"
        self._run(
            self.pg_ctl, "-D", str(self.data), "-o", options, "-l", str(self.log), "-w",
            "-t", "60", "start",
        )  # fmt: skip

    def stop(self) -> None:
        """Stop the server at once, as a crash would (``pg_ctl stop -m immediate``)."""
        self._run(self.pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def remove(self) -> None:
        """Stop the server if it runs and delete the cluster."""
        subprocess.run(
            [*self.prefix, self.pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The URL of a fresh cluster that lives as long as the test run."""
    cluster = PostgresCluster()
    try:
        yield cluster.url
    finally:
        cluster.remove()


@pytest.fixture
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A fresh, durable cluster of the test's own, which the test may stop and start."""
    cluster = PostgresCluster(durable=True)
    try:
        yield cluster
    finally:
        cluster.remove()


# Both kernel backends (optuna_dl.nn.kernels): the NumPy reference and numba.
BACKEND_PARAMS = [
    "numpy",
    pytest.param(
        "numba",
        marks=pytest.mark.skipif(not kernels.numba_available(), reason="numba is not installed"),
    ),
]


@pytest.fixture(params=BACKEND_PARAMS)
def backend(request):
    """Run the test once with the NumPy reference and once with the numba kernels."""
    with kernels.use_backend(request.param):
        yield request.param
