"""The book's one visual code, defined once and used by every figure.

* **Conditions** (colour = learning rule, line style = controller during adaptation):
  RFLO teal, online BPTT purple; "+c" (controller on while adapting) solid line and filled
  marker, without the controller dashed line and open marker (:data:`CONDITION_STYLE`).
* **Controller on / off** in a trial (frozen networks): solid / dashed, in the colour of what is
  shown (:data:`CONTROLLER_LS`).
* **Network kind**: with feedback control blue, without vermilion (:data:`KIND_COLORS`); runs of
  networks pre-trained without feedback are dotted in their rule's colour (:data:`NOFB_LS`).
* **References** in grey: the controller-off test loss of Figure 3a, null models, first-order
  directions, losses before adaptation (:data:`REFERENCE`).

Sizes: figures are drawn at the width they are shown. The book's content column is about
680 px wide in a 1280 px window; at :data:`DPI` 100 a figure :data:`FULL_WIDTH` = 6.8 inches
wide is 680 px, so a 9 pt font is 12.5 px on screen, at least 9 CSS points. Every text of a
figure is at least :data:`FONT_PT` = 9 pt, and legends sit outside the axes (:func:`legend_below`,
:func:`legend_right`), never on data.
"""

from __future__ import annotations

import matplotlib as mpl

__all__ = ["DPI", "FULL_WIDTH", "HALF_WIDTH", "FONT_PT", "RULE_COLORS", "CONDITIONS", "CONDITION_STYLE",
           "COND_COLORS", "COND_LS", "COND_MARKERS", "CONTROLLER_LS", "KIND_COLORS", "KIND_NAMES", "NOFB_LS",
           "REFERENCE", "NULL_LS", "COLORS", "LS", "marker_face", "use_style", "legend_below", "legend_right",
           "unique_handles"]

DPI = 100
FULL_WIDTH = 6.8          # inches: 680 px at DPI, the content column at a 1280 px window
HALF_WIDTH = 3.4
FONT_PT = 9

RULE_COLORS = {"RFLO": "#1b8a7a", "BPTT": "#7b3fa0"}
CONDITIONS = ("RFLO+c", "RFLO", "BPTT+c", "BPTT")
CONTROLLER_LS = {"on": "-", "off": "--"}
CONDITION_STYLE = {
    c: {"color": RULE_COLORS[c.removesuffix("+c")], "ls": CONTROLLER_LS["on" if c.endswith("+c") else "off"],
        "marker": "o" if c.startswith("RFLO") else "s", "filled": c.endswith("+c")}
    for c in CONDITIONS}
COND_COLORS = {c: s["color"] for c, s in CONDITION_STYLE.items()}
COND_LS = {c: s["ls"] for c, s in CONDITION_STYLE.items()}
COND_MARKERS = {c: s["marker"] for c, s in CONDITION_STYLE.items()}

KIND_COLORS = {"fb": "#1f5fa8", "nofb": "#c2452d"}
KIND_NAMES = {"fb": "with feedback", "nofb": "without feedback"}
NOFB_LS = ":"
REFERENCE = "#8a8a8a"
NULL_LS = ":"

# the palette by role, for the figures that draw networks rather than conditions
COLORS = {"fb": KIND_COLORS["fb"], "nofb": KIND_COLORS["nofb"], "on": KIND_COLORS["fb"], "off": REFERENCE,
          "target": "#222222", "push": "#e39b2f", "grey": REFERENCE}
LS = CONTROLLER_LS


def marker_face(cond: str) -> str:
    """Filled marker for a condition with the controller on during adaptation, open otherwise."""
    return COND_COLORS[cond] if CONDITION_STYLE[cond]["filled"] else "white"


def use_style() -> None:
    """The book's matplotlib settings: 100 dpi, every text 9 pt, constrained layout."""
    mpl.rcParams.update({
        "figure.dpi": DPI,
        "savefig.dpi": DPI,
        "font.size": FONT_PT,
        "axes.titlesize": FONT_PT,
        "axes.labelsize": FONT_PT,
        "legend.fontsize": FONT_PT,
        "legend.title_fontsize": FONT_PT,
        "xtick.labelsize": FONT_PT,
        "ytick.labelsize": FONT_PT,
        "figure.titlesize": FONT_PT,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "legend.frameon": False,
        "lines.linewidth": 1.4,
        "figure.constrained_layout.use": True,
    })


def unique_handles(axes) -> tuple[list, list]:
    """The legend entries of ``axes`` (one Axes or several), each label once, in order."""
    handles, labels = [], []
    for ax in (axes if hasattr(axes, "__iter__") else [axes]):
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels and not lab.startswith("_"):
                handles.append(h)
                labels.append(lab)
    return handles, labels


def legend_below(fig, axes=None, *, handles=None, labels=None, ncol: int | None = None):
    """One legend for the figure, under its panels (outside every axes)."""
    if handles is None:
        handles, labels = unique_handles(fig.axes if axes is None else axes)
    if not handles:
        return None
    ncol = ncol or min(len(handles), 4 if max(len(s) for s in labels) < 24 else 2)
    return fig.legend(handles, labels, loc="outside lower center", ncol=ncol)


def legend_right(ax, *, handles=None, labels=None):
    """A legend beside one axes, to its right (outside the axes)."""
    if handles is None:
        handles, labels = unique_handles(ax)
    if not handles:
        return None
    return ax.legend(handles, labels, loc="center left", bbox_to_anchor=(1.02, 0.5))
