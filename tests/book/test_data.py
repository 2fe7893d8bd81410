"""The networks a chapter reads (fbctrl.book.data)."""

from __future__ import annotations

import pytest

from fbctrl import book


def test_checkpoints_for_a_notebook(tmp_path):
    (tmp_path / "fb_seed0.pt").write_bytes(b"")
    (tmp_path / "fb_seed1.pt").write_bytes(b"")
    P = book.validate_params(profile="default", checkpoint_dir=str(tmp_path), seeds=[1, 5])
    assert list(book.checkpoints(P, "fb")) == [1]
    assert book.checkpoints(P, "nofb") == {}
    with pytest.raises(ValueError, match="no nofb networks .* --feedback off"):
        book.checkpoints(P, "nofb", required=True)
