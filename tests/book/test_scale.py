"""``python -m fbctrl figure``: the book's paper-scale figures redrawn from the store's unit files
(``fbctrl.book.scale``), their data checked against the files read by hand, their options refused
in one line.

    python -m pytest -q tests/book/test_scale.py
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from fbctrl import __main__ as cli
from fbctrl.__main__ import main
from fbctrl.book import scale
from fbctrl.experiments.paper import AdaptUnit
from fbctrl.experiments.protocol import CONDITIONS, Protocol

CFG = scale.store_config()
HAVE_STORE = AdaptUnit("fb", 0, 30.0, CONDITIONS[0], Protocol.PUBLISHED, CFG.trials).path(CFG).is_file()
needs_store = pytest.mark.skipif(not HAVE_STORE, reason="the store's unit files are not in this checkout")


def _raw(seed: int, rotation: float, cond) -> dict:
    """One unit file read with numpy alone."""
    p = AdaptUnit("fb", seed, rotation, cond, Protocol.PUBLISHED, CFG.trials).path(CFG)
    with np.load(p, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


@needs_store
def test_figure_written_with_its_command_in_the_file(tmp_path, capsys):
    out = tmp_path / "fig3b.png"
    assert main(["figure", "3b", "--rotations", "30", "50", "--seeds", "0", "1", "2", "--out", str(out)]) == 0
    img = Image.open(out)
    assert img.size[0] == 680                       # drawn at the content column's width
    assert "python -m fbctrl figure 3b --seeds 0 1 2 --rotations 30 50" in img.info["Description"]
    printed = capsys.readouterr().out
    assert "n per point in the legend" in printed and "95% t interval" in printed


@needs_store
def test_the_beyond_summary_is_a_figure_with_its_command(tmp_path, capsys):
    out = tmp_path / "beyond.png"
    assert main(["figure", "beyond", "--out", str(out)]) == 0
    img = Image.open(out)
    assert img.size[0] == 680
    assert "Redraw: `python -m fbctrl figure beyond`" in img.info["Description"]
    assert "feedback delay (0, 50, 100 ms)" in capsys.readouterr().out
    assert main(["figure", "beyond", "--seeds", "0", "--out", str(out)]) == 2
    assert "figure beyond takes no option besides --out; not --seeds" in capsys.readouterr().err


@needs_store
@pytest.mark.parametrize("suffix", [".svg", ".pdf"])
def test_other_formats(tmp_path, suffix):
    out = tmp_path / f"fig4c{suffix}"
    assert main(["figure", "4c", "--seeds", "0", "1", "--out", str(out)]) == 0
    head = out.read_bytes()[:5]
    assert head == (b"%PDF-" if suffix == ".pdf" else b"<?xml")
    assert not list(tmp_path.glob(".*tmp*"))         # written atomically: no temporary file left


@pytest.mark.parametrize("argv, words", [
    (["figure", "9z", "--out", "x.png"], "invalid choice"),
    (["figure", "3b", "--rotations", "35", "--out", "x.png"], "rotations must be distinct values among 30, 40"),
    (["figure", "3b", "--lag", "2", "--out", "x.png"], "figure 3b takes --seeds, --rotations, --conditions; not --lag"),
    (["figure", "3b", "--out", "x.txt"], "out must be a file ending in .png, .pdf, .svg"),
    (["figure", "sweep", "--rule", "adam", "--out", "x.png"], "rule must be one of rflo, bptt"),
    (["figure", "3a", "--conditions", "RFLO", "RFLO", "--out", "x.png"], "conditions must be distinct values"),
    (["figure", "2c", "--source", "pushed", "--out", "x.png"], "source must be one of published, shipped"),
    (["figure", "2c", "--seeds", "99", "--out", "x.png"], "seeds must be distinct values among 0, 1"),
    (["figure", "4a", "--lag", "11", "--out", "x.png"], "lag must be one of 1, 2, 3, 4, 5, 6, 7, 8, 9, 10"),
])
def test_bad_input_one_line_exit_2(argv, words, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err
    assert not list(tmp_path.iterdir())             # nothing drawn


@needs_store
def test_final_losses_are_the_files_last_ten_trials():
    d = scale.finals_data(CFG, (0, 3), (30.0, 60.0), ("RFLO+c", "BPTT"))
    assert set(d["finals"]) == {"RFLO+c", "BPTT"}
    for cond in (CONDITIONS[0], CONDITIONS[3]):
        for r in (30.0, 60.0):
            want = [_raw(s, r, cond)["test_loss"][-10:].mean() for s in (0, 3)]
            np.testing.assert_allclose(d["finals"][cond.name][r], want, rtol=1e-12)
    np.testing.assert_allclose(d["curves"]["BPTT"][1], _raw(3, 30.0, CONDITIONS[3])["test_loss"])


@needs_store
def test_alignment_along_runs_and_at_matched_states_by_hand():
    d = scale.alignment_data(CFG, (1, 2), "local")
    trials, Y = d["along"]["RFLO+c"]
    raw = _raw(2, 30.0, CONDITIONS[0])
    aligned = np.flatnonzero(np.isfinite(raw["align_global"]))
    np.testing.assert_array_equal(trials, aligned)
    np.testing.assert_allclose(Y[1], np.nanmean(raw["align_local"][aligned, CFG.task.go_step:], axis=1), rtol=1e-6)
    pts, on, off = d["matched"]
    np.testing.assert_array_equal(pts, raw["matched_points"])
    np.testing.assert_allclose(on[1], raw["matched_local"][:, 0].mean(axis=1), rtol=1e-6)
    np.testing.assert_allclose(off[1], raw["matched_local"][:, 1].mean(axis=1), rtol=1e-6)


@needs_store
def test_equal_path_efficiency_pairs_each_network_with_itself():
    d = scale.efficiency_data(CFG, (0, 1, 2), (30.0,))
    e = d["eff"]
    a, b = _raw(1, 30.0, CONDITIONS[0]), _raw(1, 30.0, CONDITIONS[1])
    assert e["equal_path"]["RFLO+c"][30.0].shape == (3,)
    # the run whose path is the shorter one is read at its end: its whole-run ratio
    short = "RFLO+c" if a["dW_path"].sum() <= b["dW_path"].sum() else "RFLO"
    np.testing.assert_allclose(e["equal_path"][short][30.0][1], e["whole_run"][short][30.0][1], rtol=1e-9)
    ratio = e["published"]["RFLO+c"][30.0] / e["per_trial"]["RFLO+c"][30.0]
    np.testing.assert_allclose(ratio, 5e-5, rtol=1e-9)             # published = rate x scale-free ratio


@needs_store
def test_network_figures_average_targets_per_network():
    d = scale.activity_data(CFG, (4,), "published", "same")
    with np.load(f"{CFG.results_dir}/network/published/activity/fb_seed4.npz") as z:
        want = z["cos_trial_same_off"].mean(axis=0)
        meta = json.loads(str(z["meta"]))
    assert meta["unit"]["seed"] == 4
    np.testing.assert_allclose(d["trial_off"][0], want)
    assert d["t"].shape == want.shape


def test_command_leaves_defaults_out():
    base = scale.check_options("4a", CFG)
    assert scale.command("4a", base, CFG) == "python -m fbctrl figure 4a"
    assert scale.command("4a", {**base, "lag": 5}, CFG) == "python -m fbctrl figure 4a --lag 5"


@needs_store
def test_missing_units_only_lists_absent_files(tmp_path):
    opts = scale.check_options("3b", CFG, seeds=[0], rotations=[30.0])
    assert scale.missing_units("3b", CFG, opts) == []
    empty = scale.store_config(tmp_path)
    miss = scale.missing_units("3b", empty, scale.check_options("3b", empty, seeds=[0], rotations=[30.0]))
    assert len(miss) == 4 and all(u.rotation_deg == 30.0 for u in miss)
    assert scale.estimate_seconds(empty, miss) > 0


def test_compute_runs_only_the_missing_units_grouped_by_rule(tmp_path, monkeypatch, capsys):
    ran = []
    monkeypatch.setattr(cli.paper, "run_batch", lambda cfg, units, **kw: ran.append([u.describe() for u in units]))
    out = tmp_path / "f.png"
    # the faked runner writes nothing, so the figure has no data left to draw: one line, exit 2, no file
    assert main(["figure", "4b", "--seeds", "0", "--root", str(tmp_path), "--compute", "--out", str(out)]) == 2
    assert ran == [["fb RFLO+c 30 deg seed 0 (published)", "fb RFLO 30 deg seed 0 (published)"]]
    err = capsys.readouterr().err
    assert "computing 2 missing unit(s): about" in err and "2 unit file(s) of figure 4b are missing or out of date" in err
    assert "figure 4b has no whole, current unit file in the store for seeds 0" in err
    assert not out.exists()


def test_without_compute_nothing_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli.paper, "run_batch", lambda *a, **k: pytest.fail("computed without --compute"))
    assert main(["figure", "4c", "--seeds", "0", "--root", str(tmp_path), "--out", str(tmp_path / "g.png")]) == 2
    err = capsys.readouterr().err
    assert "--compute runs them" in err and "python -m fbctrl figure 4c --seeds 0 --compute" in err


@pytest.mark.parametrize("kw, words", [
    ({"paper_seeds": (99,)}, "paper_seeds must be None or distinct values among 0, 1"),
    ({"rotations": (35.0,)}, "paper_rotations must be None or distinct values among 30, 40, 50, 60"),
])
def test_chapter_parameters_name_themselves(kw, words):
    with pytest.raises(ValueError, match=words):
        scale.chapter_figure("3b", **kw)


def test_jacobian_lag_ratios_are_on_over_off_over_the_movement_per_network_by_hand():
    rng = np.random.default_rng(3)
    steps = np.arange(0, 120, 5)
    go = CFG.task.go_step
    recs = []
    for _ in range(3):
        r = {"steps": steps, "lags": np.array([1, 2])}
        for pre in ("norm_", "norm_rate_"):
            for what in ("on", "off", "loop"):
                for L in (1, 2):
                    r[f"{pre}{what}_L{L}"] = rng.uniform(0.5, 2.0, size=(4, steps.size))
        recs.append(r)
    d = scale.jacobian_lag_ratios(CFG, recs)
    mov = steps >= go
    assert list(d["ratios"]) == list(scale.JACOBIAN_KINDS)
    for kind, (closed, rates) in scale.JACOBIAN_KINDS.items():
        pre = "norm_rate_" if rates else "norm_"
        for i, r in enumerate(recs):
            for j, L in enumerate((1, 2)):
                want = r[f"{pre}{'loop' if closed else 'on'}_L{L}"][:, mov].mean() / r[f"{pre}off_L{L}"][:, mov].mean()
                np.testing.assert_allclose(d["ratios"][kind][i, j], want, rtol=1e-12)
    lo, hi = d["band"]
    assert lo < 1 < hi and np.isclose(lo * hi, 1.0)
    for k in [k for k in recs[0] if k.startswith("norm_rate_")]:   # a unit without the rate Jacobian:
        del recs[0][k]                                                 # those kinds are left out
    assert list(scale.jacobian_lag_ratios(CFG, recs)["ratios"]) == ["activity, open loop", "activity, closed loop"]


def test_chapters_state_the_conventions_and_the_stage_of_learning_under_their_figures():
    text = scale.chapter_verdicts("4a", CFG)
    for label in scale.CHAPTER_CONVENTIONS["4a"]:
        assert f"- {label}: " in text or f"- {label} (at lag " in text
    for name in ("4b", "4c", "5a"):
        text = scale.chapter_verdicts(name, CFG)
        assert "- Stage of learning: " in text
        assert ("- Which gradient: " in text) == (name != "5a")


def test_online_correction_verdict_uses_the_loss_band():
    """Figure 1a's lines judge the paired ratio off / on with the loss band: a controller that
    changes the loss by about 1% on every network is negligible, not 'agrees'; a several-fold cut
    agrees; a 1% rise is negligible too, not 'disagrees'."""
    from fbctrl.book.scale import online_verdict_lines
    on = np.array([1.0, 2.0, 1.5, 0.8, 1.2])
    jitter = np.array([1.0, 1.001, 0.999, 1.0005, 0.9995])
    d = {"titles": {"a": "small", "b": "large", "c": "worse"},
         "losses": {"fb": {("a", True): on, ("a", False): on * 1.01 * jitter,
                           ("b", True): on, ("b", False): on * 5.0 * jitter,
                           ("c", True): on, ("c", False): on / 1.01 * jitter}}}
    lines = online_verdict_lines(d)
    assert lines[0].startswith("small:") and lines[0].endswith("**negligible**")
    assert lines[1].endswith("**agrees**")
    assert lines[2].endswith("**negligible**")


@needs_store
def test_figure8_draws_every_swept_rotation_and_names_its_command():
    """Figure 8 as the paper draws it: a heatmap per condition over the rates and the four swept
    rotations, the caption stating each rule's trials and the swept networks, the command that
    redraws it; a wrong option stops in one line."""
    import matplotlib.pyplot as plt
    fig, d, o = scale.draw("8", CFG, conditions=["RFLO", "RFLO+c"])
    assert d["rotations"] == [30.0, 40.0, 50.0, 60.0] and list(d["conditions"]) == ["RFLO+c", "RFLO"]
    assert [ax.get_title() for ax in fig.axes if ax.get_title()] == ["RFLO+c", "RFLO"]
    for c in d["conditions"].values():
        assert c["final"].shape == (4, len(c["rates"])) and np.isfinite(c["final"][0]).any()
    text = scale.caption("8", d, o, CFG)
    assert "RFLO and RFLO+c ran 1000 trials, online BPTT 200" in text and "n = 5 networks (seeds 0, 1, 2, 3, 4)" in text
    assert text.endswith("Redraw: `python -m fbctrl figure 8 --conditions RFLO+c RFLO`.")
    with pytest.raises(ValueError, match="conditions must be distinct values among RFLO\\+c, RFLO, BPTT\\+c, BPTT"):
        scale.check_options("8", CFG, conditions=["SGD"])
    with pytest.raises(ValueError, match="figure 8 takes --conditions; not --seeds"):
        scale.check_options("8", CFG, seeds=[0])
    plt.close(fig)


def test_a_caption_takes_figure_data_whose_trials_are_a_count():
    """Figure 1a's data hold its trial count as a number (Figure 8's, per rule): both caption."""
    text = scale.caption("1a", {"trials": 8, "seeds": [0, 1]}, {"rotation": 30.0, "seeds": (0, 1)}, CFG)
    assert text.startswith("Fig. 1a at the paper's scale.") and "n = 2 networks (seeds 0, 1)" in text
