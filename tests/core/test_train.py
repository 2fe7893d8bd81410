"""Pre-training (fbctrl.core.train; Methods, "Pre-training"): the batched multi-seed trainer against
autograd, lockstep equivalence, reproducibility and resume."""

import math
import os
import signal

import numpy as np
import pytest
import torch

from fbctrl.core.checkpoint import load_checkpoint
from fbctrl.core.model import PARAM_NAMES, draw_x0, init_network
from fbctrl.core.task import TaskConfig, random_reaches
from fbctrl.core.train import PretrainConfig, Trainer, pretrain
from tests.helpers import autograd_loss_and_grads, gen

torch.set_num_threads(1)

SHORT = TaskConfig(T=30, go_step=5, move_steps=20)
F64 = torch.float64


def small_cfg(**kw):
    base = dict(n=32, batches=20, batch_size=8, eval_every=1000, checkpoint_every=1000)
    base.update(kw)
    return PretrainConfig(**base)


def test_pretrain_config_defaults_are_the_paper_protocol():
    c = PretrainConfig()
    assert (c.n, c.batches, c.batch_size, c.lr, c.betas, c.clip) == (400, 5000, 256, 1e-3, (0.9, 0.999), 0.2)
    assert (c.rate_reg, c.weight_reg, c.rec_reg) == (2e-3, 1e-3, 1e-3)
    for bad in (dict(batches=-1), dict(batch_size=0), dict(lr=-1.0), dict(n=0), dict(feedback_density=2.0)):
        with pytest.raises(ValueError):
            PretrainConfig(**bad)


def test_trainer_step_follows_spec_protocol():
    """Two trainer steps reproduced by hand: draws from the seed's generator, the pre-training gradient,
    clipping of the gradient norm over all parameters to 0.2, and Adam(1e-3, 0.9, 0.999)."""
    cfg = small_cfg(n=16, batch_size=4)
    tr = Trainer(cfg, [5], task_cfg=SHORT, dtype=F64)
    g = gen(5)
    net = init_network(cfg.network, g, dtype=F64)
    for k in PARAM_NAMES:
        assert torch.equal(tr.params[k][0], getattr(net, k))
    p = {k: getattr(net, k).numpy().copy() for k in PARAM_NAMES}
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v2 = {k: np.zeros_like(v) for k, v in p.items()}
    clipped_once = False
    for t in range(1, 3):
        # the trainer draws its batches in float32 and computes in the network's dtype
        trials = random_reaches(SHORT, 4, g, push=True).to(dtype=F64)
        x0 = draw_x0(16, (4,), g).to(F64)
        cur = net.replace(**{k: torch.from_numpy(v) for k, v in p.items()})
        loss, _, _, grad, _ = autograd_loss_and_grads(cur, trials, x0, True, 0)
        grad = {k: v.numpy() for k, v in grad.items()}
        gnorm = math.sqrt(sum((v ** 2).sum() for v in grad.values()))
        scale = min(1.0, 0.2 / (gnorm + 1e-6))
        clipped_once |= scale < 1.0
        for k in PARAM_NAMES:
            gk = grad[k] * scale
            m[k] = 0.9 * m[k] + 0.1 * gk
            v2[k] = 0.999 * v2[k] + 0.001 * gk ** 2
            mhat, vhat = m[k] / (1 - 0.9 ** t), v2[k] / (1 - 0.999 ** t)
            p[k] = p[k] - 1e-3 * mhat / (np.sqrt(vhat) + 1e-8)
        st = tr.step()
        assert float(st["loss"][0]) == pytest.approx(float(loss), rel=1e-10)
        for k in PARAM_NAMES:
            np.testing.assert_allclose(tr.params[k][0].numpy(), p[k], rtol=1e-9, atol=1e-12, err_msg=k)
    assert clipped_once  # the clipping was exercised


def test_batched_seeds_equal_seeds_trained_alone():
    cfg = small_cfg()
    group = pretrain(cfg, [0, 1, 2], progress=False, task_cfg=SHORT)
    alone = pretrain(cfg, [1], progress=False, task_cfg=SHORT)
    gl = np.asarray(group.curves["loss"])  # [batches, seeds]
    al = np.asarray(alone.curves["loss"])
    assert gl.shape == (20, 3) and al.shape == (20, 1)
    np.testing.assert_allclose(gl[:, 1], al[:, 0], rtol=1e-5)
    # the seeds really differ from each other
    assert np.abs(gl[:, 0] - gl[:, 1]).max() > 1e-3
    for k in PARAM_NAMES:
        torch.testing.assert_close(group.params[k][1], alone.params[k][0], rtol=1e-4, atol=1e-6)
    # evaluations (before and after training) follow the seed as well
    for name in ("centre_out", "random_push", "random_ctrl_off"):
        np.testing.assert_allclose(np.asarray(group.evals[name])[:, 1], np.asarray(alone.evals[name])[:, 0],
                                   rtol=1e-4)
    assert group.evals["batch"] == [0, 20]


def test_training_reduces_the_loss():
    cfg = small_cfg(batches=60, batch_size=16, lr=1e-2)
    tr = pretrain(cfg, [3], progress=False, task_cfg=SHORT)
    loss = np.asarray(tr.curves["task_loss"])[:, 0]
    assert loss[-10:].mean() < 0.7 * loss[:5].mean()
    ev = np.asarray(tr.evals["random"])[:, 0]
    assert ev[-1] < ev[0]


def test_same_seed_same_numbers():
    cfg = small_cfg(batches=5)
    a = pretrain(cfg, [4], progress=False, task_cfg=SHORT)
    b = pretrain(cfg, [4], progress=False, task_cfg=SHORT)
    assert a.curves["loss"] == b.curves["loss"]
    assert a.evals == b.evals
    for k in PARAM_NAMES:
        assert torch.equal(a.params[k], b.params[k])
    c = pretrain(cfg, [6], progress=False, task_cfg=SHORT)
    assert c.curves["loss"] != a.curves["loss"]


def test_interrupted_run_resumes_to_identical_weights(tmp_path):
    cfg = small_cfg(batches=8, eval_every=3)
    full = pretrain(cfg, [0, 1], tmp_path / "full", progress=False, task_cfg=SHORT)
    part_dir = tmp_path / "part"
    part = pretrain(cfg, [0, 1], part_dir, progress=False, task_cfg=SHORT, stop_after=5)
    assert part.batch == 5
    resume_files = list(part_dir.glob(".resume-*.pt"))
    assert len(resume_files) == 1
    assert not list(part_dir.glob("*_seed*.pt"))  # nothing final written yet
    done = pretrain(cfg, [0, 1], part_dir, progress=False, task_cfg=SHORT)
    assert done.batch == 8
    assert not resume_files[0].exists()  # removed once the run is complete
    for k in PARAM_NAMES:
        assert torch.equal(done.params[k], full.params[k]), k
    assert done.curves == full.curves
    assert done.evals == full.evals
    for seed in (0, 1):
        a = load_checkpoint(tmp_path / "full" / f"fb_n32_seed{seed}.pt")
        b = load_checkpoint(part_dir / f"fb_n32_seed{seed}.pt")
        for k, v in a.tensors().items():
            assert torch.equal(v, getattr(b, k))


def test_resume_file_of_another_run_is_refused(tmp_path):
    cfg = small_cfg(batches=6)
    pretrain(cfg, [0], tmp_path, progress=False, task_cfg=SHORT, stop_after=2)
    rfile = next(tmp_path.glob(".resume-*.pt"))
    other = small_cfg(batches=6, lr=2e-3)  # same file name, different configuration
    with pytest.raises(ValueError, match="another run"):
        pretrain(other, [0], tmp_path, progress=False, task_cfg=SHORT)
    assert rfile.exists()


def test_workspace_reuse_gives_the_same_training_bit_for_bit():
    """Pre-training reuses its batch buffers from batch to batch (``bptt.Workspace``): every
    buffer is rewritten, so four batches give the same parameters as with fresh buffers, with
    feedback and without."""
    for density in (1.0, 0.0):
        cfg = PretrainConfig(n=20, batch_size=4, batches=4, feedback_density=density)
        a = Trainer(cfg, [0, 1], task_cfg=SHORT)
        b = Trainer(cfg, [0, 1], task_cfg=SHORT)
        b.workspace = None                      # fresh buffers every batch
        for _ in range(4):
            a.step()
            b.step()
        assert all(torch.equal(a.params[k], b.params[k]) for k in a.params)
        assert a.workspace._bufs and float((a.params["W_rec"] - Trainer(cfg, [0, 1], task_cfg=SHORT).params["W_rec"]).abs().max()) > 0


def _interrupted_then_resumed(tmp_path, monkeypatch, method: str, nth: int, signum, batch_saved: int):
    """Pre-train 7 batches (evaluations at 0, 3, 6, 7) uninterrupted, and again with ``signum``
    sent from inside the ``nth`` call of ``Trainer.<method>``; check the resume file's batch,
    resume, and return both runs ``(full, done)``."""
    cfg = small_cfg(batches=7, eval_every=3)
    full = pretrain(cfg, [0, 1], tmp_path / "full", progress=False, task_cfg=SHORT)
    original = getattr(Trainer, method)
    calls = {"n": 0}

    def call_then_signal(self):
        out = original(self)
        calls["n"] += 1
        if calls["n"] == nth:
            os.kill(os.getpid(), signum)
        return out

    monkeypatch.setattr(Trainer, method, call_then_signal)
    with pytest.raises(KeyboardInterrupt):
        pretrain(cfg, [0, 1], tmp_path / "part", progress=False, task_cfg=SHORT)
    monkeypatch.setattr(Trainer, method, original)
    (rfile,) = (tmp_path / "part").glob(".resume-*.pt")
    assert torch.load(rfile, weights_only=True)["batch"] == batch_saved
    done = pretrain(cfg, [0, 1], tmp_path / "part", progress=False, task_cfg=SHORT)
    for k in PARAM_NAMES:
        assert torch.equal(done.params[k], full.params[k]), k
    assert done.curves == full.curves and done.evals == full.evals
    return full, done


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_inside_a_batch_resumes_to_identical_weights(tmp_path, monkeypatch, signum):
    """A Ctrl-C or SIGTERM that lands *inside* a batch (after the batch was drawn, before the
    optimiser step) is deferred to the batch's end: the resume file then holds that batch's
    parameters with the generators' state after it (batch 4: the interrupted batch was
    finished), and the resumed run equals an uninterrupted one bit for bit. (Saving the
    generators advanced by the draw with the parameters of the batch before resumes to a
    different network.)"""
    _interrupted_then_resumed(tmp_path, monkeypatch, "draw_batch", 4, signum, batch_saved=4)


@pytest.mark.parametrize("at_eval", [1, 2], ids=["initial-evaluation", "evaluation-at-batch-3"])
def test_signal_inside_an_evaluation_resumes_to_the_same_curves(tmp_path, monkeypatch, at_eval):
    """A signal that lands inside an evaluation of the test sets (the one before the first
    batch, or one at an ``eval_every`` batch) stops the run at that boundary; the resumed run
    records every evaluation once, so its curves equal an uninterrupted run's (an evaluation at
    batch 0 recorded again on resume would add a point)."""
    full, done = _interrupted_then_resumed(tmp_path, monkeypatch, "record_eval", at_eval, signal.SIGTERM,
                                           batch_saved=0 if at_eval == 1 else 3)
    assert done.evals["batch"] == full.evals["batch"] == [0, 3, 6, 7]


def test_damaged_resume_file_is_refused_by_name_without_unpickling(tmp_path):
    cfg = small_cfg(batches=6)
    pretrain(cfg, [0], tmp_path, progress=False, task_cfg=SHORT, stop_after=2)
    rfile = next(tmp_path.glob(".resume-*.pt"))
    rfile.write_bytes(rfile.read_bytes()[:200])
    with pytest.raises(ValueError, match=f"{rfile.name}.*damaged.*delete it"):
        pretrain(cfg, [0], tmp_path, progress=False, task_cfg=SHORT)

    class Evil:                                  # a pickle that would run code when loaded unsafely
        def __reduce__(self):
            return (os.system, ("echo unpickled > " + str(tmp_path / "ran"),))

    torch.save({"x": Evil()}, rfile)
    with pytest.raises(ValueError, match="damaged or not a resume file"):
        pretrain(cfg, [0], tmp_path, progress=False, task_cfg=SHORT)
    assert not (tmp_path / "ran").exists()
