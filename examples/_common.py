"""Helpers shared by the example scripts: arguments, data, tables and the HTML page.

Every example takes ``--quick`` (a tiny budget for the smoke test) and ``--out DIR``
(where its HTML page goes; default: beside the script), prints its figures as
Markdown tables (so they can be pasted into docs/FINDINGS.md) and writes one
self-contained HTML file (plotly.js inlined once: it opens offline).
"""

from __future__ import annotations

import argparse
import html
import math
import statistics
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import plotly.graph_objects as go
from sklearn.datasets import load_digits

HERE = Path(__file__).resolve().parent


def make_parser(doc: str | None) -> argparse.ArgumentParser:
    """An argument parser with the options every example has: ``--quick`` and ``--out``."""
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny budget: finishes in seconds (smoke test)"
    )
    parser.add_argument(
        "--out", type=Path, default=HERE, help="folder for the HTML page (default: beside this)"
    )
    parser.add_argument("--seed", type=int, default=0, help="first random seed (default 0)")
    return parser


def quiet_optuna() -> None:
    """Silence Optuna's per-trial log lines."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled digits: 1797 8x8 images (64 features), 10 classes."""
    X, y = load_digits(return_X_y=True)
    return X.astype(np.float64), y


def mean_std(values: Iterable[float], places: int = 4) -> str:
    """``"mean ± std"`` (sample standard deviation; just the mean for one value)."""
    values = [float(v) for v in values]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{places}f}"
    return f"{statistics.fmean(values):.{places}f} ± {statistics.stdev(values):.{places}f}"


def fmt(value: Any, places: int = 4) -> str:
    """A compact cell: floats to ``places`` significant digits, the rest as str."""
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.{places}g}"
    return str(value)


class Tables:
    """Markdown tables printed as they are made, and kept for the HTML page."""

    def __init__(self) -> None:
        self.items: list[tuple[str, list[str], list[list[str]]]] = []

    def add(self, title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Print ``### title`` and a Markdown table, and keep them."""
        cells = [[fmt(c) for c in row] for row in rows]
        self.items.append((title, list(headers), cells))
        print(f"\n### {title}\n")
        print(markdown_table(headers, cells), flush=True)

    def to_html(self) -> str:
        parts = []
        for title, headers, rows in self.items:
            head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
            body = "".join(
                "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                for row in rows
            )
            parts.append(f"<h2>{html.escape(title)}</h2><table><tr>{head}</tr>{body}</table>")
        return "\n".join(parts)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 0 auto;
       padding: 0 20px 40px; color: #222; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 14px; }
th, td { border: 1px solid #ddd; padding: 3px 9px; text-align: left; }
th { background: #f4f4f4; }
p.claim { background: #f7f7ff; border-left: 4px solid #88f; padding: 6px 12px; }
"""


def write_page(
    path: Path,
    title: str,
    claim: str,
    figures: Sequence[go.Figure],
    tables: Tables,
    notes: Sequence[str] = (),
) -> Path:
    """One self-contained HTML file: the claim, the tables, then the figures.

    plotly.js is inlined once (with the first figure), so the page works offline.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    divs = [
        fig.to_html(full_html=False, include_plotlyjs=(i == 0), default_height="460px")
        for i, fig in enumerate(figures)
    ]
    note_html = "".join(f"<p>{html.escape(n)}</p>" for n in notes)
    document = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p class='claim'>{html.escape(claim)}</p>"
        f"{note_html}{tables.to_html()}{''.join(divs)}</body></html>"
    )
    path.write_text(document, encoding="utf-8")
    print(f"\nwrote {path}")
    return path


class Stopwatch:
    """Seconds since construction; prints the total at the end of an example."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started

    def report(self) -> None:
        print(f"total time: {self.seconds:.1f} s")


def paragraph(doc: str | None) -> str:
    """The docstring's first paragraph as one line."""
    text = (doc or "").strip().split("\n\n")[0]
    return " ".join(text.split())
