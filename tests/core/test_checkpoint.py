"""Checkpoints: exact round trip, the flat weights-only format, the JSON sidecar, and clear errors."""

import json
import os

import pytest
import torch

from tests.helpers import gen
from fbctrl.core.checkpoint import CHECKPOINT_KEYS, CheckpointError
from fbctrl.core.model import Network
from fbctrl.core import checkpoint
from fbctrl.core.checkpoint import find_checkpoints, load_checkpoint, network_spec, save_checkpoint
from fbctrl.core.model import NetworkConfig, init_network
from fbctrl.core.task import TaskConfig
from fbctrl.core.train import PretrainConfig, pretrain

torch.set_num_threads(1)

SHORT = TaskConfig(T=30, go_step=5, move_steps=20)


def shapes(n):
    return {"W_in": (n, 3), "W_rec": (n, n), "W_fb": (n, 2), "mask": (n, 2), "b": (n,), "W_out": (2, n),
            "b_out": (2,)}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt")
    cfg = PretrainConfig(n=20, batches=3, batch_size=8, eval_every=100, checkpoint_every=100)
    tr = pretrain(cfg, [7], out, progress=False, task_cfg=SHORT)
    return out / "fb_n20_seed7.pt", tr


@pytest.mark.parametrize("density,delay", [(1.0, 0), (0.5, 2), (0.0, 0)])
def test_round_trip_is_exact(tmp_path, density, delay):
    net = init_network(NetworkConfig(n=10, feedback_density=density, delay=delay), gen(1))
    path = tmp_path / "net.pt"
    save_checkpoint(net, path, {"seed": 1})
    back = load_checkpoint(path)
    assert back.cfg == net.cfg
    for k, v in net.tensors().items():
        w = getattr(back, k)
        assert w.dtype == torch.float32 and torch.equal(w, v), k
    # only the checkpoint and its sidecar are left in the folder (no temporary files)
    assert sorted(os.listdir(tmp_path)) == ["net.json", "net.pt"]


def test_float64_round_trip(tmp_path):
    net = init_network(NetworkConfig(n=8), gen(2), dtype=torch.float64)
    save_checkpoint(net, tmp_path / "a.pt", {})
    back = load_checkpoint(tmp_path / "a.pt", dtype=torch.float64)
    for k, v in net.tensors().items():
        assert torch.equal(getattr(back, k), v), k
    assert json.loads((tmp_path / "a.json").read_text())["dtype"] == "float64"


def test_file_is_a_flat_dict_of_named_tensors(trained):
    path, tr = trained
    data = torch.load(path, weights_only=True)
    assert isinstance(data, dict)
    assert set(data) == set(CHECKPOINT_KEYS)
    for k, shape in shapes(20).items():
        assert isinstance(data[k], torch.Tensor) and tuple(data[k].shape) == shape, k
    # the saved weights are the trained ones
    for k, v in data.items():
        assert torch.equal(v, tr.current_net().select(0).tensors()[k]), k
    net = load_checkpoint(path, n=20)
    assert net.cfg.n == 20 and net.cfg.feedback_density == 1.0


def test_sidecar_holds_config_seed_and_provenance(trained):
    path, tr = trained
    side = path.with_suffix(".json")
    assert side.exists()
    meta = json.loads(side.read_text())
    assert meta["seed"] == 7
    assert meta["config"]["n"] == 20 and meta["config"]["batches"] == 3
    assert meta["config"]["lr"] == 1e-3 and meta["config"]["feedback_density"] == 1.0
    assert meta["torch"] == torch.__version__
    assert meta["network"]["n"] == 20
    assert meta["task"]["T"] == 30
    assert set(meta["final"]) >= {"centre_out", "random", "random_push", "random_ctrl_off", "train_loss"}
    assert meta["final"]["train_loss"] == pytest.approx(tr.curves["loss"][-1][0])
    # per-seed training curve beside it
    assert path.with_name("fb_n20_seed7.curve.npz").exists()


def test_masked_feedback_weights_are_stored_as_zero(tmp_path):
    net = init_network(NetworkConfig(n=10, feedback_density=0.5), gen(3))
    dirty = net.replace(W_fb=net.W_fb + 5.0 * (1 - net.mask))
    save_checkpoint(dirty, tmp_path / "m.pt", {})
    data = torch.load(tmp_path / "m.pt", weights_only=True)
    assert torch.all(data["W_fb"][data["mask"] == 0] == 0)
    assert torch.equal(data["W_fb"], net.W_fb)


def test_wrong_network_size_names_file_and_sizes(tmp_path):
    net = init_network(NetworkConfig(n=10), gen(4))
    path = tmp_path / "ten.pt"
    save_checkpoint(net, path, {})
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path, n=16)
    msg = str(err.value)
    assert str(path) in msg and "n=10" in msg and "n=16" in msg


def test_not_a_checkpoint(tmp_path):
    text = tmp_path / "notes.pt"
    text.write_text("this is not a checkpoint\n")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(text)
    assert str(text) in str(err.value) and "not a torch checkpoint" in str(err.value)

    lst = tmp_path / "list.pt"
    torch.save([torch.zeros(3)], lst)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(lst)
    assert str(lst) in str(err.value) and "dict" in str(err.value)

    missing = tmp_path / "missing_keys.pt"
    good = init_network(NetworkConfig(n=6), gen(5)).tensors()
    torch.save({k: v for k, v in good.items() if k != "W_out"}, missing)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(missing)
    assert str(missing) in str(err.value) and "W_out" in str(err.value)

    bad_shape = tmp_path / "bad_shape.pt"
    torch.save({**good, "W_in": torch.zeros(6, 4)}, bad_shape)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(bad_shape)
    assert str(bad_shape) in str(err.value) and "W_in" in str(err.value) and "(6, 4)" in str(err.value)

    nan = tmp_path / "nan.pt"
    torch.save({**good, "W_rec": torch.full((6, 6), float("nan"))}, nan)
    with pytest.raises(CheckpointError, match="W_rec"):
        load_checkpoint(nan)

    nofile = tmp_path / "nowhere.pt"
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(nofile)
    assert str(nofile) in str(err.value)


def test_malformed_sidecar_is_an_error(tmp_path):
    net = init_network(NetworkConfig(n=6), gen(6))
    save_checkpoint(net, tmp_path / "s.pt", {})
    (tmp_path / "s.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="s.json"):
        load_checkpoint(tmp_path / "s.pt")


def test_stacked_network_cannot_be_saved_whole(tmp_path):
    nets = [init_network(NetworkConfig(n=6), gen(s)) for s in (7, 8)]
    with pytest.raises(ValueError):
        save_checkpoint(Network.stack(nets), tmp_path / "x.pt", {})


def test_find_checkpoints(tmp_path):
    for name in ["fb_seed0.pt", "fb_seed2.pt", "fb_seed10.pt", "nofb_seed0.pt", "fb_n50_seed0.pt",
                 "fb0.5_seed0.pt", "fb_d3_seed0.pt", "notes.txt"]:
        (tmp_path / name).write_bytes(b"")
    assert list(checkpoint.find_checkpoints(tmp_path, "fb")) == [0, 2, 10]
    assert list(checkpoint.find_checkpoints(tmp_path, "fb", n=50)) == [0]
    assert list(checkpoint.find_checkpoints(tmp_path, "nofb")) == [0]
    assert list(checkpoint.find_checkpoints(tmp_path, "fb", max_seeds=2)) == [0, 2]
    with pytest.raises(ValueError, match=r"seeds \[1\]"):
        checkpoint.find_checkpoints(tmp_path, "fb", seeds=[0, 1])
    (tmp_path / "fb_seed0.pt").unlink()
    (tmp_path / "fb_seed2.pt").unlink()
    (tmp_path / "fb_seed10.pt").unlink()
    assert list(checkpoint.find_checkpoints(tmp_path, "fb")) == [0]  # the only size left: n = 50
    (tmp_path / "fb_n20_seed1.pt").write_bytes(b"")
    with pytest.raises(ValueError, match="sizes"):
        checkpoint.find_checkpoints(tmp_path, "fb")


def test_checkpoints_of_each_family_are_found_apart_and_loaded(tmp_path):
    for stem, cfg in (("fb", NetworkConfig(n=8)), ("fb_d5", NetworkConfig(n=8, delay=5)),
                      ("fb0.3", NetworkConfig(n=8, feedback_density=0.3)), ("nofb", NetworkConfig(n=8, feedback_density=0)),
                      ("lc_fb", NetworkConfig(n=8, n_in=2))):
        for s in (0, 1):
            save_checkpoint(init_network(cfg, gen(s)), tmp_path / f"{stem}_n8_seed{s}.pt", {"seed": s})
    for kind in ("fb", "fb_d5", "fb0.3", "nofb", "lc_fb"):
        found = find_checkpoints(tmp_path, kind)
        assert sorted(found) == [0, 1] and all(p.name.startswith(f"{kind}_n8_") for p in found.values())
        net = load_checkpoint(found[0])
        spec = network_spec(found[0])
        assert (net.cfg.delay, net.cfg.feedback_density) == (spec.delay, spec.feedback_density)
    assert load_checkpoint(tmp_path / "lc_fb_n8_seed0.pt").cfg.n_in == 2
    with pytest.raises(ValueError, match="family without its size"):
        find_checkpoints(tmp_path, "fb_n8")
