"""Unit files of the paper's protocol (fbctrl.experiments.paper.files): a missing file, or one that
holds another unit's numbers, is refused with a clear message."""

import pytest

from fbctrl.experiments import paper
from fbctrl.experiments.protocol import CONDITIONS, Protocol

RFLO_C, RFLO, BPTT_C, BPTT = CONDITIONS


def test_load_runs_validates_files(dry_run, tmp_path):
    cfg = dry_run
    with pytest.raises(FileNotFoundError, match="run `python -m fbctrl paper`"):
        paper.load_runs(cfg, [paper.AdaptUnit("fb", 7, 30.0, RFLO, Protocol.PUBLISHED, cfg.trials)])
    good = paper.AdaptUnit("fb", 0, 30.0, RFLO, Protocol.PUBLISHED, cfg.trials)
    wrong = paper.AdaptUnit("fb", 0, 30.0, RFLO, Protocol.PUBLISHED, cfg.trials + 1)
    wrong.path(cfg).parent.mkdir(parents=True, exist_ok=True)
    # a file holding another unit's numbers under this unit's name is refused
    other = paper.PaperConfig.tiny(cfg.checkpoint_dir, str(tmp_path))
    target = good.path(other)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(paper.AdaptUnit("fb", 0, 30.0, RFLO_C, Protocol.PUBLISHED, cfg.trials).path(cfg).read_bytes())
    with pytest.raises(ValueError, match="describes another run"):
        paper.load_runs(other, [good])
    assert not paper.is_done(other, good)   # and recomputed by the next run
