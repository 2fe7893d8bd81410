"""Pre-training units of the paper's protocol (fbctrl.experiments.paper.pretrain): networks
pre-trained with another protocol are refused when loaded."""

import pytest

from fbctrl.experiments import paper


def test_networks_pretrained_with_pushes_are_refused(tmp_path):
    from fbctrl.core.train import PretrainConfig, pretrain

    cfg = paper.PaperConfig.tiny(str(tmp_path), str(tmp_path / "res"))
    pushed = PretrainConfig(n=20, batches=2, batch_size=4, eval_every=1, checkpoint_every=1, train_push=True)
    pretrain(pushed, [0], tmp_path, progress=False, task_cfg=cfg.task)
    with pytest.raises(ValueError, match="not pre-trained with this protocol \\(batches, batch_size, train_push"):
        paper.load_networks(cfg, "fb", [0], "cpu")
