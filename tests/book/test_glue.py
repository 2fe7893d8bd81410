"""Numbers in the prose (fbctrl.book.glue): each ``glue_*`` call stores under its key exactly the
text it returns, rounded as the hand cases say, without displaying it; HTML is stored as HTML;
a figure is displayed once, stored, and closed."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
from IPython.display import HTML

from fbctrl.book import glue as glue_mod


@pytest.fixture
def stored(monkeypatch):
    """What reaches myst-nb's ``glue``: [(name, value, display)]."""
    calls = []
    monkeypatch.setattr(glue_mod, "glue", lambda name, value, display=True: calls.append((name, value, display)))
    return calls


@pytest.mark.parametrize("call, text", [
    (lambda: glue_mod.glue_num("a", 0.0123456), "0.0123"),                      # 3 significant figures
    (lambda: glue_mod.glue_num("a", 0.0123456, digits=2), "0.012"),
    (lambda: glue_mod.glue_num("a", 1.23456e-5), "1.23 × 10⁻⁵"),
    (lambda: glue_mod.glue_num("a", float("nan")), "n/a"),
    (lambda: glue_mod.glue_pm("a", [1.0, 1.1, 1.2]), "1.10 ± 0.06"),             # SEM 0.1 / sqrt 3 = 0.058
    (lambda: glue_mod.glue_int("a", 3.0), "3"),
    (lambda: glue_mod.glue_int("a", np.int64(12)), "12"),
    (lambda: glue_mod.glue_text("a", "lower"), "lower"),
    (lambda: glue_mod.glue_text("a", [0, 1]), "[0, 1]"),
])
def test_the_stored_text_is_the_returned_text(stored, call, text):
    assert call() == text
    assert stored == [("a", text, False)]


def test_html_is_stored_as_html_for_another_page(stored):
    assert glue_mod.glue_html("table", "<table><tr><td>1 &lt; 2</td></tr></table>") is None
    (name, value, display), = stored
    assert name == "table" and display is False
    assert isinstance(value, HTML) and value.data == "<table><tr><td>1 &lt; 2</td></tr></table>"


def test_a_figure_is_shown_once_stored_and_closed(stored):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    assert plt.fignum_exists(fig.number)
    glue_mod.glue_figure("fig_a", fig)
    assert stored == [("fig_a", fig, True)]
    assert not plt.fignum_exists(fig.number)
