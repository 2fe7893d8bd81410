"""The reach task (Methods, "Task"): geometry, timing, reference convention, rotation and pushes."""

import math

import numpy as np
import pytest
import torch

from tests.helpers import gen
from fbctrl.core.task import (TaskConfig, centre_out_reaches, centre_out_targets, draw_pushes, random_reaches,
                         reach_profile, rotate)

torch.set_num_threads(1)

PAPER = TaskConfig()  # T=125, go_step=20, move_steps=100


# ---- centre-out geometry --------------------------------------------------------------------

def test_paper_constants():
    assert (PAPER.T, PAPER.dt, PAPER.go_step, PAPER.move_steps) == (125, 0.01, 20, 100)
    assert (PAPER.push_prob, PAPER.push_amplitude, PAPER.push_duration) == (0.25, 10.0, 10)
    assert (PAPER.push_centre_low, PAPER.push_centre_high) == (20, 189)


def test_centre_out_targets_radius_5_and_45_degrees_apart():
    tg = centre_out_targets(PAPER).numpy()
    assert tg.shape == (8, 2)
    np.testing.assert_allclose(np.linalg.norm(tg, axis=1), 5.0, rtol=0, atol=1e-12)
    ang = np.degrees(np.arctan2(tg[:, 1], tg[:, 0])) % 360.0
    np.testing.assert_allclose(ang, np.arange(8) * 45.0, atol=1e-9)
    # neighbouring targets (cyclically) are exactly 45 degrees apart
    nxt = np.roll(tg, -1, axis=0)
    cosang = (tg * nxt).sum(1) / 25.0
    np.testing.assert_allclose(np.degrees(np.arccos(np.clip(cosang, -1, 1))), 45.0, atol=1e-6)


def test_centre_out_reaches_start_at_origin_end_on_targets():
    tr = centre_out_reaches(PAPER, dtype=torch.float64)
    assert tr.T == 125 and tuple(tr.batch_shape) == (8,)
    assert torch.equal(tr.start, torch.zeros(8, 2, dtype=torch.float64))
    torch.testing.assert_close(tr.end, centre_out_targets(PAPER), rtol=0, atol=1e-12)
    assert tr.target.tolist() == list(range(8))
    sub = centre_out_reaches(PAPER, [3, 3, 7], dtype=torch.float64)
    torch.testing.assert_close(sub.end, centre_out_targets(PAPER)[[3, 3, 7]], rtol=0, atol=1e-12)
    with pytest.raises(ValueError):
        centre_out_reaches(PAPER, [8])


def test_random_reaches_uniform_in_workspace():
    tr = random_reaches(PAPER, 4000, gen(0), dtype=torch.float64)
    for pts in (tr.start, tr.end):
        assert pts.min() >= -6.0 and pts.max() <= 6.0
        # mean 0 and variance 12^2/12 = 12 of Uniform(-6, 6)
        assert abs(float(pts.mean())) < 0.15
        assert abs(float(pts.var()) - 12.0) < 0.6
    # start and end are drawn independently
    c = np.corrcoef(tr.start[:, 0].numpy(), tr.end[:, 0].numpy())[0, 1]
    assert abs(c) < 0.06
    assert (tr.target == -1).all()


# ---- velocity profile and reference ---------------------------------------------------------

@pytest.mark.parametrize("kind", ["random", "centre-out"])
def test_target_velocity_integrates_to_displacement(kind):
    if kind == "random":
        tr = random_reaches(PAPER, 64, gen(1), dtype=torch.float64)
    else:
        tr = centre_out_reaches(PAPER, dtype=torch.float64)
    disp = tr.end - tr.start
    torch.testing.assert_close(tr.vstar.sum(0) * PAPER.dt, disp, rtol=0, atol=1e-10)
    # the lagged reference integrates to the same displacement (vstar is zero at the last step)
    torch.testing.assert_close(tr.vref.sum(0) * PAPER.dt, disp, rtol=0, atol=1e-10)
    # and the velocity is large enough for this to be a real test
    assert float(disp.norm(dim=-1).min()) > 0.1


def test_lagged_reference_convention():
    for tr in (random_reaches(PAPER, 16, gen(2), dtype=torch.float64),
               centre_out_reaches(PAPER, dtype=torch.float64),
               random_reaches(PAPER, 16, gen(2), rotation_deg=30.0, dtype=torch.float64)):
        assert torch.equal(tr.vref[0], torch.zeros_like(tr.vref[0]))
        assert torch.equal(tr.vref[1:], tr.vstar[:-1])


def test_position_profile_timing():
    prof = reach_profile(PAPER).numpy()
    assert prof.shape == (125,)
    # flat at the start until step 20, exactly at the end from step 120 on
    assert np.all(prof[:20] == 0.0)
    assert np.all(prof[120:] == 1.0)
    # the sigmoid over steps 20..119: sig(u_k), u_k = -1 + 2 k / 100
    u = -1.0 + 2.0 * np.arange(100) / 100.0
    np.testing.assert_allclose(prof[20:120], 1.0 / (1.0 + np.exp(-10.0 * u)), rtol=1e-12, atol=1e-15)
    assert 0.0 < prof[20] < 1e-4 and 0.9999 < prof[119] < 1.0
    assert np.all(np.diff(prof[20:120]) > 0)
    assert prof[70] == pytest.approx(0.5, abs=1e-12)


def test_target_velocity_is_central_difference_of_position_and_zero_outside_the_move():
    tr = centre_out_reaches(PAPER, [2], dtype=torch.float64)  # end (0, 5)
    prof = reach_profile(PAPER).numpy()
    pos = prof * 5.0
    vy = tr.vstar[:, 0, 1].numpy()
    np.testing.assert_allclose(vy[1:-1], (pos[2:] - pos[:-2]) / (2 * PAPER.dt), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(tr.vstar[:, 0, 0].numpy(), 0.0, atol=1e-12)  # reach along +y only
    # velocity is zero while the position is flat: steps 0..18 and 121..124
    assert np.all(vy[:19] == 0.0) and np.all(vy[121:] == 0.0)
    assert vy[19] > 0 and vy[120] > 0
    # peak speed in the middle of the movement (step 69/70)
    assert int(np.argmax(vy)) in (69, 70)


@pytest.mark.parametrize("kind,hold", [("random", 6.0), ("centre-out", 5.0)])
def test_inputs(kind, hold):
    if kind == "random":
        tr = random_reaches(PAPER, 32, gen(3), dtype=torch.float64)
    else:
        tr = centre_out_reaches(PAPER, dtype=torch.float64)
    inp = tr.inputs
    assert inp.shape == (125, tr.batch_shape[0], 3)
    disp = tr.end - tr.start
    assert torch.equal(inp[:20, :, :2], torch.zeros_like(inp[:20, :, :2]))
    torch.testing.assert_close(inp[20:, :, :2], disp.expand(105, *disp.shape), rtol=0, atol=1e-12)
    assert torch.all(inp[:20, :, 2] == hold)
    assert torch.all(inp[20:, :, 2] == 0.0)


def test_timing_is_parametrised():
    cfg = TaskConfig(T=30, go_step=5, move_steps=20)
    tr = random_reaches(cfg, 4, gen(4), dtype=torch.float64)
    assert tr.T == 30
    assert torch.all(tr.inputs[:5, :, 2] == 6.0) and torch.all(tr.inputs[5:, :, 2] == 0.0)
    prof = reach_profile(cfg)
    assert torch.all(prof[:5] == 0) and torch.all(prof[25:] == 1) and torch.all(prof[5:25] < 1)
    torch.testing.assert_close(tr.vstar.sum(0) * cfg.dt, tr.end - tr.start, rtol=0, atol=1e-10)


# ---- visuomotor rotation --------------------------------------------------------------------

def _signed_angle_deg(a, b):
    """Signed angle from a to b (counter-clockwise positive), per row, in degrees."""
    cross = a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]
    dot = (a * b).sum(-1)
    return np.degrees(np.arctan2(cross, dot))


@pytest.mark.parametrize("phi", [30.0, -45.0, 60.0, 90.0])
def test_rotation_turns_target_velocity_by_phi_and_keeps_inputs(phi):
    plain = random_reaches(PAPER, 16, gen(5), dtype=torch.float64)
    rot = random_reaches(PAPER, 16, gen(5), rotation_deg=phi, dtype=torch.float64)
    assert rot.rotation_deg == phi
    for name in ("vstar", "vref"):
        a = getattr(plain, name).numpy().reshape(-1, 2)
        b = getattr(rot, name).numpy().reshape(-1, 2)
        moving = np.linalg.norm(a, axis=1) > 1e-3
        assert moving.sum() > 100
        np.testing.assert_allclose(np.linalg.norm(b, axis=1), np.linalg.norm(a, axis=1), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(_signed_angle_deg(a[moving], b[moving]), phi, atol=1e-8)
    assert torch.equal(rot.inputs, plain.inputs)
    assert torch.equal(rot.start, plain.start) and torch.equal(rot.end, plain.end)
    # the rotated reach integrates to the rotated displacement
    torch.testing.assert_close(rot.vstar.sum(0) * PAPER.dt, rotate(plain.end - plain.start, phi),
                               rtol=0, atol=1e-10)


def test_rotation_of_centre_out_and_trials_rotated_agree():
    co = centre_out_reaches(PAPER, dtype=torch.float64)
    a = centre_out_reaches(PAPER, rotation_deg=30.0, dtype=torch.float64)
    b = co.rotated(30.0)
    assert torch.equal(a.vstar, b.vstar) and torch.equal(a.vref, b.vref) and torch.equal(a.inputs, co.inputs)
    # end of the rotated reach for target 0 (angle 0) lies at 30 degrees
    end = (a.vstar.sum(0) * PAPER.dt)[0].numpy()
    assert math.degrees(math.atan2(end[1], end[0])) == pytest.approx(30.0, abs=1e-8)
    assert np.linalg.norm(end) == pytest.approx(5.0, abs=1e-10)


def test_rotate_explicit_numbers():
    v = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    torch.testing.assert_close(rotate(v, 90.0), torch.tensor([[0.0, 1.0], [-2.0, 0.0]], dtype=torch.float64),
                               rtol=0, atol=1e-15)


# ---- pushes ---------------------------------------------------------------------------------

def _runs(trace):
    """(first index, length) of each run of non-zero entries of a 1-d array."""
    nz = np.flatnonzero(trace != 0)
    if nz.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(nz) > 1)
    starts = np.concatenate([[nz[0]], nz[breaks + 1]])
    ends = np.concatenate([nz[breaks], [nz[-1]]])
    return [(int(s), int(e - s + 1)) for s, e in zip(starts, ends)]


def test_pushes_probability_amplitude_duration_and_centres():
    cfg = TaskConfig(T=200)  # long enough that no pulse is cut off (last centre 189)
    B = 20000
    p = draw_pushes(cfg, B, gen(6)).numpy()  # [T, B, 2]
    assert p.shape == (200, B, 2)
    assert set(np.unique(p).tolist()) <= {0.0, 10.0}
    on = (p != 0).any(0)  # [B, 2]
    # probability 0.25 per trial and per dimension (std of the estimate ~0.003 per dimension)
    assert abs(on[:, 0].mean() - 0.25) < 0.015
    assert abs(on[:, 1].mean() - 0.25) < 0.015
    # the two dimensions are drawn independently: P(both) = 0.0625
    assert abs((on[:, 0] & on[:, 1]).mean() - 0.0625) < 0.01
    centres = []
    for b, d in zip(*np.nonzero(on)):
        runs = _runs(p[:, b, d])
        assert len(runs) == 1
        first, length = runs[0]
        assert length == 10
        centres.append(first + 5)
    centres = np.array(centres)
    assert centres.min() == 20 and centres.max() == 189
    # uniform over 20..189: mean 104.5, sd 49.1
    assert abs(centres.mean() - 104.5) < 3.0
    assert abs(centres.std() - math.sqrt((170 ** 2 - 1) / 12)) < 3.0


def test_pushes_are_cut_at_trial_end():
    B = 4000
    long = draw_pushes(TaskConfig(T=200), B, gen(7))
    short = draw_pushes(PAPER, B, gen(7))  # the same draws, trial of 125 steps
    assert short.shape == (125, B, 2)
    assert torch.equal(short, long[:125])
    # some pulses are partially cut, some lie entirely past the end of the trial
    on_long = (long != 0).any(0)
    on_short = (short != 0).any(0)
    assert (on_long & ~on_short).any()
    cut = (long[:125] != 0).any(0) & (long[125:] != 0).any(0)
    assert cut.any()
    lengths = (short != 0).sum(0)[cut]
    assert (lengths < 10).all() and (lengths > 0).all()


def test_random_reaches_push_flag():
    a = random_reaches(PAPER, 200, gen(8), push=True)
    assert (a.push != 0).any()
    assert torch.equal(a.without_push().push, torch.zeros_like(a.push))
    b = random_reaches(PAPER, 200, gen(8), push=False)
    assert torch.equal(b.push, torch.zeros_like(b.push))
    with pytest.raises(ValueError):
        centre_out_reaches(PAPER, push=True)  # needs a generator
