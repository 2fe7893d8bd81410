"""The findings chapters' figures, gathered under one name for the notebooks (``figures.plot_...``):
each lives in the module of its chapter, :mod:`fbctrl.viz.chapters`."""

from __future__ import annotations

from .chapters.activity_space import plot_activity_cosines
from .chapters.adaptation import plot_adaptation_curves, plot_explorer, plot_nofb, plot_rotations
from .chapters.common import _log_plain, _quiet
from .chapters.decoupling import plot_alignment, plot_horizon, plot_jacobians
from .chapters.lr_sweep import plot_best_vs_paper, plot_sweep
from .chapters.second_order import plot_activity_newton, plot_efficiency, plot_wrec_newton
from .style import COND_COLORS, COND_LS

__all__ = ["COND_COLORS", "COND_LS", "plot_activity_cosines", "plot_adaptation_curves", "plot_rotations",
           "plot_nofb", "plot_explorer", "plot_jacobians", "plot_alignment", "plot_horizon", "plot_efficiency",
           "plot_activity_newton", "plot_wrec_newton", "plot_sweep", "plot_best_vs_paper", "_log_plain", "_quiet"]
