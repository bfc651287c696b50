"""Smoke test of the example scripts: each runs with ``--quick`` as a real process.

Each script must exit 0, print its figures as Markdown tables (a ``### title`` line
followed by a table) and write a self-contained HTML page (plotly.js inlined, so it
opens offline) into the folder given with ``--out``. The scripts run two at a time in
the background, started when the first test asks for one.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCRIPTS = sorted(p.stem for p in EXAMPLES.glob("*.py") if not p.name.startswith("_"))
#: Each script's own limit in seconds (they take a few seconds each when the machine
#: is idle; the margin is for a busy one).
TIMEOUT = 240
#: A page with plotly.js inlined is several megabytes; with a CDN link, a few kilobytes.
MIN_HTML_BYTES = 1_000_000

pytestmark = pytest.mark.slow


def run_script(name: str, out: Path) -> subprocess.CompletedProcess[str]:
    folder = out / name
    folder.mkdir()
    return subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py"), "--quick", "--out", str(folder)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Future]]]:
    """Every script started, two at a time, in the background; tests wait for theirs."""
    out = tmp_path_factory.mktemp("examples")
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(run_script, name, out) for name in SCRIPTS}
        yield out, futures


def test_every_example_is_tested() -> None:
    assert SCRIPTS == [
        "batchnorm",
        "coarse_to_fine",
        "importance",
        "pandas_vs_caviar",
        "pipeline",
        "random_vs_grid",
        "scale",
    ]


@pytest.mark.parametrize("name", SCRIPTS)
def test_example_runs_quickly(runs: tuple[Path, dict[str, Future]], name: str) -> None:
    out, futures = runs
    done = futures[name].result()
    returncode, stdout, stderr = done.returncode, done.stdout, done.stderr
    assert returncode == 0, f"{name}.py failed:\n{stdout}\n{stderr}"

    assert "\n### " in stdout, f"{name}.py printed no table title:\n{stdout}"
    assert "\n|---|" in stdout, f"{name}.py printed no Markdown table:\n{stdout}"

    page = out / name / f"{name}.html"
    assert page.is_file(), f"{name}.py wrote no {page.name}:\n{stdout}"
    assert page.stat().st_size > MIN_HTML_BYTES, f"{page.name} does not inline plotly.js"
    text = page.read_text(encoding="utf-8")
    assert "plotly-graph-div" in text, f"{page.name} has no figure"
    assert 'src="https://cdn.plot.ly' not in text, f"{page.name} loads plotly.js from a CDN"
