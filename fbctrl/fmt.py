"""Numbers, rates, seed sets and tables as the book prints them (one place for every format).

- :func:`fmt_num`: ``x`` to ``digits`` significant figures, powers of ten as ``5 × 10⁻⁵``;
- :func:`mean_sem` / :func:`fmt_pm`: mean and standard error of the mean over seeds (ddof 1),
  printed ``0.0124 ± 0.0004``;
- :func:`fmt_rate`: a learning rate in prose; :func:`fmt_seeds`: the file-name tag of a seed set;
- :func:`markdown_table`: a Markdown table whose cells cannot break it (what Markdown reads as
  syntax is escaped, :func:`escape_markdown`; a cell meant as Markdown is a :class:`Markup`,
  e.g. :func:`bold` or :func:`code`); :func:`md_table`: the same, displayable in a notebook;
  :func:`html_table`: the same contract in HTML, for a table glued into another page.

Intervals and tests are in :mod:`fbctrl.experiments.runs.stats`.
"""

from __future__ import annotations

import html
import math
import warnings

import numpy as np
from IPython.display import Markdown

__all__ = ["fmt_num", "mean_sem", "fmt_pm", "fmt_rate", "fmt_seeds", "Markup", "escape_markdown", "bold", "code",
           "markdown_table", "md_table", "Strong", "html_table"]


_SUP = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def _sci(mant: str, exp: int) -> str:
    return f"{mant} × 10{str(exp).translate(_SUP)}"


def fmt_num(x, digits: int = 3) -> str:
    """``x`` rounded to ``digits`` significant figures, as prose: ``0.0123``, ``1.23 × 10⁻⁵``.
    Plain notation for magnitudes 1e-3 .. 1e5, scientific outside."""
    x = float(x)
    if math.isnan(x):
        return "n/a"
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    if x == 0:
        return "0"
    s = f"{x:.{digits - 1}e}"  # rounds once; the exponent is that of the rounded value
    mant, exp = s.split("e")
    exp = int(exp)
    if -3 <= exp < 5:
        dec = max(digits - 1 - exp, 0)
        return f"{float(s):.{dec}f}"
    return _sci(mant, exp)


def mean_sem(values, axis=0) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard error of the mean (ddof = 1) along ``axis``; SEM is 0 for one value.
    NaNs are ignored."""
    a = np.asarray(values, dtype=np.float64)
    n = np.sum(np.isfinite(a), axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        # all-NaN columns and single values: NaN mean / zero SEM, without numpy's RuntimeWarnings
        warnings.simplefilter("ignore", RuntimeWarning)
        m = np.nanmean(a, axis=axis)
        sd = np.nanstd(a, axis=axis, ddof=1) if a.shape[axis] > 1 else np.zeros_like(m)
        sem = np.where(n > 1, sd / np.sqrt(np.maximum(n, 1)), 0.0)
    return m, sem


def fmt_pm(values, digits: int = 2, max_digits: int = 4) -> str:
    """``mean ± SEM`` over seeds. The SEM keeps two significant figures if it starts with 1 or 2,
    else one (``digits=1``: always one); the mean is rounded to the same decimal place, but to at
    most ``max_digits`` significant figures: ``0.0124 ± 0.0004``, ``1.10 ± 0.10``,
    ``(1.25 ± 0.05) × 10⁻⁵``. One value: just the value (3 significant figures)."""
    a = np.asarray(values, dtype=np.float64).ravel()
    a = a[np.isfinite(a)]
    if a.size == 0:
        return "n/a"
    if a.size == 1:
        return fmt_num(a[0])
    m, sem = (float(v) for v in mean_sem(a))
    if sem == 0:
        return f"{fmt_num(m)} ± 0"
    lead = int(f"{sem:.0e}"[0])
    sd = min(digits, 2) if lead <= 2 else 1
    sem_r = float(f"{sem:.{sd - 1}e}")
    e_sem = int(math.floor(math.log10(sem_r)))
    dec = sd - 1 - e_sem
    if m != 0:
        dec = min(dec, max_digits - 1 - int(math.floor(math.log10(abs(m)))))
    e_top = int(math.floor(math.log10(max(abs(m), sem_r))))
    if -3 <= e_top < 5:
        if dec <= 0:
            q = 10 ** (-dec)
            sem_txt = f"{round(sem_r / q) * q:.0f}"
            return f"{round(m / q) * q:.0f} ± {sem_txt if float(sem_txt) else fmt_num(sem_r, 1)}"
        sem_txt = f"{sem_r:.{dec}f}"
        return f"{m:.{dec}f} ± {sem_txt if float(sem_txt) else fmt_num(sem_r, 1)}"
    scale = 10.0 ** e_top
    dec_s = max(dec + e_top, 0)
    return f"({m / scale:.{dec_s}f} ± {sem_r / scale:.{dec_s}f}) × 10{str(e_top).translate(_SUP)}"


def fmt_seeds(seeds) -> str:
    """File-name tag of a seed set: ``s0-2`` for 0, 1, 2; ``s0_3`` otherwise."""
    seeds = sorted(int(s) for s in seeds)
    if len(seeds) > 1 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"s{seeds[0]}-{seeds[-1]}"
    return "s" + "_".join(str(s) for s in seeds)


def fmt_rate(lr: float) -> str:
    """A learning rate as short prose: 5 × 10⁻⁵."""
    return fmt_num(lr, 2)


class Markup(str):
    """A table cell already written in Markdown (bold, a code span): :func:`markdown_table` keeps
    it as it is. Build one with :func:`bold` or :func:`code`, which escape their own text."""


# backslash first, so that the escapes added after it are not escaped again
_ESCAPED = ("\\", "|", "*", "_", "`", "$")
_ALIGN = {"l": ":--", "r": "--:", "c": ":-:"}


def escape_markdown(text) -> str:
    """``text`` as a literal Markdown (MyST) table cell: the characters that would be read as
    syntax (``\\ | * _ ` $``) get a backslash, ``<`` becomes ``&lt;`` (no HTML), ``](`` becomes
    ``]\\(`` (no link), a leading ``#`` or ``>`` is escaped, and line breaks become spaces (a row is one line). A
    :class:`Markup` cell is returned unchanged."""
    if isinstance(text, Markup):
        return str(text)
    s = " ".join(str(text).splitlines())
    for ch in _ESCAPED:
        s = s.replace(ch, "\\" + ch)
    s = s.replace("<", "&lt;").replace("](", "]\\(")     # no link; a bracket alone is text, "[0.4, 0.6]"
    if s.lstrip().startswith(("#", ">")):
        s = "\\" + s.lstrip()
    return s


def bold(text) -> Markup:
    """``text`` in bold, escaped: ``**text**``."""
    return Markup(f"**{escape_markdown(text)}**")


def code(text) -> Markup:
    """``text`` as a code span (a command, a file name); a ``|`` in it is escaped for the table."""
    s = " ".join(str(text).splitlines()).replace("|", "\\|")
    fence = "`"
    while fence in s:   # a fence longer than any run of backticks inside
        fence += "`"
    return Markup(f"{fence} {s} {fence}" if s.startswith("`") or s.endswith("`") else f"{fence}{s}{fence}")


def markdown_table(header, rows, *, align: str | None = None) -> str:
    """A Markdown table as text: ``header`` (one name per column), ``rows`` (lists of cells, as
    many as the header; format numbers first with :func:`fmt_num` / :func:`fmt_pm`), ``align``
    one letter per column, ``l``, ``r`` or ``c`` (default: first left, the others right). Every
    cell is escaped (:func:`escape_markdown`) unless it is :class:`Markup`; an empty cell is an
    error, as is a row of the wrong length."""
    header = list(header)
    align = align or "l" + "r" * (len(header) - 1)
    if len(align) != len(header) or set(align) - set(_ALIGN):
        raise ValueError(f"align must have one of l, r, c per column ({len(header)}), got {align!r}")
    lines = ["| " + " | ".join(escape_markdown(h) for h in header) + " |",
             "| " + " | ".join(_ALIGN[a] for a in align) + " |"]
    for i, row in enumerate(rows):
        row = list(row)
        if len(row) != len(header):
            raise ValueError(f"rows: row {i} has {len(row)} cells, the header {len(header)}")
        cells = [escape_markdown(c) for c in row]
        if any(not c.strip() for c in cells):
            raise ValueError(f"rows: row {i} has an empty cell (write what it means, e.g. '—'): {row!r}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def md_table(headers, rows, *, align: str | None = None):
    """:func:`markdown_table` as a displayable object (the book renders it as a real table)."""
    return Markdown(markdown_table(headers, rows, align=align))


class Strong(str):
    """A line of an :func:`html_table` cell shown in bold."""


def _html_cell(cell) -> str:
    lines = list(cell) if isinstance(cell, (list, tuple)) else [cell]
    out = []
    for line in lines:
        text = html.escape(" ".join(str(line).splitlines()))
        out.append(f"<strong>{text}</strong>" if isinstance(line, Strong) else text)
    if not any(str(x).strip() for x in lines):
        return ""
    return "<br>".join(out)


def html_table(header, rows, *, align: str | None = None, css_class: str = "") -> str:
    """An HTML table as text, for a table glued into another page (Markdown cannot be glued
    across pages): the same contract as :func:`markdown_table` (every cell escaped, here with
    ``html.escape``; no empty cell, no ragged row), and a cell may be a list of lines shown one
    under the other, a :class:`Strong` line in bold. ``css_class`` is added to the theme's table
    classes."""
    header = list(header)
    align = align or "l" + "r" * (len(header) - 1)
    if len(align) != len(header) or set(align) - set(_ALIGN):
        raise ValueError(f"align must have one of l, r, c per column ({len(header)}), got {align!r}")
    side = {"l": "left", "r": "right", "c": "center"}
    head = "".join(f'<th class="head text-{side[a]}">{_html_cell(h)}</th>' for h, a in zip(header, align))
    body = []
    for i, row in enumerate(rows):
        row = list(row)
        if len(row) != len(header):
            raise ValueError(f"rows: row {i} has {len(row)} cells, the header {len(header)}")
        cells = [_html_cell(c) for c in row]
        if any(not c for c in cells):
            raise ValueError(f"rows: row {i} has an empty cell (write what it means, e.g. '—'): {row!r}")
        body.append("<tr>" + "".join(f'<td class="text-{side[a]}">{c}</td>' for c, a in zip(cells, align)) + "</tr>")
    classes = " ".join(["table", css_class]).strip()
    return (f'<table class="{classes}"><thead><tr>{head}</tr></thead><tbody>' + "".join(body) + "</tbody></table>")
