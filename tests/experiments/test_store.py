"""The unit files' store (fbctrl.experiments.store): every kind of damage is one error naming the
file and never silently wrong numbers (every single-byte corruption of a file is tried), foreign
and misnamed files are refused, hashes follow the bytes, claims are exclusive and taken over
from dead processes only, and the runner re-plans damaged and stale units; the committed units
all carry the provenance that detects staleness."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fbctrl.core.checkpoint import CheckpointError, check_network_files, save_checkpoint
from fbctrl.core.model import NetworkConfig, init_network
from fbctrl.experiments import paper, store
from fbctrl.experiments.protocol import CONDITIONS, Protocol
from fbctrl.paths import repo_root

RFLO_C, RFLO, BPTT_C, BPTT = CONDITIONS
UNIT = {"kind": "fb", "seed": 0, "stage": "sweep"}


def _write(tmp_path, name="u.npz", unit=UNIT, **records):
    records = records or {"test_loss": np.linspace(0, 1, 50), "target": np.arange(50) % 8}
    return store.write_unit(tmp_path / name, unit, records, {"lr": 1e-4})


def test_a_written_unit_reads_back_with_its_records_and_provenance(tmp_path):
    p = _write(tmp_path)
    rec, meta = store.read_unit(p, UNIT)
    np.testing.assert_array_equal(rec["test_loss"], np.linspace(0, 1, 50))
    assert meta["kind"] == store.UNIT_KIND and meta["unit"] == UNIT and meta["lr"] == 1e-4 and "commit" in meta
    assert store.unit_state(p, UNIT) == "ok" and store.unit_state(tmp_path / "none.npz", UNIT) == "missing"
    with pytest.raises(FileNotFoundError, match="none.npz is missing: run `python -m fbctrl paper`"):
        store.read_unit(tmp_path / "none.npz")


def test_every_single_byte_corruption_is_refused_by_name_or_reads_the_same_numbers(tmp_path):
    """Flip each byte of a unit file in turn: the store raises DamagedFileError naming the file,
    or (a byte the zip format does not protect, e.g. a timestamp) returns the very same records."""
    good = _write(tmp_path)
    data = good.read_bytes()
    want, _ = store.read_unit(good)
    bad = tmp_path / "flipped.npz"
    refused = same = 0
    for i in range(len(data)):
        bad.write_bytes(data[:i] + bytes([data[i] ^ 0x10]) + data[i + 1:])
        os.utime(bad, ns=(i, i))               # a new (mtime) key each time: nothing is served from memory
        try:
            rec, meta = store.read_unit(bad)
        except store.DamagedFileError as exc:
            assert str(bad) in str(exc) and "\n" not in str(exc)
            refused += 1
            continue
        assert meta["unit"] == UNIT and rec.keys() == want.keys()
        assert all(np.array_equal(rec[k], want[k]) for k in want)
        same += 1
    assert refused + same == len(data) and refused > len(data) // 2     # 80 % here; the rest are header bytes


@pytest.mark.parametrize("size", [0, 1, 22, 100, -1])
def test_truncated_and_empty_files_are_damaged(tmp_path, size):
    p = _write(tmp_path)
    data = p.read_bytes()
    p.write_bytes(data[:size if size >= 0 else len(data) - 1])
    with pytest.raises(store.DamagedFileError, match=f"result file {p} is damaged \\(not a zip .*delete it and run"):
        store.read_unit(p)
    assert store.unit_state(p, UNIT) == "damaged"


def test_foreign_files_are_refused_by_name(tmp_path):
    text = tmp_path / "text.npz"
    text.write_text("not a zip")
    no_meta = tmp_path / "nometa.npz"
    np.savez(no_meta, x=np.zeros(3))
    other = tmp_path / "other.npz"
    np.savez(other, meta=np.array(json.dumps({"kind": "something else"})))
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, meta=np.array([{"kind": store.UNIT_KIND}], dtype=object))
    for p, msg in ((text, "is damaged \\(not a zip \\(.npz\\) archive"), (no_meta, "is damaged \\(KeyError"),
                   (other, "is not a unit of the paper protocol \\(kind 'something else'\\)"),
                   (pickled, "is damaged \\(it holds pickled objects, which are never loaded\\)")):
        with pytest.raises(store.DamagedFileError, match=msg):
            store.read_unit(p)
    p = _write(tmp_path)
    with pytest.raises(store.DamagedFileError, match="describes another run"):
        store.read_unit(p, {**UNIT, "seed": 1})
    assert store.damaged_unit_files(tmp_path) and all(str(tmp_path) in line for line in store.damaged_unit_files(tmp_path))


def test_rewriting_the_meta_keeps_the_records_bit_for_bit(tmp_path):
    p = _write(tmp_path)
    rec0, meta0 = store.read_unit(p)
    store.rewrite_meta(p, {**meta0, "network": {"sha256": "ab"}})
    rec1, meta1 = store.read_unit(p)
    assert meta1["network"] == {"sha256": "ab"} and meta1["commit"] == meta0["commit"]
    assert all(rec0[k].tobytes() == rec1[k].tobytes() and rec0[k].dtype == rec1[k].dtype for k in rec0)


def test_hashes_follow_the_bytes_and_paths_are_recorded_relative_to_the_repository(tmp_path):
    import hashlib
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"one")
    b.write_bytes(b"two")
    assert store.file_sha256(a) == hashlib.sha256(b"one").hexdigest()
    d = store.files_digest([a, b])
    assert d == hashlib.sha256(f"a.bin {store.file_sha256(a)}\nb.bin {store.file_sha256(b)}\n".encode()).hexdigest()
    a.write_bytes(b"ONE!")                      # another size: the remembered hash is not used
    assert store.file_sha256(a) == hashlib.sha256(b"ONE!").hexdigest() and store.files_digest([a, b]) != d
    assert store.rel_path(repo_root() / "checkpoints" / "x.pt") == "checkpoints/x.pt"
    assert store.rel_path(tmp_path / "a.bin") == str((tmp_path / "a.bin").resolve())


def test_network_files_are_checked_whole(tmp_path):
    pt = tmp_path / "fb_n8_seed0.pt"
    net = init_network(NetworkConfig(n=8), torch.Generator().manual_seed(0))
    save_checkpoint(net, pt, {"seed": 0})
    with pytest.raises(FileNotFoundError, match="curve.npz"):
        check_network_files(pt)
    curve = tmp_path / "fb_n8_seed0.curve.npz"
    np.savez_compressed(curve, loss=np.arange(100.0))
    check_network_files(pt)
    data = curve.read_bytes()
    curve.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=f"training curves {curve}: damaged"):
        check_network_files(pt)
    curve.write_bytes(data)
    pt.write_bytes(pt.read_bytes()[:300])
    with pytest.raises(CheckpointError, match=f"checkpoint {pt}: damaged or not a torch checkpoint.*pre-train it again"):
        check_network_files(pt)


def test_every_single_byte_corruption_of_a_checkpoint_is_refused_or_loads_the_same_weights(tmp_path):
    """torch.load checks no checksum (a flipped byte loads other weights); load_checkpoint checks
    the zip's CRC-32s and the sha256 its sidecar records."""
    from fbctrl.core.checkpoint import load_checkpoint
    pt = tmp_path / "net.pt"
    save_checkpoint(init_network(NetworkConfig(n=4), torch.Generator().manual_seed(0)), pt, {"seed": 0})
    want = load_checkpoint(pt).tensors()
    data = pt.read_bytes()
    refused = 0
    where = np.random.default_rng(0).choice(len(data), size=300, replace=False)   # of about 3700 bytes
    for i in where:
        pt.write_bytes(data[:i] + bytes([data[i] ^ 0x10]) + data[i + 1:])
        try:
            got = load_checkpoint(pt).tensors()
        except CheckpointError as exc:
            assert str(pt) in str(exc) and "\n" not in str(exc)
            refused += 1
            continue
        assert all(torch.equal(got[k], want[k]) for k in want), i
    assert refused == len(where)         # the sidecar's sha256 catches even a byte zip does not protect


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_claims_are_exclusive_and_a_dead_process_claim_is_taken_over(tmp_path):
    unit = tmp_path / "sub" / "u.npz"
    c = store.claim(unit)
    assert c is not None and store.claim_path(unit).is_file() and store.claim(unit) is None   # held (alive)
    assert f"pid {os.getpid()}" in store.holder(unit)
    c.release()
    assert not store.claim_path(unit).exists()
    store.claim_path(unit).write_text(json.dumps({"host": store.HOST, "pid": _dead_pid(), "nonce": "x"}))
    assert store.claim_is_stale(unit)
    c = store.claim(unit)                        # the dead process's claim is taken over
    assert c is not None and json.loads(store.claim_path(unit).read_text())["pid"] == os.getpid()
    c.release()
    store.claim_path(unit).write_text(json.dumps({"host": "elsewhere", "pid": _dead_pid(), "nonce": "y"}))
    assert store.claim(unit) is None             # another host's process cannot be checked: left alone
    store.claim_path(unit).write_text("garbage")
    assert store.claim(unit) is None and not store.claim_is_stale(unit)


# ---------------------------------------------------------------------------------------------
# The runner: damaged and stale units are re-planned
# ---------------------------------------------------------------------------------------------

def _network(cfg, kind, seed, gen_seed):
    pt = paper.PretrainUnit(kind, seed).path(cfg)
    net = init_network(cfg.pretrain_config(kind).network, torch.Generator().manual_seed(gen_seed))
    save_checkpoint(net, pt, {"seed": seed, "config": {}})
    np.savez_compressed(Path(str(pt)[:-3] + ".curve.npz"), loss=np.zeros(3))
    return pt


def test_a_unit_whose_network_or_sweep_changed_is_stale(tmp_path):
    cfg = paper.PaperConfig.tiny(str(tmp_path / "ck"), str(tmp_path / "res"))
    pt = _network(cfg, "fb", 0, 0)
    run = paper.AdaptUnit("fb", 0, 30.0, RFLO, Protocol.PUBLISHED, cfg.trials)
    paper.write_unit(cfg, run, {"test_loss": np.ones(4)}, {"network": {"sha256": store.file_sha256(pt)}})
    assert paper.unit_status(cfg, run) == ("done", "")
    _network(cfg, "fb", 0, 1)                    # the network is replaced by another one
    state, why = paper.unit_status(cfg, run)
    assert state == "stale" and "computed from another network" in why and str(pt) in why
    # a best-rate run records the digest of the sweep that chose its rate
    sweep = [u for u in paper.sweep_units(cfg, RFLO, cfg.sweep_rates["rflo"])]
    for u in sweep:
        paper.write_unit(cfg, u, {"test_loss": np.full(u.trials, u.lr)},
                          {"diverged_trial": -1, "network": {"sha256": store.file_sha256(pt) if u.seed == 0 else ""}})
    best = paper.AdaptUnit("fb", 0, 30.0, RFLO, Protocol.BEST, cfg.trials)
    paper.write_unit(cfg, best, {"test_loss": np.ones(4)},
                      {"network": {"sha256": store.file_sha256(pt)}, "sweep_sha256": paper.sweep_digest(cfg, RFLO)})
    assert paper.unit_status(cfg, best)[0] == "done"
    paper.write_unit(cfg, sweep[-1], {"test_loss": np.zeros(sweep[-1].trials)}, {"diverged_trial": -1})
    assert paper.unit_status(cfg, best) == ("stale", f"{best.path(cfg)}: the sweep files that chose its rate changed")


def test_damaged_units_are_reported_and_recomputed_by_the_runner(tmp_path):
    cfg = paper.PaperConfig.tiny(str(tmp_path / "ck"), str(tmp_path / "res"))
    pt = _network(cfg, "fb", 0, 0)
    u = paper.AdaptUnit("fb", 0, 30.0, RFLO, Protocol.PUBLISHED, cfg.trials)
    paper.write_unit(cfg, u, {"test_loss": np.ones(4)}, {"network": {"sha256": store.file_sha256(pt)}})
    u.path(cfg).write_bytes(u.path(cfg).read_bytes()[:200])
    state, why = paper.unit_status(cfg, u)
    assert state == "damaged" and str(u.path(cfg)) in why
    pt.write_bytes(pt.read_bytes()[:100])        # a truncated network is pre-trained again
    assert paper.unit_status(cfg, paper.PretrainUnit("fb", 0))[0] == "damaged"
    assert paper.PretrainUnit("fb", 0) in paper.plan(cfg)[0].units


def test_every_committed_unit_is_whole_and_records_its_inputs():
    """Every unit under results/paper reads whole, records its network's sha256 (equal to the
    committed network's) by a path relative to the repository, and every best-rate run the digest
    of the sweep that chose its rate: nothing is planned again."""
    cfg = paper.PaperConfig()
    cfg = dataclasses.replace(cfg, checkpoint_dir=str(repo_root() / cfg.checkpoint_dir),
                        results_dir=str(repo_root() / cfg.results_dir), shipped_dir=str(repo_root() / cfg.shipped_dir))
    files = store.find_unit_files(cfg.results_dir)
    assert len(files) >= 636
    for p in files:
        rec, meta = store.read_unit(p)
        net = meta["network"]
        assert len(net["sha256"]) == 64 and not Path(net["checkpoint"]).is_absolute(), p
        assert store.file_sha256(repo_root() / net["checkpoint"]) == net["sha256"], p
        assert (meta["unit"].get("protocol") == "best") == ("sweep_sha256" in meta), p
    todo = [u for g in paper.plan(cfg) for u in g.units if u.path(cfg).is_file()]
    assert todo == []
