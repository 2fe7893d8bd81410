"""Numbers in the prose: each ``glue_*`` call formats a value (:mod:`fbctrl.fmt`), stores it
under a key with myst-nb's ``glue`` and returns the text; the markdown cites it as
``{glue:text}`key```. Rounding to a few significant figures makes a re-run on the same machine
reproduce the stored text exactly (and keeps nbval's comparison meaningful)."""

from __future__ import annotations

import matplotlib.pyplot as plt
from IPython.display import HTML
from myst_nb import glue

from ..fmt import fmt_num, fmt_pm

__all__ = ["glue_num", "glue_pm", "glue_int", "glue_text", "glue_html", "glue_figure", "caption_key", "glue_caption"]


def _glue(name: str, text: str) -> str:
    glue(name, text, display=False)
    return text


def glue_num(name: str, x, digits: int = 3) -> str:
    """Glue ``x`` rounded to ``digits`` significant figures (see :func:`fmt_num`) under ``name``;
    write ``{glue:text}`name``` in the markdown. Returns the text. Rounding makes a re-run on the
    same machine reproduce the stored text exactly (and keeps nbval's comparison meaningful)."""
    return _glue(name, fmt_num(x, digits))


def glue_pm(name: str, values, digits: int = 2) -> str:
    """Glue ``mean ± SEM`` of ``values`` (one per seed, see :func:`fmt_pm`) under ``name``."""
    return _glue(name, fmt_pm(values, digits))


def glue_int(name: str, k) -> str:
    """Glue an integer count (seeds, trials, ...)."""
    return _glue(name, str(int(k)))


def glue_text(name: str, text: str) -> str:
    """Glue a short piece of text (a word such as 'lower', a list of seeds, ...)."""
    return _glue(name, str(text))


def glue_html(name: str, html: str) -> None:
    """Store an HTML fragment (a table built with :func:`fbctrl.fmt.html_table`) for another page,
    which shows it with the ``{glue:any}`` directive and its ``:doc:`` option (a Markdown output
    cannot be glued across pages; HTML can)."""
    glue(name, HTML(html), display=False)


def glue_figure(name: str, fig) -> None:
    """Show ``fig`` as this cell's output and store it under ``name``, so another page can show
    the same image (``{glue:any}`` with ``:doc:``); the figure is closed, so it is shown once."""
    glue(name, fig, display=True)
    plt.close(fig)


def caption_key(figure_name: str) -> str:
    """The glue key of the caption of the figure named ``figure_name`` in its cell's metadata
    (``mystnb.figure.name``, e.g. ``fig-scale-4a`` -> ``caption_scale_4a``)."""
    return "caption_" + figure_name.removeprefix("fig-").replace("-", "_")


def glue_caption(figure_name: str, text: str) -> str:
    """Glue the caption of this cell's figure ``figure_name``: the book runner copies it into the
    cell's ``mystnb.figure.caption`` after the run (``fbctrl.book.runner.sync_figure_captions``),
    so a caption always describes the data drawn."""
    return glue_text(caption_key(figure_name), text)
