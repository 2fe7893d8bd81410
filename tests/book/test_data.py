"""The networks a chapter reads (fbctrl.book.data), and the sweep's best rates on a hand case."""

from __future__ import annotations

import numpy as np
import pytest

from fbctrl import book
from fbctrl.book import data


def test_checkpoints_for_a_notebook(tmp_path):
    (tmp_path / "fb_seed0.pt").write_bytes(b"")
    (tmp_path / "fb_seed1.pt").write_bytes(b"")
    P = book.validate_params(profile="default", checkpoint_dir=str(tmp_path), seeds=[1, 5])
    assert list(book.checkpoints(P, "fb")) == [1]
    assert book.checkpoints(P, "nofb") == {}
    with pytest.raises(ValueError, match="no nofb networks .* --feedback off"):
        book.checkpoints(P, "nofb", required=True)


def test_best_rate_skips_a_rate_where_a_seed_diverged():
    """Hand case: the lowest mean is at rate 0, but a seed diverged there; rate 2 is next best."""
    fin = np.array([[0.1, 0.1], [0.5, 0.7], [0.3, 0.2]])[:, None]          # [rates, 1 rotation, seeds]
    div = np.array([[False, True], [False, False], [False, False]])[:, None]
    sw = data.SweepSet(rates={"rflo": [1e-5, 5e-5, 1e-4]}, rotations=[30.0], seeds=[0, 1], trials=3,
                       final={"RFLO": np.where(div, np.nan, fin)}, diverged={"RFLO": div}, curves={}, source="live")
    b = data.best_rates(sw)["RFLO"]
    assert b["best"] == [2] and b["best_lr"] == [1e-4] and b["paper"] == 1 and b["paper_lr"] == 5e-5
