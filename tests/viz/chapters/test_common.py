"""The chapters' shared axis helpers (fbctrl.viz.chapters.common)."""

import matplotlib.pyplot as plt
import numpy as np
import pytest

from fbctrl.viz.chapters.common import _log_plain


@pytest.mark.parametrize("lim, ticks", [((1e-3, 1.0), [1e-3, 2e-3, 5e-3, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0]),
                                         ((5e-4, 1.2e5), [10.0 ** k for k in range(-3, 6)])])
def test_log_axes_label_ticks_on_narrow_and_wide_ranges(lim, ticks):
    """1, 2, 5 x 10^k on a narrow axis; 10^k on one wider than six decades (where matplotlib's
    locator with three subs per decade left the axis without a single label)."""
    fig, ax = plt.subplots()
    ax.plot([1, 2], [lim[0] * 2, lim[1] / 2])
    _log_plain(ax)
    ax.set_ylim(*lim)
    fig.canvas.draw()
    shown = [t.get_position()[1] for t in ax.get_yticklabels() if lim[0] <= t.get_position()[1] <= lim[1] and t.get_text()]
    np.testing.assert_allclose(shown, ticks, rtol=1e-9)
    plt.close(fig)
