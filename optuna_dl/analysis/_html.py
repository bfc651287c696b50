"""HTML building blocks of the report: escaping, tables, figures, the page itself.

Every piece of text that comes from a study (its name, parameter names and values,
messages) goes through :func:`html.escape`; figures are serialized by plotly, which
escapes ``<``, ``>`` and ``/`` inside its JSON. plotly.js is inlined once, in the head,
so the page works offline.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from typing import Any

import plotly.graph_objects as go
import plotly.offline

__all__ = ["esc", "figure", "fmt", "page", "table"]

#: Set on <body> once the page has loaded: data-plots (plot divs), data-rendered
#: (those with an SVG drawn), data-errors (JavaScript errors caught). A test (or a
#: person) reads them to know the page rendered.
_SCRIPT_HEAD = """
window.__reportErrors = [];
window.onerror = function (message, source, line) {
  window.__reportErrors.push(String(message) + " (" + String(source) + ":" + line + ")");
};
"""

_SCRIPT_END = """
window.addEventListener("load", function () {
  var tries = 0;
  function check() {
    var plots = document.querySelectorAll("div.plotly-graph-div");
    var drawn = 0;
    plots.forEach(function (p) { if (p.querySelector("svg.main-svg")) { drawn += 1; } });
    if (drawn < plots.length && tries < 50) { tries += 1; setTimeout(check, 100); return; }
    var errors = window.__reportErrors;
    document.body.dataset.plots = plots.length;
    document.body.dataset.rendered = drawn;
    document.body.dataset.errors = errors.length;
    if (errors.length) {
      var box = document.getElementById("js-errors");
      box.textContent = errors.join("\\n");
      box.hidden = false;
    }
  }
  check();
});
"""

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto;
       max-width: 1180px; padding: 0 24px 48px; color: #222; }
h1 { margin-top: 24px; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: 4px; margin-top: 36px; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 14px; }
th, td { border: 1px solid #ddd; padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #f5f5f5; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.why { color: #8a5a00; background: #fff8e6; border-left: 4px solid #f0b400; padding: 6px 10px; }
.failed { color: #8b0000; background: #fdecec; border-left: 4px solid #c00; padding: 6px 10px; }
.note { color: #555; font-size: 13px; }
.plot { overflow-x: auto; margin: 8px 0 24px; }
nav a { margin-right: 12px; }
#js-errors { color: #8b0000; }
"""


def esc(value: Any) -> str:
    """``html.escape(str(value))``."""
    return html.escape(str(value), quote=True)


def fmt(value: Any, digits: int = 3) -> str:
    """A number with ``digits`` significant digits (``-`` for None or nan)."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.{digits}g}"
    return str(value)


def table(
    headers: Sequence[str], rows: Iterable[Sequence[Any]], numeric: Sequence[int] = ()
) -> str:
    """An HTML table; every cell is escaped (numbers formatted with :func:`fmt`)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            text = fmt(cell) if isinstance(cell, float) or cell is None else str(cell)
            klass = ' class="num"' if i in numeric else ""
            cells.append(f"<td{klass}>{esc(text)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def figure(fig: go.Figure, div_id: str) -> str:
    """A figure as a <div> and its script; plotly.js itself is in the page head."""
    snippet = fig.to_html(
        full_html=False,
        include_plotlyjs=False,
        div_id=div_id,
        config={"displaylogo": False, "responsive": True},
    )
    return f'<div class="plot">{snippet}</div>'


def page(title: str, body: str) -> str:
    """The whole document: head with plotly.js inlined once, then ``body``."""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{_STYLE}</style>"
        f"<script>{_SCRIPT_HEAD}</script>"
        f'<script type="text/javascript">{plotly.offline.get_plotlyjs()}</script>'
        "</head><body>"
        '<pre id="js-errors" hidden></pre>'
        f"{body}"
        f"<script>{_SCRIPT_END}</script>"
        "</body></html>\n"
    )
