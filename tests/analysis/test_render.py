"""The report rendered in a real headless Chromium: no JavaScript error, every plot drawn.

Skips without Chromium, except under ``CI=true`` where a missing browser fails.
Chromium is driven from the command line (``--dump-dom``, ``--screenshot``): no
Python dependency. The page's own script sets ``data-plots``, ``data-rendered`` and
``data-errors`` on <body> after load (see ``optuna_dl/analysis/_html.py``).
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from optuna_dl.analysis import write_report

pytestmark = pytest.mark.slow

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--virtual-time-budget=10000",
)


@pytest.fixture(scope="module")
def chromium() -> str:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    message = f"no headless browser found (looked for {', '.join(BROWSERS)})"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; CI must install the Debian package 'chromium'.")
    pytest.skip(message)


def _run(browser: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    return subprocess.run(
        [browser, *FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )


def _body_data(dom: str) -> dict[str, str]:
    body = re.search(r"<body([^>]*)>", dom)
    assert body, "no <body> in the dumped DOM"
    return dict(re.findall(r'data-([a-z]+)="([^"]*)"', body.group(1)))


def _png_rows(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and the (still filtered) scanlines of a non-interlaced PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", header[:10])
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
    stride = 1 + width * channels * depth // 8
    raw = zlib.decompress(idat)
    assert len(raw) == stride * height
    return width, height, [raw[i * stride : (i + 1) * stride] for i in range(height)]


def test_report_renders_in_chromium(chromium, tuned_study, tmp_path):
    tiers = {"learning_rate": 1, "optimizer": 2, "n_layers": 2, "one_minus_beta": 2}
    tiers.update(learning_rate_decay=2, n_units=3, log2_batch_size=3)
    page = write_report(tuned_study, tmp_path / "report.html", space=tiers)
    n_plots = len(re.findall(r'<div id="plot-\d+" class="plotly-graph-div"', page.read_text()))
    assert n_plots == 13

    result = _run(chromium, tmp_path, "--dump-dom", page.as_uri())
    dom = result.stdout
    data = _body_data(dom)
    assert data == {"plots": str(n_plots), "rendered": str(n_plots), "errors": "0"}, (
        data,
        re.search(r'<pre id="js-errors"[^>]*>(.*?)</pre>', dom, re.S),
    )
    divs = re.split(r'<div id="plot-\d+" class="plotly-graph-div', dom)[1:]
    assert len(divs) == n_plots
    assert all('class="main-svg"' in div.split('<div class="plot">')[0] for div in divs)
    assert "Uncaught" not in result.stderr

    shot = tmp_path / "report.png"
    _run(chromium, tmp_path, f"--screenshot={shot}", "--window-size=1280,2000", page.as_uri())
    png = shot.read_bytes()
    assert len(png) > 50_000
    width, height, rows = _png_rows(png)
    assert (width, height) == (1280, 2000)
    # Text, tables and plots give many different scanlines; a blank page gives one or two.
    assert len(set(rows)) > 300


def test_a_javascript_error_would_be_caught(chromium, make_study, tmp_path):
    page = write_report(make_study([]), tmp_path / "report.html")
    broken = page.read_text().replace("</body>", "<script>notAFunction();</script></body>")
    page.write_text(broken)
    data = _body_data(_run(chromium, tmp_path, "--dump-dom", page.as_uri()).stdout)
    assert data["errors"] == "1"
