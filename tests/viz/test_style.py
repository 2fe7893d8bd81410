"""The book's figures can be read where they are shown: drawn at most the content column's width
(680 px), every text at least 9 pt, and no legend over an axes' data area; one style code for the
conditions (``fbctrl.viz.style``).

    python -m pytest -q tests/viz/test_style.py
"""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import pytest

from fbctrl.book import scale
from fbctrl.viz import style
from fbctrl.viz.style import CONDITION_STYLE, COND_COLORS, COND_LS, marker_face

CFG = scale.store_config()
HAVE_STORE = (scale.FIGURES and scale.missing_units("3b", CFG, scale.check_options("3b", CFG, seeds=[0],
                                                                                  rotations=[30.0])) == [])


def _texts(fig):
    for t in fig.findobj(matplotlib.text.Text):
        if t.get_visible() and t.get_text().strip() and t.figure is fig:
            yield t


@pytest.mark.skipif(not HAVE_STORE, reason="the store's unit files are not in this checkout")
@pytest.mark.parametrize("name", [n for n in scale.FIGURES if n != "1a"])
def test_paper_scale_figures_are_readable_at_the_column_width(name):
    style.use_style()
    opts = {"seeds": [0, 1, 2]} if "seeds" in scale.FIGURES[name].options else {}
    fig, _, _ = scale.draw(name, CFG, **opts)
    fig.canvas.draw()
    assert fig.get_size_inches()[0] * fig.dpi <= 680 + 1e-9
    small = [(t.get_text(), t.get_fontsize()) for t in _texts(fig) if t.get_fontsize() < 9]
    assert not small
    r = fig.canvas.get_renderer()
    legends = [lg for lg in fig.legends] + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    assert legends or name == "8"           # Figure 8's heatmaps have a colour bar, no legend
    for lg in legends:
        box = lg.get_window_extent(r)
        for ax in fig.axes:
            assert not box.overlaps(ax.get_window_extent(r)), name
    plt.close(fig)


def test_one_code_for_the_four_conditions():
    assert COND_COLORS["RFLO"] == COND_COLORS["RFLO+c"] != COND_COLORS["BPTT"] == COND_COLORS["BPTT+c"]
    assert COND_LS["RFLO+c"] == COND_LS["BPTT+c"] == style.CONTROLLER_LS["on"]
    assert COND_LS["RFLO"] == COND_LS["BPTT"] == style.CONTROLLER_LS["off"]
    assert marker_face("RFLO") == "white" and marker_face("BPTT+c") == COND_COLORS["BPTT+c"]
    assert set(CONDITION_STYLE) == set(style.CONDITIONS)


def test_legend_below_sits_outside_every_axes():
    style.use_style()
    fig, axes = plt.subplots(1, 2, figsize=(style.FULL_WIDTH, 3))
    for ax in axes:
        ax.plot(range(10), range(10), label="a long label for a line")
        ax.plot(range(10), range(10, 0, -1), label="another")
    lg = style.legend_below(fig)
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    assert len(lg.get_texts()) == 2                 # each label once
    assert all(not lg.get_window_extent(r).overlaps(ax.get_window_extent(r)) for ax in axes)
    plt.close(fig)


def test_every_committed_figure_is_drawn_at_most_the_column_width():
    """What a reader sees: every figure in the committed notebooks is at most the content column
    (680 px) plus the 0.1 inch the inline backend pads each side with (tight bounding box), so the
    page shows it at its drawn size and its 9 pt text stays 9 pt. A title or label that runs out of
    the figure widens the image and shrinks everything in it."""
    import base64
    import io
    import json
    from pathlib import Path
    from PIL import Image
    limit = style.FULL_WIDTH * style.DPI + 2 * 0.1 * style.DPI
    wide = []
    for nb in sorted(Path(__file__).resolve().parents[2].joinpath("book").glob("*.ipynb")):
        for i, cell in enumerate(json.loads(nb.read_text())["cells"]):
            for out in cell.get("outputs", []):
                png = out.get("data", {}).get("image/png")
                if png:
                    w = Image.open(io.BytesIO(base64.b64decode(png))).size[0]
                    if w > limit + 1e-9:
                        wide.append(f"{nb.name} cell {i}: {w} px")
    assert not wide, f"figures wider than {limit:g} px: {wide}"
